"""The admin API, ``POST /includes/api.php``, over HTTP."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET

import pytest

import sso_middleware.credentials as credentials
from sso_middleware.credentials import APICredentials, hash_secret
from sso_middleware.exceptions import ConfigurationError
from sso_middleware.responses import HARDENING_HEADERS
from sso_middleware.stores.redis import RedisTokenStore, connect
from tests.support.helpers import (
    API_IDENTIFIER,
    API_PATH,
    API_SECRET,
    SSO_PATH,
    SYSTEM_URL,
    api_form,
    browser,
    sso_path,
)
from tests.support.redis_server import free_port

TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
AUTH_FAILED = {"result": "error", "message": "Authentication Failed"}


def api_json(response, status: int) -> dict:
    """Check what every API answer has in common; return its JSON body."""
    assert response.status_int == status
    for name, value in HARDENING_HEADERS:
        assert response.headers.get(name) == value, name
    assert response.content_type == "application/json"
    return json.loads(response.body)


#: Content-Type of each response type.
CONTENT_TYPES = {
    "json": "application/json",
    "xml": "application/xml; charset=utf-8",
    "nvp": "text/plain; charset=utf-8",
}


def api_xml(response, status: int) -> dict[str, str]:
    """Check a ``<whmcsapi>`` answer's status and headers; return its fields
    (scalars only; ``action`` included)."""
    assert response.status_int == status
    for name, value in HARDENING_HEADERS:
        assert response.headers.get(name) == value, name
    assert response.headers["Content-Type"] == CONTENT_TYPES["xml"]
    root = ET.fromstring(response.body)
    assert root.tag == "whmcsapi"
    fields = {child.tag: child.text or "" for child in root}
    assert len(fields) == len(root), "no element twice"
    return fields


def api_nvp(response, status: int) -> dict[str, str]:
    """Check an NVP answer's status and headers; return its fields."""
    assert response.status_int == status
    for name, value in HARDENING_HEADERS:
        assert response.headers.get(name) == value, name
    assert response.headers["Content-Type"] == CONTENT_TYPES["nvp"]
    pairs = [pair.split("=", 1) for pair in response.text.split(";")]
    assert all(len(pair) == 2 for pair in pairs), response.text
    fields = dict(pairs)
    assert len(fields) == len(pairs), "no field twice"
    return fields


def api_answer(response, status: int, response_type: str) -> dict[str, str]:
    """The fields of an answer of ``response_type``, after the checks every
    answer shares."""
    parse = {"json": api_json, "xml": api_xml, "nvp": api_nvp}[response_type]
    return parse(response, status)


def token_keys(redis_client) -> list[bytes]:
    return list(redis_client.scan_iter(match="sso:v2:t:*"))


# -- success -------------------------------------------------------------------


def test_create_sso_token(app, redis_client):
    response = app.post(API_PATH, api_form(client_id="1", destination="clientarea:invoices"), status=200)
    body = api_json(response, 200)
    assert set(body) == {"result", "access_token", "redirect_url"}
    assert body["result"] == "success"
    assert TOKEN.match(body["access_token"])
    assert body["redirect_url"] == (SYSTEM_URL + SSO_PATH + "?access_token=" + body["access_token"])
    assert len(token_keys(redis_client)) == 1

    redeemed = app.get(sso_path(body["redirect_url"]), status=303)
    assert redeemed.headers["Location"] == SYSTEM_URL + "/clientarea.php?action=invoices"
    assert app.get("/whoami").json["identity"] == [1, 1]


def test_multipart_form_is_accepted(app):
    response = app.post(API_PATH, api_form(client_id="1"), content_type="multipart/form-data", status=200)
    assert api_json(response, 200)["result"] == "success"


# -- authentication ------------------------------------------------------------

BAD_CREDENTIALS = [
    pytest.param({"secret": "wrong-" + "x" * 37}, id="wrong-secret"),
    pytest.param({"identifier": "nobody"}, id="unknown-identifier"),
    pytest.param({"identifier": "", "secret": ""}, id="empty-credentials"),
    pytest.param({"secret": API_SECRET.upper()}, id="secret-wrong-case"),
    pytest.param({"secret": hash_secret(API_SECRET)}, id="the-hash-as-secret"),
]


@pytest.mark.parametrize("overrides", BAD_CREDENTIALS)
def test_bad_credentials(app, redis_client, overrides):
    response = app.post(API_PATH, {**api_form(client_id="1"), **overrides}, status=403)
    assert api_json(response, 403) == AUTH_FAILED
    assert token_keys(redis_client) == []


