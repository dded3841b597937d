"""The WSGI applications under test, for the in-process benchmarks and for
gunicorn (``gunicorn "benchmarks.apps:make('sso')"`` from the checkout, with
``BENCH_REDIS_URL`` set).

Subjects (our middleware) and their baselines:

- ``sso`` / ``redirect``: redemption in front of a small app, versus a bare
  app that answers the same 303 with a ``Set-Cookie`` and the same headers.
- ``flask_sso`` / ``flask_handrolled``: the middleware in front of a Flask
  app with Flask-Login, versus the Flask view a team would write instead
  (``GETDEL``, user lookup, ``login_user``, redirect).
- ``token`` / ``authlib``: our OAuth token endpoint versus an Authlib
  client-credentials token endpoint with an in-memory client and tokens
  stored in Redis.
- ``passthrough_mw`` / ``passthrough_bare``: a request that passes through,
  with and without the middleware.
- ``session_mw`` / ``flask_session``: a signed-in page request, through the
  middleware (in front of the Flask-Login portal) versus behind Flask +
  Flask-Login + Flask-Session with its Redis backend, as Flask-Session's
  documentation configures it: what a Flask user would otherwise pick for
  server-side sessions.

``redirect`` also serves as the floor: a zero-cost endpoint on the same
server, whose cost is subtracted from the others' (``1/rps - 1/floor``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import typing as t

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP on loopback

import redis  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

from sso_middleware import AccountStatus, get_identity  # noqa: E402
from sso_middleware.demo import demo_user_store  # noqa: E402

from .common import SECRET_KEY, SYSTEM_URL, bare_app, build_middleware  # noqa: E402

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: The hand-rolled view's own token keys: ``hr:t:<sha256 hex of token>``.
HANDROLLED_PREFIX = "hr:t:"
#: Authlib's stored access tokens: ``authlib:t:<sha256 hex of token>``.
AUTHLIB_PREFIX = "authlib:t:"
#: The Authlib client (fixed, in memory on both sides of the comparison).
AUTHLIB_CLIENT_ID = "0123456789abcdef0123456789abcdef"
AUTHLIB_CLIENT_SECRET = "authlib-benchmark-secret-0123456789"


def hello_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    """The app behind the pass-through benchmarks: the smallest realistic
    framework-style app (a Werkzeug request and response, about 5 µs)."""
    request = Request(environ)
    user = get_identity(environ)
    body = f"ok {request.path} {user.user_id if user else '-'}\n"
    return Response(body, content_type="text/plain; charset=utf-8")(environ, start_response)


def redirect_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    """The floor for redemption: the same 303 as a successful sign-on (no
    body, the hardening headers, a ``Set-Cookie`` of the same shape and
    length), with no work behind it."""
    # key.secret.user_id.client_id, then the signature (as cookie_value() signs it)
    cookie = f"sso_session={secrets.token_urlsafe(32)}.{secrets.token_urlsafe(32)}.1.1.{'b' * 43}"
    start_response(
        "303 See Other",
        [
            ("Location", SYSTEM_URL + "/clientarea.php?action=invoices"),
            ("Content-Length", "0"),
            ("Cache-Control", "no-store"),
            ("Pragma", "no-cache"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Content-Type-Options", "nosniff"),
            ("Set-Cookie", cookie + "; HttpOnly; Path=/; SameSite=Lax"),
        ],
    )
    return []


# -- Flask -------------------------------------------------------------------


def flask_portal() -> t.Any:
    """A Flask app with Flask-Login reading the middleware's identity, as
    the README's "Use with Flask" shows."""
    from flask import Flask
    from flask_login import LoginManager, UserMixin, current_user

    class PortalUser(UserMixin):
        def __init__(self, user_id: int, client_id: int):
            self.id, self.client_id = user_id, client_id

    app = Flask("portal")
    app.secret_key = SECRET_KEY
    manager = LoginManager(app)

    @manager.request_loader
    def load(req: t.Any) -> PortalUser | None:
        identity = get_identity(req.environ)
        return None if identity is None else PortalUser(identity.user_id, identity.client_id)

    @app.get("/clientarea.php")
    def clientarea() -> str:
        return f"client area of {current_user.get_id()}"

    return app


