"""The core behaviour on every Redis topology a deployment may choose: a
single server, a Sentinel-monitored master with a replica, and a Redis
Cluster of three masters, all real servers (``tests/support/redis_topologies.py``),
each on Redis and on Valkey.

Each behaviour test takes the ``backend`` fixture, parametrised over the
six; the Sentinel and Cluster runs carry the ``sentinel`` and ``cluster``
markers, so ``pytest -m "sentinel or cluster"`` runs exactly them, and the
Valkey runs the ``valkey`` marker (``-m "not valkey"`` leaves them out). The
middleware only ever sees a client from :func:`connect`,
:func:`connect_sentinel` or :func:`connect_cluster` (redis-py's own Sentinel
and Cluster clients) or the equivalent ini settings.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import threading
import time
import typing as t
import warnings

import pytest
import redis
from redis.cluster import RedisCluster
from werkzeug.test import Client

from sso_middleware import AdminAPIOptions, ConfigurationError, Limit, SSOMiddleware
from sso_middleware.credentials import hash_secret
from sso_middleware.demo import demo_user_store
from sso_middleware.exceptions import StoreUnavailable
from sso_middleware.options import by_ini_names
from sso_middleware.paste import options as ini_options
from sso_middleware.stores import Stores
from sso_middleware.stores.redis import connect, connect_cluster, connect_sentinel
from tests.support.helpers import (
    API_IDENTIFIER,
    API_PATH,
    API_SECRET,
    COOKIE_NAME,
    SECRET_KEY,
    SSO_PATH,
    SYSTEM_URL,
    TOKEN_PATH,
    api_form,
    browser,
    echo_app,
    sso_path,
)
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import (
    DATA_CONFIG,
    ClusterTopology,
    Node,
    SentinelTopology,
    documented_acl_rules,
    wait_until,
)

PREFIX = "sso:v2:"
CREDENTIAL_KEYS = PREFIX + "{credentials}:"

# redis-py >= 5.3 deprecates the read_from_replicas argument that
# connect_cluster passes (as False, the default); see
# test_connect_cluster_warns_nothing. Ignored here so the behaviour tests run.
BACKENDS = [
    pytest.param("single"),
    pytest.param("sentinel", marks=pytest.mark.sentinel),
    pytest.param("cluster", marks=pytest.mark.cluster),
    pytest.param("valkey-single", marks=pytest.mark.valkey),
    pytest.param("valkey-sentinel", marks=[pytest.mark.sentinel, pytest.mark.valkey]),
    pytest.param("valkey-cluster", marks=[pytest.mark.cluster, pytest.mark.valkey]),
]
SENTINELS = [BACKENDS[1], BACKENDS[4]]

#: Run a test on redis-server and on valkey-server (``redis_client`` and
#: ``store_server`` follow ``server_flavour``, see tests/conftest.py).
ON_EVERY_SERVER = pytest.mark.parametrize(
    "server_flavour", [pytest.param("redis"), pytest.param("valkey", marks=pytest.mark.valkey)]
)


@dataclasses.dataclass
class Backend:
    """One topology, as the tests see it."""

    #: "single", "sentinel" or "cluster".
    name: str
    #: Make a client the way a deployment would (keyword arguments: auth).
    connect: t.Callable[..., t.Any]
    #: Raw clients to every master, to look at keys.
    masters: list[redis.Redis]
    #: Raw clients to every data node (masters and replicas): ACL users go on each.
    nodes: list[redis.Redis]
    #: The ini settings that select this topology.
    settings: dict[str, str]
    #: The server: "redis" or "valkey".
    flavour: str = "redis"
    #: The processes, to stop or pause one.
    topology: RedisServer | SentinelTopology | ClusterTopology | None = None
    #: Clients made by ``client``, closed after the test.
    made: list[t.Any] = dataclasses.field(default_factory=list)

    def client(self, **kwargs: t.Any) -> t.Any:
        client = self.connect(**kwargs)
        self.made.append(client)
        return client

    def keys(self, pattern: str = "*") -> list[tuple[redis.Redis, bytes]]:
        """Every key on every master, with the master that holds it."""
        return [(m, k) for m in self.masters for k in m.scan_iter(match=pattern, count=1000)]

    def close(self) -> None:
        for client in self.made + self.masters + self.nodes:
            client.close()


def addresses(pairs: list[tuple[str, int]]) -> str:
    return " ".join(f"{host}:{port}" for host, port in pairs)


@pytest.fixture(params=BACKENDS)
def backend(request) -> t.Iterator[Backend]:
    flavour, _, kind = request.param.rpartition("-")
    flavour = flavour or "redis"
    prefix = "" if flavour == "redis" else f"{flavour}_"
    if kind == "single":
        server = request.getfixturevalue(f"{flavour}_server")
        nodes = [redis.Redis(port=server.port)]
        made = Backend(
            "single",
            lambda **kw: connect(server.url, **kw),
            nodes,
            nodes,
            {"redis_url": server.url},
            flavour,
            server,
        )
    elif kind == "sentinel":
        sentinels = request.getfixturevalue(f"{prefix}sentinel_topology")
        made = Backend(
            "sentinel",
            lambda **kw: connect_sentinel(sentinels.sentinel_addresses, sentinels.service, **kw),
            [sentinels.current_master().client()],
            [node.client() for node in sentinels.data_nodes],
            {"redis_sentinels": addresses(sentinels.sentinel_addresses), "redis_service": sentinels.service},
            flavour,
            sentinels,
        )
    else:
        cluster = request.getfixturevalue(f"{prefix}cluster_topology")
        nodes = cluster.clients()
        made = Backend(
            "cluster",
            lambda **kw: connect_cluster(cluster.startup_nodes, **kw),
            nodes,
            nodes,
            {"redis_cluster_nodes": addresses(cluster.startup_nodes)},
            flavour,
            cluster,
        )
    for master in made.masters:
        # every run is on the server it names (the nodes check it as they start)
        info = master.info("server")
        assert ("valkey_version" in info) == (flavour == "valkey"), info
    for master in made.masters:
        master.flushall()
    yield made
    made.close()


def build(client: t.Any, *, wait: tuple[int, int] | None = None, **overrides: t.Any) -> SSOMiddleware:
    options: dict[str, t.Any] = dict(
        system_url=SYSTEM_URL,
        secret_keys=[SECRET_KEY],
        user_store=demo_user_store(),
        stores=Stores.redis(client, wait=wait),
        api=AdminAPIOptions(credentials={API_IDENTIFIER: hash_secret(API_SECRET)}),
        **by_ini_names(overrides),
    )
    return SSOMiddleware(echo_app, **options)


@pytest.fixture
def middleware(backend) -> SSOMiddleware:
    return build(backend.client())


def seen(app) -> list[int] | None:
    """The identity the wrapped app sees for this browser."""
    return json.loads(app.get("/page").body)["identity"]


def api(app, action: str, status: int = 200, **fields: str):
    return app.post(API_PATH, api_form(action=action, **fields), status=status)


def minted(app, status: int = 200, **fields: str) -> str:
    """Mint over the admin API; the SSO path to open."""
    response = api(app, "CreateSsoToken", status, **fields)
    return sso_path(response.json["redirect_url"]) if status == 200 else ""


def session_key_of(app) -> str:
    """The store key of this browser's session (its spent token's key)."""
    return app.cookies[COOKIE_NAME].split(".")[0]


def live(backend) -> list[bytes]:
    """Keys of live session records on every master (not the ended mark)."""
    return [k for m, k in backend.keys(PREFIX + "t:*") if len(m.get(k) or b"") > 1 and m.get(k)[:1] == b"!"]


# -- the behaviour suite ----------------------------------------------------------

DESTINATIONS = [
    ({}, "/clientarea.php"),
    ({"destination": "clientarea:invoices"}, "/clientarea.php?action=invoices"),
    (
        {"destination": "clientarea:product_details", "service_id": "101"},
        "/clientarea.php?action=productdetails&id=101",
    ),
    (
        {"destination": "clientarea:domain_details", "domain_id": "111"},
        "/clientarea.php?action=domaindetails&id=111",
    ),
    ({"destination": "sso:custom_redirect", "sso_redirect_path": "cart.php?a=view"}, "/cart.php?a=view"),
]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_mint_and_redeem_for_several_destinations(middleware):
    for fields, path in DESTINATIONS:
        app = browser(middleware)
        response = app.get(minted(app, client_id="1", user_id="5", **fields), status=303)
        assert response.headers["Location"] == SYSTEM_URL + path
        assert seen(app) == [5, 1]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_token_works_once_and_its_replay_ends_the_first_session(middleware):
    app = browser(middleware)
    path = minted(app, client_id="1")
    app.get(path, status=303)
    assert seen(app) == [1, 1]
    browser(middleware).get(path, status=403)
    assert seen(app) is None  # the replay ended the session the token started


def race(middleware: SSOMiddleware, path: str, threads: int = 20) -> list[int]:
    """Redeem one link from ``threads`` threads released at once."""
    barrier = threading.Barrier(threads)
    statuses: list[int] = []

    def redeem() -> None:
        client = Client(middleware)
        barrier.wait()
        statuses.append(client.get(path, base_url="https://portal.example.com").status_code)

    workers = [threading.Thread(target=redeem) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    return statuses


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_one_of_twenty_concurrent_redemptions_succeeds(backend):
    # The racing losers are replays; with revoke_on_replay off they only
    # lose, so exactly one of them signs in.
    middleware = build(backend.client(), redeem_limit=Limit(1000, 600), revoke_on_replay=False)
    for _ in range(3):
        path = sso_path(middleware.create_sso_token(client_id=1)["redirect_url"])
        assert sorted(race(middleware, path)) == [303] + [403] * 19


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_racing_replays_allow_at_most_one_sign_on(backend):
    # With revoke_on_replay (the default) a replay racing the first
    # redemption may also stop that one: at most one sign-on, never two.
    middleware = build(backend.client(), redeem_limit=Limit(1000, 600))
    for _ in range(3):
        path = sso_path(middleware.create_sso_token(client_id=1)["redirect_url"])
        statuses = race(middleware, path)
        assert statuses.count(303) <= 1 and statuses.count(403) == 20 - statuses.count(303), statuses


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_sessions_identity_logout_and_idle_timeout(backend):
    middleware = build(backend.client(), idle_timeout=1, absolute_timeout=60)
    app = browser(middleware)
    app.get(minted(app, client_id="1"), status=303)
    assert seen(app) == [1, 1]
    key = session_key_of(app)
    assert live(backend) == [f"{PREFIX}t:{key}".encode()]
    response = app.post("/logout", status=303)
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert live(backend) == []

    app = browser(middleware)
    app.get(minted(app, client_id="1"), status=303)
    for _ in range(3):  # activity extends the idle timeout
        time.sleep(0.4)
        assert seen(app) == [1, 1]
    time.sleep(1.3)
    assert seen(app) is None
    assert live(backend) == []


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_end_sessions_of_one_account(backend, middleware):
    owner, helper, other = browser(middleware), browser(middleware), browser(middleware)
    owner.get(minted(owner, client_id="1"), status=303)
    helper.get(minted(helper, client_id="1", user_id="5"), status=303)
    other.get(minted(other, client_id="2"), status=303)
    middleware.end_sessions(1)
    assert seen(owner) is None and seen(helper) is None
    assert seen(other) == [2, 2]
    owner.get(minted(owner, client_id="1"), status=303)  # a sign-on after the end is a new session
    assert seen(owner) == [1, 1]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_oauth_credential_create_reset_delete_and_token_endpoint(middleware):
    app = browser(middleware)
    created = api(
        app, "CreateOAuthCredential", grantType="single_sign_on", serviceId="101", scope="clientarea:invoices"
    ).json
    identifier, secret = created["clientIdentifier"], created["clientSecret"]

    def grant(secret: str, status: int):
        return app.post(
            TOKEN_PATH,
            {
                "grant_type": "single_sign_on",
                "client_id": identifier,
                "client_secret": secret,
                "scope": "clientarea:sso clientarea:invoices",
            },
            status=status,
        )

    signed_in = browser(middleware)
    response = signed_in.get(sso_path(grant(secret, 200).json["redirect_url"]), status=303)
    assert response.headers["Location"] == SYSTEM_URL + "/clientarea.php?action=invoices"
    assert seen(signed_in) == [1, 1]

    [listed] = api(app, "ListOAuthCredentials").json["clients"]
    assert listed["credentialId"] == created["credentialId"]
    reset = api(
        app, "UpdateOAuthCredential", credentialId=str(created["credentialId"]), resetSecret="true"
    ).json
    grant(secret, 401)
    grant(reset["clientSecret"], 200)
    api(app, "DeleteOAuthCredential", credentialId=str(created["credentialId"]))
    grant(reset["clientSecret"], 401)
    assert api(app, "ListOAuthCredentials").json["clients"] == []


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_rate_limit_trips_at_exactly_the_limit(backend):
    middleware = build(backend.client(), redeem_limit=Limit(3, 600))
    app = browser(middleware)
    app.extra_environ = {**app.extra_environ, "REMOTE_ADDR": "10.9.0.1"}
    for n in range(3):
        app.get(f"{SSO_PATH}?access_token={str(n) * 43}", status=403)
    response = app.get(f"{SSO_PATH}?access_token={'9' * 43}", status=429)
    assert 590 <= int(response.headers["Retry-After"]) <= 600
    # a second process (fresh memory) learns it from the shared counter
    again = browser(build(backend.client(), redeem_limit=Limit(3, 600)))
    again.extra_environ = {**again.extra_environ, "REMOTE_ADDR": "10.9.0.1"}
    again.get(f"{SSO_PATH}?access_token={'8' * 43}", status=429)
    [(master, key)] = backend.keys(PREFIX + "rl:*")
    assert 590 <= master.ttl(key) <= 600


def workload(backend, middleware: SSOMiddleware) -> None:
    """A bit of everything: tokens (redeemed, replayed, outstanding),
    sessions of several accounts, a revocation, a logout, counters and
    credential sets."""
    for client_id in ("1", "2", "1"):
        app = browser(middleware)
        path = minted(app, client_id=client_id)
        app.get(path, status=303)
        assert seen(app) is not None
    browser(middleware).get(path, status=403)  # a replay
    minted(browser(middleware), client_id="1")  # outstanding
    app.get(f"{SSO_PATH}?access_token={'x' * 43}", status=403)  # counted
    app.post(
        TOKEN_PATH,
        {
            "grant_type": "single_sign_on",
            "client_id": "f" * 32,
            "client_secret": "wrong",
            "scope": "clientarea:sso",
        },
        status=401,
    )
    created = api(app, "CreateOAuthCredential", grantType="single_sign_on", serviceId="101").json
    api(app, "CreateOAuthCredential", grantType="single_sign_on", serviceId="101")
    api(app, "UpdateOAuthCredential", credentialId=str(created["credentialId"]), name="renamed")
    api(app, "DeleteOAuthCredential", credentialId=str(created["credentialId"]))
    last = browser(middleware)
    last.get(minted(last, client_id="2"), status=303)
    last.post("/logout", status=303)
    middleware.end_sessions(2)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_keys_are_versioned_ephemeral_ones_expire_and_nothing_crosses_slots(backend, middleware):
    for master in backend.masters:
        master.config_resetstat()
    workload(backend, middleware)
    found = backend.keys()
    kinds = {k.decode()[len(PREFIX) :].split(":")[0] for _, k in found}
    assert kinds == {"t", "e", "ended", "rl", "{credentials}"}, kinds
    for master, key in found:
        name = key.decode()
        assert name.startswith(PREFIX), name
        ttl = master.ttl(key)
        if name.startswith(CREDENTIAL_KEYS):
            assert ttl == -1, (name, ttl)  # durable: persistence, not a TTL, keeps them
        else:
            assert ttl > 0, (name, ttl)
    for master in backend.masters:
        # no CROSSSLOT, MOVED, ASK, NOPERM, WRONGTYPE...: only the NOSCRIPT of a
        # script's first call, and the ERR Redis 7.0 answers to redis-py's
        # CLIENT SETINFO of the tests' own clients (sent on connecting, its error ignored)
        errors = master.info("errorstats")
        assert set(errors) <= {"errorstat_NOSCRIPT", "errorstat_ERR"}, errors
        failed = {
            k: v
            for k, v in master.info("commandstats").items()
            if v.get("failed_calls") or v.get("rejected_calls")
        }
        assert set(failed) <= {"cmdstat_evalsha"}, failed
        assert sum(v["failed_calls"] + v["rejected_calls"] for v in failed.values()) == (
            errors.get("errorstat_NOSCRIPT", {}).get("count", 0)
        )
    if backend.name == "cluster":
        assert len({id(m) for m, _ in found}) == len(backend.masters)  # spread over every shard
        slots = {
            backend.masters[0].cluster("keyslot", k)
            for _, k in found
            if k.startswith(CREDENTIAL_KEYS.encode())
        }
        assert len(slots) == 1  # the credential keys share their hash tag


# -- ACL user restricted to the prefix, configured from ini settings --------------

ACL_PASSWORD = "acl-password-" + "p" * 24


@pytest.fixture
def acl_user(backend):
    rules = [f">{ACL_PASSWORD}" if rule == ">PASSWORD" else rule for rule in documented_acl_rules()]
    assert f">{ACL_PASSWORD}" in rules
    for node in backend.nodes:
        node.execute_command("ACL", "SETUSER", "sso-app", "reset", *rules)
        node.execute_command("ACL", "LOG", "RESET")
    yield "sso-app"
    for node in backend.nodes:
        node.execute_command("ACL", "DELUSER", "sso-app")


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_an_acl_user_restricted_to_the_prefix_runs_everything_from_ini_settings(
    backend, acl_user, monkeypatch
):
    monkeypatch.setenv("SSO_TEST_REDIS_PASSWORD", ACL_PASSWORD)
    settings = {
        **backend.settings,
        "system_url": SYSTEM_URL,
        "secret_keys": SECRET_KEY,
        "user_store": "sso_middleware.demo:demo_user_store",
        "api_credentials": f"{API_IDENTIFIER} = {hash_secret(API_SECRET)}",
        "redis_username": acl_user,
        "redis_password_env": "SSO_TEST_REDIS_PASSWORD",
        "redis_prefix": "sso:v3:",
    }
    if backend.name == "sentinel":
        settings["redis_wait"] = "1/100"  # every mint and burn waits for the replica
    kwargs = ini_options(settings)
    assert kwargs["stores"].tokens.wait == ((1, 100) if backend.name == "sentinel" else None)
    middleware = SSOMiddleware(echo_app, **kwargs)
    try:
        workload(backend, middleware)
        assert backend.keys(PREFIX + "*") == []
        assert {k.decode().split(":")[2] for _, k in backend.keys("sso:v3:*")} >= {"t", "rl", "{credentials}"}
        for node in backend.nodes:
            assert node.acl_log() == [], node.acl_log()
        # the same user may touch nothing outside the prefix
        restricted = backend.client(username=acl_user, password=ACL_PASSWORD)
        with pytest.raises(redis.exceptions.NoPermissionError):
            restricted.set("elsewhere", "x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            restricted.get("session:other-app")
        with pytest.raises(redis.exceptions.NoPermissionError):
            restricted.flushall()
    finally:
        kwargs["stores"].tokens.client.close()


def test_wrong_acl_password_is_a_503_not_a_500(redis_server):
    client = connect(redis_server.url, username="nobody", password="wrong")
    try:
        app = browser(build(client))
        minted(app, 503, client_id="1")
    finally:
        client.close()


# -- client defaults ---------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_client_defaults_fail_fast_and_read_from_the_master(backend):
    client = backend.client()
    if isinstance(client, RedisCluster):
        assert client.read_from_replicas is False and client.load_balancing_strategy is None
        client.ping(target_nodes=RedisCluster.PRIMARIES)
        pools = [node.redis_connection.connection_pool for node in client.get_nodes()]
        assert {node.server_type for node in client.get_nodes()} == {"primary"}
    else:
        pools = [client.connection_pool]
    for pool in pools:
        kwargs = pool.connection_kwargs
        assert kwargs["socket_timeout"] == 0.2 and kwargs["socket_connect_timeout"] == 0.2
        assert pool.max_connections == 50
    if backend.name == "sentinel":
        assert client.connection_pool.is_master
        assert kwargs["retry"].get_retries() == 1
    if backend.name == "single":
        assert isinstance(client.connection_pool, redis.BlockingConnectionPool)
    if backend.name != "cluster":  # redis-py's cluster client has no per-connection health check
        assert {pool.connection_kwargs.get("health_check_interval") for pool in pools} == {30}
    assert (
        all(pool.connection_kwargs["retry"].get_retries() == 1 for pool in pools)
        or client.retry.get_retries() == 1
    )


@pytest.mark.cluster
def test_connect_cluster_warns_nothing(cluster_topology):
    """redis-py >= 5.3 deprecates ``read_from_replicas``; passing it (even
    as False) warns, and under ``-W error`` (this suite) raises."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = connect_cluster(cluster_topology.startup_nodes)
    client.close()
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []


