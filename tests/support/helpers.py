"""The tests' own constants, seed data and plain helpers (fixtures are in
``tests/conftest.py``, which builds on these).

The seed accounts are the demo's (:func:`sso_middleware.demo.demo_user_store`):
1 Active (user 1; user 5 may also act for it), 2 Inactive (user 2), 3 Closed
(user 3), 4 Active with single sign-on switched off (user 4). User 6 acts
for no account. Services 101 (client 1), 201 (client 2), 301 (client 3);
domain 111 (client 1).
"""

from __future__ import annotations

import json
import re
import typing as t
from pathlib import Path

import webtest

from sso_middleware import SSOMiddleware, get_identity

if t.TYPE_CHECKING:
    import redis
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: The checkout: ``examples/``, ``docs/``, ``sso_middleware/`` are under it.
ROOT = Path(__file__).resolve().parents[2]

SYSTEM_URL = "https://portal.example.com"
SECRET_KEY = "k" * 32
API_IDENTIFIER = "billing"
API_SECRET = "api-secret-" + "x" * 32

#: The endpoints' default paths and the session cookie's default name.
SSO_PATH = "/oauth/singlesignon.php"
API_PATH = "/includes/api.php"
TOKEN_PATH = "/oauth/token.php"
COOKIE_NAME = "__Host-sso_session"


def doc_block(page: Path, language: str, marker: str) -> str:
    """The one ``language`` code block of the Markdown ``page`` that contains
    ``marker``: tests run the documentation's own snippets."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", page.read_text(), flags=re.M | re.S)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"{page.name} has {len(found)} {language} blocks with {marker!r}"
    return found[0]


def echo_app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """The wrapped app: tells what it saw."""
    identity = get_identity(environ)
    body = json.dumps(
        {
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING"),
            "remote_user": environ.get("REMOTE_USER"),
            "identity": [identity.user_id, identity.client_id] if identity else None,
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def api_form(**fields: str) -> dict[str, str]:
    """The form of a well-formed admin API call: CreateSsoToken with the
    test deployment's credentials, answered in JSON; ``fields`` add to it or
    replace what it has (``action=...`` for another action)."""
    return {
        "action": "CreateSsoToken",
        "identifier": API_IDENTIFIER,
        "secret": API_SECRET,
        "responsetype": "json",
        **fields,
    }


def filter_settings(url: str, /, **changes: str | None) -> dict[str, str]:
    """The least an ini ``[filter:sso]`` section needs (the test deployment's
    system_url and key, the demo's user store), with ``url`` as redis_url, as
    ``sso_middleware.paste.filter_factory`` takes it; ``changes`` add or
    replace settings (redis_url too), and a ``None`` leaves one out."""
    settings = {
        "system_url": SYSTEM_URL,
        "redis_url": url,
        "secret_keys": SECRET_KEY,
        "user_store": "sso_middleware.demo:demo_user_store",
        **changes,
    }
    return {name: value for name, value in settings.items() if value is not None}


def token_grant(
    app: webtest.TestApp, client_id: str, client_secret: str, status: int
) -> webtest.TestResponse:
    """POST the single_sign_on grant (scope ``clientarea:sso``) to the token
    endpoint with these client credentials, expecting ``status``."""
    return app.post(
        TOKEN_PATH,
        {
            "grant_type": "single_sign_on",
            "scope": "clientarea:sso",
            "client_id": client_id,
            "client_secret": client_secret,
        },
        status=status,
    )


def browser(middleware: SSOMiddleware) -> webtest.TestApp:
    """A webtest client that speaks HTTPS to the portal, so Secure cookies
    are kept and sent back."""
    return webtest.TestApp(
        middleware, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "portal.example.com"}
    )


def live_sessions(client: redis.Redis) -> set[bytes]:
    """The keys of live session records in Redis: redeemed tokens whose
    record is a session, not the ended mark alone."""
    return {
        key
        for key in client.scan_iter("sso:v2:t:*")
        if (client.get(key) or b"").startswith(b"!") and len(client.get(key)) > 1
    }


def sso_path(redirect_url: str) -> str:
    """The path and query of a ``redirect_url``, for webtest."""
    assert redirect_url.startswith(SYSTEM_URL)
    return redirect_url[len(SYSTEM_URL) :]


class FakeClock:
    """A clock for the memory stores and the session manager that moves only
    when told to (:meth:`advance`, or set :attr:`now`)."""

    def __init__(self, now: float = 1_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
