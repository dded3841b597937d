"""``sso_middleware.client`` against the middleware served over real HTTP: a
trusted system asks for a token and sends a browser to the returned URL."""

from __future__ import annotations

import http.cookiejar
import http.server
import secrets
import threading

import pytest

from sso_middleware.client import AdminClient, OAuthClient, SSOClientError
from sso_middleware.credentials import hash_secret
from sso_middleware.oauth import OAuthCredential
from sso_middleware.ratelimit import Limit
from tests.support.helpers import API_IDENTIFIER, API_SECRET, SSO_PATH
from tests.support.live import Served, Servers, follow, new_browser, status_of
from tests.support.redis_server import free_port


@pytest.fixture
def serve(make_middleware):
    """Serve ``make_middleware(**overrides)`` on a free loopback port, with
    ``system_url`` set to that port; return its base URL and middleware."""
    servers = Servers(make_middleware)
    yield servers
    servers.close()


@pytest.fixture
def served(serve) -> Served:
    return serve()


def credential(middleware, scope: str = "clientarea:invoices clientarea:product_details"):
    """A credential set for service 101 (client 1); (credential, secret)."""
    return middleware.oauth_credentials.create(grant_type="single_sign_on", scope=scope, service_id=101)


def credential_with_secret(middleware, secret: str) -> OAuthCredential:
    """A credential set for service 101 whose secret is ``secret``."""
    store = middleware.oauth_credentials.store
    saved = OAuthCredential(
        credential_id=store.next_id(),
        identifier=secrets.token_hex(16),
        secret_hash=hash_secret(secret),
        scopes=("clientarea:sso", "clientarea:invoices"),
        client_id=1,
        service_id=101,
    )
    store.add(saved.credential_id, saved.identifier, middleware.oauth_credentials.seal(saved))
    return saved


# -- AdminClient ------------------------------------------------------------------


def test_admin_sso_url_signs_the_user_in_once(served):
    admin = AdminClient(served.base, API_IDENTIFIER, API_SECRET)
    url = admin.sso_url(client_id=1, destination="clientarea:invoices")
    assert url.startswith(served.base + SSO_PATH + "?access_token=")

    browser = new_browser()
    landed, seen = follow(browser, url)
    assert landed == served.base + "/clientarea.php?action=invoices"
    assert seen["identity"] == [1, 1]
    # the session cookie keeps the browser signed in on the home page
    landed, seen = follow(browser, served.base + "/")
    assert landed == served.base + "/"
    assert seen["identity"] == [1, 1]

    assert status_of(new_browser(), url) == 403
    assert status_of(browser, url) == 403


def test_admin_create_sso_token_returns_the_api_response(served):
    admin = AdminClient(served.base + "/", API_IDENTIFIER, API_SECRET)
    result = admin.create_sso_token(client_id=1, destination="clientarea:product_details", service_id=101)
    assert set(result) == {"result", "access_token", "redirect_url"}
    assert result["result"] == "success"
    assert result["redirect_url"] == (served.base + SSO_PATH + "?access_token=" + result["access_token"])
    landed, seen = follow(new_browser(), result["redirect_url"])
    assert landed == served.base + "/clientarea.php?action=productdetails&id=101"
    assert seen["identity"] == [1, 1]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        pytest.param({"client_id": 3}, "SSO authentication blocked for client 3", id="closed"),
        pytest.param({"client_id": 4}, "SSO authentication blocked for client 4", id="opted-out"),
        pytest.param({"client_id": 99}, "Invalid client_id", id="unknown-client"),
        pytest.param({"client_id": 1, "destination": "nowhere"}, "Invalid destination", id="bad-destination"),
        pytest.param({}, "A valid client_id or user_id is required", id="neither"),
    ],
)
def test_admin_errors_carry_the_whmcs_message(served, inputs, message):
    admin = AdminClient(served.base, API_IDENTIFIER, API_SECRET)
    with pytest.raises(SSOClientError) as raised:
        admin.sso_url(**inputs)
    assert raised.value.message == message
    assert str(raised.value) == message
    assert raised.value.status == 200  # WHMCS answers a failed action with HTTP 200


def test_admin_bad_secret_is_authentication_failed(served):
    admin = AdminClient(served.base, API_IDENTIFIER, "not-the-secret")
    with pytest.raises(SSOClientError) as raised:
        admin.create_sso_token(client_id=1)
    assert raised.value.message == "Authentication Failed"
    assert raised.value.status == 403
    assert "not-the-secret" not in str(raised.value)


# -- OAuthClient -------------------------------------------------------------------