@pytest.mark.parametrize("backend", SENTINELS, indirect=True)
def test_reads_and_burns_go_to_the_master_never_the_replica(backend, middleware):
    sentinels = t.cast(SentinelTopology, backend.topology)
    master = sentinels.current_master()
    [replica] = [n for n in sentinels.data_nodes if n is not master]
    with replica.client() as client:
        client.config_resetstat()
        workload(backend, middleware)
        served = client.info("commandstats")
    reads = {
        "cmdstat_get",
        "cmdstat_getex",
        "cmdstat_hget",
        "cmdstat_hvals",
        "cmdstat_evalsha",
        "cmdstat_ttl",
    }
    assert not reads & set(served), served
    assert "cmdstat_set" in served  # it does replicate the writes


# -- WAIT ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", SENTINELS, indirect=True)
def test_wait_fails_closed_when_the_replica_does_not_acknowledge(backend):
    sentinels = t.cast(SentinelTopology, backend.topology)
    middleware = build(backend.client(), wait=(1, 100))
    app = browser(middleware)
    app.get(minted(app, client_id="1"), status=303)
    assert seen(app) == [1, 1]
    pending = minted(app, client_id="1")

    master = sentinels.current_master()
    [replica] = [n for n in sentinels.data_nodes if n is not master]
    replica.pause()
    try:
        late = browser(middleware)
        started = time.monotonic()
        response = late.get(pending, status=503)
        assert time.monotonic() - started < 1.0
        assert "Set-Cookie" not in response.headers and response.headers["Retry-After"]
        assert seen(late) is None
        response = api(app, "CreateSsoToken", status=503, client_id="1")
        assert response.json == {"result": "error", "message": "Service temporarily unavailable"}
        with pytest.raises(StoreUnavailable, match="0 of 1 replicas acknowledged"):
            middleware.create_sso_token(client_id=1)
    finally:
        replica.resume()
    sentinels.wait_replicated(master, 1)
    # the token whose redemption failed closed is spent: at worst a false denial
    browser(middleware).get(pending, status=403)
    again = browser(middleware)
    again.get(minted(again, client_id="1"), status=303)
    assert seen(again) == [1, 1]


