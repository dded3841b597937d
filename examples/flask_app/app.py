"""
A client portal in Flask behind sso_middleware
==============================================

Flask-Login reads who is signed in from the middleware's environ key through
a ``request_loader``; ``@login_required`` protects the account pages. The
middleware answers the SSO endpoint, the admin API and ``POST /logout``
itself; every other request reaches Flask with the identity set (or not).

Run it with ``scripts/example flask`` (``--port``, ``--redis-url``); it logs
to stderr with timestamps, the middleware's audit events among the lines
(:func:`examples.portal.configure_logging`).
"""

from __future__ import annotations

import secrets
import typing as t
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Request,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, login_required
from jinja2 import DictLoader

from examples.portal import EXAMPLE_DESTINATIONS, serve_example
from sso_middleware import AdminAPIOptions, SessionOptions, SSOMiddleware, Stores, UserStore, get_identity
from sso_middleware.demo import demo_user_store

#: The portal's own product catalogue; the user store says who owns what.
SERVICES = {101: "Shared hosting", 201: "Virtual server", 301: "Dedicated server"}

TEMPLATES = {
    "base.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} - Client portal</title></head>
<body><nav><a href="/">Home</a> | <a href="/account/profile">Profile</a> |
<a href="/account/services">Services</a> | <a href="/account/invoices">Invoices</a> |
<a href="/account/security">Security settings</a></nav>
{% if current_user.is_authenticated %}
<p id="who">Signed in as user {{ current_user.id }} for client {{ current_user.client_id }}.</p>
<form method="post" action="/logout"><button>Log out</button></form>
{% else %}<p id="who">Not signed in.</p>{% endif %}
<h1>{{ title }}</h1>{% block content %}{% endblock %}</body></html>""",
    "page.html": """{% extends "base.html" %}{% block content %}<p>{{ text }}</p>{% endblock %}""",
    "services.html": """{% extends "base.html" %}{% block content %}<ul>
{% for id, name in services %}<li><a href="{{ url_for('portal.service', service_id=id) }}">{{ name }} (service {{ id }})</a></li>
{% else %}<li>No services.</li>{% endfor %}</ul>{% endblock %}""",
    "security.html": """{% extends "base.html" %}{% block content %}
<p>Allow single sign-on: {{ "on" if allowed else "off" }}.
Linked systems can sign you in here only while it is on.</p>
<form method="post"><input type="hidden" name="allow_sso" value="{{ "0" if allowed else "1" }}">
<button>Switch single sign-on {{ "off" if allowed else "on" }}</button></form>{% endblock %}""",
}

NOT_SIGNED_IN = "You are not signed in. Open the portal from your control panel to sign in."


class PortalUserStore(UserStore, t.Protocol):
    """The middleware's user store, plus the setting the Security page switches."""

    def set_sso_allowed(self, client_id: int, allowed: bool) -> None: ...


class PortalUser(UserMixin):
    """The signed-in user, as Flask-Login's ``current_user``."""

    def __init__(self, user_id: int, client_id: int):
        self.id = user_id
        self.client_id = client_id


login_manager = LoginManager()


@login_manager.request_loader
def load_user_from_request(req: Request) -> PortalUser | None:
    identity = get_identity(req.environ)
    return None if identity is None else PortalUser(identity.user_id, identity.client_id)


@login_manager.unauthorized_handler
def not_signed_in() -> tuple[str, int]:
    return render_template("page.html", title="Not signed in", text=NOT_SIGNED_IN), 401


portal = Blueprint("portal", __name__)


def users() -> PortalUserStore:
    store: PortalUserStore = current_app.config["USER_STORE"]
    return store


@portal.get("/")
def home() -> str:
    return render_template("page.html", title="Client portal", text="Welcome to the client portal.")


@portal.get("/whoami")
def whoami() -> t.Any:
    if not current_user.is_authenticated:
        return jsonify(error="not signed in"), 401
    return jsonify(user_id=current_user.id, client_id=current_user.client_id)


@portal.get("/account/profile")
@login_required
def profile() -> str:
    return render_template(
        "page.html", title="Profile", text=f"Account details of client {current_user.client_id}."
    )


@portal.get("/account/services")
@login_required
def services() -> str:
    owned = [
        (id, name)
        for id, name in SERVICES.items()
        if users().owner_of("service", id) == current_user.client_id
    ]
    return render_template("services.html", title="Services", services=owned)


@portal.get("/account/services/<int:service_id>")
@login_required
def service(service_id: int) -> str:
    if users().owner_of("service", service_id) != current_user.client_id:
        abort(404)
    return render_template(
        "page.html",
        title=f"Service {service_id}",
        text=f"{SERVICES.get(service_id, 'Service')} of client {current_user.client_id}.",
    )


@portal.get("/account/invoices")
@login_required
def invoices() -> str:
    return render_template(
        "page.html", title="Invoices", text=f"Client {current_user.client_id} has no unpaid invoices."
    )


@portal.route("/account/security", methods=["GET", "POST"])
@login_required
def security() -> t.Any:
    if request.method == "POST":
        origin = urlsplit(request.headers.get("Origin") or request.referrer or "")
        if (origin.scheme, origin.netloc) != current_app.config["ORIGIN"]:
            abort(403, "Cross-site request refused.")
        if request.form.get("allow_sso") not in ("0", "1"):
            abort(400)
        users().set_sso_allowed(current_user.client_id, request.form["allow_sso"] == "1")
        return redirect(url_for("portal.security"), 303)
    account = users().get_account(current_user.client_id)
    return render_template(
        "security.html", title="Security settings", allowed=account is not None and account.sso_allowed
    )


def create_portal(*, user_store: PortalUserStore, system_url: str) -> Flask:
    """The bare Flask portal, for a pipeline that wraps it (examples/pipeline.ini)."""
    app = Flask(__name__)
    # Only Flask-Login's remember-me cookie would be signed with it; none is ever set.
    app.secret_key = secrets.token_bytes(32)
    app.jinja_loader = DictLoader(TEMPLATES)
    system = urlsplit(system_url)
    app.config.update(USER_STORE=user_store, ORIGIN=(system.scheme, system.netloc))
    login_manager.init_app(app)
    app.register_blueprint(portal)
    return app


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
    return SSOMiddleware(
        create_portal(user_store=store, system_url=system_url),
        system_url=system_url,
        secret_keys=secret_keys,
        user_store=store,
        stores=stores,
        api=api,
        sessions=sessions,
        destinations=EXAMPLE_DESTINATIONS,
    )


def main() -> None:
    serve_example(create_app, "The Flask client portal behind sso_middleware.", 8001)


if __name__ == "__main__":
    main()
