"""Metrics: each counter moves on the action an operator counts it for,
the histograms time store calls and answers, no label names a user, an
account, an address, a client or a token, and gunicorn's workers add up in
multi-process mode. Every check reads ``/metrics`` as Prometheus would."""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import os
import re
import sys
import time
import typing as t
import urllib.parse
import urllib.request

import pytest
import webtest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from sso_middleware import ConfigurationError, Limit, SSOMiddleware, Stores
from sso_middleware.endpoints.sso import SingleSignOnEndpoint
from sso_middleware.exceptions import Denied
from sso_middleware.metrics import (
    AUTH_ENDPOINTS,
    DENIAL_REASONS,
    ENDPOINTS,
    MINT_CHANNELS,
    REDEMPTION_OUTCOMES,
    RESUME_OUTCOMES,
    STORE_OPERATIONS,
)
from sso_middleware.metrics.prometheus import PrometheusMetrics, metrics_app
from sso_middleware.stores.redis import RedisTokenStore, connect
from sso_middleware.tokens import token_key
from sso_middleware.users import Account, AccountStatus, MemoryUserStore, User
from tests.support.helpers import (
    API_PATH,
    API_SECRET,
    COOKIE_NAME,
    ROOT,
    SECRET_KEY,
    SSO_PATH,
    SYSTEM_URL,
    TOKEN_PATH,
    FakeClock,
    api_form,
    echo_app,
    sso_path,
)
from tests.support.live import follow, new_browser, serve_gunicorn
from tests.support.redis_server import RedisServer, free_port

if t.TYPE_CHECKING:
    import redis

HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "portal.example.com"}
LINK = TOKEN_PATH + "?scope=clientarea:sso%20clientarea:invoices"


class Samples:
    """One scrape of ``/metrics``, parsed as Prometheus parses it."""

    def __init__(self, text: str):
        self.text = text
        self.values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.values[sample.name, frozenset(sample.labels.items())] = sample.value

    def __call__(self, name: str, **labels: str) -> float:
        """The value of one series; a KeyError if it is not exposed."""
        return self.values[name, frozenset(labels.items())]

    def nonzero(self, name: str) -> dict[tuple[str, ...], float]:
        """The series of ``name`` that moved: their label values (sorted by
        label name) → value."""
        return {
            tuple(value for _, value in sorted(labels)): value
            for (sample, labels), value in self.values.items()
            if sample == name and value
        }


class Measured:
    """The middleware with metrics on a registry of its own, ``/metrics``
    mounted beside it, and what a test needs to drive it."""

    def __init__(
        self,
        middleware: SSOMiddleware,
        registry: CollectorRegistry,
        users: MemoryUserStore,
        redis_client,
        clock: FakeClock | None = None,
    ):
        self.middleware = middleware
        self.users = users
        self.redis: redis.Redis = redis_client
        #: The clock the middleware was given, if the test drives time.
        self.clock = clock
        self.wsgi = DispatcherMiddleware(middleware, {"/metrics": metrics_app(registry)})
        self.app = self.browser()

    def browser(self, **environ: str) -> webtest.TestApp:
        """A new browser (its own cookies) on the portal."""
        return webtest.TestApp(self.wsgi, extra_environ={**HTTPS, **environ})

    def mint(self, **inputs: t.Any) -> str:
        result = self.middleware.create_sso_token(**inputs)
        assert result["result"] == "success", result
        return sso_path(result["redirect_url"])

    def scrape(self) -> Samples:
        response = self.browser().get("/metrics", status=200)
        assert response.content_type == "text/plain"
        return Samples(response.text)

    def session_key(self, app: webtest.TestApp) -> str:
        """Where the session of ``app``'s cookie is kept in Redis."""
        payload = self.middleware.sessions.signer.unsign(app.cookies[COOKIE_NAME]).decode()
        return "sso:v2:t:" + payload.split(".")[0]


@pytest.fixture
def measure(make_middleware, user_store, redis_client):
    def build(**overrides: t.Any) -> Measured:
        registry = CollectorRegistry()
        middleware = make_middleware(metrics=PrometheusMetrics(registry), **overrides)
        return Measured(middleware, registry, user_store, redis_client, overrides.get("clock"))

    return build


@pytest.fixture
def measured(measure) -> Measured:
    return measure()