def test_missing_credentials(app, redis_client):
    response = app.post(
        API_PATH, {"action": "CreateSsoToken", "client_id": "1", "responsetype": "json"}, status=403
    )
    assert api_json(response, 403) == AUTH_FAILED
    assert token_keys(redis_client) == []


def test_missing_credentials_without_responsetype_is_nvp(app, redis_client):
    response = app.post(API_PATH, {"action": "CreateSsoToken", "client_id": "1"}, status=403)
    assert api_nvp(response, 403) == AUTH_FAILED
    assert response.text == "result=error;message=Authentication Failed"
    assert token_keys(redis_client) == []


def test_auth_failures_are_indistinguishable(app):
    wrong_secret = app.post(API_PATH, api_form(client_id="1", secret="wrong"), status=403)
    unknown_identifier = app.post(API_PATH, api_form(client_id="1", identifier="nobody"), status=403)
    missing = app.post(
        API_PATH, {"action": "CreateSsoToken", "client_id": "1", "responsetype": "json"}, status=403
    )
    assert wrong_secret.body == unknown_identifier.body == missing.body
    assert json.loads(wrong_secret.body) == AUTH_FAILED


@pytest.mark.parametrize(
    ("extra", "response_type"),
    [
        pytest.param({"client_id": "99"}, "json", id="unknown-client"),
        pytest.param({"client_id": "3"}, "json", id="closed-client"),
        pytest.param({"action": "Nope"}, "json", id="unknown-action"),
        pytest.param({"action": ""}, "json", id="empty-action"),
        pytest.param({"responsetype": "xml"}, "xml", id="xml"),
        pytest.param({"responsetype": "nvp"}, "nvp", id="nvp"),
    ],
)
def test_credentials_are_checked_before_the_request(app, redis_client, extra, response_type):
    # an unauthenticated caller learns nothing about accounts or actions
    response = app.post(API_PATH, {**api_form(client_id="1"), **extra, "secret": "wrong"}, status=403)
    fields = api_answer(response, 403, response_type)
    fields.pop("action", None)  # XML echoes the action
    assert fields == AUTH_FAILED
    assert token_keys(redis_client) == []


# -- malformed requests ----------------------------------------------------------


def test_get_is_405(app):
    response = app.get(API_PATH, api_form(client_id="1"), status=405)
    body = api_json(response, 405)
    assert body["result"] == "error"
    assert response.headers["Allow"] == "POST"


def test_json_body_is_415(app, redis_client):
    response = app.post(
        API_PATH, json.dumps(api_form(client_id="1")), content_type="application/json", status=415
    )
    assert api_json(response, 415)["result"] == "error"
    assert token_keys(redis_client) == []


def test_duplicated_parameter_is_400(app, redis_client):
    request = [*api_form().items(), ("client_id", "1"), ("client_id", "2")]
    response = app.post(API_PATH, request, status=400)
    body = api_json(response, 400)
    assert body["result"] == "error"
    assert "client_id" in body["message"]
    assert token_keys(redis_client) == []


def test_duplicated_secret_is_400_without_echoing_it(app):
    request = [*api_form(client_id="1").items(), ("secret", "other")]
    response = app.post(API_PATH, request, status=400)
    body = api_json(response, 400)
    assert "secret" in body["message"]
    assert API_SECRET not in response.text and "other" not in body["message"]


@pytest.mark.parametrize(
    ("action", "echoed"),
    [
        pytest.param("Nope", "nope", id="unknown"),
        pytest.param("CreateSsoTokens", "createssotokens", id="near-miss"),
        pytest.param("Create<b>SsoToken", "create_b_ssotoken", id="markup"),
    ],
)
def test_unknown_action_is_403_with_the_whmcs_message(app, redis_client, action, echoed):
    response = app.post(API_PATH, api_form(action=action, client_id="1"), status=403)
    assert api_json(response, 403) == {
        "result": "error",
        "message": f'Invalid API Action: "{echoed}" is not a valid API action',
    }
    assert token_keys(redis_client) == []


@pytest.mark.parametrize("action", ["createssotoken", "CREATESSOTOKEN", "cReAtEsSoToKeN"])
def test_action_names_match_in_any_case(app, redis_client, action):
    response = app.post(API_PATH, api_form(action=action, client_id="1"), status=200)
    body = api_json(response, 200)
    assert body["result"] == "success"
    assert TOKEN.match(body["access_token"])
    assert len(token_keys(redis_client)) == 1