@pytest.mark.parametrize("backend", [BACKENDS[1]], indirect=True)
def test_a_wait_as_long_as_the_socket_timeout_is_refused(backend, sentinel_topology):
    """WAIT 1 200 with the default 0.2 s socket timeout: the client would
    give up before Redis answers, so the setting is refused at start-up."""
    with pytest.raises(ConfigurationError, match="below the client's socket timeout"):
        build(backend.client(), wait=(1, 200))


@pytest.mark.cluster
def test_wait_is_refused_on_a_cluster(cluster_topology):
    client = connect_cluster(cluster_topology.startup_nodes)
    try:
        with pytest.raises(ConfigurationError, match="not Redis Cluster"):
            Stores.redis(client, wait=(1, 100))
    finally:
        client.close()


# -- sizing ----------------------------------------------------------------------------


@ON_EVERY_SERVER
def test_memory_per_outstanding_token_and_session(store_server):
    """Bytes per outstanding token and per session, as ``MEMORY USAGE`` of
    one key and as growth of ``used_memory`` over many (which adds the
    main and expires dictionaries' entries). Printed for the deployment
    guide; bounded so a change that bloats records is noticed."""
    client = connect(store_server.url)
    client.flushall()
    middleware = build(client)
    n = 5000
    try:

        def grow(action: t.Callable[[int], None]) -> float:
            client.execute_command("MEMORY", "PURGE")
            before = client.info("memory")["used_memory"]
            for i in range(n):
                action(i)
            return (client.info("memory")["used_memory"] - before) / n

        def mean_usage(pattern: str) -> float:
            keys = list(client.scan_iter(match=pattern, count=1000))[:200]
            return sum(client.memory_usage(k, samples=0) for k in keys) / len(keys)

        token = grow(
            lambda i: middleware.create_sso_token(
                client_id=1, destination="clientarea:product_details", service_id=101
            )
        )
        token_usage = mean_usage(PREFIX + "t:*")
        keys = [k.decode()[len(PREFIX) + 2 :] for k in client.scan_iter(PREFIX + "t:*", count=1000)]
        session = grow(lambda i: middleware.sessions.redeem(keys[i], end_found=True)) + token
        session_usage = mean_usage(PREFIX + "t:*")
        print(
            f"\n{store_server.flavour.server}: per outstanding token: MEMORY USAGE {token_usage:.0f} B, used_memory {token:.0f} B;"
            f" per session (the token's key, redeemed): MEMORY USAGE {session_usage:.0f} B,"
            f" used_memory {session:.0f} B"
        )
        # The longest built-in destination; a session holds the token's
        # sealed record after the secret's digest (benchmarks/memory.py
        # measures the common one against the 250 B goal).
        assert token_usage < 300 and token < 400
        assert session_usage < 300 and session < 400
    finally:
        client.flushall()
        client.close()