def provision(app: webtest.TestApp) -> tuple[str, str]:
    """A credential set for service 101 (client 1), made over the admin
    API: (client identifier, secret)."""
    body = app.post(
        API_PATH,
        api_form(
            action="CreateOAuthCredential",
            grantType="single_sign_on",
            serviceId="101",
            scope="clientarea:invoices",
        ),
        status=200,
    ).json
    assert body["result"] == "success", body
    return body["clientIdentifier"], body["clientSecret"]


def grant(app: webtest.TestApp, identifier: str, secret: str, status: int = 200) -> webtest.TestResponse:
    return app.post(
        TOKEN_PATH,
        {
            "grant_type": "single_sign_on",
            "scope": "clientarea:sso clientarea:invoices",
            "client_id": identifier,
            "client_secret": secret,
        },
        status=status,
    )


# -- counters ---------------------------------------------------------------------


def test_tokens_minted_are_counted_by_channel(measured):
    app = measured.app
    measured.mint(client_id=1)
    assert measured.middleware.create_sso_token(client_id=3)["result"] == "error"  # Closed: nothing minted
    assert app.post(API_PATH, api_form(client_id="1"), status=200).json["result"] == "success"
    assert app.post(API_PATH, api_form(client_id="3"), status=200).json["result"] == "error"
    identifier, secret = provision(app)
    assert "access_token" in grant(app, identifier, secret).json
    for _ in range(2):
        link = app.post(LINK, {"subscriber_unique_id": identifier, "token": secret}, status=200)
        assert "access_token" in link.json

    samples = measured.scrape()
    assert {c: samples("sso_tokens_minted_total", channel=c) for c in MINT_CHANNELS} == {
        "admin_api": 1,
        "oauth": 1,
        "application_link": 2,
        "python": 1,
    }


def test_redemptions_are_counted_by_outcome(measured):
    app = measured.app
    path = measured.mint(client_id=1)
    app.get(path, status=303)
    measured.browser().get(path, status=403)  # the same link again: a replay
    app.get(SSO_PATH + "?access_token=short", status=400)
    app.get(path.replace("access_token", "access_token=x&access_token"), status=400)
    app.head(measured.mint(client_id=1), status=405)  # a link scanner: nothing redeemed

    assert measured.scrape().nonzero("sso_redemptions_total") == {
        ("signed_in", ""): 1,
        ("replay", ""): 1,
        ("malformed", ""): 2,
    }


def _unknown(m: Measured) -> str:
    return SSO_PATH + "?access_token=" + "A" * 43


def _too_old(m: Measured) -> str:
    path = m.mint(client_id=1)
    assert m.clock is not None
    m.clock.advance(61)  # Redis still has it (its TTL runs on Redis's clock); its record is too old
    return path


def _destination(m: Measured) -> str:
    return m.mint(client_id=1, destination="clientarea:invoices") + "&scope=clientarea:profile"


def _revoked(m: Measured) -> str:
    path = m.mint(client_id=1)
    m.middleware.end_sessions(client_id=1)
    return path


def _tampered(m: Measured) -> str:
    path = m.mint(client_id=1)
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["access_token"][0]
    assert m.redis.set("sso:v2:t:" + token_key(token), b"not a sealed record", xx=True, keepttl=True)
    return path


def _not_found(m: Measured) -> str:
    path = m.mint(client_id=1, user_id=5)
    m.users.add_user(User(5))  # removed from the account
    return path


def _closed(m: Measured) -> str:
    path = m.mint(client_id=1)
    m.users.set_status(1, AccountStatus.CLOSED)
    return path


def _sso_disabled(m: Measured) -> str:
    path = m.mint(client_id=1)
    m.users.set_sso_allowed(1, False)
    return path


def _session_conflict(m: Measured) -> str:
    m.app.get(m.mint(client_id=1), status=303)
    path = m.mint(client_id=2)
    m.users.set_status(1, AccountStatus.CLOSED)  # the browser's current session is for a Closed account
    return path


