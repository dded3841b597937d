"""
Logout
======

:class:`LogoutEndpoint` ends the browser's session server-side, so its cookie
stops working everywhere, clears the cookie and redirects.

POST only by default: with ``SameSite=Lax`` cookies, another site cannot make
a browser POST here with its cookie, so it cannot log users out; a POST that
the browser says comes from another origin (a sibling subdomain is the same
*site*) is refused too. GET can be allowed for plain logout links, which
anyone can then make a browser follow.
"""

from __future__ import annotations

import logging
import typing as t

from werkzeug.wrappers import Response

from ..audit import audit, unavailable
from ..responses import SeeOther, error_page
from ..sessions import SessionManager
from .origin import from_origin, origin_of

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class LogoutEndpoint:
    """The WSGI application behind the logout path.

    :param sessions: ends sessions and clears their cookie.
    :param redirect_url: where the browser goes afterwards (absolute); a
        POST must come from its origin, the deployment's.
    :param allow_get: also log out on GET.
    """

    def __init__(self, sessions: SessionManager, *, redirect_url: str, allow_get: bool = False):
        self.sessions = sessions
        self.redirect_url = redirect_url
        self.origin = origin_of(redirect_url)
        self.methods = ("POST", "GET") if allow_get else ("POST",)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return self.respond(environ)(environ, start_response)

    def respond(self, environ: WSGIEnvironment) -> Response | SeeOther:
        """Answer one request; never raises."""
        method = environ.get("REQUEST_METHOD")
        if method not in self.methods:
            return error_page(405, allow=", ".join(self.methods))
        if method == "POST" and from_origin(environ, self.origin) is False:
            # A form on another origin (a sibling host is the same site, so
            # the cookie came along): change nothing, as for a cross-site one.
            audit(logging.WARNING, "cross_origin_logout", "Logout POST from another origin ignored")
            return SeeOther(self.redirect_url)
        cookie = self.sessions.read_cookie(environ)
        try:
            session = self.sessions.resume(cookie) if cookie else None
            if session is not None:
                self.sessions.end(session)
                audit(
                    logging.INFO,
                    "logout",
                    "User ID: %d logged out",
                    session.identity.user_id,
                    user_id=session.identity.user_id,
                    client_id=session.identity.client_id,
                )
        except Exception as e:  # a store outage or a bug: a 503, and the cookie goes anyway
            unavailable("Logout", e)
            response = error_page(503)
            self.sessions.clear_cookie(response)
            return response
        if cookie is None:  # e.g. a cross-site POST, which carries no Lax cookie: nothing to do
            return SeeOther(self.redirect_url)
        return SeeOther(self.redirect_url, self.sessions.clearing_header())
