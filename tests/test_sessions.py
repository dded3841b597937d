"""Sessions after sign-on: the identity the app sees, logout, timeouts, keys."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from itsdangerous import Signer

from sso_middleware import ConfigurationError
from sso_middleware.identity import Identity
from sso_middleware.options import SessionOptions
from sso_middleware.sessions import SessionManager
from sso_middleware.stores.memory import MemoryTokenStore
from sso_middleware.tokens import TokenRecord, new_token, token_key
from tests.support.helpers import (
    COOKIE_NAME,
    SECRET_KEY,
    SSO_PATH,
    FakeClock,
    browser,
    live_sessions,
    sso_path,
)


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


@pytest.mark.parametrize(
    "query, expected",
    [
        ("access_token=" + "A" * 43, ""),
        ("a=1&access_token=" + "A" * 43 + "&b=2", "a=1&b=2"),
        ("access%5Ftoken=" + "A" * 43 + "&b=%20x", "b=%20x"),
        ("access_tokens=1", "access_tokens=1"),
    ],
)
def test_tokens_are_stripped_from_what_the_app_sees(app, query, expected):
    assert seen(app, "/page?" + query)["query"] == expected


def test_request_uri_is_stripped_too(middleware):
    captured = {}

    def start_response(status, headers):
        pass

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/x",
        "QUERY_STRING": "access_token=abc&k=v",
        "REQUEST_URI": "/x?access_token=abc&k=v",
        "RAW_URI": "/x?access_token=abc&k=v",
        "wsgi.input": None,
    }

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
    cookie = app.cookies[COOKIE_NAME]
    response = getattr(app, method.lower())("/logout", status=303)
    assert response.headers["Location"] == "https://portal.example.com/"
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert seen(app)["identity"] is None
    assert not live_sessions(redis_client)
    replay = browser(middleware)
    replay.set_cookie(COOKIE_NAME, cookie)
    assert seen(replay)["identity"] is None


def test_logout_by_get_is_off_by_default(make_middleware):
    _, app = signed_in(make_middleware)
    response = app.get("/logout", status=405)
    assert response.headers["Allow"] == "POST"
    assert seen(app)["identity"] == [1, 1]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "a.b.c",
        "\u00e9\u00e9",
        "x" * 5000,
        "A" * 43 + ".AAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_forged_cookies_are_anonymous(app, value):
    app.set_cookie(COOKIE_NAME, value)
    assert seen(app)["identity"] is None


@pytest.mark.parametrize(
    "payload",
    [
        "{key}.{secret}.1",  # a field short
        "{key}.{secret}.1.1.{now}",  # one too many (the shape of an older release)
        "{key}.{secret}.1.1x",
        "{key}.{secret}.one.1",
        "{key}.{secret}.1.soon",
        "short.{secret}.1.1",
        "{key}.short.1.1",
        "{other}.{secret}.1.1",  # well-formed, but no such session
        "{key}{other}.{secret}.1.1",  # the 43-character key of earlier releases: no session
        "\u00e9.{secret}.1.1",
    ],
)
def test_signed_but_malformed_payloads_are_anonymous(make_middleware, payload):
    """Only this middleware can sign a cookie, but a payload from an older
    release or a bug must never be half-read. Each payload carries the key
    and secret of a live session, so only its shape can refuse it."""
    middleware, app = signed_in(make_middleware)
    key, secret, user_id, client_id = (
        middleware.sessions.signer.unsign(app.cookies[COOKIE_NAME]).decode().split(".")
    )
    assert (user_id, client_id) == ("1", "1")
    forged = payload.format(key=key, secret=secret, other="A" * 22, now=int(time.time() * 1000))
    app.set_cookie(COOKIE_NAME, middleware.sessions.signer.sign(forged).decode())
    assert seen(app)["identity"] is None
    # the well-formed payload of the same session is live
    app.set_cookie(COOKIE_NAME, middleware.sessions.signer.sign(f"{key}.{secret}.1.1").decode())
    assert seen(app)["identity"] == [1, 1]


def test_tampered_cookie_is_anonymous(make_middleware):
    _, app = signed_in(make_middleware)
    value = app.cookies[COOKIE_NAME]
    payload, signature = value.rsplit(".", 1)
    key, secret, user_id, client_id = payload.split(".")
    # the last base64 character of a signature carries unused bits, so change
    # characters that always matter: of the key, the secret, the ids and the
    # signature
    flip = {"A": "B"}
    for forged in (
        f"{flip.get(key[0], 'A')}{key[1:]}.{secret}.{user_id}.{client_id}.{signature}",
        f"{key}.{flip.get(secret[0], 'A')}{secret[1:]}.{user_id}.{client_id}.{signature}",
        f"{key}.{secret}.2.{client_id}.{signature}",
        f"{key}.{secret}.{user_id}.2.{signature}",
        f"{payload}.{flip.get(signature[0], 'A')}{signature[1:]}",
    ):
        app.set_cookie(COOKIE_NAME, forged)
        assert seen(app)["identity"] is None
    app.set_cookie(COOKIE_NAME, value)
    assert seen(app)["identity"] == [1, 1]


def test_cookie_signed_with_another_salt_is_refused(make_middleware, redis_client):
    """A well-formed payload, the real one, signed with the right key under
    another salt (a signature made for another purpose)."""
    middleware, app = signed_in(make_middleware)
    payload = app.cookies[COOKIE_NAME].rsplit(".", 1)[0]
    other = Signer(SECRET_KEY, salt="other", digest_method=hashlib.sha256)
    app.set_cookie(COOKIE_NAME, other.sign(payload).decode())
    assert seen(app)["identity"] is None
    # the same payload under the middleware's own salt is a live session
    app.set_cookie(COOKIE_NAME, middleware.sessions.signer.sign(payload).decode())
    assert seen(app)["identity"] == [1, 1]


def test_key_rotation(make_middleware):
    old, new = "o" * 32, "n" * 32
    middleware, app = signed_in(make_middleware, secret_keys=[old])
    cookie = app.cookies[COOKIE_NAME]

    rotated = browser(make_middleware(secret_keys=[old, new]))
    rotated.set_cookie(COOKIE_NAME, cookie)
    assert seen(rotated)["identity"] == [1, 1]

    retired = browser(make_middleware(secret_keys=[new]))
    retired.set_cookie(COOKIE_NAME, cookie)
    assert seen(retired)["identity"] is None


def manager(clock, **options):
    return SessionManager(MemoryTokenStore(clock=clock), [SECRET_KEY], SessionOptions(**options), clock=clock)


def sign_on(sessions, identity=None):
    """Mint a token into the manager's store, redeem it, return the cookie
    (of user 1 for account 1 unless ``identity`` says otherwise)."""
    identity = identity or Identity(1, 1)
    key = token_key(new_token())
    record = TokenRecord(identity.user_id, identity.client_id, "", "/", int(sessions.clock() * 1000))
    sessions.store.add(key, sessions.sealer.seal(key, record.encode()), 60)
    redemption = sessions.redeem(key, end_found=True)
    return sessions.cookie_value(redemption, identity)


def test_idle_timeout():
    clock = FakeClock(1_000_000.0)
    sessions = manager(clock, idle_timeout=60, absolute_timeout=3600)
    cookie = sign_on(sessions)
    clock.now += 59
    assert sessions.resume(cookie) is not None  # activity extends it
    clock.now += 59
    assert sessions.resume(cookie) is not None
    clock.now += 61
    assert sessions.resume(cookie) is None


def test_absolute_timeout_holds_despite_activity():
    clock = FakeClock(1_000_000.0)
    sessions = manager(clock, idle_timeout=60, absolute_timeout=300)
    cookie = sign_on(sessions)
    for _ in range(5):
        clock.now += 50
        assert sessions.resume(cookie) is not None
    clock.now += 51
    assert sessions.resume(cookie) is None


@pytest.mark.parametrize(
    "keys, message",
    [
        ([], "non-empty list"),
        ("k" * 32, "non-empty list"),
        (["short"], "at least 32"),
        (["k" * 32, b"short"], "secret_keys[1]"),
    ],
)
def test_bad_secret_keys_fail_at_startup(make_middleware, keys, message):
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_middleware(secret_keys=keys)


@pytest.mark.parametrize(
    "url", ["http://localhost", "http://127.0.0.1:8000", "http://[::1]", "http://[::1]:8000"]
)
def test_plain_http_on_this_machine_keeps_secure_cookies(make_middleware, url):
    """Browsers send ``Secure`` cookies to their own machine over HTTP."""
    assert make_middleware(system_url=url).sessions.secure


@pytest.mark.parametrize(
    "url", ["http://localhost.portal.example", "http://127.0.0.1.example", "http://[::2]"]
)
def test_plain_http_elsewhere_with_secure_cookies_is_refused(make_middleware, url):
    with pytest.raises(ConfigurationError, match="plain HTTP"):
        make_middleware(system_url=url)


def test_insecure_cookie_options(make_middleware):
    with pytest.raises(ConfigurationError, match="plain HTTP"):
        make_middleware(system_url="http://portal.example.com")
    with pytest.raises(ConfigurationError, match="__Host-"):
        make_middleware(system_url="http://portal.example.com", secure_cookies=False, cookie_name="__Host-x")
    with pytest.raises(ConfigurationError, match="idle_timeout"):
        make_middleware(idle_timeout=100, absolute_timeout=50)
    middleware = make_middleware(system_url="http://127.0.0.1:8000", secure_cookies=False)
    assert middleware.sessions.cookie_name == "sso_session"


@pytest.mark.parametrize(
    "url", ["portal.example.com", "ftp://x", "https://", "https://x/?a=1", "https://u:p@x", "https://x/#f"]
)
def test_bad_system_url(make_middleware, url):
    with pytest.raises(ConfigurationError, match="system_url"):
        make_middleware(system_url=url)


def test_stores_must_fit_their_protocols(make_middleware):
    with pytest.raises(ConfigurationError, match="user_store must implement UserStore"):
        make_middleware(user_store=object())


def test_endpoint_paths_must_differ(make_middleware):
    with pytest.raises(ConfigurationError, match="must differ"):
        make_middleware(logout_path=SSO_PATH)


def test_a_cross_site_logout_changes_nothing(make_middleware):
    """A cross-site form POST carries no SameSite=Lax cookie: the answer sets
    no cookie either, so the browser keeps its session."""
    middleware, app = signed_in(make_middleware)
    response = browser(middleware).post("/logout", headers={"Origin": "https://evil.example"}, status=303)
    assert "Set-Cookie" not in response.headers
    assert seen(app)["identity"] == [1, 1]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.portal.example.com", "Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.portal.example.com"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_a_sibling_hosts_logout_form_changes_nothing(make_middleware, caplog, headers):
    """A sibling subdomain is the same site, so a form it auto-submits
    carries the SameSite=Lax cookie: the browser's word on the origin
    decides, and the session stays."""
    middleware, app = signed_in(make_middleware)
    response = app.post("/logout", headers=headers, status=303)
    assert "Set-Cookie" not in response.headers
    assert seen(app)["identity"] == [1, 1]
    assert [r for r in caplog.records if getattr(r, "sso_event", None) == "cross_origin_logout"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://portal.example.com", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "https://portal.example.com"},
        {},  # not a browser: nothing to tell, SameSite still keeps other sites out
    ],
)
def test_a_logout_from_our_own_pages_ends_the_session(make_middleware, headers):
    middleware, app = signed_in(make_middleware)
    assert "Max-Age=0" in app.post("/logout", headers=headers, status=303).headers["Set-Cookie"]
    assert seen(app)["identity"] is None


@pytest.mark.parametrize(
    "name",
    [
        "\xa0{name}",
        "{name}\xa0",
        "{name}\x85",
        "\x1c{name}",
        "{name}\x1f",
        "{name}\x0b",
        "\u3000{name}",
    ],
)
def test_look_alike_cookie_names_are_not_ours(make_middleware, name):
    """Browsers trim only spaces and tabs around a cookie's name, so a name
    with another leading byte is a different cookie to them: a sibling host
    may set it with ``Domain=``, which a ``__Host-`` cookie refuses."""
    middleware, app = signed_in(make_middleware)
    value = app.cookies[COOKIE_NAME]
    stranger = browser(middleware)
    response = stranger.get("/whoami", headers={"Cookie": f"{name.format(name=COOKIE_NAME)}={value}"})
    assert json.loads(response.body)["identity"] is None


@pytest.mark.parametrize("header", ["{name}={value}", " {name}\t={value}", "\t{name} = {value} "])
def test_spaces_and_tabs_around_the_name_are_trimmed(make_middleware, header):
    middleware, app = signed_in(make_middleware)
    response = browser(middleware).get(
        "/whoami",
        headers={"Cookie": "other=1;" + header.format(name=COOKIE_NAME, value=app.cookies[COOKIE_NAME])},
    )
    assert json.loads(response.body)["identity"] == [1, 1]


@pytest.mark.parametrize("order", ["planted first", "planted last"])
def test_a_request_with_our_cookie_twice_is_anonymous(make_middleware, caplog, order):
    """A duplicate means one was planted (by a sibling host, over plain
    HTTP, by script); neither may win, whichever the browser sends first."""
    middleware, victim = signed_in(make_middleware)
    _, attacker = signed_in(make_middleware, client_id=2)
    cookies = [
        f"{COOKIE_NAME}={attacker.cookies[COOKIE_NAME]}",
        f"{COOKIE_NAME}={victim.cookies[COOKIE_NAME]}",
    ]
    if order == "planted last":
        cookies.reverse()
    response = browser(middleware).get("/whoami", headers={"Cookie": "; ".join(cookies)})
    assert json.loads(response.body)["identity"] is None
    assert [r.sso_event for r in caplog.records if getattr(r, "sso_event", None) == "duplicate_cookie"]


def test_the_largest_ids_sign_in():
    """Ids are accepted up to 2**63 - 1 (19 digits, what databases store):
    the cookie must carry them too, or such a user is signed out at once."""
    clock = FakeClock(1_000_000.0)
    sessions = manager(clock)
    biggest = Identity(2**63 - 1, 2**63 - 2)
    session = sessions.resume(sign_on(sessions, biggest))
    assert session is not None and session.identity == biggest
