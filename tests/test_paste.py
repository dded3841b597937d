"""Configuration from a PasteDeploy ini pipeline, parsed strictly."""

from __future__ import annotations

import textwrap

import pytest
import webtest
from paste.deploy import loadapp

from sso_middleware import ConfigurationError, Limit, SSOMiddleware
from sso_middleware.credentials import hash_secret
from sso_middleware.paste import filter_factory
from tests.support.helpers import API_PATH, SECRET_KEY, echo_app, filter_settings


def echo_factory(global_conf, **settings):
    return echo_app


def write_ini(tmp_path, redis_url, **extra):
    lines = "\n".join(f"{k} = {v}" for k, v in extra.items())
    ini = tmp_path / "portal.ini"
    ini.write_text(
        textwrap.dedent(f"""\
        [pipeline:main]
        pipeline = sso portal

        [filter:sso]
        use = egg:sso_middleware#sso
        system_url = https://portal.example.com
        redis_url = {redis_url}
        secret_keys = {SECRET_KEY}
        user_store = sso_middleware.demo:demo_user_store
        api_credentials =
            billing = {hash_secret("billing-secret")}
        destinations =
            clientarea:invoices = /billing
            clientarea:product_details = /services/{{service_id}}
        """)
        + lines
        + textwrap.dedent("""

        [app:portal]
        paste.app_factory = tests.test_paste:echo_factory
        """)
    )
    return f"config:{ini}"


def test_the_pipeline_loads_and_serves(tmp_path, redis_server):
    app = loadapp(write_ini(tmp_path, redis_server.url, token_ttl="30", redeem_limit="5/60"))
    assert isinstance(app, SSOMiddleware)
    client = webtest.TestApp(app, extra_environ={"wsgi.url_scheme": "https"})
    result = client.post(
        API_PATH,
        {
            "action": "CreateSsoToken",
            "identifier": "billing",
            "secret": "billing-secret",
            "client_id": "1",
            "destination": "clientarea:invoices",
            "responsetype": "json",
        },
    ).json
    assert result["result"] == "success"
    response = client.get(result["redirect_url"].removeprefix("https://portal.example.com"), status=303)
    assert response.headers["Location"] == "https://portal.example.com/billing"
    assert client.get("/billing").json["identity"] == [1, 1]


def test_memory_stores_for_development(redis_server):
    app = filter_factory(
        {}, **filter_settings("memory:", secure_cookies="false", system_url="http://127.0.0.1:8000")
    )(lambda e, s: [])
    assert type(app.issuer.token_store).__name__ == "MemoryTokenStore"


def test_settings_reach_the_middleware(redis_server):
    app = filter_factory(
        {},
        **filter_settings(
            redis_server.url,
            token_ttl="30",
            idle_timeout="60",
            absolute_timeout="120",
            trusted_proxies="1",
            secure_cookies="yes",
            cookie_name="__Host-portal",
            logout_on_get="on",
            redeem_limit="5/60",
            sso_path="/sso",
            home="/start",
            redis_prefix="portal:v1:",
        ),
    )(lambda e, s: [])
    assert app.issuer.ttl == 30
    assert app.sessions.idle_timeout == 60 and app.sessions.cookie_name == "__Host-portal"
    assert "/sso" in app.endpoints and app.endpoints["/sso"].limiter.limit == Limit(5, 60)
    assert app.issuer.destinations.home == "/start"
    assert app.issuer.token_store.prefix == "portal:v1:t:"


def test_secret_keys_from_a_file_or_the_environment(tmp_path, monkeypatch, redis_server):
    keys = tmp_path / "keys"
    keys.write_text("o" * 32 + "\n" + "n" * 32 + "\n")
    keys.chmod(0o600)
    base = filter_settings(redis_server.url, secret_keys=None)
    app = filter_factory({}, **base, secret_key_file=str(keys))(lambda e, s: [])
    assert app.sessions.signer.secret_keys == [b"o" * 32, b"n" * 32]
    monkeypatch.setenv("PORTAL_SSO_KEYS", "e" * 32)
    app = filter_factory({}, **base, secret_keys_env="PORTAL_SSO_KEYS")(lambda e, s: [])
    assert app.sessions.signer.secret_keys == [b"e" * 32]


