"""Application Links: a cPanel-style panel signs its user in through the
token endpoint with ``subscriber_unique_id`` and ``token``; and
``examples/application_links.py`` doing it against the demo served for real."""

from __future__ import annotations

import base64
import http.cookiejar
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from werkzeug.serving import make_server

from examples.application_links import (
    LINK_SCOPES,
    Provisioner,
    ProvisioningError,
    ServiceLinks,
    click,
    link_url,
)
from sso_middleware.demo import RedactingRequestHandler
from sso_middleware.ratelimit import Limit
from tests.support.helpers import (
    API_IDENTIFIER,
    API_PATH,
    API_SECRET,
    ROOT,
    SSO_PATH,
    SYSTEM_URL,
    TOKEN_PATH,
    browser,
    echo_app,
    sso_path,
)
from tests.support.redis_server import free_port

EXAMPLES = ROOT / "examples"
LINK = TOKEN_PATH + "?scope=clientarea:sso%20clientarea:invoices&module_type=server&module=cpanel"
DEMO_ID, DEMO_SECRET = "demo-links", "demo-links-secret-" + "q" * 32


# -- the flow over webtest ------------------------------------------------------


def provision(app, service_id: str = "101", scope: str = "clientarea:services clientarea:invoices") -> dict:
    response = app.post(
        API_PATH,
        {
            "action": "CreateOAuthCredential",
            "identifier": API_IDENTIFIER,
            "secret": API_SECRET,
            "responsetype": "json",
            "grantType": "single_sign_on",
            "serviceId": service_id,
            "scope": scope,
        },
        status=200,
    )
    body = json.loads(response.body)
    assert body["result"] == "success", body
    return body


def link_fields(credential: dict, **extra: str) -> dict:
    return {
        "subscriber_unique_id": credential["clientIdentifier"],
        "token": credential["clientSecret"],
        "attempt": "1",
        **extra,
    }


def token_keys(redis_client) -> list[bytes]:
    return list(redis_client.scan_iter(match="sso:v2:t:*"))


