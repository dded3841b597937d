"""How the admin API reads requests and answers them, as WHMCS does:
credential aliases, parameters from the query string, actions in any case,
WHMCS's statuses, response types, the address allow-list and API roles; and
RFC 6749's ``client_id`` beside HTTP Basic on the token endpoint."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import xml.etree.ElementTree as ET

import pytest

from sso_middleware import cli
from sso_middleware.credentials import hash_secret
from sso_middleware.endpoints.api_formats import to_nvp
from sso_middleware.exceptions import ConfigurationError
from sso_middleware.paste import options
from sso_middleware.ratelimit import Limit
from sso_middleware.stores.redis import RedisTokenStore, connect
from tests.support.helpers import API_IDENTIFIER, API_SECRET, browser
from tests.support.redis_server import free_port

API = "/includes/api.php"
TOKEN = "/oauth/token.php"
CREDENTIALS = {"identifier": API_IDENTIFIER, "secret": API_SECRET}


def post(app, params: dict, *, url: str = API, status: int = 200, **environ: str):
    return app.post(url, params, status=status, extra_environ=environ)


def answer(response) -> dict:
    assert response.content_type == "application/json"
    return json.loads(response.body)


def nvp(text: str) -> dict[str, str]:
    """Parse NVP as WHMCS's old PHP samples do: split on ``;``, then on the
    first ``=``; a later field overwrites an earlier one."""
    fields = {}
    for pair in text.split(";"):
        name, _, value = pair.partition("=")
        fields[name] = value
    return fields


# -- credentials ------------------------------------------------------------------


def test_username_and_password_are_the_credentials_of_whmcs_samples(app):
    body = answer(
        post(
            app,
            {
                "action": "CreateSsoToken",
                "username": API_IDENTIFIER,
                "password": API_SECRET,
                "responsetype": "json",
                "client_id": "1",
            },
        )
    )
    assert body["result"] == "success"


def test_the_pre_7_2_admin_login_is_not_supported(app):
    """The old scheme sent an MD5 of the password; for the configured
    identifier (an unknown one would be refused anyway), that is refused."""
    legacy = {
        "action": "CreateSsoToken",
        "username": API_IDENTIFIER,
        "responsetype": "json",
        "password": hashlib.md5(API_SECRET.encode()).hexdigest(),
        "client_id": "1",
    }
    assert answer(post(app, legacy, status=403)) == {"result": "error", "message": "Authentication Failed"}


@pytest.mark.parametrize(
    "extra",
    [{"username": API_IDENTIFIER}, {"password": API_SECRET}, {"username": "other", "password": "other"}],
)
def test_both_credential_pairs_at_once_are_refused(app, extra):
    body = answer(
        post(
            app,
            {"action": "CreateSsoToken", **CREDENTIALS, **extra, "responsetype": "json", "client_id": "1"},
            status=400,
        )
    )
    assert body["message"] == "Send identifier and secret, or username and password, not both"


# -- parameters from the query string ------------------------------------------------


def test_action_and_inputs_may_come_in_the_query_string(app):
    response = app.post(f"{API}?action=CreateSsoToken&client_id=1&responsetype=json", CREDENTIALS, status=200)
    assert answer(response)["result"] == "success"


def test_the_body_wins_a_clash_with_the_query_string(app):
    response = app.post(
        f"{API}?action=DeleteOAuthCredential&client_id=3",
        {**CREDENTIALS, "action": "CreateSsoToken", "client_id": "1", "responsetype": "json"},
        status=200,
    )
    assert answer(response)["result"] == "success"


@pytest.mark.parametrize("name", ["identifier", "secret", "username", "password", "accesskey"])
def test_secrets_in_the_query_string_are_refused(app, name, caplog):
    response = app.post(
        f"{API}?{name}=leaked-value&action=CreateSsoToken",
        {"responsetype": "json", "client_id": "1"},
        status=400,
    )
    assert answer(response)["message"] == (
        f"Send {name} in the request body, not the query string: query strings end up in access logs"
    )
    assert "leaked-value" not in caplog.text


# -- action names -----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["createssotoken", "CREATESSOTOKEN", "createSsoToken"])
def test_actions_match_in_any_case(app, action):
    body = answer(post(app, {"action": action, **CREDENTIALS, "responsetype": "json", "client_id": "1"}))
    assert body["result"] == "success"


def test_unknown_actions_are_echoed_in_lower_case_letters_digits_and_underscores(app):
    body = answer(post(app, {"action": "Get<b>Clients", **CREDENTIALS, "responsetype": "json"}, status=403))
    assert body["message"] == 'Invalid API Action: "get_b_clients" is not a valid API action'


def test_no_action_is_an_empty_action_request(app):
    body = answer(post(app, {**CREDENTIALS, "responsetype": "json"}, status=400))
    assert body == {"result": "error", "message": "Empty action request"}


# -- statuses -------------------------------------------------------------------------


def test_a_failing_action_is_200_with_the_whmcs_message(app):
    body = answer(
        post(app, {"action": "CreateSsoToken", **CREDENTIALS, "responsetype": "json", "client_id": "999"})
    )
    assert body == {"result": "error", "message": "Invalid client_id"}


def test_throttling_is_429_with_a_result_error_body(make_middleware):
    app = browser(make_middleware(client_auth_limit=Limit(1, 60)))
    wrong = {
        "action": "CreateSsoToken",
        "identifier": API_IDENTIFIER,
        "secret": "wrong",
        "responsetype": "json",
    }
    post(app, wrong, status=403)
    response = post(app, wrong, status=429)
    assert answer(response)["result"] == "error"
    assert int(response.headers["Retry-After"]) > 0


def test_an_outage_is_503_with_a_result_error_body(make_middleware):
    dead = RedisTokenStore(connect(f"redis://127.0.0.1:{free_port()}/0"))
    app = browser(make_middleware(tokens=dead))
    response = post(
        app, {"action": "CreateSsoToken", **CREDENTIALS, "responsetype": "json", "client_id": "1"}, status=503
    )
    assert answer(response) == {"result": "error", "message": "Service temporarily unavailable"}


# -- response types ---------------------------------------------------------------------


def test_xml_is_the_whmcsapi_document(app):
    response = post(
        app,
        {
            "action": "CreateSsoToken",
            **CREDENTIALS,
            "responsetype": "xml",
            "client_id": "1",
            "destination": "clientarea:invoices",
        },
    )
    assert response.content_type == "application/xml"
    assert response.headers["Cache-Control"] == "no-store"
    root = ET.fromstring(response.body)
    assert root.tag == "whmcsapi"
    assert [child.tag for child in root] == ["action", "result", "access_token", "redirect_url"]
    assert root.findtext("action") == "createssotoken"
    assert root.findtext("result") == "success"
    assert root.findtext("redirect_url").endswith("?access_token=" + root.findtext("access_token"))


def test_xml_lists_wrap_one_element_per_item(app, middleware):
    for service_id in (101, 201):
        middleware.oauth_credentials.create(
            grant_type="single_sign_on", scope="clientarea:invoices", service_id=service_id
        )
    root = ET.fromstring(
        post(app, {"action": "ListOAuthCredentials", **CREDENTIALS, "responsetype": "xml"}).body
    )
    assert root.findtext("totalresults") == "2"
    assert [c.findtext("serviceId") for c in root.find("clients")] == ["101", "201"]
    assert {c.tag for c in root.find("clients")} == {"client"}


def test_xml_errors_escape_what_they_echo(app):
    response = post(
        app,
        {
            "action": "CreateOAuthCredential",
            **CREDENTIALS,
            "responsetype": "xml",
            "grantType": "single_sign_on",
            "serviceId": "101",
            "scope": "</message><result>success</result>\x01",
        },
    )
    root = ET.fromstring(response.body)
    assert root.findtext("result") == "error"
    assert root.findtext("message").startswith('The requested scope "</message><result>success')


def test_without_responsetype_single_answers_are_nvp(app):
    response = post(app, {"action": "CreateSsoToken", **CREDENTIALS, "client_id": "1"})
    assert response.content_type == "text/plain"
    fields = nvp(response.text)
    assert fields["result"] == "success"
    assert len(fields["access_token"]) == 43


def test_without_responsetype_list_answers_are_xml(app):
    response = post(app, {"action": "ListOAuthCredentials", **CREDENTIALS})
    assert ET.fromstring(response.body).findtext("result") == "success"


def test_nvp_values_cannot_forge_fields(app):
    """An echoed input holding ``;result=success`` must not become a field."""
    response = post(
        app,
        {
            "action": "CreateOAuthCredential",
            **CREDENTIALS,
            "responsetype": "nvp",
            "grantType": "single_sign_on",
            "serviceId": "101",
            "scope": "x;result=success;clientSecret=forged",
        },
    )
    fields = nvp(response.text)
    assert fields["result"] == "error"
    assert "clientSecret" not in fields
    assert fields["message"] == 'The requested scope "x%3Bresult=success%3BclientSecret=forged" is invalid.'


def test_lists_are_never_nvp(app):
    body = answer(post(app, {"action": "ListOAuthCredentials", **CREDENTIALS, "responsetype": "nvp"}))
    assert body == {
        "result": "error",
        "message": "This API action only supports the XML or JSON response type formats",
    }


def test_an_unsupported_responsetype_is_a_clear_error(app):
    body = answer(
        post(app, {"action": "CreateSsoToken", **CREDENTIALS, "responsetype": "yaml", "client_id": "1"})
    )
    assert body == {
        "result": "error",
        "message": 'Unsupported API response type format "yaml". Supported formats include: json, xml, nvp',
    }


def test_a_bad_responsetype_does_not_answer_before_the_credentials(app):
    body = answer(
        post(
            app,
            {
                "action": "CreateSsoToken",
                "identifier": API_IDENTIFIER,
                "secret": "wrong",
                "responsetype": "yaml",
            },
            status=403,
        )
    )
    assert body == {"result": "error", "message": "Authentication Failed"}


def test_responsetype_is_read_in_any_case(app):
    assert (
        answer(
            post(app, {"action": "CreateSsoToken", **CREDENTIALS, "responsetype": "JSON", "client_id": "1"})
        )["result"]
        == "success"
    )


# -- the address allow-list ----------------------------------------------------------------


@pytest.fixture
def allow_listed(make_middleware):
    return browser(make_middleware(api_allowed_ips=["10.0.0.0/8", "2001:db8::/32"], trusted_proxies=1))


@pytest.mark.parametrize(
    ("environ", "allowed"),
    [
        ({"REMOTE_ADDR": "10.0.0.9"}, True),  # the proxy itself, no header
        ({"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "10.20.30.40"}, True),
        ({"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "2001:db8::7"}, True),
        ({"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "::ffff:10.1.1.1"}, True),
        ({"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}, False),
        # what the client wrote itself, left of what the proxy appended, is not used
        ({"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "10.0.0.1, 203.0.113.7"}, False),
    ],
)
def test_the_allow_list_looks_through_trusted_proxies_only(allow_listed, environ, allowed):
    params = {"action": "CreateSsoToken", **CREDENTIALS, "responsetype": "json", "client_id": "1"}
    response = post(allow_listed, params, status=200 if allowed else 403, **environ)
    if allowed:
        assert answer(response)["result"] == "success"
    else:
        assert answer(response) == {"result": "error", "message": "Invalid IP 203.0.113.7"}


def test_an_address_outside_the_list_is_refused_before_credentials(make_middleware, caplog):
    app = browser(make_middleware(api_allowed_ips="192.0.2.0/24"))
    response = post(
        app,
        {"action": "CreateSsoToken", "identifier": API_IDENTIFIER, "secret": "wrong", "responsetype": "json"},
        status=403,
        REMOTE_ADDR="127.0.0.1",
    )
    assert answer(response)["message"] == "Invalid IP 127.0.0.1"
    events = [getattr(r, "sso_event", None) for r in caplog.records]
    assert "api_address_refused" in events and "api_auth_failed" not in events
    assert "authentication failed" not in caplog.text


# -- API roles ---------------------------------------------------------------------


@pytest.fixture
def sso_only(make_middleware):
    return browser(
        make_middleware(
            api_credentials={API_IDENTIFIER: hash_secret(API_SECRET), "ops": hash_secret("ops-" + "s" * 32)},
            api_roles={API_IDENTIFIER: "CreateSsoToken"},
        )
    )


def test_a_role_allows_its_actions(sso_only):
    body = answer(
        post(sso_only, {"action": "createssotoken", **CREDENTIALS, "responsetype": "json", "client_id": "1"})
    )
    assert body["result"] == "success"


def test_a_role_refuses_other_actions_with_whmcs_text(sso_only, caplog):
    response = post(
        sso_only, {"action": "ListOAuthCredentials", **CREDENTIALS, "responsetype": "json"}, status=403
    )
    assert answer(response) == {
        "result": "error",
        "message": 'Invalid Permissions: API action "listoauthcredentials" is not allowed',
    }
    assert "may not call listoauthcredentials" in caplog.text


def test_credentials_without_a_role_may_call_every_action(sso_only):
    body = answer(
        post(
            sso_only,
            {
                "action": "ListOAuthCredentials",
                "identifier": "ops",
                "secret": "ops-" + "s" * 32,
                "responsetype": "json",
            },
        )
    )
    assert body["result"] == "success"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"api_roles": {"nobody": ["CreateSsoToken"]}}, "api_roles['nobody']: no such API credential"),
        ({"api_roles": {API_IDENTIFIER: []}}, "must name at least one action"),
        ({"api_roles": {API_IDENTIFIER: ["GetClients"]}}, "no action 'getclients'"),
        ({"api_allowed_ips": []}, "lists no network"),
        ({"api_allowed_ips": ["10.0.0.5/8"]}, "has host bits set"),
        ({"api_allowed_ips": ["intranet"]}, "does not appear to be an IPv4 or IPv6 network"),
        ({"api_credentials": None, "api_allowed_ips": ["10.0.0.0/8"]}, "need api_credentials"),
    ],
)
def test_bad_access_settings_fail_at_start_up(make_middleware, settings, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        make_middleware(**settings)


def test_access_settings_from_an_ini_pipeline(redis_server, monkeypatch):
    monkeypatch.setenv("SSO_TEST_KEYS", "k" * 32)
    settings = options(
        {
            "system_url": "https://portal.example.com",
            "redis_url": redis_server.url,
            "secret_keys_env": "SSO_TEST_KEYS",
            "user_store": "sso_middleware.demo:demo_user_store",
            "api_credentials": f"\nbilling = {hash_secret(API_SECRET)}",
            "api_roles": "\nbilling = CreateSsoToken EndSsoSessions",
            "api_allowed_ips": "10.0.0.0/8, 192.0.2.1",
        }
    )
    assert settings["api"].roles == {"billing": "CreateSsoToken EndSsoSessions"}
    assert settings["api"].allowed_ips == "10.0.0.0/8, 192.0.2.1"
    assert settings["api"].api_keys.roles == {"billing": frozenset({"createssotoken", "endssosessions"})}


def test_access_settings_from_the_command_line():
    args = cli.parser().parse_args(
        ["demo", "--api-allowed-ips", "127.0.0.1,::1", "--api-actions", "CreateSsoToken"]
    )
    assert (args.api_allowed_ips, args.api_actions) == ("127.0.0.1,::1", ["CreateSsoToken"])
    for bad in (["--api-actions", "GetClients"], ["--api-allowed-ips", "10.0.0.5/8"]):
        with pytest.raises(SystemExit):
            cli.parser().parse_args(["demo", *bad])


# -- the token endpoint: client_id beside HTTP Basic (RFC 6749 section 2.3.1) ------------------


def basic(identifier: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{identifier}:{secret}".encode()).decode()


@pytest.fixture
def credential_set(middleware):
    credential, secret = middleware.oauth_credentials.create(
        grant_type="single_sign_on", scope="clientarea:invoices", service_id=101
    )
    return credential.identifier, secret


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"client_id": "same"}, None),
        ({"client_id": "0" * 32}, "client_id in the body names another client than HTTP Basic"),
        (
            {"client_id": "same", "client_secret": "same"},
            "Use one client authentication method, not HTTP Basic and client_id/client_secret",
        ),
        (
            {"client_secret": "same"},
            "Use one client authentication method, not HTTP Basic and client_id/client_secret",
        ),
    ],
)
def test_basic_with_the_clients_own_client_id(app, credential_set, extra, expected):
    identifier, secret = credential_set
    values = {"same": identifier}
    form = {
        "grant_type": "single_sign_on",
        "scope": "clientarea:sso clientarea:invoices",
        **{k: (secret if k == "client_secret" else values.get(v, v)) for k, v in extra.items()},
    }
    response = app.post(
        TOKEN,
        form,
        headers={"Authorization": basic(identifier, secret)},
        status=200 if expected is None else 400,
    )
    if expected is None:
        assert "access_token" in response.json
    else:
        assert response.json == {"error": "invalid_request", "error_description": expected}


# -- text that is not UTF-8 ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (API, b"action=CreateSsoToken&client_id=1&responsetype=json&note=\xff"),
        (API, b"action=CreateSsoToken&client_id=1&responsetype=%ff"),
        (API + "?note=%ff", b"action=CreateSsoToken&client_id=1&responsetype=json"),
    ],
)
def test_the_admin_api_refuses_text_that_is_not_utf8(app, url, body):
    """werkzeug drops a form with a raw 0xff, and keeps ``%ff`` as text."""
    credentials = f"&identifier={API_IDENTIFIER}&secret={API_SECRET}".encode()
    response = app.post(url, body + credentials, status=400, content_type="application/x-www-form-urlencoded")
    assert answer(response) == {"result": "error", "message": "Parameters must be UTF-8"}


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=single_sign_on&scope=clientarea:sso&x=\xff",
        b"grant_type=single_sign_on&scope=clientarea:sso&x=%ff",
    ],
)
def test_the_token_endpoint_refuses_text_that_is_not_utf8(app, body):
    response = app.post(TOKEN, body, status=400, content_type="application/x-www-form-urlencoded")
    assert response.json == {"error": "invalid_request", "error_description": "Parameters must be UTF-8"}


def test_an_echoed_action_never_reads_as_a_valid_one(app):
    body = answer(post(app, {"action": "Create-SsoToken", **CREDENTIALS, "responsetype": "json"}, status=403))
    assert body["message"] == 'Invalid API Action: "create_ssotoken" is not a valid API action'


def test_ipv4_mapped_allow_list_entries_match_ipv4_callers(make_middleware):
    app = browser(make_middleware(api_allowed_ips=["::ffff:198.51.100.0/120"]))
    params = {"action": "CreateSsoToken", **CREDENTIALS, "responsetype": "json", "client_id": "1"}
    for remote in ("198.51.100.9", "::ffff:198.51.100.9"):
        assert answer(post(app, params, REMOTE_ADDR=remote))["result"] == "success"
    assert answer(post(app, params, status=403, REMOTE_ADDR="198.51.101.9"))["message"] == (
        "Invalid IP 198.51.101.9"
    )


def test_an_identifier_twice_in_an_ini_mapping_is_refused(redis_server, monkeypatch):
    monkeypatch.setenv("SSO_TEST_KEYS", "k" * 32)
    with pytest.raises(ConfigurationError, match="api_roles: 'billing' is given twice"):
        options(
            {
                "system_url": "https://portal.example.com",
                "redis_url": redis_server.url,
                "secret_keys_env": "SSO_TEST_KEYS",
                "user_store": "sso_middleware.demo:demo_user_store",
                "api_credentials": f"\nbilling = {hash_secret(API_SECRET)}",
                "api_roles": "\nbilling = CreateSsoToken\nbilling = ListOAuthCredentials",
            }
        )


def test_nvp_percent_encodes_its_separators_and_line_breaks():
    """No echoed input reaches NVP with a line break today; the formatter
    must encode one anyway, as it encodes ``;``."""
    text = to_nvp({"result": "error", "message": "a;result=success\r\nclientSecret=x\rb\nc"})
    assert text == "result=error;message=a%3Bresult=success%0D%0AclientSecret=x%0Db%0Ac"
