"""Minting tokens: ``middleware.create_sso_token`` on real Redis."""

from __future__ import annotations

import re
import secrets

import pytest

import sso_middleware.issuer
from sso_middleware.demo import demo_user_store
from sso_middleware.exceptions import ConfigurationError
from sso_middleware.users import Account, AccountStatus, User
from tests.support.helpers import SSO_PATH, SYSTEM_URL, browser, sso_path

TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
SSO_URL = SYSTEM_URL + SSO_PATH + "?access_token="


def token_keys(redis_client) -> list[bytes]:
    return list(redis_client.scan_iter(match="sso:v2:t:*"))


def all_keys(redis_client) -> list[bytes]:
    return list(redis_client.scan_iter())


def only_token_key(redis_client) -> bytes:
    keys = token_keys(redis_client)
    assert len(keys) == 1, keys
    return keys[0]


def signed_in_as(middleware, result) -> tuple[list[int], str]:
    """Redeem a minted token in a fresh browser; return who the wrapped app
    then sees and where the browser was sent."""
    client = browser(middleware)
    response = client.get(sso_path(result["redirect_url"]), status=303)
    seen = client.get("/whoami").json
    return seen["identity"], response.headers["Location"]


# -- success -------------------------------------------------------------------


def test_success_shape(middleware):
    result = middleware.create_sso_token(client_id=1)
    assert set(result) == {"result", "access_token", "redirect_url"}
    assert result["result"] == "success"
    assert TOKEN.match(result["access_token"])
    assert result["redirect_url"] == SSO_URL + result["access_token"]


def test_each_mint_gives_a_new_token(middleware):
    tokens = {middleware.create_sso_token(client_id=1)["access_token"] for _ in range(5)}
    assert len(tokens) == 5


def test_ids_may_be_decimal_strings(middleware):
    result = middleware.create_sso_token(
        client_id="1", user_id="5", destination="clientarea:product_details", service_id="101"
    )
    assert result["result"] == "success", result
    assert signed_in_as(middleware, result) == (
        [5, 1],
        SYSTEM_URL + "/clientarea.php?action=productdetails&id=101",
    )


def test_token_lives_at_most_60_seconds(middleware, redis_client):
    middleware.create_sso_token(client_id=1)
    ttl = redis_client.pttl(only_token_key(redis_client))
    assert 0 < ttl <= 60000


def test_raw_token_is_neither_key_nor_value(middleware, redis_client):
    token = middleware.create_sso_token(client_id=1)["access_token"]
    keys = all_keys(redis_client)
    assert keys
    for key in keys:
        assert token.encode() not in key
        assert token.encode() not in (redis_client.get(key) or b"")


# -- errors --------------------------------------------------------------------

ERRORS = [
    pytest.param({"client_id": 99}, "Invalid client_id", id="client-unknown"),
    pytest.param({"client_id": "99"}, "Invalid client_id", id="client-unknown-str"),
    pytest.param({"client_id": "abc"}, "Invalid client_id", id="client-abc"),
    pytest.param({"client_id": "-1"}, "Invalid client_id", id="client-negative"),
    pytest.param({"client_id": -1}, "Invalid client_id", id="client-negative-int"),
    pytest.param({"client_id": "0"}, "Invalid client_id", id="client-zero"),
    pytest.param({"client_id": "1.5"}, "Invalid client_id", id="client-float-str"),
    pytest.param({"client_id": " 1"}, "Invalid client_id", id="client-leading-space"),
    pytest.param({"client_id": "+1"}, "Invalid client_id", id="client-plus"),
    pytest.param({"client_id": True}, "Invalid client_id", id="client-bool"),
    pytest.param({"client_id": "\u0661"}, "Invalid client_id", id="client-arabic-digit"),
    pytest.param({"client_id": "9" * 30}, "Invalid client_id", id="client-huge"),
    pytest.param({"user_id": 99}, "Invalid user_id", id="user-unknown"),
    pytest.param({"client_id": 1, "user_id": 99}, "Invalid user_id", id="user-unknown-with-client"),
    pytest.param({"user_id": "x"}, "Invalid user_id", id="user-not-a-number"),
    pytest.param({"client_id": 2, "user_id": 6}, "Invalid user_id for client", id="user-6-client-2"),
    pytest.param({"client_id": 2, "user_id": 5}, "Invalid user_id for client", id="user-5-client-2"),
    pytest.param({}, "A valid client_id or user_id is required", id="neither"),
    pytest.param(
        {"client_id": "", "user_id": ""}, "A valid client_id or user_id is required", id="both-empty"
    ),
    pytest.param({"user_id": 6}, "A valid client_id or user_id is required", id="user-without-accounts"),
    pytest.param(
        {"client_id": 1, "destination": "clientarea:nope"}, "Invalid destination", id="destination-unknown"
    ),
    pytest.param(
        {"client_id": 1, "destination": "clientarea:sso"},
        "Invalid destination",
        id="destination-marker-scope",
    ),
    pytest.param({"client_id": 3}, "SSO authentication blocked for client 3", id="client-closed"),
    pytest.param({"user_id": 3}, "SSO authentication blocked for client 3", id="client-closed-via-user"),
    pytest.param({"client_id": 4}, "SSO authentication blocked for client 4", id="client-sso-off"),
    pytest.param(
        {"client_id": 1, "destination": "clientarea:product_details", "service_id": 201},
        "Invalid service_id for client",
        id="service-of-other-client",
    ),
    pytest.param(
        {"client_id": 1, "destination": "clientarea:invoices", "service_id": 201},
        "Invalid service_id for client",
        id="service-of-other-client-unused-by-destination",
    ),
    pytest.param(
        {"client_id": 1, "service_id": 201},
        "Invalid service_id for client",
        id="service-of-other-client-home",
    ),
    pytest.param(
        {"client_id": 2, "domain_id": 111}, "Invalid domain_id for client", id="domain-of-other-client-home"
    ),
    pytest.param(
        {"client_id": 1, "destination": "clientarea:upgrade", "service_id": 999},
        "Invalid service_id for client",
        id="service-unknown-upgrade",
    ),
    pytest.param(
        {"client_id": 1, "destination": "clientarea:domain_details", "domain_id": 999},
        "Invalid domain_id for client",
        id="domain-unknown",
    ),
    pytest.param(
        {"client_id": 2, "destination": "clientarea:domain_details", "domain_id": 111},
        "Invalid domain_id for client",
        id="domain-of-other-client",
    ),
    pytest.param(
        {"client_id": 1, "destination": "sso:custom_redirect", "sso_redirect_path": "//evil.com"},
        "Invalid sso_redirect_path",
        id="redirect-protocol-relative",
    ),
    pytest.param(
        {"client_id": 1, "destination": "sso:custom_redirect", "sso_redirect_path": "/\\evil.com"},
        "Invalid sso_redirect_path",
        id="redirect-backslash",
    ),
]