@pytest.mark.parametrize("action", [pytest.param("", id="empty"), pytest.param("  ", id="blank")])
def test_empty_action_is_400(app, redis_client, action):
    response = app.post(API_PATH, api_form(action=action, client_id="1"), status=400)
    assert api_json(response, 400) == {"result": "error", "message": "Empty action request"}
    assert token_keys(redis_client) == []


def test_missing_action_is_400(app, redis_client):
    request = api_form(client_id="1")
    del request["action"]
    response = app.post(API_PATH, request, status=400)
    assert api_json(response, 400) == {"result": "error", "message": "Empty action request"}
    assert token_keys(redis_client) == []


def test_responsetype_xml_is_a_whmcsapi_document(app, redis_client):
    response = app.post(API_PATH, api_form(client_id="1", responsetype="xml"), status=200)
    fields = api_xml(response, 200)
    assert set(fields) == {"action", "result", "access_token", "redirect_url"}
    assert fields["action"] == "createssotoken"
    assert fields["result"] == "success"
    assert TOKEN.match(fields["access_token"])
    assert fields["redirect_url"].endswith("?access_token=" + fields["access_token"])
    assert len(token_keys(redis_client)) == 1


def test_without_responsetype_the_answer_is_nvp(app, redis_client):
    request = api_form(client_id="1")
    del request["responsetype"]
    fields = api_nvp(app.post(API_PATH, request, status=200), 200)
    assert set(fields) == {"result", "access_token", "redirect_url"}
    assert fields["result"] == "success"
    assert TOKEN.match(fields["access_token"])
    assert len(token_keys(redis_client)) == 1


@pytest.mark.parametrize("response_type", ["yaml", "JSONP", "php"])
def test_unsupported_responsetype_is_200_with_the_whmcs_message(app, redis_client, response_type):
    response = app.post(API_PATH, api_form(client_id="1", responsetype=response_type), status=200)
    body = api_json(response, 200)
    assert body["result"] == "error"
    assert body["message"].startswith(f'Unsupported API response type format "{response_type.lower()}"')
    assert "json" in body["message"]
    assert token_keys(redis_client) == []


def test_oversized_body_is_413(app, redis_client):
    response = app.post(API_PATH, api_form(client_id="1", padding="x" * (64 * 1024 + 1)), status=413)
    assert api_json(response, 413)["result"] == "error"
    assert token_keys(redis_client) == []


def test_body_just_under_the_limit_is_served(app):
    request = api_form(client_id="1")
    overhead = len("&".join(f"{k}={v}" for k, v in request.items())) + len("&padding=")
    request["padding"] = "x" * (64 * 1024 - overhead)
    assert api_json(app.post(API_PATH, request, status=200), 200)["result"] == "success"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        pytest.param({"client_id": "99"}, "Invalid client_id", id="unknown-client"),
        pytest.param({"client_id": "3"}, "SSO authentication blocked for client 3", id="closed"),
        pytest.param(
            {"client_id": "1", "destination": "sso:custom_redirect", "sso_redirect_path": "//evil.com"},
            "Invalid sso_redirect_path",
            id="open-redirect",
        ),
        pytest.param({}, "A valid client_id or user_id is required", id="neither"),
    ],
)
def test_issue_error_is_200_with_the_whmcs_message(app, redis_client, inputs, message):
    response = app.post(API_PATH, api_form(**inputs), status=200)
    assert api_json(response, 200) == {"result": "error", "message": message}
    assert token_keys(redis_client) == []


# -- every answer is hardened, in the type asked for ------------------------------


def without(name: str, request: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in request.items() if k != name}


def posted(form, status: int, response_type: str, name: str, **post):
    """A scenario: ``form`` POSTed to the admin API (``post`` adds to the
    call), answered with ``status`` in ``response_type``."""
    return pytest.param(
        lambda app: app.post(API_PATH, form, status=status, **post), status, response_type, id=name
    )