# -- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A redis-server that speaks TLS only, with a certificate for 127.0.0.1
    from a private CA; yields its port and the CA file."""
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=sso-test-ca",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (folder / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "ext",
    )
    node = Node(folder, "tls", list(DATA_CONFIG))
    node.append_config(
        "port 0",
        f"tls-port {node.port}",
        f"tls-cert-file {folder / 'server.crt'}",
        f"tls-key-file {folder / 'server.key'}",
        f"tls-ca-cert-file {folder / 'ca.crt'}",
        "tls-auth-clients no",
    )
    node.start()
    try:
        ca = str(folder / "ca.crt")

        def ping() -> bool:
            with redis.Redis(
                host="127.0.0.1", port=node.port, ssl=True, ssl_ca_certs=ca, socket_timeout=1
            ) as client:
                return bool(client.ping())

        wait_until(ping, 10, "redis-server with TLS")
        yield node.port, ca
    finally:
        node.kill()


def test_tls_from_ini_settings(tls_redis):
    port, ca = tls_redis
    settings = {
        "system_url": SYSTEM_URL,
        "secret_keys": SECRET_KEY,
        "user_store": "sso_middleware.demo:demo_user_store",
        "api_credentials": f"{API_IDENTIFIER} = {hash_secret(API_SECRET)}",
        "redis_url": f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}",
    }
    kwargs = ini_options(settings)
    try:
        app = browser(SSOMiddleware(echo_app, **kwargs))
        app.get(minted(app, client_id="1"), status=303)
        assert seen(app) == [1, 1]
    finally:
        kwargs["stores"].tokens.client.close()
    # without the private CA the certificate is not trusted: a 503, never plain text
    untrusted = connect(f"rediss://127.0.0.1:{port}/0")
    try:
        app = browser(build(untrusted))
        minted(app, 503, client_id="1")
    finally:
        untrusted.close()