@pytest.mark.parametrize(("inputs", "message"), ERRORS)
def test_errors(middleware, redis_client, inputs, message):
    result = middleware.create_sso_token(**inputs)
    assert result == {"result": "error", "message": message}
    assert all_keys(redis_client) == []


@pytest.mark.parametrize(
    "account",
    [
        pytest.param(Account(7, AccountStatus.ACTIVE, owner_user_id=None), id="no-owner"),
        pytest.param(Account(7, AccountStatus.ACTIVE, owner_user_id=77), id="owner-not-a-user"),
    ],
)
def test_no_owner_found(make_middleware, redis_client, account):
    users = demo_user_store()
    users.add_account(account)
    middleware = make_middleware(user_store=users)
    assert middleware.create_sso_token(client_id=7) == {
        "result": "error",
        "message": "No owner found for client",
    }
    assert all_keys(redis_client) == []


# -- who gets signed in --------------------------------------------------------


def test_client_only_signs_in_the_owner(middleware):
    result = middleware.create_sso_token(client_id=1)
    assert signed_in_as(middleware, result) == ([1, 1], SYSTEM_URL + "/clientarea.php")


def test_inactive_account_may_sign_in(middleware):
    result = middleware.create_sso_token(client_id=2)
    assert signed_in_as(middleware, result) == ([2, 2], SYSTEM_URL + "/clientarea.php")


def test_named_user_acting_for_the_client(middleware):
    result = middleware.create_sso_token(client_id=1, user_id=5, destination="clientarea:invoices")
    assert result["result"] == "success", result
    assert signed_in_as(middleware, result) == ([5, 1], SYSTEM_URL + "/clientarea.php?action=invoices")


def test_user_only_uses_the_users_first_account(make_middleware):
    users = demo_user_store()
    users.add_user(User(8, client_ids=(2, 1)))
    middleware = make_middleware(user_store=users)
    result = middleware.create_sso_token(user_id=8)
    assert result["result"] == "success", result
    assert signed_in_as(middleware, result)[0] == [8, 2]


def test_user_only_with_a_single_account(middleware):
    result = middleware.create_sso_token(user_id=5)
    assert signed_in_as(middleware, result)[0] == [5, 1]


def test_custom_redirect_lands_on_the_given_path(middleware):
    result = middleware.create_sso_token(
        client_id=1, destination="sso:custom_redirect", sso_redirect_path="/cart.php?a=add"
    )
    assert signed_in_as(middleware, result)[1] == SYSTEM_URL + "/cart.php?a=add"


# -- token_ttl -----------------------------------------------------------------


@pytest.mark.parametrize(
    "ttl",
    [
        pytest.param(0, id="zero"),
        pytest.param(-1, id="negative"),
        pytest.param(601, id="601"),
        pytest.param("60", id="string"),
        pytest.param(60.0, id="float"),
        pytest.param(True, id="bool"),
    ],
)
def test_token_ttl_out_of_bounds(make_middleware, ttl):
    with pytest.raises(ConfigurationError):
        make_middleware(token_ttl=ttl)


def test_token_ttl_600(make_middleware, redis_client):
    middleware = make_middleware(token_ttl=600)
    assert middleware.create_sso_token(client_id=1)["result"] == "success"
    ttl = redis_client.pttl(only_token_key(redis_client))
    assert 60000 < ttl <= 600000


def test_token_ttl_1(make_middleware, redis_client):
    middleware = make_middleware(token_ttl=1)
    assert middleware.create_sso_token(client_id=1)["result"] == "success"
    assert 0 < redis_client.pttl(only_token_key(redis_client)) <= 1000


# -- collisions ----------------------------------------------------------------


def test_collision_gets_a_fresh_token(middleware, redis_client, monkeypatch):
    # made through secrets.token_urlsafe so the leak canary watches them too
    first, fresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    values = iter([first, first, fresh])
    monkeypatch.setattr(sso_middleware.issuer, "new_token", lambda: next(values))

    one = middleware.create_sso_token(client_id=1)
    two = middleware.create_sso_token(client_id=1, user_id=5)

    assert one["access_token"] == first
    assert two["result"] == "success"
    assert two["access_token"] == fresh != first
    assert two["redirect_url"] == SSO_URL + fresh
    assert len(token_keys(redis_client)) == 2
    # the colliding mint did not overwrite the live token's record
    assert signed_in_as(middleware, one)[0] == [1, 1]
    assert signed_in_as(middleware, two)[0] == [5, 1]
