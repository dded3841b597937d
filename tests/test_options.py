"""Options are defined once, in :mod:`sso_middleware.options`: the ini
pipeline reads every field under its ini name, groups refuse bad values when
made, and the endpoint classes and admin actions can be extended."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sso_middleware import (
    AdminAPIOptions,
    ConfigurationError,
    Limit,
    Limits,
    Paths,
    RedemptionOptions,
    SessionOptions,
    SSOMiddleware,
    Stores,
)
from sso_middleware.credentials import hash_secret
from sso_middleware.endpoints.admin_api import AdminAPI
from sso_middleware.options import GROUPS, by_ini_names, ini_fields
from sso_middleware.paste import options as ini_options
from tests.support.helpers import (
    API_IDENTIFIER,
    API_SECRET,
    SECRET_KEY,
    SYSTEM_URL,
    api_form,
    browser,
    echo_app,
)

#: A well-formed admin API secret hash.
HASH = "sha256:" + "0" * 64

#: An ini value for each option, and the value it must give.
INI_VALUES = {
    "idle_timeout": ("900", 900),
    "absolute_timeout": ("7200", 7200),
    "secure_cookies": ("false", False),
    "cookie_name": ("portal_sso", "portal_sso"),
    "logout_on_get": ("true", True),
    "revocation_delay": ("5", 5),
    "token_ttl": ("30", 30),
    "revoke_on_replay": ("false", False),
    "confirm": ("always", "always"),
    "redeem_limit": ("5/60", Limit(5, 60)),
    "client_auth_limit": ("6/60", Limit(6, 60)),
    "address_auth_limit": ("7/60", Limit(7, 60)),
    "trusted_proxies": ("2", 2),
    "sso_path": ("/sso", "/sso"),
    "token_path": ("/token", "/token"),
    "api_path": ("/api", "/api"),
    "logout_path": ("/bye", "/bye"),
    "logout_redirect": ("/home", "/home"),
    "api_credentials": (f"\nbilling = {hash_secret(API_SECRET)}", {"billing": hash_secret(API_SECRET)}),
    "api_roles": ("\nbilling = CreateSsoToken", {"billing": "CreateSsoToken"}),
    "api_allowed_ips": ("10.0.0.0/8", "10.0.0.0/8"),
}


def test_every_option_has_one_ini_name_and_a_test_value():
    assert sorted(ini_fields()) == sorted(INI_VALUES)


@pytest.mark.parametrize("name", sorted(INI_VALUES))
def test_the_ini_pipeline_reads_every_option(name, monkeypatch):
    text, expected = INI_VALUES[name]
    settings = {
        "system_url": "http://127.0.0.1:8000",
        "redis_url": "memory:",
        "secret_keys": SECRET_KEY,
        "user_store": "sso_middleware.demo:demo_user_store",
        name: text,
    }
    if name in ("api_roles", "api_allowed_ips"):
        settings["api_credentials"] = INI_VALUES["api_credentials"][0]
    if name == "cookie_name" or name == "secure_cookies":
        settings["secure_cookies"] = "false"
    group, field = ini_fields()[name]
    assert getattr(ini_options(settings)[group], field.name) == expected


def test_a_name_that_is_no_option_is_refused():
    with pytest.raises(ConfigurationError, match="no option is called 'idle_timout'"):
        by_ini_names({"idle_timout": 60})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SessionOptions(idle_timeout=0), "idle_timeout must be whole seconds from 1"),
        (
            lambda: SessionOptions(idle_timeout=7200, absolute_timeout=3600),
            "idle_timeout must be whole seconds from 1 to 3600",
        ),
        (lambda: SessionOptions(absolute_timeout=10**9), "absolute_timeout must be whole seconds"),
        (lambda: SessionOptions(idle_timeout=60.0), "idle_timeout must be whole seconds"),
        (lambda: SessionOptions(cookie_name="a b"), "must be a non-empty token"),
        (lambda: SessionOptions(cookie_name="__Host-x", secure=False), "browsers drop __Host-"),
        (lambda: RedemptionOptions(token_ttl=601), "token_ttl must be whole seconds from 1 to 600"),
        (lambda: RedemptionOptions(confirm="sometimes"), "confirm must be one of never, always, signed_in"),
        (lambda: RedemptionOptions(revoke_on_replay="yes"), "revoke_on_replay must be True or False"),
        (lambda: SessionOptions(secure="false"), "secure must be True or False"),
        (lambda: SessionOptions(logout_on_get=1), "logout_on_get must be True or False"),
        (lambda: SessionOptions(revocation_delay=61), "revocation_delay must be whole seconds from 0 to 60"),
        (lambda: AdminAPIOptions(credentials=None), "credentials must map identifiers"),
        (lambda: Limits(redeem=(5, 60)), "redeem must be a Limit"),
        (lambda: Limits(trusted_proxies=-1), "trusted_proxies must be a whole number"),
        (lambda: Paths(sso="oauth"), "sso_path 'oauth' must be a path"),
        (lambda: Paths(token="/x", api="/x"), "must differ"),
        (lambda: AdminAPIOptions(roles={"x": ["CreateSsoToken"]}), "need api_credentials"),
        # values of the wrong type are named, not a traceback from deep inside
        (lambda: Paths(sso=123), "sso_path 123 must be a path"),
        (lambda: SessionOptions(cookie_name=5), "cookie_name 5 must be a non-empty token"),
        (lambda: AdminAPIOptions(credentials={"a": HASH}, allowed_ips=5), "api_allowed_ips must be networks"),
        (lambda: AdminAPIOptions(credentials={"a": HASH}, roles=5), "api_roles must map identifiers"),
        (lambda: AdminAPIOptions(credentials={"a": HASH}, roles={"a": 5}), "must name at least one action"),
        (lambda: AdminAPIOptions(credentials={"a": 5}), r"api_credentials\['a'\] must be 'sha256:'"),
        (lambda: AdminAPIOptions(credentials={5: HASH}), r"api_credentials\[5\] must be 'sha256:'"),
    ],
)
def test_groups_refuse_bad_values_when_made(make, message):
    with pytest.raises(ConfigurationError, match=message):
        make()


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_groups_are_frozen(group):
    made = GROUPS[group]()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, dataclasses.fields(made)[0].name, None)


def portal(redis_client, user_store, middleware_class=SSOMiddleware, **options):
    """``middleware_class`` around the echo app, on Redis, with ``options``
    besides the test deployment's address, key and users."""
    return middleware_class(
        echo_app,
        system_url=SYSTEM_URL,
        secret_keys=[SECRET_KEY],
        user_store=user_store,
        stores=Stores.redis(redis_client),
        **options,
    )


