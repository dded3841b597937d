"""Rate limits on failures: exact, per key, windowed, never a hard lockout."""

from __future__ import annotations

import json

import pytest

from sso_middleware import Limit
from sso_middleware.ratelimit import _warn_untrusted_forwarding, remote_address
from sso_middleware.stores.memory import MemoryCounterStore
from tests.support.helpers import (
    API_IDENTIFIER,
    API_PATH,
    API_SECRET,
    SSO_PATH,
    FakeClock,
    browser,
    sso_path,
    token_grant,
)


def bad_link(n):
    return f"{SSO_PATH}?access_token={n:043d}"


def from_address(app, address):
    app.extra_environ = {**app.extra_environ, "REMOTE_ADDR": address}
    return app


def test_redemption_limit_trips_at_exactly_the_configured_attempt(make_middleware):
    middleware = make_middleware(redeem_limit=Limit(3, 600))
    app = from_address(browser(middleware), "10.0.0.1")
    for n in range(3):
        app.get(bad_link(n), status=403)
    response = app.get(bad_link(4), status=429)
    assert 590 <= int(response.headers["Retry-After"]) <= 600
    assert response.headers["Cache-Control"] == "no-store"

    app.get(bad_link(5), status=429)  # and every failure after it


def test_an_address_over_its_limit_still_redeems_valid_links(make_middleware, caplog):
    """Everyone behind one proxy or NAT shares an address: random tokens
    sent from it must not lock its real users out (a valid token always
    signs in, as a right API secret always passes)."""
    middleware = make_middleware(redeem_limit=Limit(100, 600))
    attacker = from_address(browser(middleware), "10.0.0.9")
    for n in range(101):
        attacker.get(bad_link(n), status=403 if n < 100 else 429)
    victim = from_address(browser(middleware), "10.0.0.9")
    victim.get(sso_path(middleware.create_sso_token(client_id=1)["redirect_url"]), status=303)
    assert json.loads(victim.get("/page").body)["identity"] == [1, 1]
    attacker.get(bad_link(200), status=429)  # failures from it are still limited


def test_forwarded_requests_without_trusted_proxies_are_reported_once(make_middleware, caplog):
    _warn_untrusted_forwarding.cache_clear()
    app = browser(make_middleware())
    for n in range(3):
        app.get(bad_link(n), headers={"X-Forwarded-For": "198.51.100.7"}, status=403)
    warnings = [r for r in caplog.records if getattr(r, "sso_event", None) == "untrusted_forwarding"]
    assert len(warnings) == 1 and "trusted_proxies" in warnings[0].getMessage()
    _warn_untrusted_forwarding.cache_clear()
    browser(make_middleware(trusted_proxies=1)).get(
        bad_link(9), headers={"X-Forwarded-For": "198.51.100.7"}, status=403
    )
    assert len([r for r in caplog.records if getattr(r, "sso_event", None) == "untrusted_forwarding"]) == 1


def test_malformed_links_are_not_counted(make_middleware):
    app = from_address(browser(make_middleware(redeem_limit=Limit(1, 600))), "10.0.0.3")
    for _ in range(5):
        app.get(SSO_PATH + "?access_token=short", status=400)
    app.get(bad_link(1), status=403)


def test_a_window_runs_out_no_hard_lockout(make_middleware):
    """Windows are kept by the counter store (Redis's expiry; its contract
    test covers that); the memory store on a fake clock drives one here."""
    clock = FakeClock()
    app = from_address(
        browser(
            make_middleware(redeem_limit=Limit(1, 1), clock=clock, counters=MemoryCounterStore(clock=clock))
        ),
        "10.0.0.4",
    )
    app.get(bad_link(1), status=403)
    app.get(bad_link(2), status=429)
    clock.advance(1.2)
    app.get(bad_link(3), status=403)


def test_counters_expire_in_redis(make_middleware, redis_client):
    app = browser(make_middleware())
    app.get(bad_link(1), status=403)
    keys = list(redis_client.scan_iter("sso:v2:rl:*"))
    assert keys and all(0 < redis_client.ttl(k) <= 600 for k in keys)


def test_the_limit_is_shared_by_processes(make_middleware):
    """Two middleware instances (two workers) count in the same store."""
    first = from_address(browser(make_middleware(redeem_limit=Limit(2, 600))), "10.0.0.5")
    second = from_address(browser(make_middleware(redeem_limit=Limit(2, 600))), "10.0.0.5")
    first.get(bad_link(1), status=403)
    second.get(bad_link(2), status=403)
    first.get(bad_link(3), status=429)
    second.get(bad_link(4), status=429)


@pytest.fixture
def credential(middleware):
    created, secret = middleware.oauth_credentials.create(grant_type="single_sign_on", service_id=101)
    return created.identifier, secret


