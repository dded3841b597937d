"""
A client portal in Pyramid behind sso_middleware
================================================

A security policy reads who is signed in from the middleware's environ key
(``request.identity``); the account pages are views with ``permission="view"``.
The middleware answers the SSO endpoint, the admin API and ``POST /logout``
itself; every other request reaches Pyramid with the identity set (or not).

Run it with ``scripts/example pyramid`` (``--port``, ``--redis-url``); it logs
to stderr with timestamps, the middleware's audit events among the lines
(:func:`examples.portal.configure_logging`).
"""

from __future__ import annotations

import typing as t
from html import escape
from urllib.parse import urlsplit

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPBadRequest, HTTPForbidden, HTTPNotFound, HTTPSeeOther
from pyramid.interfaces import ISecurityPolicy
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import Allowed, Denied
from zope.interface import implementer

from examples.portal import EXAMPLE_DESTINATIONS, serve_example
from sso_middleware import (
    AdminAPIOptions,
    Identity,
    SessionOptions,
    SSOMiddleware,
    Stores,
    UserStore,
    get_identity,
)
from sso_middleware.demo import demo_user_store

#: The portal's own product catalogue; the user store says who owns what.
SERVICES = {101: "Shared hosting", 201: "Virtual server", 301: "Dedicated server"}

NOT_SIGNED_IN = "You are not signed in. Open the portal from your control panel to sign in."


class PortalUserStore(UserStore, t.Protocol):
    """The middleware's user store, plus the setting the Security page switches."""

    def set_sso_allowed(self, client_id: int, allowed: bool) -> None: ...


@implementer(ISecurityPolicy)
class SSOSecurityPolicy:
    """Whoever the middleware signed in may view the account pages.
    Signing in and out is the middleware's business: remember/forget do nothing."""

    def identity(self, request: Request) -> Identity | None:
        return get_identity(request.environ)

    def authenticated_userid(self, request: Request) -> int | None:
        identity = request.identity
        return None if identity is None else identity.user_id

    def permits(self, request: Request, context: t.Any, permission: str) -> Allowed | Denied:
        if request.identity is None:
            return Denied("not signed in")
        return Allowed("signed in")

    def remember(self, request: Request, userid: t.Any, **kw: t.Any) -> list[tuple[str, str]]:
        return []

    def forget(self, request: Request, **kw: t.Any) -> list[tuple[str, str]]:
        return []


def page(request: Request, title: str, content: str, status: int = 200) -> Response:
    """``content`` is HTML; everything else is escaped here."""
    identity = request.identity
    if identity is None:
        who = '<p id="who">Not signed in.</p>'
    else:
        who = (
            f'<p id="who">Signed in as user {identity.user_id} for client {identity.client_id}.</p>'
            '<form method="post" action="/logout"><button>Log out</button></form>'
        )
    return Response(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} - Client portal</title></head>
<body><nav><a href="/">Home</a> | <a href="/account/profile">Profile</a> |
<a href="/account/services">Services</a> | <a href="/account/invoices">Invoices</a> |
<a href="/account/security">Security settings</a></nav>
{who}<h1>{escape(title)}</h1>{content}</body></html>""",
        status=status,
        content_type="text/html",
        charset="utf-8",
    )


def home(request: Request) -> Response:
    return page(request, "Client portal", "<p>Welcome to the client portal.</p>")


def whoami(request: Request) -> t.Any:
    if request.identity is None:
        request.response.status = 401
        return {"error": "not signed in"}
    return {"user_id": request.identity.user_id, "client_id": request.identity.client_id}


def profile(request: Request) -> Response:
    return page(request, "Profile", f"<p>Account details of client {request.identity.client_id}.</p>")


def services(request: Request) -> Response:
    owned = [
        f'<li><a href="{request.route_path("service", service_id=id)}">{escape(name)} (service {id})</a></li>'
        for id, name in SERVICES.items()
        if request.user_store.owner_of("service", id) == request.identity.client_id
    ]
    return page(request, "Services", f"<ul>{''.join(owned) or '<li>No services.</li>'}</ul>")


def service(request: Request) -> Response:
    service_id = int(request.matchdict["service_id"])
    if request.user_store.owner_of("service", service_id) != request.identity.client_id:
        raise HTTPNotFound()
    name = escape(SERVICES.get(service_id, "Service"))
    return page(request, f"Service {service_id}", f"<p>{name} of client {request.identity.client_id}.</p>")


def invoices(request: Request) -> Response:
    return page(request, "Invoices", f"<p>Client {request.identity.client_id} has no unpaid invoices.</p>")


def security(request: Request) -> Response:
    account = request.user_store.get_account(request.identity.client_id)
    on = account is not None and account.sso_allowed
    return page(
        request,
        "Security settings",
        f"""
