"""Clients written for WHMCS, used unmodified and as their own documentation
says, against the middleware over real HTTP with a real Redis.

- ``whmcspy`` and ``whmcs-api-client`` (two WHMCS API client libraries from
  PyPI) drive the admin API; so does a PHP script in the shape of WHMCS's own
  cURL sample (``username``/``password``, ``responsetype=json``).
- Authlib and requests-oauthlib drive the token endpoint.

Each covers a token minted and followed by a browser, a denial, a wrong
secret, and an action (or grant) this deployment does not have.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests.auth
import whmcs_client
import whmcspy
import whmcspy.exceptions
from authlib.integrations.base_client.errors import OAuthError as AuthlibError
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from oauthlib.oauth2 import BackendApplicationClient
from oauthlib.oauth2.rfc6749 import errors as oauthlib_errors
from requests_oauthlib import OAuth2Session
from whmcs_client.exceptions import ForbiddenException

from tests.support.helpers import API_IDENTIFIER, API_SECRET
from tests.support.live import Servers, follow, new_browser

SAMPLE = Path(__file__).with_name("whmcs_sample.php")
INVOICES = "/clientarea.php?action=invoices"
NOT_HERE = 'Invalid API Action: "getclients" is not a valid API action'


@pytest.fixture
def served(make_middleware):
    servers = Servers(make_middleware)
    yield servers()
    servers.close()


def signed_in_at(url: str) -> tuple[str, list[int]]:
    """Follow a ``redirect_url`` in a fresh browser: where it lands, as
    whom (user, account)."""
    final, seen = follow(new_browser(), url)
    return "/" + final.split("/", 3)[3], seen["identity"]


# -- whmcspy -------------------------------------------------------------------


@pytest.fixture
def whmcs(served):
    return whmcspy.WHMCS(served.base + "/includes/api.php", API_IDENTIFIER, API_SECRET)


def test_whmcspy_mints_a_token_that_signs_in(whmcs):
    result = whmcs.call("CreateSsoToken", client_id=1, destination="clientarea:invoices")
    assert result["result"] == "success"
    assert signed_in_at(result["redirect_url"]) == (INVOICES, [1, 1])


def test_whmcspy_gets_the_denial_as_an_error_with_whmcs_text(whmcs):
    with pytest.raises(whmcspy.exceptions.Error) as raised:
        whmcs.call("CreateSsoToken", client_id=3)
    # an action error, not a permission error: HTTP 200 with result=error
    assert type(raised.value) is whmcspy.exceptions.Error
    assert str(raised.value) == "SSO authentication blocked for client 3"


def test_whmcspy_wrong_secret_is_a_permission_error(served):
    wrong = whmcspy.WHMCS(served.base + "/includes/api.php", API_IDENTIFIER, "not-the-secret")
    with pytest.raises(whmcspy.exceptions.MissingPermission, match="^Authentication Failed$"):
        wrong.call("CreateSsoToken", client_id=1)


def test_whmcspy_unknown_action_is_a_permission_error(whmcs):
    with pytest.raises(whmcspy.exceptions.MissingPermission) as raised:
        whmcs.call("GetClients")
    assert str(raised.value) == NOT_HERE


# -- whmcs-api-client ------------------------------------------------------------


@pytest.fixture
def api_client(served):
    configuration = whmcs_client.Configuration(host=served.base + "/includes")
    with whmcs_client.ApiClient(configuration) as client:
        yield client


def create_sso_token(client, password: str = API_SECRET, **inputs: object) -> dict:
    """``CreateSsoToken``, which the library has no method for, through its
    generic request path, shaped as its generated methods shape theirs:
    ``?action=`` in the URL, ``username``/``password`` in the body."""
    request = client.param_serialize(
        method="POST",
        resource_path="/api.php?action=CreateSsoToken",
        header_params={"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
        post_params=[
            ("username", API_IDENTIFIER),
            ("password", password),
            ("responsetype", "json"),
            *((k, str(v)) for k, v in inputs.items()),
        ],
    )
    response = client.call_api(*request)
    response.read()
    return client.response_deserialize(response, {"200": "object"}).data


def test_whmcs_api_client_mints_a_token_that_signs_in(api_client):
    result = create_sso_token(api_client, client_id=1, destination="clientarea:invoices")
    assert result["result"] == "success"
    assert signed_in_at(result["redirect_url"]) == (INVOICES, [1, 1])


def test_whmcs_api_client_gets_the_denial(api_client):
    assert create_sso_token(api_client, client_id=3) == {
        "result": "error",
        "message": "SSO authentication blocked for client 3",
    }


def test_whmcs_api_client_wrong_secret_is_forbidden(api_client):
    with pytest.raises(ForbiddenException) as raised:
        create_sso_token(api_client, password="not-the-secret", client_id=1)
    assert json.loads(raised.value.body)["message"] == "Authentication Failed"


def test_whmcs_api_client_unknown_action_is_forbidden(api_client):
    api = whmcs_client.DefaultApi(api_client)
    with pytest.raises(ForbiddenException) as raised:
        api.get_clients(API_IDENTIFIER, API_SECRET, responsetype="json")
    assert json.loads(raised.value.body) == {"result": "error", "message": NOT_HERE}


# -- WHMCS's own sample shape: PHP and cURL ------------------------------------------


def run_sample(served, secret: str = API_SECRET, **inputs: object) -> tuple[dict, int]:
    command = [
        "php",
        str(SAMPLE),
        served.base + "/",
        API_IDENTIFIER,
        secret,
        *(f"{k}={v}" for k, v in inputs.items()),
    ]
    output = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
    body, status = output.splitlines()
    return json.loads(body), int(status)


@pytest.fixture
def php():
    if shutil.which("php") is None:
        pytest.fail("php is missing: scripts/setup installs php-cli and php-curl for the compat extra")


def test_whmcs_php_sample_mints_a_token_that_signs_in(php, served):
    result, status = run_sample(served, client_id=1, destination="clientarea:product_details", service_id=101)
    assert (status, result["result"]) == (200, "success")
    assert signed_in_at(result["redirect_url"]) == ("/clientarea.php?action=productdetails&id=101", [1, 1])


def test_whmcs_php_sample_denial_and_wrong_secret(php, served):
    assert run_sample(served, client_id=3) == (
        {"result": "error", "message": "SSO authentication blocked for client 3"},
        200,
    )
    assert run_sample(served, secret="not-the-secret", client_id=1) == (
        {"result": "error", "message": "Authentication Failed"},
        403,
    )


# -- OAuth clients on the token endpoint ---------------------------------------------


def credential_set(whmcs, service_id: int = 101) -> tuple[str, str]:
    """A single sign-on credential set made through the admin API."""
    made = whmcs.call(
        "CreateOAuthCredential", grantType="single_sign_on", scope="clientarea:invoices", serviceId=service_id
    )
    return made["clientIdentifier"], made["clientSecret"]


def authlib_token(served, identifier: str, secret: str, grant_type: str = "single_sign_on") -> dict:
    session = AuthlibSession(identifier, secret, scope="clientarea:sso clientarea:invoices")
    return session.fetch_token(served.base + "/oauth/token.php", grant_type=grant_type)


def test_authlib_fetches_a_token_that_signs_in(served, whmcs):
    token = authlib_token(served, *credential_set(whmcs))
    assert token["token_type"] == "Bearer"
    assert signed_in_at(token["redirect_url"]) == (INVOICES, [1, 1])


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("closed", "invalid_grant"),
        ("wrong-secret", "invalid_client"),
        ("other-grant", "unsupported_grant_type"),
    ],
)
def test_authlib_gets_the_oauth_error(served, whmcs, case, error):
    identifier, secret = credential_set(whmcs, service_id=301 if case == "closed" else 101)
    with pytest.raises(AuthlibError) as raised:
        authlib_token(
            served,
            identifier,
            "not-the-secret" if case == "wrong-secret" else secret,
            grant_type="client_credentials" if case == "other-grant" else "single_sign_on",
        )
    assert raised.value.error == error


class SingleSignOnClient(BackendApplicationClient):
    """oauthlib's client for a grant of client credentials alone, named
    after the grant this endpoint serves."""

    grant_type = "single_sign_on"


@pytest.fixture
def insecure_transport(monkeypatch):
    # oauthlib refuses plain HTTP; the test server has no TLS
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def oauthlib_session(identifier: str) -> OAuth2Session:
    return OAuth2Session(
        client=SingleSignOnClient(identifier, scope=["clientarea:sso", "clientarea:invoices"])
    )


@pytest.mark.parametrize("client_id_in_body", [False, True], ids=["basic", "basic+client_id"])
def test_requests_oauthlib_fetches_a_token_that_signs_in(
    insecure_transport, served, whmcs, client_id_in_body
):
    identifier, secret = credential_set(whmcs)
    session = oauthlib_session(identifier)
    if client_id_in_body:
        # HTTP Basic and the client's own client_id in the body (RFC 6749 2.3.1)
        token = session.fetch_token(
            served.base + "/oauth/token.php",
            include_client_id=True,
            auth=requests.auth.HTTPBasicAuth(identifier, secret),
        )
    else:
        token = session.fetch_token(served.base + "/oauth/token.php", client_secret=secret)
    assert signed_in_at(token["redirect_url"]) == (INVOICES, [1, 1])


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("closed", oauthlib_errors.InvalidGrantError),
        ("wrong-secret", oauthlib_errors.InvalidClientError),
        ("other-grant", oauthlib_errors.UnsupportedGrantTypeError),
    ],
)
def test_requests_oauthlib_gets_the_oauth_error(insecure_transport, served, whmcs, case, error):
    identifier, secret = credential_set(whmcs, service_id=301 if case == "closed" else 101)
    session = oauthlib_session(identifier)
    if case == "other-grant":
        session = OAuth2Session(client=BackendApplicationClient(identifier))
    with pytest.raises(error):
        session.fetch_token(
            served.base + "/oauth/token.php",
            client_secret="not-the-secret" if case == "wrong-secret" else secret,
        )