@pytest.mark.parametrize(
    "prepare, reason",
    [
        pytest.param(_unknown, "expired_or_unknown", id="unknown"),
        pytest.param(_too_old, "expired_or_unknown", id="too-old"),
        pytest.param(_destination, "destination", id="destination"),
        pytest.param(_revoked, "revoked", id="revoked"),
        pytest.param(_tampered, "tampered", id="tampered"),
        pytest.param(_not_found, "not_found", id="not-found"),
        pytest.param(_closed, "closed", id="closed"),
        pytest.param(_sso_disabled, "sso_disabled", id="sso-disabled"),
        pytest.param(_session_conflict, "session_conflict", id="session-conflict"),
    ],
)
def test_denials_are_counted_by_reason(measure, prepare, reason):
    measured = measure(clock=FakeClock(time.time()))
    path = prepare(measured)
    measured.app.get(path, status=403)
    redemptions = measured.scrape().nonzero("sso_redemptions_total")
    assert {k: v for k, v in redemptions.items() if k[0] != "signed_in"} == {("denied", reason): 1}


def test_a_denial_raised_by_a_subclass_counts_as_other(user_store, redis_client):
    class Strict(SingleSignOnEndpoint):
        def check_account(self, record):
            raise Denied("no sign-ons today")

    class Middleware(SSOMiddleware):
        sso_endpoint_class = Strict

    registry = CollectorRegistry()
    middleware = Middleware(
        echo_app,
        system_url=SYSTEM_URL,
        secret_keys=[SECRET_KEY],
        user_store=user_store,
        stores=Stores.redis(redis_client),
        metrics=PrometheusMetrics(registry),
    )
    measured = Measured(middleware, registry, user_store, redis_client)
    measured.app.get(measured.mint(client_id=1), status=403)
    assert measured.scrape().nonzero("sso_redemptions_total") == {("denied", "other"): 1}


def test_rate_limited_redemptions_are_counted(measure):
    measured = measure(redeem_limit=Limit(1, 600))
    bad = SSO_PATH + "?access_token=" + "B" * 43
    measured.app.get(bad, status=403)
    measured.app.get(bad, status=429)
    assert measured.scrape().nonzero("sso_redemptions_total") == {
        ("denied", "expired_or_unknown"): 1,
        ("rate_limited", ""): 1,
    }


@pytest.fixture
def own_redis():
    server = RedisServer()
    server.start()
    yield server
    server.remove()


def test_redis_down_counts_as_unavailable(measure, own_redis):
    client = connect(own_redis.url)
    try:
        measured = measure(tokens=RedisTokenStore(client))
        app = measured.app
        app.get(measured.mint(client_id=1), status=303)
        pending = measured.mint(client_id=1)
        own_redis.stop()
        app.get(pending, status=503)
        assert app.get("/page", status=200).json["identity"] is None  # passed on anonymous
    finally:
        client.close()

    samples = measured.scrape()
    assert samples.nonzero("sso_redemptions_total") == {("signed_in", ""): 1, ("unavailable", ""): 1}
    assert samples.nonzero("sso_session_resumes_total") == {("unavailable",): 1}
    # failed calls are timed too
    assert samples("sso_store_duration_seconds_count", store="tokens", operation="redeem") == 2
    assert samples("sso_store_duration_seconds_count", store="tokens", operation="resume") == 1


def test_session_resumes_are_counted_by_outcome(measured):
    m = measured
    m.app.get("/page", status=200)  # no cookie: nothing to count
    m.app.get(m.mint(client_id=1), status=303)
    assert m.app.get("/page").json["identity"] == [1, 1]  # resumed

    forged = m.browser()
    forged.set_cookie(COOKIE_NAME, "made-up")
    assert forged.get("/page").json["identity"] is None  # invalid

    logged_out = m.browser()
    logged_out.get(m.mint(client_id=1), status=303)
    cookie = logged_out.cookies[COOKIE_NAME]
    logged_out.post("/logout", status=303)
    replayed = m.browser()
    replayed.set_cookie(COOKIE_NAME, cookie)
    assert replayed.get("/page").json["identity"] is None  # ended (logged out)

    revoked = m.browser()
    revoked.get(m.mint(client_id=2), status=303)
    m.middleware.end_sessions(client_id=2)
    assert revoked.get("/page").json["identity"] is None  # ended (with its account)

    idle = m.browser()
    idle.get(m.mint(client_id=1, user_id=5), status=303)
    assert m.redis.delete(m.session_key(idle)) == 1  # as the idle timeout would
    assert idle.get("/page").json["identity"] is None  # expired

    assert m.scrape().nonzero("sso_session_resumes_total") == {
        ("resumed",): 1,
        ("invalid",): 1,
        ("ended",): 2,
        ("expired",): 1,
    }