<p>Allow single sign-on: {"on" if on else "off"}.
Linked systems can sign you in here only while it is on.</p>
<form method="post"><input type="hidden" name="allow_sso" value="{0 if on else 1}">
<button>Switch single sign-on {"off" if on else "on"}</button></form>""",
    )


def change_security(request: Request) -> Response:
    origin = urlsplit(request.headers.get("Origin") or request.referrer or "")
    if (origin.scheme, origin.netloc) != request.registry.settings["origin"]:
        raise HTTPForbidden("Cross-site request refused.")
    if request.POST.get("allow_sso") not in ("0", "1"):
        raise HTTPBadRequest()
    request.user_store.set_sso_allowed(request.identity.client_id, request.POST["allow_sso"] == "1")
    return HTTPSeeOther(request.route_path("security"))


def forbidden(request: Request) -> Response:
    """Anonymous: 401 with a hint; signed in but refused: 403."""
    if request.identity is None:
        return page(request, "Not signed in", f"<p>{NOT_SIGNED_IN}</p>", status=401)
    return page(request, "Forbidden", f"<p>{escape(request.exception.message or '')}</p>", status=403)


def create_app(
    *,
    system_url: str,
    stores: Stores,
    secret_keys: t.Sequence[str | bytes],
    user_store: PortalUserStore | None = None,
    sessions: SessionOptions = SessionOptions(),
    api: AdminAPIOptions | None = None,
) -> SSOMiddleware:
    """The portal, wrapped by the middleware (which is the WSGI app)."""
    store = demo_user_store() if user_store is None else user_store
    system = urlsplit(system_url)
    with Configurator(settings={"origin": (system.scheme, system.netloc)}) as config:
        config.set_security_policy(SSOSecurityPolicy())
        config.add_request_method(lambda request: store, "user_store", reify=True)
        for name, pattern in (
            ("home", "/"),
            ("whoami", "/whoami"),
            ("profile", "/account/profile"),
            ("services", "/account/services"),
            ("service", r"/account/services/{service_id:\d+}"),
            ("invoices", "/account/invoices"),
            ("security", "/account/security"),
        ):
            config.add_route(name, pattern)
        config.add_view(home, route_name="home")
        config.add_view(whoami, route_name="whoami", renderer="json")
        for view in (profile, services, service, invoices):
            config.add_view(view, route_name=view.__name__, permission="view")
        config.add_view(security, route_name="security", request_method="GET", permission="view")
        config.add_view(change_security, route_name="security", request_method="POST", permission="view")
        config.add_forbidden_view(forbidden)
        app = config.make_wsgi_app()
    return SSOMiddleware(
        app,
        system_url=system_url,
        secret_keys=secret_keys,
        user_store=store,
        stores=stores,
        api=api,
        sessions=sessions,
        destinations=EXAMPLE_DESTINATIONS,
    )


def main() -> None:
    serve_example(create_app, "The Pyramid client portal behind sso_middleware.", 8002)


if __name__ == "__main__":
    main()