SCENARIOS = [
    posted(api_form(client_id="1"), 200, "json", "success"),
    posted(api_form(client_id="1", secret="no"), 403, "json", "auth-failed"),
    pytest.param(lambda app: app.get(API_PATH, status=405), 405, "json", id="get"),
    posted("{}", 415, "json", "json-body", content_type="application/json"),
    posted([*api_form().items(), ("user_id", "1"), ("user_id", "2")], 400, "json", "duplicate"),
    posted(api_form(action="Nope"), 403, "json", "unknown-action"),
    posted(api_form(action=""), 400, "json", "empty-action"),
    posted(api_form(responsetype="yaml"), 200, "json", "unsupported-responsetype"),
    posted(api_form(pad="x" * 70000), 413, "json", "too-large"),
    posted(api_form(client_id="99"), 200, "json", "issue-error"),
    posted(api_form(client_id="1", responsetype="xml"), 200, "xml", "xml-success"),
    posted(api_form(client_id="99", responsetype="xml"), 200, "xml", "xml-issue-error"),
    posted(api_form(action="Nope", responsetype="xml"), 403, "xml", "xml-unknown-action"),
    posted(api_form(secret="no", responsetype="xml"), 403, "xml", "xml-auth-failed"),
    posted(without("responsetype", api_form(client_id="1")), 200, "nvp", "nvp-success"),
    posted(without("responsetype", api_form(client_id="99")), 200, "nvp", "nvp-issue-error"),
    posted(without("responsetype", api_form(secret="no")), 403, "nvp", "nvp-auth-failed"),
    posted(without("responsetype", api_form(action="")), 400, "nvp", "nvp-empty-action"),
]


@pytest.mark.parametrize(("send", "status", "response_type"), SCENARIOS)
def test_every_answer_is_hardened(app, send, status, response_type):
    body = api_answer(send(app), status, response_type)
    assert body["result"] in ("success", "error")
    assert (body["result"] == "success") == (status == 200 and "message" not in body)
    if body["result"] == "error":
        assert isinstance(body["message"], str) and body["message"]


# -- configuration ---------------------------------------------------------------


@pytest.mark.parametrize("api_credentials", [pytest.param(None, id="none"), pytest.param({}, id="empty")])
def test_without_credentials_the_path_is_the_apps(make_middleware, redis_client, api_credentials):
    app = browser(make_middleware(api_credentials=api_credentials))
    response = app.post(API_PATH, api_form(client_id="1"), status=200)
    assert response.json["path"] == API_PATH
    assert token_keys(redis_client) == []


def test_redis_down_is_a_fast_503(make_middleware):
    dead = RedisTokenStore(connect(f"redis://127.0.0.1:{free_port()}/0"))
    app = browser(make_middleware(tokens=dead))
    started = time.monotonic()
    response = app.post(API_PATH, api_form(client_id="1"), status=503)
    elapsed = time.monotonic() - started
    assert api_json(response, 503) == {"result": "error", "message": "Service temporarily unavailable"}
    assert elapsed < 1.0


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(API_SECRET, id="plaintext"),
        pytest.param("sha256:" + "0" * 63, id="short-digest"),
        pytest.param("sha256:" + "A" * 64, id="uppercase-digest"),
        pytest.param("0" * 64, id="no-prefix"),
        pytest.param("md5:" + "0" * 32, id="other-algorithm"),
        pytest.param("", id="empty"),
    ],
)
def test_credentials_refuse_a_value_that_is_not_a_hash(value):
    with pytest.raises(ConfigurationError) as excinfo:
        APICredentials({API_IDENTIFIER: value})
    assert API_SECRET not in str(excinfo.value)


def test_credentials_refuse_an_empty_identifier():
    with pytest.raises(ConfigurationError):
        APICredentials({"": hash_secret(API_SECRET)})


def test_middleware_refuses_plaintext_api_credentials(make_middleware):
    with pytest.raises(ConfigurationError):
        make_middleware(api_credentials={API_IDENTIFIER: API_SECRET})


def test_verify_always_compares_in_constant_time(monkeypatch):
    calls: list[tuple[str, str]] = []
    real = credentials.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(credentials.hmac, "compare_digest", spy)
    creds = APICredentials({API_IDENTIFIER: hash_secret(API_SECRET)})

    assert creds.verify("nobody", API_SECRET) is False
    assert len(calls) == 1, "an unknown identifier must cost a comparison too"
    assert len(calls[0][0]) == len(calls[0][1]) == len(hash_secret(""))

    assert creds.verify(API_IDENTIFIER, "wrong") is False
    assert len(calls) == 2, "a wrong secret must be compared with compare_digest"

    assert creds.verify(API_IDENTIFIER, API_SECRET) is True
    assert len(calls) == 3