def test_sessions_past_the_absolute_timeout_time_out_and_forged_ones_are_refused(measure, caplog):
    clock = FakeClock(1_000_000.0)
    m = measure(clock=clock, idle_timeout=60, absolute_timeout=120)
    old = m.browser()
    old.get(m.mint(client_id=1), status=303)
    assert old.get("/page").json["identity"] == [1, 1]
    clock.advance(121)
    assert old.get("/page").json["identity"] is None

    signed = m.browser()
    signed.get(m.mint(client_id=1), status=303)
    key, secret, _, client = (
        m.middleware.sessions.signer.unsign(signed.cookies[COOKIE_NAME]).decode().split(".")
    )
    signed.set_cookie(COOKIE_NAME, m.middleware.sessions.signer.sign(f"{key}.{secret}.5.{client}").decode())
    assert signed.get("/page").json["identity"] is None
    assert [r for r in caplog.records if getattr(r, "sso_event", None) == "forged_session"]

    assert m.scrape().nonzero("sso_session_resumes_total") == {
        ("resumed",): 1,
        ("timed_out",): 1,
        ("refused",): 1,
    }


def test_authentication_failures_are_counted_by_endpoint(measured):
    app = measured.app
    assert app.post(API_PATH, api_form(secret="wrong"), status=403).json["message"] == "Authentication Failed"
    app.post(API_PATH, api_form(identifier="nobody"), status=403)
    identifier, _ = provision(app)
    assert grant(app, identifier, "wrong", status=401).json["error"] == "invalid_client"
    samples = measured.scrape()
    assert {e: samples("sso_auth_failures_total", endpoint=e) for e in AUTH_ENDPOINTS} == {
        "api": 2,
        "token": 1,
    }


# -- histograms -------------------------------------------------------------------


def test_endpoints_and_store_calls_are_timed(measured):
    app = measured.app
    redirect = app.post(API_PATH, api_form(client_id="1"), status=200).json["redirect_url"]
    app.get(sso_path(redirect), status=303)
    app.get(sso_path(redirect), status=403)
    app.post("/logout", status=303)
    grant(app, "0" * 32, "wrong", status=401)

    samples = measured.scrape()
    assert {e: samples("sso_endpoint_duration_seconds_count", endpoint=e) for e in ENDPOINTS} == {
        "api": 1,
        "sso": 2,
        "logout": 1,
        "token": 1,
    }
    for endpoint in ENDPOINTS:
        count = samples("sso_endpoint_duration_seconds_count", endpoint=endpoint)
        assert samples("sso_endpoint_duration_seconds_bucket", endpoint=endpoint, le="+Inf") == count
        assert 0 < samples("sso_endpoint_duration_seconds_sum", endpoint=endpoint) < count * 5
    store = {
        k: v
        for k, v in samples.nonzero("sso_store_duration_seconds_count").items()
        if k[1] in ("tokens", "counters")
    }
    # (operation, store): one mint; two redemptions, the second a replay,
    # which ends the session in the same script and counts a failure; the
    # logout's session read, which finds it ended; the failed client
    # authentication, counted per client and per address
    assert store == {
        ("add", "tokens"): 1,
        ("redeem", "tokens"): 2,
        ("resume", "tokens"): 1,
        ("hit", "counters"): 3,
    }


def test_token_grants_keep_their_one_step_write_when_measured(measured):
    app = measured.app
    identifier, secret = provision(app)
    for _ in range(3):
        grant(app, identifier, secret)
    samples = measured.scrape()
    # the first grant reads the set and writes the token; the next two do
    # both in one script, as without metrics
    assert samples("sso_store_duration_seconds_count", store="tokens", operation="add") == 1
    assert (
        samples("sso_store_duration_seconds_count", store="credentials", operation="add_token_if_current")
        == 2
    )
    assert samples("sso_tokens_minted_total", channel="oauth") == 3


# -- labels -----------------------------------------------------------------------