def test_oauth_token_and_sso_url(served):
    saved, secret = credential(served.middleware)
    oauth = OAuthClient(served.base, saved.identifier, secret)
    result = oauth.token("clientarea:invoices")
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 60
    assert result["scope"] == "clientarea:sso clientarea:invoices"
    assert result["redirect_url"] == (served.base + SSO_PATH + "?access_token=" + result["access_token"])

    # the service input falls back to the credential's service
    url = oauth.sso_url("clientarea:product_details")
    browser = new_browser()
    landed, seen = follow(browser, url)
    assert landed == served.base + "/clientarea.php?action=productdetails&id=101"
    assert seen["identity"] == [1, 1]
    assert status_of(browser, url) == 403


def test_oauth_home_without_destination(served):
    saved, secret = credential(served.middleware)
    result = OAuthClient(served.base, saved.identifier, secret).token()
    assert result["scope"] == "clientarea:sso"
    landed, seen = follow(new_browser(), result["redirect_url"])
    assert landed == served.base + "/clientarea.php"
    assert seen["identity"] == [1, 1]


def test_oauth_wrong_secret_is_invalid_client(served):
    saved, secret = credential(served.middleware)
    oauth = OAuthClient(served.base, saved.identifier, secret + "x")
    with pytest.raises(SSOClientError) as raised:
        oauth.sso_url("clientarea:invoices")
    assert raised.value.status == 401
    assert raised.value.error == "invalid_client"
    assert raised.value.message == "Client authentication failed"


def test_oauth_unknown_identifier_is_invalid_client(served):
    _, secret = credential(served.middleware)
    with pytest.raises(SSOClientError) as raised:
        OAuthClient(served.base, secrets.token_hex(16), secret).token("clientarea:invoices")
    assert (raised.value.status, raised.value.error) == (401, "invalid_client")


@pytest.mark.parametrize("destination", ["clientarea:services", "sso:custom_redirect"])
def test_oauth_scope_outside_the_credential_is_invalid_scope(served, destination):
    saved, secret = credential(served.middleware)
    with pytest.raises(SSOClientError) as raised:
        OAuthClient(served.base, saved.identifier, secret).token(destination)
    assert raised.value.status == 400
    assert raised.value.error == "invalid_scope"
    assert raised.value.message == f'The requested scope "{destination}" is invalid.'


def test_oauth_deleted_credential_is_invalid_client(served):
    saved, secret = credential(served.middleware)
    oauth = OAuthClient(served.base, saved.identifier, secret)
    oauth.token("clientarea:invoices")
    served.middleware.oauth_credentials.delete(saved.credential_id)
    with pytest.raises(SSOClientError) as raised:
        oauth.token("clientarea:invoices")
    assert (raised.value.status, raised.value.error) == (401, "invalid_client")


def test_oauth_too_many_failures_give_retry_after(serve):
    served = serve(client_auth_limit=Limit(2, 60))
    saved, secret = credential(served.middleware)
    wrong = OAuthClient(served.base, saved.identifier, "wrong")
    statuses = []
    for _ in range(4):
        with pytest.raises(SSOClientError) as raised:
            wrong.token("clientarea:invoices")
        statuses.append(raised.value.status)
    assert statuses[0] == 401 and statuses[-1] == 429
    assert raised.value.error == "too_many_requests"
    assert raised.value.retry_after is not None and 0 < raised.value.retry_after <= 60
    # the right secret is never locked out by failures in the client's name
    assert OAuthClient(served.base, saved.identifier, secret).token("clientarea:invoices")["access_token"]


@pytest.mark.parametrize("secret", ["pa:ss%word", "a+b c&d=%3A:é/?#"])
def test_oauth_secret_with_reserved_characters_works_through_basic(served, secret):
    saved = credential_with_secret(served.middleware, secret)
    oauth = OAuthClient(served.base, saved.identifier, secret)
    url = oauth.sso_url("clientarea:invoices")
    landed, seen = follow(new_browser(), url)
    assert landed == served.base + "/clientarea.php?action=invoices"
    assert seen["identity"] == [1, 1]
    # decoded once only: the percent-encoded form of the secret is another secret
    with pytest.raises(SSOClientError) as raised:
        OAuthClient(served.base, saved.identifier, secret.replace("%", "%25")).token()
    assert raised.value.status == 401


# -- unreachable, and what repr() shows -------------------------------------------


def test_unreachable_deployment_has_no_status():
    base = f"http://127.0.0.1:{free_port()}"
    for call in (
        lambda: AdminClient(base, API_IDENTIFIER, API_SECRET, timeout=2).sso_url(client_id=1),
        lambda: OAuthClient(base, "a" * 32, "secret", timeout=2).sso_url(),
    ):
        with pytest.raises(SSOClientError) as raised:
            call()
        assert raised.value.status is None
        assert raised.value.error is None
        assert base in raised.value.message
        assert "Connection refused" in raised.value.message  # the cause, for whoever reads the error
        assert API_SECRET not in raised.value.message and "secret" not in raised.value.message