def test_link_click_signs_the_owner_in(app, middleware):
    credential = provision(app)
    response = app.post(LINK, link_fields(credential), status=200)
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = json.loads(response.body)
    token = body["access_token"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 60
    assert body["scope"] == "clientarea:sso clientarea:invoices"
    assert body["redirect_url"] == (
        SYSTEM_URL + SSO_PATH + "?access_token=" + token + "&module_type=server&module=cpanel"
    )

    redirect = app.get(sso_path(body["redirect_url"]), status=303)
    assert redirect.headers["Location"] == SYSTEM_URL + "/clientarea.php?action=invoices"
    landing = app.get("/clientarea.php?action=invoices", status=200)
    assert landing.json["identity"] == [1, 1]
    assert landing.json["remote_user"] == "1"

    # one use only, from any browser; a replay also ends the first session
    browser(middleware).get(sso_path(body["redirect_url"]), status=403)
    app.get(sso_path(body["redirect_url"]), status=403)
    assert app.get("/", status=200).json["identity"] is None


def test_each_attempt_mints_a_fresh_token(app, redis_client):
    credential = provision(app)
    first = app.post(LINK, link_fields(credential, attempt="1"), status=200).json
    second = app.post(LINK, link_fields(credential, attempt="2"), status=200).json
    assert first["access_token"] != second["access_token"]
    assert len(token_keys(redis_client)) == 2


def test_link_to_the_home_page(app):
    credential = provision(app)
    link = TOKEN_PATH + "?scope=clientarea:sso&module_type=server&module=cpanel"
    body = app.post(link, link_fields(credential), status=200).json
    assert body["scope"] == "clientarea:sso"
    redirect = app.get(sso_path(body["redirect_url"]), status=303)
    assert redirect.headers["Location"] == SYSTEM_URL + "/clientarea.php"


def test_wrong_token_is_invalid_client(app, redis_client):
    credential = provision(app)
    response = app.post(LINK, link_fields(credential, token="wrong"), status=401)
    assert response.json["error"] == "invalid_client"
    assert "redirect_url" not in response.json
    assert token_keys(redis_client) == []


def test_unknown_subscriber_is_invalid_client(app, redis_client):
    credential = provision(app)
    fields = link_fields(credential, subscriber_unique_id="0" * 32)
    assert app.post(LINK, fields, status=401).json["error"] == "invalid_client"
    assert token_keys(redis_client) == []


@pytest.mark.parametrize("name", ["token", "subscriber_unique_id"])
def test_credentials_in_the_query_string_are_refused(app, redis_client, name):
    credential = provision(app)
    fields = link_fields(credential)
    value = fields.pop(name)
    response = app.post(f"{LINK}&{name}={value}", fields, status=400)
    assert response.json["error"] == "invalid_request"
    assert name in response.json["error_description"]
    assert credential["clientSecret"] not in response.text
    assert token_keys(redis_client) == []


def test_link_and_basic_together_are_refused(app, redis_client):
    credential = provision(app)
    basic = base64.b64encode(
        f"{credential['clientIdentifier']}:{credential['clientSecret']}".encode()
    ).decode()
    response = app.post(
        LINK, link_fields(credential), headers={"Authorization": "Basic " + basic}, status=400
    )
    assert response.json["error"] == "invalid_request"
    assert token_keys(redis_client) == []


def test_link_outside_the_credential_scopes_is_invalid_scope(app, redis_client):
    credential = provision(app, scope="clientarea:services")
    response = app.post(LINK, link_fields(credential), status=400)
    assert response.json == {
        "error": "invalid_scope",
        "error_description": 'The requested scope "clientarea:invoices" is invalid.',
    }
    assert token_keys(redis_client) == []


def test_link_for_a_closed_account_is_invalid_grant(app, redis_client):
    credential = provision(app, service_id="301")
    response = app.post(LINK, link_fields(credential), status=400)
    assert response.json == {
        "error": "invalid_grant",
        "error_description": "SSO authentication blocked for client 3",
    }
    assert token_keys(redis_client) == []


def test_get_on_the_link_is_405(app):
    response = app.get(LINK, status=405)
    assert response.headers["Allow"] == "POST"


# -- examples/application_links.py ----------------------------------------------


def test_link_url_matches_the_reference_shape():
    assert link_url("http://127.0.0.1:8000/", "clientarea:invoices") == "http://127.0.0.1:8000" + LINK


@pytest.fixture
def demo():
    process = subprocess.Popen(
        [sys.executable, "-m", "sso_middleware", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SSO_DEMO_API_IDENTIFIER": DEMO_ID, "SSO_DEMO_API_SECRET": DEMO_SECRET},
    )
    first_line = process.stdout.readline()
    base = first_line.split()[3]
    assert base.startswith("http://127.0.0.1:"), first_line
    yield base
    process.terminate()
    process.communicate(timeout=10)


def open_page(url: str, opener: urllib.request.OpenerDirector | None = None) -> tuple[int, str, str]:
    """Status, final URL and body of a GET (redirects followed)."""
    opener = opener or urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.url, response.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.url, e.read().decode()


def test_example_provisions_and_clicks_against_the_demo(demo):
    provisioner = Provisioner(demo, DEMO_ID, DEMO_SECRET)
    assert DEMO_SECRET not in repr(provisioner)
    links = provisioner.service_created(101)
    assert set(links.urls) == set(LINK_SCOPES)
    assert links.urls["clientarea:invoices"] == demo + LINK

    fallback = demo + "/clientarea.php"
    url = click(links, "clientarea:invoices", fallback)
    assert url.startswith(demo + SSO_PATH + "?access_token=")
    assert url.endswith("&module_type=server&module=cpanel")

    jar_browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    status, landed, page = open_page(url, jar_browser)
    assert status == 200
    assert landed == demo + "/clientarea.php?action=invoices"
    assert "Signed in as user 1 for client 1" in page
    assert open_page(url)[0] == 403

    # the service's product page, from the credential's own service
    status, landed, page = open_page(click(links, "clientarea:product_details", fallback))
    assert landed == demo + "/clientarea.php?action=productdetails&id=101"
    assert "Signed in as user 1 for client 1" in page


def test_example_rotates_and_deletes(demo):
    provisioner = Provisioner(demo, DEMO_ID, DEMO_SECRET)
    fallback = demo + "/clientarea.php"
    old = provisioner.service_created(101)
    new = provisioner.service_updated(old)
    assert new.token != old.token
    assert new.subscriber_unique_id == old.subscriber_unique_id
    sleeps: list[float] = []
    # the old secret stops working at once: no retry, the plain URL
    assert click(old, "clientarea:invoices", fallback, sleep=sleeps.append) == fallback
    assert click(new, "clientarea:invoices", fallback).startswith(demo + SSO_PATH)
    provisioner.service_deleted(new)
    assert click(new, "clientarea:invoices", fallback, sleep=sleeps.append) == fallback
    assert sleeps == []
    with pytest.raises(ProvisioningError, match="^Invalid credentialId$"):
        provisioner.service_deleted(new)


def test_example_reports_provisioning_errors(demo):
    with pytest.raises(ProvisioningError, match="^Service ID not associated with valid Client.$"):
        Provisioner(demo, DEMO_ID, DEMO_SECRET).service_created(999)
    with pytest.raises(ProvisioningError, match="^Authentication Failed$"):
        Provisioner(demo, DEMO_ID, "wrong").service_created(101)


def test_example_waits_when_told_and_gives_up_after_three_attempts(demo):
    provisioner = Provisioner(demo, DEMO_ID, DEMO_SECRET)
    links = provisioner.service_created(101)
    fallback = demo + "/clientarea.php"
    wrong = ServiceLinks(links.credential_id, links.subscriber_unique_id, "wrong", links.urls)
    sleeps: list[float] = []
    for _ in range(25):  # the demo allows 20 failures per client a minute
        assert click(wrong, "clientarea:invoices", fallback, sleep=sleeps.append) == fallback
        if sleeps:
            break
    assert len(sleeps) == 2 and all(0 < s <= 60 for s in sleeps)
    # failures in its name never lock the panel's real secret out
    sleeps.clear()
    assert click(links, "clientarea:invoices", fallback, sleep=sleeps.append) != fallback
    assert sleeps == []


def test_example_falls_back_when_unreachable():
    base = f"http://127.0.0.1:{free_port()}"
    links = ServiceLinks(
        1, "a" * 32, "secret", {"clientarea:invoices": link_url(base, "clientarea:invoices")}
    )
    assert (
        click(links, "clientarea:invoices", "https://fallback.example", timeout=2)
        == "https://fallback.example"
    )


def test_example_signs_in_although_others_failed_in_its_name(make_middleware):
    """Failures in the panel's name (over a limit of one a second) make a
    wrong secret wait, never the panel's real one: it signs in at once."""
    server = make_server("127.0.0.1", 0, echo_app, threaded=True, request_handler=RedactingRequestHandler)
    base = f"http://127.0.0.1:{server.server_port}"
    middleware = make_middleware(system_url=base, secure_cookies=False, client_auth_limit=Limit(1, 1))
    server.app = middleware
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        links = Provisioner(base, API_IDENTIFIER, API_SECRET).service_created(101)
        wrong = ServiceLinks(links.credential_id, links.subscriber_unique_id, "wrong", links.urls)
        fallback = base + "/clientarea.php"
        # two failures: over the limit of one a second, the client must wait
        for _ in range(2):
            assert click(wrong, "clientarea:invoices", fallback, sleep=lambda s: None) == fallback
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            time.sleep(seconds + 0.1)  # a margin for Retry-After's whole seconds

        url = click(links, "clientarea:invoices", fallback, sleep=sleep)
        assert sleeps == []
        assert url.startswith(base + SSO_PATH + "?access_token=")
        status, landed, page = open_page(url)
        assert (status, landed) == (200, base + "/clientarea.php?action=invoices")
        assert json.loads(page)["identity"] == [1, 1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def run_example(system_url: str, secret: str) -> subprocess.CompletedProcess[str]:
    """``examples/application_links.py`` run against ``system_url`` as the
    demo's API identifier with ``secret``."""
    return subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "application_links.py"),
            "--system-url",
            system_url,
            "--identifier",
            DEMO_ID,
            "--secret",
            secret,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_example_main_prints_a_working_url(demo):
    result = run_example(demo, DEMO_SECRET)
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith(demo + SSO_PATH + "?access_token=")
    status, landed, page = open_page(url)
    assert status == 200 and landed == demo + "/clientarea.php?action=invoices"
    assert "Signed in as user 1 for client 1" in page


def test_example_main_reports_errors(demo):
    result = run_example(demo, "wrong")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "error: Authentication Failed"


@pytest.mark.parametrize("module", ["x" * 65, "a%20b", "", "<script>"])
def test_link_module_names_are_bounded(app, module):
    """module and module_type are carried into redirect_url: they must stay
    short names, so the link stays redeemable and clean."""
    credential = provision(app)
    response = app.post(
        f"{TOKEN_PATH}?scope=clientarea:sso&module_type=server&module={module}",
        link_fields(credential),
        status=400,
    )
    assert response.json["error"] == "invalid_request"
