"""
A client portal in Bottle behind sso_middleware
===============================================

Each handler reads who is signed in from ``request.environ`` with
``get_identity``; the account pages ask for a signed-in identity first. The
middleware answers the SSO endpoint, the admin API and ``POST /logout``
itself; every other request reaches Bottle with the identity set (or not).

Run it with ``scripts/example bottle`` (``--port``, ``--redis-url``); it logs
to stderr with timestamps, the middleware's audit events among the lines
(:func:`examples.portal.configure_logging`).
"""

from __future__ import annotations

import typing as t
from urllib.parse import urlsplit

from bottle import Bottle, HTTPError, abort, redirect, request, response, template

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

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}} - Client portal</title></head>
<body><nav><a href="/">Home</a> | <a href="/account/profile">Profile</a> |
<a href="/account/services">Services</a> | <a href="/account/invoices">Invoices</a> |
<a href="/account/security">Security settings</a></nav>
% if who:
<p id="who">Signed in as user {{who.user_id}} for client {{who.client_id}}.</p>
<form method="post" action="/logout"><button>Log out</button></form>
% else:
<p id="who">Not signed in.</p>
% end
<h1>{{title}}</h1>
% for line in lines:
<p>{{line}}</p>
% end
% for id, name in services:
<p><a href="/account/services/{{id}}">{{name}} (service {{id}})</a></p>
% end
% if allow_sso is not None:
<form method="post"><input type="hidden" name="allow_sso" value="{{'0' if allow_sso else '1'}}">
<button>Switch single sign-on {{'off' if allow_sso else 'on'}}</button></form>
% end
</body></html>"""


class PortalUserStore(UserStore, t.Protocol):
    """The middleware's user store, plus the setting the Security page switches."""

    def set_sso_allowed(self, client_id: int, allowed: bool) -> None: ...


def page(
    title: str, *lines: str, services: t.Sequence[tuple[int, str]] = (), allow_sso: bool | None = None
) -> str:
    return template(
        PAGE,
        title=title,
        lines=lines,
        services=services,
        allow_sso=allow_sso,
        who=get_identity(request.environ),
    )


def signed_in() -> Identity:
    """The signed-in identity; a 401 for anonymous requests."""
    identity = get_identity(request.environ)
    if identity is None:
        raise HTTPError(401, NOT_SIGNED_IN)
    return identity


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
    app = Bottle()

    @app.error(401)
    def not_signed_in(error: HTTPError) -> str:
        return page("Not signed in", str(error.body))

    @app.get("/")
    def home() -> str:
        return page("Client portal", "Welcome to the client portal.")

    @app.get("/whoami")
    def whoami() -> dict[str, t.Any]:
        identity = get_identity(request.environ)
        if identity is None:
            response.status = 401
            return {"error": "not signed in"}
        return {"user_id": identity.user_id, "client_id": identity.client_id}

    @app.get("/account/profile")
    def profile() -> str:
        return page("Profile", f"Account details of client {signed_in().client_id}.")

    @app.get("/account/services")
    def services() -> str:
        client_id = signed_in().client_id
        owned = [(id, name) for id, name in SERVICES.items() if store.owner_of("service", id) == client_id]
        return page("Services", *([] if owned else ["No services."]), services=owned)

    @app.get("/account/services/<service_id:int>")
    def service(service_id: int) -> str:
        client_id = signed_in().client_id
        if store.owner_of("service", service_id) != client_id:
            abort(404, "No such service.")
        return page(f"Service {service_id}", f"{SERVICES.get(service_id, 'Service')} of client {client_id}.")

    @app.get("/account/invoices")
    def invoices() -> str:
        return page("Invoices", f"Client {signed_in().client_id} has no unpaid invoices.")

    @app.get("/account/security")
    def security() -> str:
        account = store.get_account(signed_in().client_id)
        on = account is not None and account.sso_allowed
        return page(
            "Security settings",
            f"Allow single sign-on: {'on' if on else 'off'}.",
            "Linked systems can sign you in here only while it is on.",
            allow_sso=on,
        )

    @app.post("/account/security")
    def change_security() -> None:
        client_id = signed_in().client_id
        origin = urlsplit(request.headers.get("Origin") or request.headers.get("Referer") or "")
        if (origin.scheme, origin.netloc) != (system.scheme, system.netloc):
            abort(403, "Cross-site request refused.")
        if request.forms.get("allow_sso") not in ("0", "1"):
            abort(400, "allow_sso must be 0 or 1.")
        store.set_sso_allowed(client_id, request.forms["allow_sso"] == "1")
        redirect("/account/security", 303)

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
    serve_example(create_app, "The Bottle client portal behind sso_middleware.", 8003)


if __name__ == "__main__":
    main()