def test_admin_api_options_repr_hides_the_secret_hashes():
    from sso_middleware import AdminAPIOptions
    from sso_middleware.credentials import hash_secret

    digest = hash_secret(API_SECRET)
    assert digest not in repr(AdminAPIOptions(credentials={API_IDENTIFIER: digest}))


def test_repr_hides_the_secrets():
    admin = AdminClient("https://portal.example.com", API_IDENTIFIER, API_SECRET)
    oauth = OAuthClient("https://portal.example.com", "c" * 32, "oauth-secret-value")
    assert "billing" in repr(admin) and API_SECRET not in repr(admin)
    assert "c" * 32 in repr(oauth)
    assert "oauth-secret-value" not in repr(oauth)
    assert "Basic" not in repr(oauth)


# -- redirects are not followed -------------------------------------------------------


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """A host in front of the portal that answers every request with a
    redirect to a second host, which records what it receives."""

    def do_POST(self):
        target = self.server.target
        if target is None:  # the second host: note the credentials it was sent
            self.server.seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")
            return
        self.send_response(302)
        self.send_header("Location", target + self.path)
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args):
        pass


def _host(target):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    server.target, server.seen = target, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


@pytest.mark.parametrize("client", ["oauth", "admin"])
def test_credentials_are_never_sent_on_to_a_redirect_target(client):
    third, third_url = _host(None)
    front, front_url = _host(third_url)
    try:
        caller = (
            OAuthClient(front_url, "a" * 32, "the-client-secret")
            if client == "oauth"
            else AdminClient(front_url, "billing", "the-api-secret")
        )
        with pytest.raises(SSOClientError) as raised:
            caller.sso_url(destination="clientarea:invoices") if client == "admin" else caller.token()
        assert raised.value.status == 302 and "redirect" in raised.value.message
        assert third.seen == []
    finally:
        for server in (front, third):
            server.shutdown()
            server.server_close()


# -- answers that are not the deployment's -------------------------------------------


class _Answering(http.server.BaseHTTPRequestHandler):
    """A server that answers every POST with ``self.server.answer``:
    (status, headers, body, bytes actually sent or None for all)."""

    def do_POST(self):
        status, headers, body, sent = self.server.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if sent is None else body[:sent])

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            (429, {"Retry-After": "\u00b2"}, b'{"error": "slow_down"}', None), id="retry-after-superscript"
        ),
        pytest.param((400, {}, b"[1, 2]", None), id="error-body-a-list"),
        pytest.param((200, {}, b'{"result": "success"}', None), id="no-redirect-url"),
        pytest.param((200, {}, b"[]", None), id="success-a-list"),
        pytest.param((200, {}, b'{"redirect_url": "' + b"x" * 90 + b'"}', 18), id="cut-short"),
        pytest.param((200, {}, b"<html>a login page</html>", None), id="not-json"),
        pytest.param(
            (429, {"Retry-After": "9" * 5000}, b'{"error": "slow_down"}', None), id="retry-after-huge"
        ),
        pytest.param((400, {}, b"[" * 100000 + b"]" * 100000, None), id="error-body-nested-deeply"),
        pytest.param((200, {}, b"[" * 100000 + b"]" * 100000, None), id="answer-nested-deeply"),
        pytest.param(
            (400, {}, b'{"error": "invalid_request", "error_description": "' + b"x" * 90, 30),
            id="error-body-cut-short",
        ),
    ],
)
def test_every_failure_of_the_client_is_an_sso_client_error(answer):
    """Callers are told to catch SSOClientError: a proxy, a wrong system_url
    or a broken server must not surprise them with anything else."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    server.answer = answer
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for caller in (OAuthClient(base, "a" * 32, "s"), AdminClient(base, "billing", "s")):
            with pytest.raises(SSOClientError):
                caller.sso_url(destination="clientarea:invoices") if isinstance(
                    caller, AdminClient
                ) else caller.sso_url("clientarea:invoices")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "url",
    ["https://billing:hunter2@portal.example.com", "https://portal.example.com?x=1", "portal.example.com"],
)
def test_a_base_url_the_middleware_would_refuse_is_refused_without_showing_it(url):
    from sso_middleware.exceptions import ConfigurationError

    for make in (lambda: AdminClient(url, "billing", "s"), lambda: OAuthClient(url, "a" * 32, "s")):
        with pytest.raises(ConfigurationError) as raised:
            make()
        assert "hunter2" not in str(raised.value)