#: Every label value the metrics may show, by label name.
ALLOWED_LABELS = {
    "channel": {*MINT_CHANNELS, "other"},
    "outcome": {*REDEMPTION_OUTCOMES, *RESUME_OUTCOMES, "other"},
    "reason": {*DENIAL_REASONS, ""},
    "endpoint": {*ENDPOINTS, *AUTH_ENDPOINTS, "other"},
    "store": {*STORE_OPERATIONS, "other"},
    "operation": {op for ops in STORE_OPERATIONS.values() for op in ops} | {"other"},
}


def test_no_label_names_a_user_an_account_an_address_or_a_token(measured):
    m = measured
    m.users.add_account(Account(918273, AccountStatus.ACTIVE, True, owner_user_id=564738))
    m.users.add_user(User(564738, client_ids=(918273,)))
    address = "203.0.113.77"
    app = m.browser(REMOTE_ADDR=address)
    canaries = [API_SECRET, address, "918273", "564738"]

    body = app.post(API_PATH, api_form(client_id="918273"), status=200).json
    canaries += [body["access_token"]]
    app.get(sso_path(body["redirect_url"]), status=303)
    app.get("/page", status=200)
    canaries += [app.cookies[COOKIE_NAME], m.session_key(app).rpartition(":")[2]]
    app.get(sso_path(body["redirect_url"]), status=403)
    identifier, secret = provision(app)
    canaries += [identifier, secret]
    granted = grant(app, identifier, secret).json
    canaries += [granted["access_token"]]
    grant(app, identifier, "wrong-" + secret, status=401)
    app.post(API_PATH, api_form(secret="wrong-" + API_SECRET), status=403)
    app.post("/logout", status=303)

    samples = m.scrape()
    labels = [labels for (name, labels) in samples.values if name.startswith("sso_")]
    assert labels
    for pairs in labels:
        for name, value in pairs:
            if name == "le":
                float(value)  # a bucket bound
                continue
            assert value in ALLOWED_LABELS[name], (name, value)
            for canary in canaries:
                assert canary not in value
    for canary in (c for c in canaries if len(c) > 6):  # not the ids: a sum may hold any digits
        assert canary not in samples.text


# -- wiring -----------------------------------------------------------------------


def test_without_metrics_nothing_is_wrapped(middleware):
    """No metrics, no extra work: the signed-in path calls the session
    manager itself, on the store as given, and endpoints answer unwrapped."""
    assert middleware.resumer is middleware.sessions
    assert type(middleware.sessions.store) is RedisTokenStore
    assert type(middleware.endpoints[SSO_PATH]) is SingleSignOnEndpoint


def test_metrics_must_implement_the_protocol(make_middleware):
    with pytest.raises(ConfigurationError, match="metrics must implement Metrics"):
        make_middleware(metrics=object())


def test_unknown_label_values_count_as_other():
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    metrics.minted("fax")  # type: ignore[arg-type]
    metrics.redeemed("denied", "a user id 42")  # type: ignore[arg-type]
    metrics.store_called("tokens", "flushall", 0.001)
    metrics.answered("admin", 0.001)  # type: ignore[arg-type]
    assert registry.get_sample_value("sso_tokens_minted_total", {"channel": "other"}) == 1
    assert registry.get_sample_value("sso_redemptions_total", {"outcome": "denied", "reason": "other"}) == 1
    assert (
        registry.get_sample_value(
            "sso_store_duration_seconds_count", {"store": "tokens", "operation": "other"}
        )
        == 1
    )
    assert registry.get_sample_value("sso_endpoint_duration_seconds_count", {"endpoint": "other"}) == 1


def test_isolated_metrics_keep_to_their_own_registry(make_middleware):
    first, second = PrometheusMetrics.isolated(), PrometheusMetrics.isolated()  # no clash of names
    make_middleware(metrics=first).create_sso_token(client_id=1)
    served = webtest.TestApp(metrics_app(first.registry)).get("/", status=200).text
    assert 'sso_tokens_minted_total{channel="python"} 1.0' in served
    assert second.registry.get_sample_value("sso_tokens_minted_total", {"channel": "python"}) == 0


def test_without_prometheus_client_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "sso_middleware.metrics.prometheus")
    with pytest.raises(ImportError, match=re.escape("pip install 'sso_middleware[metrics]'")):
        importlib.import_module("sso_middleware.metrics.prometheus")


def test_a_missing_multiprocess_directory_is_a_configuration_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="PROMETHEUS_MULTIPROC_DIR must name an existing directory"):
        metrics_app()