def flask_session_portal(redis_url: str) -> t.Any:
    """The same client-area page behind Flask-Login, with server-side
    sessions in Redis by Flask-Session; ``/login`` signs user 1 in."""
    from flask import Flask
    from flask_login import LoginManager, UserMixin, current_user, login_required, login_user
    from flask_session import Session

    class PortalUser(UserMixin):
        def __init__(self, user_id: int, client_id: int):
            self.id, self.client_id = user_id, client_id

    app = Flask("flask_session")
    app.secret_key = SECRET_KEY
    app.config.update(
        SESSION_TYPE="redis",
        SESSION_REDIS=redis.Redis.from_url(redis_url, socket_timeout=0.2),
        SESSION_KEY_PREFIX="flask_session:",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    Session(app)
    manager = LoginManager(app)
    users = demo_user_store()

    @manager.user_loader
    def load(user_id: str) -> PortalUser | None:
        user = users.get_user(int(user_id))
        return None if user is None else PortalUser(user.user_id, user.client_ids[0])

    @app.get("/login")
    def login() -> str:
        login_user(PortalUser(1, 1))
        return "signed in"

    @app.get("/clientarea.php")
    @login_required
    def clientarea() -> str:
        return f"client area of {current_user.get_id()}"

    return app


def flask_handrolled(redis_url: str) -> t.Any:
    """What a team would write instead of the middleware: one Flask view
    that burns the token with ``GETDEL``, checks the account in the same
    user store, signs in with Flask-Login and redirects."""
    from flask import Flask, abort, redirect, request
    from flask_login import LoginManager, UserMixin, login_user

    class PortalUser(UserMixin):
        def __init__(self, user_id: int, client_id: int):
            self.id, self.client_id = user_id, client_id

    app = Flask("handrolled")
    app.secret_key = SECRET_KEY
    manager = LoginManager(app)
    users = demo_user_store()
    client = redis.Redis.from_url(redis_url, socket_timeout=0.2)

    @manager.user_loader
    def load(user_id: str) -> PortalUser | None:
        user = users.get_user(int(user_id))
        return None if user is None else PortalUser(user.user_id, user.client_ids[0])

    @app.get("/oauth/singlesignon.php")
    def sso() -> t.Any:
        token = request.args.get("access_token", "")
        raw = client.getdel(HANDROLLED_PREFIX + hashlib.sha256(token.encode()).hexdigest())
        if raw is None:
            abort(403)
        record = json.loads(raw)
        account = users.get_account(record["client_id"])
        user = users.get_user(record["user_id"])
        if (
            account is None
            or user is None
            or account.status is AccountStatus.CLOSED
            or not account.sso_allowed
            or record["client_id"] not in user.client_ids
        ):
            abort(403)
        login_user(PortalUser(record["user_id"], record["client_id"]))
        return redirect(SYSTEM_URL + record["path"], 303)

    return app


def mint_handrolled(client: redis.Redis, n: int) -> list[str]:
    """Tokens for :func:`flask_handrolled`, pipelined (never timed)."""
    tokens = [secrets.token_urlsafe(32) for _ in range(n)]
    record = json.dumps({"user_id": 1, "client_id": 1, "path": "/clientarea.php?action=invoices"})
    with client.pipeline(transaction=False) as pipe:
        for token in tokens:
            pipe.set(HANDROLLED_PREFIX + hashlib.sha256(token.encode()).hexdigest(), record, ex=60, nx=True)
        pipe.execute()
    return tokens


# -- Authlib -----------------------------------------------------------------


def authlib_token_endpoint(redis_url: str) -> t.Any:
    """An Authlib client-credentials token endpoint: one in-memory client
    (secret kept as a SHA-256 hash, like ours), tokens stored in Redis with
    ``SET … EX 60`` under their SHA-256 digest, like ours."""
    from authlib.integrations.flask_oauth2 import AuthorizationServer
    from authlib.oauth2.rfc6749 import ClientMixin, grants
    from flask import Flask

    class Client(ClientMixin):
        secret_hash = hashlib.sha256(AUTHLIB_CLIENT_SECRET.encode()).hexdigest()

        def get_client_id(self) -> str:
            return AUTHLIB_CLIENT_ID

        def get_default_redirect_uri(self) -> str:
            return SYSTEM_URL

        def get_allowed_scope(self, scope: str) -> str:
            allowed = {"clientarea:sso", "clientarea:invoices"}
            return " ".join(s for s in (scope or "").split() if s in allowed)

        def check_redirect_uri(self, redirect_uri: str) -> bool:
            return redirect_uri == SYSTEM_URL

        def check_client_secret(self, client_secret: str) -> bool:
            digest = hashlib.sha256(client_secret.encode()).hexdigest()
            return hmac.compare_digest(digest, self.secret_hash)

        def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
            return method == "client_secret_basic"

        def check_response_type(self, response_type: str) -> bool:
            return False

        def check_grant_type(self, grant_type: str) -> bool:
            return grant_type == "client_credentials"

    client = Client()
    store = redis.Redis.from_url(redis_url, socket_timeout=0.2)

    def query_client(client_id: str) -> Client | None:
        return client if client_id == AUTHLIB_CLIENT_ID else None

    def save_token(token: dict[str, t.Any], request: t.Any) -> None:
        record = json.dumps({"client_id": request.client.get_client_id(), "scope": token.get("scope")})
        key = AUTHLIB_PREFIX + hashlib.sha256(token["access_token"].encode()).hexdigest()
        store.set(key, record, ex=int(token["expires_in"]))

    app = Flask("authlib")
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": 60}
    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_grant(grants.ClientCredentialsGrant)

    @app.post("/oauth/token")
    def issue_token() -> t.Any:
        return server.create_token_response()

    return app


# -- factories ---------------------------------------------------------------

NAMES = (
    "sso",
    "redirect",
    "flask_sso",
    "flask_handrolled",
    "token",
    "authlib",
    "passthrough_mw",
    "passthrough_bare",
    "session_mw",
    "flask_session",
    "raw_bare",
)


def make(name: str, redis_url: str | None = None) -> WSGIApplication:
    """The app called ``name``; ``redis_url`` defaults to ``BENCH_REDIS_URL``."""
    url = redis_url or os.environ["BENCH_REDIS_URL"]
    if name in ("sso", "token", "passthrough_mw"):
        return build_middleware(hello_app, url)
    if name == "redirect":
        return redirect_app
    if name in ("flask_sso", "session_mw"):
        return build_middleware(flask_portal(), url)
    if name == "flask_session":
        return t.cast("WSGIApplication", flask_session_portal(url))
    if name == "flask_handrolled":
        return t.cast("WSGIApplication", flask_handrolled(url))
    if name == "authlib":
        return t.cast("WSGIApplication", authlib_token_endpoint(url))
    if name == "passthrough_bare":
        return hello_app
    if name == "raw_bare":
        return bare_app
    raise ValueError(f"unknown app {name!r}; one of {', '.join(NAMES)}")
