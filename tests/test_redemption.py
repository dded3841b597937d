"""The SSO endpoint: burn, check, sign in, redirect; and every way it refuses."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from sso_middleware.destinations import WHMCS_DESTINATIONS
from sso_middleware.responses import HARDENING_HEADERS, error_page
from sso_middleware.tokens import TOKEN_PATTERN, TokenRecord, token_key
from sso_middleware.users import AccountStatus
from tests.support.helpers import (
    COOKIE_NAME,
    SSO_PATH,
    SYSTEM_URL,
    FakeClock,
    browser,
    live_sessions,
    sso_path,
)


def whoami(app):
    return json.loads(app.get("/whoami").body)["identity"]


def assert_hardened(response):
    for name, value in HARDENING_HEADERS:
        assert response.headers[name] == value, name


def denial_reasons(caplog):
    return [
        r.getMessage() for r in caplog.records if r.name == "sso_middleware" and r.levelno == logging.WARNING
    ]


INPUTS = {"service_id": 101, "domain_id": 111, "sso_redirect_path": "clientarea.php?action=details"}


@pytest.mark.parametrize("scope", [None, *WHMCS_DESTINATIONS])
def test_every_scope_signs_in_and_lands_on_its_path(app, mint, scope):
    template = WHMCS_DESTINATIONS.get(scope, "/clientarea.php")
    inputs = {k: v for k, v in INPUTS.items() if "{" + k + "}" in template}
    response = app.get(mint(client_id=1, destination=scope, **inputs), status=303)
    assert response.headers["Location"] == SYSTEM_URL + template.replace("{service_id}", "101").replace(
        "{domain_id}", "111"
    ).replace("{sso_redirect_path}", "clientarea.php?action=details")
    assert_hardened(response)
    assert len(response.headers.getall("Set-Cookie")) == 1
    assert whoami(app) == [1, 1]


def test_session_cookie_attributes(app, mint):
    response = app.get(mint(client_id=1), status=303)
    cookie = response.headers["Set-Cookie"]
    name, _, attributes = cookie.partition(";")
    assert name.startswith(COOKIE_NAME + "=")
    parts = {p.strip().split("=")[0].lower() for p in attributes.split(";")}
    assert {"secure", "httponly", "path", "samesite"} <= parts
    assert "samesite=lax" in cookie.lower() and "path=/" in cookie.lower()
    assert "domain" not in parts and "max-age" not in parts and "expires" not in parts


def test_cookie_names_the_session_and_the_store_keeps_only_a_digest(app, middleware, mint, redis_client):
    """The cookie carries the spent token's key, a fresh 256-bit session
    secret and the ids, signed; Redis keeps the secret's digest followed by
    the token's sealed record, so a dump of it yields no usable cookie and
    the record, not the cookie, says who is signed in."""
    link = mint(client_id=1, user_id=5)
    response = app.get(link, status=303)
    value = response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    key, secret, user_id, client_id, _signature = value.split(".")
    assert key == token_key(parse_qs(urlsplit(link).query)["access_token"][0])
    assert TOKEN_PATTERN.fullmatch(secret) and len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert (user_id, client_id) == ("5", "1")
    stored = redis_client.get(f"sso:v2:t:{key}")
    assert stored[:17] == b"!" + hashlib.sha256(secret.encode()).digest()[:16]
    record = TokenRecord.decode(middleware.sessions.sealer.open(key, stored[17:]))
    assert (record.user_id, record.client_id, record.path) == (5, 1, "/clientarea.php")
    assert secret.encode() not in stored


def test_user_five_acts_for_client_one(app, mint):
    app.get(mint(client_id=1, user_id=5), status=303)
    assert whoami(app) == [5, 1]


def test_inactive_account_passes(app, mint):
    app.get(mint(client_id=2), status=303)
    assert whoami(app) == [2, 2]


def test_token_works_once(app, mint, caplog):
    path = mint(client_id=1)
    app.get(path, status=303)
    second = browser(app.app)
    second.get(path, status=403)
    assert whoami(second) is None
    assert denial_reasons(caplog) == [
        f"Single Sign-On token {fingerprint(path)} replayed",
        "Unable to authenticate with Single Sign-On token",
    ]


def fingerprint(path):
    from sso_middleware.tokens import fingerprint, token_key

    return fingerprint(token_key(path.rsplit("=", 1)[1]))


def test_a_replay_ends_the_session_of_the_first_redemption(app, mint, caplog):
    path = mint(client_id=1)
    app.get(path, status=303)
    assert whoami(app) == [1, 1]
    browser(app.app).get(path, status=403)  # someone else has the link too
    assert whoami(app) is None  # so the first session cannot be trusted either
    replays = [r for r in caplog.records if getattr(r, "sso_event", None) == "replay"]
    assert len(replays) == 1 and replays[0].sso_token == fingerprint(path)


def test_replay_revocation_can_be_switched_off(make_middleware):
    middleware = make_middleware(revoke_on_replay=False)
    app = browser(middleware)
    path = sso_path(middleware.create_sso_token(client_id=1)["redirect_url"])
    app.get(path, status=303)
    browser(middleware).get(path, status=403)
    assert whoami(app) == [1, 1]


def test_expired_token_is_refused(make_middleware):
    clock = FakeClock(time.time())
    middleware = make_middleware(token_ttl=1, clock=clock)
    app = browser(middleware)
    path = sso_path(middleware.create_sso_token(client_id=1)["redirect_url"])
    clock.advance(1.2)
    app.get(path, status=403)
    assert whoami(app) is None


def test_record_older_than_ttl_is_refused_even_if_key_survived(app, middleware, redis_client, caplog):
    token = "A" * 43
    record = TokenRecord(1, 1, "", "/clientarea.php", int((time.time() - 61) * 1000))
    key = token_key(token)
    redis_client.set("sso:v2:t:" + key, middleware.sessions.sealer.seal(key, record.encode()))  # no TTL
    app.get(f"{SSO_PATH}?access_token={token}", status=403)
    assert denial_reasons(caplog) == ["Unable to authenticate with Single Sign-On token for User ID: 1"]


def test_corrupted_record_is_refused(app, middleware, redis_client, caplog):
    token = "B" * 43
    key = token_key(token)
    redis_client.set("sso:v2:t:" + key, middleware.sessions.sealer.seal(key, b"not json"), ex=60)
    app.get(f"{SSO_PATH}?access_token={token}", status=403)
    assert denial_reasons(caplog) == ["Unable to authenticate with Single Sign-On token"]


def test_unknown_used_and_expired_failures_are_byte_identical(make_middleware, redis_client):
    clock = FakeClock(time.time())
    middleware = make_middleware(token_ttl=1, clock=clock)
    app = browser(middleware)
    unknown = app.get(f"{SSO_PATH}?access_token={'C' * 43}", status=403)
    used_path = sso_path(middleware.create_sso_token(client_id=1)["redirect_url"])
    browser(middleware).get(used_path, status=303)
    used = app.get(used_path, status=403)
    expired_path = sso_path(middleware.create_sso_token(client_id=1)["redirect_url"])
    clock.advance(1.2)
    expired = app.get(expired_path, status=403)
    for response in (used, expired):
        assert response.body == unknown.body
        assert sorted(response.headers.items()) == sorted(unknown.headers.items())
    assert_hardened(unknown)
    assert "http" not in unknown.text.lower().replace("http-equiv", "")


@pytest.mark.parametrize(
    "setup, reason",
    [
        pytest.param(
            lambda users: users.set_status(1, AccountStatus.CLOSED),
            'Single Sign-On authentication denied for "Closed" User ID: 1',
            id="closed",
        ),
        pytest.param(
            lambda users: users.set_sso_allowed(1, False),
            "Single Sign-On authentication denied per configuration for User ID: 1",
            id="sso-switched-off",
        ),
        pytest.param(
            lambda users: users.users.pop(1),
            "Unable to authenticate with Single Sign-On token for User ID: 1",
            id="user-gone",
        ),
    ],
)
def test_state_changed_after_minting_is_denied_and_the_token_spent(
    app, mint, user_store, caplog, setup, reason
):
    path = mint(client_id=1)
    saved = (dict(user_store.accounts), dict(user_store.users))
    setup(user_store)
    response = app.get(path, status=403)
    assert denial_reasons(caplog) == [reason]
    assert "Set-Cookie" not in response.headers
    assert response.body == error_page(403).get_data()  # the page names no one
    user_store.accounts, user_store.users = saved  # fixed afterwards ...
    app.get(path, status=403)  # ... the token stays spent
    assert whoami(app) is None


def test_user_removed_from_account_is_denied(app, mint, user_store, caplog):
    from sso_middleware.users import User

    path = mint(client_id=1, user_id=5)
    user_store.add_user(User(5, client_ids=()))
    app.get(path, status=403)
    assert denial_reasons(caplog) == ["Unable to authenticate with Single Sign-On token for User ID: 5"]


def test_active_session_of_closed_account_is_a_conflict(app, mint, user_store, redis_client, caplog):
    app.get(mint(client_id=2), status=303)
    assert whoami(app) == [2, 2]
    path = mint(client_id=1)
    user_store.set_status(2, AccountStatus.CLOSED)
    response = app.get(path, status=403)
    assert denial_reasons(caplog) == [
        'OAuth authorization request denied due to unexpected active login session for "Closed" User ID: 2'
    ]
    assert (
        "Max-Age=0" in response.headers["Set-Cookie"] or "expires=" in response.headers["Set-Cookie"].lower()
    )
    assert whoami(app) is None
    assert not live_sessions(redis_client)
    user_store.set_status(2, AccountStatus.ACTIVE)
    app.get(path, status=403)  # spent


def test_new_login_rotates_the_session(app, mint, redis_client, caplog):
    app.get(mint(client_id=1), status=303)
    old_cookie = app.cookies[COOKIE_NAME]
    old_keys = live_sessions(redis_client)
    app.get(mint(client_id=2), status=303)
    assert app.cookies[COOKIE_NAME] != old_cookie
    new_keys = live_sessions(redis_client)
    assert len(new_keys) == 1 and not new_keys & old_keys
    assert whoami(app) == [2, 2]
    # the old cookie no longer authenticates anyone
    stale = browser(app.app)
    stale.set_cookie(COOKIE_NAME, old_cookie)
    assert whoami(stale) is None
    assert any(getattr(r, "sso_event", None) == "session_replaced" for r in caplog.records)


def test_attacker_chosen_cookie_is_never_adopted(app, mint):
    app.set_cookie(COOKIE_NAME, "attacker-chosen")
    app.get(mint(client_id=1), status=303)
    assert app.cookies[COOKIE_NAME] != "attacker-chosen"
    assert whoami(app) == [1, 1]


def test_location_ignores_host_and_forwarded_headers(app, mint):
    response = app.get(
        mint(client_id=1),
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"},
        status=303,
    )
    assert response.headers["Location"].startswith(SYSTEM_URL + "/")


def test_query_parameters_cannot_override_the_record(app, mint):
    path = mint(client_id=1, destination="clientarea:invoices")
    response = app.get(path + "&user_id=2&client_id=2&destination=clientarea:profile", status=303)
    assert response.headers["Location"] == SYSTEM_URL + "/clientarea.php?action=invoices"
    assert whoami(app) == [1, 1]


@pytest.mark.parametrize(
    "scope, status",
    [
        ("clientarea:invoices", 303),
        ("clientarea:sso clientarea:invoices", 303),
        ("clientarea:profile", 403),
        ("clientarea:sso", 403),
    ],
)
def test_scope_sent_along_must_agree_with_the_token(app, mint, scope, status):
    path = mint(client_id=1, destination="clientarea:invoices")
    app.get(path, {"scope": scope}, status=status)


@pytest.mark.parametrize("method", ["HEAD", "POST", "OPTIONS", "PUT", "DELETE"])
def test_only_get_redeems(app, mint, method):
    path = mint(client_id=1)
    response = app.request(path, method=method, status=405)
    assert response.headers["Allow"] == "GET"
    app.get(path, status=303)  # not burned


def commands_run(redis_client) -> int:
    """Every command the server has run, but the INFO calls that ask."""
    stats = redis_client.info("commandstats")
    return sum(stat["calls"] for name, stat in stats.items() if name != "cmdstat_info")


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("", id="missing"),
        pytest.param("access_token=", id="empty"),
        pytest.param("access_token=" + "D" * 43 + "&access_token=" + "E" * 43, id="duplicate"),
        pytest.param("access_token=" + "F" * 44, id="too-long"),
        pytest.param("access_token=" + "G" * 42, id="too-short"),
        pytest.param("access_token=" + "%C3%A9" * 43, id="non-ascii"),
        pytest.param("access_token=" + "H" * 42 + "%00", id="nul"),
        pytest.param("access_token=" + "x" * 5000, id="oversized"),
        pytest.param("access_token=" + "I" * 43 + "&scope=a&scope=b", id="duplicate-scope"),
    ],
)
def test_malformed_links_are_400_and_never_touch_redis(app, redis_client, query):
    before = commands_run(redis_client)
    response = app.get(f"{SSO_PATH}?{query}", status=400)
    assert "malformed" in response.text
    assert_hardened(response)
    assert commands_run(redis_client) == before
    # the count does see a link that reaches Redis: a well-formed unknown token
    app.get(f"{SSO_PATH}?access_token={'J' * 43}", status=403)
    assert commands_run(redis_client) > before


def test_token_never_reaches_the_wrapped_app(make_middleware, mint):
    seen = []

    def spy(environ, start_response):
        seen.append(environ.get("PATH_INFO"))
        start_response("200 OK", [])
        return [b""]

    app = browser(make_middleware(app=spy))
    app.get(f"{SSO_PATH}?access_token={'J' * 43}", status=403)
    app.get(f"{SSO_PATH}", status=400)
    assert seen == []


def test_user_store_failure_fails_closed(make_middleware, user_store, redis_client, monkeypatch):
    middleware = make_middleware()
    app = browser(middleware)
    path = sso_path(middleware.create_sso_token(client_id=1)["redirect_url"])

    def broken(client_id):
        raise RuntimeError("database is down")

    monkeypatch.setattr(user_store, "get_account", broken)
    response = app.get(path, status=503)
    assert response.headers["Retry-After"]
    assert "Set-Cookie" not in response.headers
    assert not live_sessions(redis_client)  # the spent token's session was ended


@pytest.mark.parametrize(
    "status, sso_allowed",
    [
        pytest.param("Closed", True, id="closed-as-a-plain-string"),
        pytest.param("Fraud", True, id="unknown-status"),
        pytest.param(AccountStatus.ACTIVE, b"\x00", id="driver-false-bytes"),
        pytest.param(AccountStatus.ACTIVE, "0", id="false-as-a-string"),
        pytest.param(AccountStatus.ACTIVE, None, id="null"),
    ],
)
def test_only_explicitly_open_accounts_sign_on(make_middleware, user_store, status, sso_allowed):
    """A user store may hand over raw database values: anything but Active
    or Inactive, and anything but True for "Allow Single Sign-On", refuses."""
    from sso_middleware.users import Account

    path = sso_path(make_middleware().create_sso_token(client_id=1)["redirect_url"])
    middleware = make_middleware()
    user_store.add_account(Account(1, status, sso_allowed, owner_user_id=1))
    assert middleware.create_sso_token(client_id=1) == {
        "result": "error",
        "message": "SSO authentication blocked for client 1",
    }
    app = browser(middleware)
    app.get(path, status=403)
    assert whoami(app) is None