@pytest.mark.parametrize(
    "change, message",
    [
        pytest.param({"secure_cookie": "true"}, "unknown setting 'secure_cookie'", id="unknown-key"),
        pytest.param(
            {"secure_cookies": "ture"}, "secure_cookies = 'ture': write true or false", id="bad-boolean"
        ),
        pytest.param({"token_ttl": "sixty"}, "token_ttl = 'sixty': write a whole number", id="bad-integer"),
        pytest.param({"token_ttl": "-1"}, "token_ttl = '-1'", id="negative-integer"),
        pytest.param({"token_ttl": "601"}, "token_ttl must be whole seconds from 1 to 600", id="ttl-cap"),
        pytest.param({"redeem_limit": "100"}, "redeem_limit = '100': write attempts/seconds", id="bad-limit"),
        pytest.param({"system_url": ""}, "system_url is required", id="missing-system-url"),
        pytest.param({"redis_url": ""}, "set exactly one of redis_url", id="missing-redis-url"),
        pytest.param(
            {"redis_sentinels": "127.0.0.1:26379"}, "set exactly one of redis_url", id="two-redis-sources"
        ),
        pytest.param(
            {"redis_url": "", "redis_sentinels": "127.0.0.1:26379"},
            "redis_service",
            id="sentinel-without-service",
        ),
        pytest.param(
            {"redis_url": "", "redis_cluster_nodes": "nohost"}, "host:port pairs", id="bad-cluster-nodes"
        ),
        pytest.param({"redis_wait": "1"}, "redis_wait = '1': write replicas/milliseconds", id="bad-wait"),
        pytest.param(
            {"redis_password_env": "NOT_SET_ANYWHERE"},
            "NOT_SET_ANYWHERE is not set",
            id="missing-password-env",
        ),
        pytest.param({"user_store": ""}, "user_store is required", id="missing-user-store"),
        pytest.param({"user_store": "nowhere"}, "write package.module:factory", id="bad-dotted-name"),
        pytest.param({"user_store": "nowhere.at_all:x"}, "cannot load it", id="missing-module"),
        pytest.param({"secret_keys": "short"}, "at least 32", id="short-key"),
        pytest.param(
            {"secret_key_file": "/nonexistent"}, "set exactly one of secret_keys", id="two-key-sources"
        ),
        pytest.param(
            {"api_credentials": "billing = plaintext"},
            "api_credentials['billing']",
            id="plaintext-api-secret",
        ),
        pytest.param({"api_credentials": "billing"}, "one 'name = value' per line", id="bad-mapping"),
        pytest.param(
            {"destinations": "clientarea:invoices = //evil.example"}, "must be a path", id="bad-destination"
        ),
        pytest.param(
            {"destinations": "clientarea:bogus = /x/{user}"}, "unknown input 'user'", id="bad-template"
        ),
        pytest.param({"system_url": "http://portal.example.com"}, "plain HTTP", id="insecure-url"),
    ],
)
def test_bad_settings_fail_at_startup_with_a_clear_message(redis_server, change, message):
    with pytest.raises(ConfigurationError) as error:
        filter_factory({}, **filter_settings(redis_server.url, **change))(lambda e, s: [])
    assert message in str(error.value)


def test_missing_key_sources(redis_server, monkeypatch):
    base = filter_settings(redis_server.url, secret_keys=None)
    with pytest.raises(ConfigurationError, match="got none"):
        filter_factory({}, **base)
    with pytest.raises(ConfigurationError, match="cannot read it"):
        filter_factory({}, **base, secret_key_file="/nonexistent/keys")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigurationError, match="NOT_SET_ANYWHERE is not set"):
        filter_factory({}, **base, secret_keys_env="NOT_SET_ANYWHERE")


@pytest.mark.parametrize("value", ["", " \n\t"])
def test_an_empty_key_variable_is_named(redis_server, monkeypatch, value):
    """Not the middleware's "secret_keys must be a non-empty list", which
    would not say where the keys were looked for."""
    monkeypatch.setenv("PORTAL_SSO_KEYS", value)
    with pytest.raises(ConfigurationError) as error:
        filter_factory(
            {}, **filter_settings(redis_server.url, secret_keys=None, secret_keys_env="PORTAL_SSO_KEYS")
        )
    assert str(error.value).startswith("secret_keys_env: environment variable PORTAL_SSO_KEYS is empty;")
    assert "secrets.token_urlsafe(32)" in str(error.value)  # how to make one


def test_an_empty_key_file_or_setting_is_named(redis_server, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("\n")
    keys.chmod(0o600)
    base = filter_settings(redis_server.url, secret_keys=None)
    with pytest.raises(ConfigurationError, match=f"secret_key_file {keys}: the file holds no key"):
        filter_factory({}, **base, secret_key_file=str(keys))
    with pytest.raises(ConfigurationError, match="^secret_keys is empty"):
        filter_factory({}, **base, secret_keys=" ")
    with pytest.raises(ConfigurationError, match="name the environment variable"):
        filter_factory({}, **base, secret_keys_env=" ")


def test_a_bad_ini_refuses_to_load(tmp_path, redis_server):
    with pytest.raises(ConfigurationError, match="write true or false"):
        loadapp(write_ini(tmp_path, redis_server.url, logout_on_get="maybe"))


def test_a_malformed_mapping_line_is_not_repeated_in_the_error():
    """The line may be a secret pasted where a ``name = value`` belongs."""
    with pytest.raises(ConfigurationError) as raised:
        filter_factory({}, **filter_settings("memory:", api_credentials="\nbilling: plaintext-secret-123"))
    assert "plaintext-secret-123" not in str(raised.value)
    assert "line 1" in str(raised.value)


@pytest.mark.parametrize(
    "setting", [{"redis_ssl": "ture"}, {"redis_wait": "1/x"}, {"redis_prefix": "portal-a:"}]
)
def test_redis_settings_with_memory_stores_are_refused(setting):
    """They would do nothing; an operator who set them expects they do."""
    name = next(iter(setting))
    with pytest.raises(ConfigurationError, match=f"^{name} has no effect with redis_url = memory:"):
        filter_factory({}, **filter_settings("memory:", secure_cookies="false", **setting))


#: Option types an ini value is passed on as text for (the options check it).
TEXT_TYPES = {"str", "str | None", "Confirm", "t.Iterable[str] | str | None"}


def test_every_ini_option_has_a_reader_for_its_type():
    """A new option of a type the ini reader does not know (``int | None``,
    say) would otherwise be passed on as text and refused confusingly."""
    from sso_middleware.options import ini_fields
    from sso_middleware.paste import _READERS

    for name, (_, field) in ini_fields().items():
        kind = str(field.type)
        assert field.metadata.get("lines") or kind in _READERS or kind in TEXT_TYPES, (name, kind)