def test_a_group_given_as_a_dict_is_refused(redis_client, user_store):
    with pytest.raises(ConfigurationError, match="sessions must be a SessionOptions"):
        portal(redis_client, user_store, sessions={"idle_timeout": 60})


# -- extension points -----------------------------------------------------------------


class PingAPI(AdminAPI):
    """An admin API with one more action."""

    ACTIONS = {**AdminAPI.ACTIONS, "Ping": "ping"}

    def ping(self, params, identifier):
        return {"result": "success", "pong": params.get("say", ""), "caller": identifier}


class PingMiddleware(SSOMiddleware):
    admin_api_class = PingAPI


def ping_portal(redis_client, user_store, **api):
    return browser(
        portal(
            redis_client,
            user_store,
            PingMiddleware,
            api=AdminAPIOptions(credentials={API_IDENTIFIER: hash_secret(API_SECRET)}, **api),
        )
    )


def test_a_subclass_adds_an_admin_action(redis_client, user_store):
    app = ping_portal(redis_client, user_store)
    response = app.post("/includes/api.php", api_form(action="ping", say="hi"))
    assert json.loads(response.body) == {"result": "success", "pong": "hi", "caller": API_IDENTIFIER}
    # the built-in actions are still there
    minted = app.post("/includes/api.php", api_form(client_id="1"))
    assert json.loads(minted.body)["result"] == "success"


def test_roles_may_name_an_added_action(redis_client, user_store):
    app = ping_portal(redis_client, user_store, roles={API_IDENTIFIER: ["Ping"]})
    assert json.loads(app.post("/includes/api.php", api_form(action="Ping")).body)["result"] == "success"
    refused = app.post("/includes/api.php", api_form(), status=403)
    assert (
        json.loads(refused.body)["message"]
        == 'Invalid Permissions: API action "createssotoken" is not allowed'
    )


def test_roles_naming_an_action_nobody_has_fail_at_start_up(redis_client, user_store):
    with pytest.raises(ConfigurationError, match="no action 'ping'"):
        portal(
            redis_client,
            user_store,
            api=AdminAPIOptions(
                credentials={API_IDENTIFIER: hash_secret(API_SECRET)}, roles={API_IDENTIFIER: ["Ping"]}
            ),
        )
