"""
Demo portal
===========

A small client portal wrapped by the middleware, with seeded accounts, for
trying every destination and every denial by hand (``sso-middleware demo``);
the example portals in ``examples/`` seed the same accounts. It is demo
wiring, not an API: real deployments build their own
:class:`~sso_middleware.SSOMiddleware`.

Seeded accounts (client → owner): 1 Active (user 1; user 5 may also act
for it), 2 Inactive (user 2), 3 Closed (user 3), 4 Active with single sign-on
switched off (user 4). User 6 acts for no account. Services 101
(client 1), 201 (client 2), 301 (client 3); domain 111 (client 1).
"""

from __future__ import annotations

import json
import re
import secrets
import typing as t
from html import escape

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .credentials import hash_secret
from .destinations import WHMCS_DESTINATIONS, WHMCS_HOME
from .identity import get_identity
from .middleware import SSOMiddleware
from .options import AdminAPIOptions, SessionOptions
from .stores import Stores
from .users import Account, AccountStatus, MemoryUserStore, User

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_TOKEN_IN_LINE = re.compile(r"(access_token=)[^&\s\"]*")


def demo_user_store() -> MemoryUserStore:
    """The seeded accounts and users listed in this module's docstring."""
    users = MemoryUserStore()
    for client_id, status, sso_allowed in (
        (1, AccountStatus.ACTIVE, True),
        (2, AccountStatus.INACTIVE, True),
        (3, AccountStatus.CLOSED, True),
        (4, AccountStatus.ACTIVE, False),
    ):
        users.add_account(Account(client_id, status, sso_allowed, owner_user_id=client_id))
        users.add_user(User(client_id, client_ids=(client_id,)))
    users.add_user(User(5, client_ids=(1,)))
    users.add_user(User(6))
    for client_id, service_id in ((1, 101), (2, 201), (3, 301)):
        users.add_service(client_id, service_id)
    users.add_domain(1, 111)
    return users


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo portal</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}</style>
</head><body><h1>Demo portal</h1>
<p id="who">{who}</p>
<p>You are at <code id="here">{here}</code>.</p>
{logout}
<h2>Destinations</h2><ul>{links}</ul>
</body></html>
"""


def portal(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    """The wrapped app: every path is a page saying who is signed in, and
    ``/whoami`` answers JSON (401 when anonymous)."""
    request = Request(environ)
    identity = get_identity(environ)
    if request.path == "/whoami":
        if identity is None:
            response = Response(json.dumps({"error": "not signed in"}), 401, content_type="application/json")
        else:
            response = Response(
                json.dumps({"user_id": identity.user_id, "client_id": identity.client_id}),
                content_type="application/json",
            )
        return response(environ, start_response)
    if identity is None:
        who, logout = "Not signed in.", ""
    else:
        who = f"Signed in as user {identity.user_id} for client {identity.client_id}."
        logout = '<form method="post" action="/logout"><button>Log out</button></form>'
    paths = {
        WHMCS_HOME,
        *(
            p.format(service_id=101, domain_id=111, sso_redirect_path="clientarea.php")
            for p in WHMCS_DESTINATIONS.values()
        ),
    }
    links = "".join(f'<li><a href="{escape(p)}">{escape(p)}</a></li>' for p in sorted(paths))
    here = request.full_path.rstrip("?")
    body = _PAGE.format(who=escape(who), here=escape(here), logout=logout, links=links)
    return Response(body, content_type="text/html; charset=utf-8")(environ, start_response)


def build_demo(
    port: int,
    stores: Stores,
    api_identifier: str,
    api_secret: str,
    secret_key: str,
    *,
    api_actions: t.Sequence[str] | None = None,
    api_allowed_ips: str | None = None,
) -> SSOMiddleware:
    """The demo portal wrapped by the middleware, for ``http://127.0.0.1:port``;
    ``api_actions`` limits the API credential's role, ``api_allowed_ips``
    where the API may be called from."""
    return SSOMiddleware(
        portal,
        system_url=f"http://127.0.0.1:{port}",
        secret_keys=[secret_key],
        user_store=demo_user_store(),
        stores=stores,
        api=AdminAPIOptions(
            credentials={api_identifier: hash_secret(api_secret)},
            roles={api_identifier: api_actions} if api_actions else None,
            allowed_ips=api_allowed_ips,
        ),
        sessions=SessionOptions(secure=False, logout_on_get=True),
    )


class RedactingRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler, with ``access_token`` values blanked out
    of every access-log and error line."""

    def log(self, type: str, message: str, *args: t.Any) -> None:
        line = message % args if args else message
        super().log(type, "%s", _TOKEN_IN_LINE.sub(r"\1[redacted]", line))


def serve(port: int) -> BaseWSGIServer:
    """A threaded development server on 127.0.0.1 (not started), serving the
    bare portal until its ``app`` is replaced; ``port`` 0 picks a free one."""
    return make_server("127.0.0.1", port, portal, threaded=True, request_handler=RedactingRequestHandler)


def new_credentials() -> tuple[str, str]:
    """A fresh admin API identifier and secret for one demo run."""
    return "demo-" + secrets.token_hex(4), secrets.token_urlsafe(32)


def credentials_line(identifier: str, secret: str, *, generated: bool) -> str:
    """The start-up line naming the admin API credentials. Only a secret the
    demo generated is printed (nobody else knows it); one the operator chose
    in ``SSO_DEMO_API_SECRET`` is not, since printing it would copy it into
    terminal scrollback and the logs of whatever runs the demo."""
    shown = secret if generated else "(from $SSO_DEMO_API_SECRET)"
    return f"Admin API credentials: identifier={identifier} secret={shown}"
