"""Sessions after sign-on: the identity the app sees, logout, timeouts, keys."""

from __future__ import annotations

import json
import time

import pytest

from conftest import SECRET_KEY, browser, live_sessions, sso_path
from sso_middleware import ConfigurationError
from sso_middleware.sessions import Identity, SessionManager
from sso_middleware.stores.memory import MemoryTokenStore
from sso_middleware.tokens import new_token, token_key

COOKIE = "__Host-sso_session"


def seen(app, path="/page", **kwargs):
    return json.loads(app.get(path, **kwargs).body)


def signed_in(make_middleware, client_id=1, **options):
    middleware = make_middleware(**options)
    app = browser(middleware)
    app.get(sso_path(middleware.create_sso_token(client_id=client_id)["redirect_url"]), status=303)
    return middleware, app


def test_signed_in_identity_reaches_the_app(app, mint):
    assert seen(app) == {"path": "/page", "query": "", "remote_user": None, "identity": None}
    app.get(mint(client_id=1, user_id=5), status=303)
    assert seen(app) == {"path": "/page", "query": "", "remote_user": "5", "identity": [5, 1]}


def test_remote_user_cannot_be_spoofed(app):
    assert seen(app, extra_environ={"REMOTE_USER": "1"}, headers={"Remote-User": "1"})["remote_user"] is None


def test_spoofed_environ_identity_is_removed(app):
    assert seen(app, extra_environ={"sso_middleware.identity": Identity(1, 1)})["identity"] is None


@pytest.mark.parametrize("query, expected", [
    ("access_token=" + "A" * 43, ""),
    ("a=1&access_token=" + "A" * 43 + "&b=2", "a=1&b=2"),
    ("access%5Ftoken=" + "A" * 43 + "&b=%20x", "b=%20x"),
    ("access_tokens=1", "access_tokens=1"),
])
def test_tokens_are_stripped_from_what_the_app_sees(app, query, expected):
    assert seen(app, "/page?" + query)["query"] == expected


def test_request_uri_is_stripped_too(middleware):
    captured = {}

    def start_response(status, headers):
        pass

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "QUERY_STRING": "access_token=abc&k=v",
               "REQUEST_URI": "/x?access_token=abc&k=v", "RAW_URI": "/x?access_token=abc&k=v",
               "wsgi.input": None}

    def app(environ, start_response):
        captured.update(environ)
        return []

    middleware.app = app
    middleware(environ, start_response)
    assert captured["QUERY_STRING"] == "k=v"
    assert captured["REQUEST_URI"] == captured["RAW_URI"] == "/x?k=v"


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_logout_ends_the_session_server_side(make_middleware, redis_client, method):
    middleware, app = signed_in(make_middleware, logout_on_get=True)
    cookie = app.cookies[COOKIE]
    response = getattr(app, method.lower())("/logout", status=303)
    assert response.headers["Location"] == "https://portal.example.com/"
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert seen(app)["identity"] is None
    assert not live_sessions(redis_client)
    replay = browser(middleware)
    replay.set_cookie(COOKIE, cookie)
    assert seen(replay)["identity"] is None


def test_logout_by_get_is_off_by_default(make_middleware):
    _, app = signed_in(make_middleware)
    response = app.get("/logout", status=405)
    assert response.headers["Allow"] == "POST"
    assert seen(app)["identity"] == [1, 1]


@pytest.mark.parametrize("value", [
    "", "garbage", "a.b.c", "\u00e9\u00e9", "x" * 5000,
    "A" * 43 + ".AAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
])
def test_forged_cookies_are_anonymous(app, value):
    app.set_cookie(COOKIE, value)
    assert seen(app)["identity"] is None


@pytest.mark.parametrize("payload", [
    "{key}.{key}.1.1",  # a field short
    "{key}.{key}.1.1.{now}.1",  # one too many
    "{key}.{key}.one.1.{now}",
    "{key}.{key}.1.1.soon",
    "short.{key}.1.1.{now}",
    "{key}.short.1.1.{now}",
    "{key}.{key}.1.1.{now}",  # well-formed, but no such session
    "\u00e9.{key}.1.1.{now}",
])
def test_signed_but_malformed_payloads_are_anonymous(make_middleware, payload):
    """Only this middleware can sign a cookie, but a payload from an older
    release or a bug must never be half-read."""
    middleware, app = signed_in(make_middleware)
    payload = payload.format(key="A" * 43, now=int(time.time() * 1000))
    app.set_cookie(COOKIE, middleware.sessions.signer.sign(payload).decode())
    assert seen(app)["identity"] is None