# -- gunicorn, multi-process mode ---------------------------------------------------

SIGN_INS = 16


def test_gunicorn_workers_add_up_in_multiprocess_mode(redis_server, redis_client, tmp_path):
    """Two workers, each counting in its own files: one scrape, answered by
    either, shows the sum."""
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "SSO_TEST_REDIS_URL": redis_server.url,
        "SSO_TEST_SYSTEM_URL": url,
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "gunicorn.log"
    args = [
        "--config",
        "python:tests.support.metrics_app",
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        "-",
        "--access-logformat",
        "%(p)s %(m)s %(U)s %(s)s",
        "tests.support.metrics_app:build()",
    ]

    def sign_in(_: int) -> list[int]:
        form = urllib.parse.urlencode(api_form(client_id="1")).encode()
        with urllib.request.urlopen(url + API_PATH, form, timeout=5) as response:
            redirect_url = json.load(response)["redirect_url"]
        _, seen = follow(new_browser(), redirect_url)
        return t.cast("list[int]", seen["identity"])

    signed_in = 0
    with serve_gunicorn(args, url=url + "/metrics", log=log, cwd=tmp_path, env=env):
        # rounds of concurrent sign-ins until both workers have minted (the
        # second may still be starting when the first answers)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            while len(set(minted_by(log))) < 2 and signed_in < 20 * SIGN_INS:
                assert list(pool.map(sign_in, range(SIGN_INS))) == [[1, 1]] * SIGN_INS
                signed_in += SIGN_INS
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            samples = Samples(response.read().decode())

    pids = minted_by(log)
    assert len(pids) == signed_in
    assert len(set(pids)) == 2, "both workers minted"
    assert samples("sso_tokens_minted_total", channel="admin_api") == signed_in
    assert samples("sso_redemptions_total", outcome="signed_in", reason="") == signed_in
    assert samples("sso_session_resumes_total", outcome="resumed") == signed_in
    assert samples("sso_endpoint_duration_seconds_count", endpoint="api") == signed_in
    assert samples("sso_store_duration_seconds_count", store="tokens", operation="redeem") == signed_in
    # each worker counted in files of its own
    assert {p.name.rsplit("_", 1)[-1] for p in multiproc.iterdir()} >= {f"{pid}.db" for pid in pids}


def minted_by(log) -> list[str]:
    """The process ids of the workers that answered each mint, from the access log."""
    return re.findall(r"<(\d+)> POST /includes/api.php 200", log.read_text())


def test_the_store_operations_are_the_store_protocols_methods():
    """``STORE_OPERATIONS`` names the operation label's values; a method
    added to a store protocol must be named there too (else it is timed as
    ``other``)."""
    from sso_middleware.metrics import STORE_OPERATIONS
    from sso_middleware.stores import CounterStore, CredentialStore, TokenStore

    def methods(protocol: type) -> set[str]:
        return {
            name for name in vars(protocol) if not name.startswith("_") and callable(vars(protocol)[name])
        }

    assert set(STORE_OPERATIONS["tokens"]) == methods(TokenStore)
    assert set(STORE_OPERATIONS["counters"]) == methods(CounterStore)
    # and the one-step grant, which only some credential stores have
    assert set(STORE_OPERATIONS["credentials"]) == methods(CredentialStore) | {"add_token_if_current"}


def test_every_unknown_label_value_counts_as_other():
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    metrics.redeemed("a user id 42")  # type: ignore[arg-type]
    metrics.resumed("a user id 42")  # type: ignore[arg-type]
    metrics.auth_failed("a user id 42")  # type: ignore[arg-type]
    metrics.store_called("a user id 42", "get", 0.001)  # type: ignore[arg-type]
    assert registry.get_sample_value("sso_redemptions_total", {"outcome": "other", "reason": ""}) == 1
    assert registry.get_sample_value("sso_session_resumes_total", {"outcome": "other"}) == 1
    assert registry.get_sample_value("sso_auth_failures_total", {"endpoint": "other"}) == 1
    stored = registry.get_sample_value(
        "sso_store_duration_seconds_count", {"store": "other", "operation": "other"}
    )
    assert stored == 1
    samples = [sample for metric in registry.collect() for sample in metric.samples]
    assert not any("a user id 42" in sample.labels.values() for sample in samples)