def test_client_authentication_limit_per_client(make_middleware):
    middleware = make_middleware(client_auth_limit=Limit(2, 60))
    app = from_address(browser(middleware), "10.0.1.1")
    one, secret_one = middleware.oauth_credentials.create(grant_type="single_sign_on", service_id=101)
    two, secret_two = middleware.oauth_credentials.create(grant_type="single_sign_on", service_id=101)
    token_grant(app, one.identifier, "wrong", 401)
    token_grant(app, one.identifier, "wrong", 401)
    response = token_grant(app, one.identifier, "wrong", 429)
    assert response.json["error"] == "too_many_requests"
    assert 0 < int(response.headers["Retry-After"]) <= 60
    token_grant(app, one.identifier, "wrong", 429)  # and so is every further failure
    token_grant(app, one.identifier, secret_one, 200)  # the right secret is never locked out
    token_grant(app, two.identifier, secret_two, 200)  # another client is unaffected


def test_failures_in_a_clients_name_cannot_lock_it_out(make_middleware):
    """Wrong secrets sent for a known identifier from many addresses trip
    its limit, but the client itself, with its secret, still gets tokens."""
    middleware = make_middleware(client_auth_limit=Limit(2, 60))
    credential, secret = middleware.oauth_credentials.create(grant_type="single_sign_on", service_id=101)
    for n in range(5):
        attacker = from_address(browser(middleware), f"10.0.9.{n}")
        token_grant(attacker, credential.identifier, "wrong", 401 if n < 2 else 429)
    owner = from_address(browser(middleware), "10.0.9.99")
    token_grant(owner, credential.identifier, secret, 200)
    api = from_address(browser(middleware), "10.0.9.98")
    form = {
        "action": "CreateSsoToken",
        "identifier": API_IDENTIFIER,
        "client_id": "1",
        "responsetype": "json",
    }
    for _ in range(3):
        api.post(API_PATH, {**form, "secret": "wrong"}, status="*")
    assert api.post(API_PATH, {**form, "secret": API_SECRET}).json["result"] == "success"


def test_counter_keys_are_short_whatever_the_identifier(make_middleware, redis_client):
    app = browser(make_middleware())
    token_grant(app, "x" * 5000, "wrong", 401)
    keys = list(redis_client.scan_iter("sso:v2:rl:*"))
    assert keys and all(len(k) < 64 for k in keys)


def test_client_authentication_limit_per_address(make_middleware, credential):
    app = from_address(browser(make_middleware(address_auth_limit=Limit(3, 600))), "10.0.1.2")
    for n in range(3):
        token_grant(app, f"{n:032x}", "wrong", 401)
    token_grant(app, f"{9:032x}", "wrong", 429)
    other = from_address(browser(app.app), "10.0.1.3")
    token_grant(other, *credential, 200)


def test_admin_api_authentication_is_limited(make_middleware):
    app = from_address(browser(make_middleware(client_auth_limit=Limit(2, 60))), "10.0.1.4")
    form = {
        "action": "CreateSsoToken",
        "identifier": API_IDENTIFIER,
        "secret": "wrong",
        "client_id": "1",
        "responsetype": "json",
    }
    for _ in range(2):
        assert app.post(API_PATH, form, status=403).json == {
            "result": "error",
            "message": "Authentication Failed",
        }
    response = app.post(API_PATH, form, status=429)
    assert response.json["result"] == "error" and response.headers["Retry-After"]


def test_forwarded_for_is_ignored_without_trusted_proxies(make_middleware):
    app = from_address(browser(make_middleware(redeem_limit=Limit(1, 600))), "10.0.2.1")
    app.get(bad_link(1), headers={"X-Forwarded-For": "1.1.1.1"}, status=403)
    app.get(bad_link(2), headers={"X-Forwarded-For": "2.2.2.2"}, status=429)


def test_forwarded_for_is_used_behind_trusted_proxies(make_middleware):
    app = from_address(browser(make_middleware(redeem_limit=Limit(1, 600), trusted_proxies=1)), "10.0.2.2")
    app.get(bad_link(1), headers={"X-Forwarded-For": "spoofed, 1.1.1.1"}, status=403)
    app.get(bad_link(2), headers={"X-Forwarded-For": "spoofed, 2.2.2.2"}, status=403)
    app.get(bad_link(3), headers={"X-Forwarded-For": "other, 1.1.1.1"}, status=429)


@pytest.mark.parametrize(
    "environ, proxies, expected",
    [
        ({"REMOTE_ADDR": "10.0.0.9"}, 0, "10.0.0.9"),
        ({"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "1.1.1.1"}, 0, "10.0.0.9"),
        ({"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "1.1.1.1"}, 1, "1.1.1.1"),
        ({"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "evil, 1.1.1.1, 10.0.0.8"}, 2, "1.1.1.1"),
        ({"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "1.1.1.1"}, 2, "10.0.0.9"),
        ({"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": " , "}, 1, "10.0.0.9"),
    ],
)
def test_remote_address(environ, proxies, expected):
    assert remote_address(environ, proxies) == expected


@pytest.mark.parametrize("limit", [(0, 60), (1, 0), (1.5, 60), ("1", 60)])
def test_bad_limits_fail_at_startup(limit):
    from sso_middleware import ConfigurationError

    with pytest.raises(ConfigurationError):
        Limit(*limit)