def test_tampered_cookie_is_anonymous(make_middleware):
    _, app = signed_in(make_middleware)
    value = app.cookies[COOKIE]
    payload, signature = value.rsplit(".", 1)
    key, secret, user_id, client_id, created_ms = payload.split(".")
    # the last base64 character of a signature carries unused bits, so change
    # characters that always matter: of the key, the secret, the ids, the
    # sign-on time and the signature
    flip = {"A": "B"}
    for forged in (
        f"{flip.get(key[0], 'A')}{key[1:]}.{secret}.{user_id}.{client_id}.{created_ms}.{signature}",
        f"{key}.{flip.get(secret[0], 'A')}{secret[1:]}.{user_id}.{client_id}.{created_ms}.{signature}",
        f"{key}.{secret}.2.{client_id}.{created_ms}.{signature}",
        f"{key}.{secret}.{user_id}.2.{created_ms}.{signature}",
        f"{key}.{secret}.{user_id}.{client_id}.{int(created_ms) + 1}.{signature}",
        f"{payload}.{flip.get(signature[0], 'A')}{signature[1:]}",
    ):
        app.set_cookie(COOKIE, forged)
        assert seen(app)["identity"] is None
    app.set_cookie(COOKIE, value)
    assert seen(app)["identity"] == [1, 1]


def test_cookie_signed_with_another_salt_is_refused(make_middleware, redis_client):
    middleware, app = signed_in(make_middleware)
    session_id = app.cookies[COOKIE].split(".")[0]
    from itsdangerous import TimestampSigner
    import hashlib
    forged = TimestampSigner(SECRET_KEY, salt="other", digest_method=hashlib.sha256).sign(session_id)
    app.set_cookie(COOKIE, forged.decode())
    assert seen(app)["identity"] is None


def test_key_rotation(make_middleware):
    old, new = "o" * 32, "n" * 32
    middleware, app = signed_in(make_middleware, secret_keys=[old])
    cookie = app.cookies[COOKIE]

    rotated = browser(make_middleware(secret_keys=[old, new]))
    rotated.set_cookie(COOKIE, cookie)
    assert seen(rotated)["identity"] == [1, 1]

    retired = browser(make_middleware(secret_keys=[new]))
    retired.set_cookie(COOKIE, cookie)
    assert seen(retired)["identity"] is None


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def manager(clock, **options):
    return SessionManager(MemoryTokenStore(clock=clock), [SECRET_KEY], clock=clock, **options)


def sign_on(sessions, identity=Identity(1, 1)):
    """Mint a token into the manager's store, redeem it, return the cookie."""
    key = token_key(new_token())
    sessions.store.add(key, b"[]", 60)
    redemption = sessions.redeem(key, end_found=True)
    return sessions.cookie_value(redemption, identity, redemption.created_ms)


def test_idle_timeout():
    clock = Clock()
    sessions = manager(clock, idle_timeout=60, absolute_timeout=3600)
    cookie = sign_on(sessions)
    clock.now += 59
    assert sessions.resume(cookie) is not None  # activity extends it
    clock.now += 59
    assert sessions.resume(cookie) is not None
    clock.now += 61
    assert sessions.resume(cookie) is None


def test_absolute_timeout_holds_despite_activity():
    clock = Clock()
    sessions = manager(clock, idle_timeout=60, absolute_timeout=300)
    cookie = sign_on(sessions)
    for _ in range(5):
        clock.now += 50
        assert sessions.resume(cookie) is not None
    clock.now += 51
    assert sessions.resume(cookie) is None


@pytest.mark.parametrize("keys, message", [
    ([], "non-empty list"),
    ("k" * 32, "non-empty list"),
    (["short"], "at least 32"),
    (["k" * 32, b"short"], "secret_keys[1]"),
])
def test_bad_secret_keys_fail_at_startup(make_middleware, keys, message):
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_middleware(secret_keys=keys)


def test_insecure_cookie_options(make_middleware):
    with pytest.raises(ConfigurationError, match="plain HTTP"):
        make_middleware(system_url="http://portal.example.com")
    with pytest.raises(ConfigurationError, match="__Host-"):
        make_middleware(system_url="http://portal.example.com", secure_cookies=False,
                        cookie_name="__Host-x")
    with pytest.raises(ConfigurationError, match="idle_timeout"):
        make_middleware(idle_timeout=100, absolute_timeout=50)
    middleware = make_middleware(system_url="http://127.0.0.1:8000", secure_cookies=False)
    assert middleware.sessions.cookie_name == "sso_session"


@pytest.mark.parametrize("url", ["portal.example.com", "ftp://x", "https://", "https://x/?a=1",
                                 "https://u:p@x", "https://x/#f"])
def test_bad_system_url(make_middleware, url):
    with pytest.raises(ConfigurationError, match="system_url"):
        make_middleware(system_url=url)


def test_stores_must_fit_their_protocols(make_middleware):
    with pytest.raises(ConfigurationError, match="user_store must implement UserStore"):
        make_middleware(user_store=object())


def test_endpoint_paths_must_differ(make_middleware):
    with pytest.raises(ConfigurationError, match="must differ"):
        make_middleware(logout_path="/oauth/singlesignon.php")


def test_a_cross_site_logout_changes_nothing(make_middleware):
    """A cross-site form POST carries no SameSite=Lax cookie: the answer sets
    no cookie either, so the browser keeps its session."""
    middleware, app = signed_in(make_middleware)
    response = browser(middleware).post("/logout", headers={"Origin": "https://evil.example"},
                                        status=303)
    assert "Set-Cookie" not in response.headers
    assert seen(app)["identity"] == [1, 1]
