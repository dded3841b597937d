from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import typing as t
from pathlib import Path

import pytest

from sso_middleware import SSOMiddleware
from sso_middleware.credentials import hash_secret
from sso_middleware.demo import demo_user_store
from sso_middleware.options import by_ini_names, ini_fields
from sso_middleware.stores import Stores
from sso_middleware.stores.redis import connect
from tests.support.helpers import (
    API_IDENTIFIER,
    API_SECRET,
    SECRET_KEY,
    SYSTEM_URL,
    browser,
    echo_app,
    sso_path,
)
from tests.support.live import pipeline_args, serve_gunicorn
from tests.support.redis_server import FLAVOURS, REDIS, VALKEY, Flavour, RedisServer, free_port
from tests.support.redis_topologies import ClusterTopology, SentinelTopology

STORE_FIELDS = [f.name for f in dataclasses.fields(Stores)]


def pytest_report_header() -> str:
    versions = (f"{f.server} {f.version() or 'not installed'}" for f in FLAVOURS.values())
    return "servers: " + ", ".join(versions)


def serve(flavour: Flavour) -> t.Iterator[RedisServer]:
    server = RedisServer(flavour)
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def redis_server():
    yield from serve(REDIS)


@pytest.fixture(scope="session")
def valkey_server():
    """A valkey-server, for the tests that run on Valkey as well (see
    ``server_flavour``)."""
    yield from serve(VALKEY)


@pytest.fixture
def server_flavour() -> str:
    """The server ``redis_client`` (and every fixture built on it:
    ``make_middleware``, ``middleware``, ``app``, ``mint``) talks to:
    "redis", unless a test parametrizes this name, as
    ``@pytest.mark.parametrize("server_flavour", [pytest.param("redis"),
    pytest.param("valkey", marks=pytest.mark.valkey)])`` does to run on
    both. ``redis_server`` stays redis-server either way."""
    return "redis"


@pytest.fixture
def store_server(request, server_flavour) -> RedisServer:
    """The session's redis-server or valkey-server, as ``server_flavour``
    says."""
    return t.cast(RedisServer, request.getfixturevalue(f"{FLAVOURS[server_flavour].name}_server"))


@dataclasses.dataclass
class Pipeline:
    """examples/pipeline.ini served by gunicorn."""

    url: str
    api_secret: str
    log: Path
    db: Path


@pytest.fixture(scope="session")
def pipeline(redis_server, tmp_path_factory):
    """examples/pipeline.ini (the Flask portal behind the middleware) served
    by gunicorn with two workers forked after loading the app, on real Redis."""
    folder = tmp_path_factory.mktemp("pipeline")
    port, api_secret = free_port(), "pipeline-" + "s" * 32
    env = {**os.environ, "PORTAL_DB": str(folder / "portal.db"), "SSO_SECRET_KEYS": "p" * 32}
    log, url = folder / "gunicorn.log", f"http://127.0.0.1:{port}"
    with serve_gunicorn(
        pipeline_args(port, url, redis_server.url, api_secret),
        url=url + "/",
        log=log,
        cwd=folder,
        env=env,
    ):
        yield Pipeline(url, api_secret, log, folder / "portal.db")


@pytest.fixture(scope="session")
def sentinel_topology():
    """A master, one replica and three sentinels; started when a test (marked
    ``sentinel``) first asks for it."""
    with SentinelTopology() as topology:
        yield topology


@pytest.fixture(scope="session")
def cluster_topology():
    """A Redis Cluster of three masters; started when a test (marked
    ``cluster``) first asks for it."""
    with ClusterTopology(3) as topology:
        yield topology


@pytest.fixture(scope="session")
def valkey_sentinel_topology():
    """``sentinel_topology`` on Valkey (tests marked ``sentinel`` and ``valkey``)."""
    with SentinelTopology(flavour=VALKEY) as topology:
        yield topology


@pytest.fixture(scope="session")
def valkey_cluster_topology():
    """``cluster_topology`` on Valkey (tests marked ``cluster`` and ``valkey``)."""
    with ClusterTopology(3, flavour=VALKEY) as topology:
        yield topology


@pytest.fixture
def redis_client(store_server):
    client = connect(store_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def user_store():
    """The tests' seed accounts (:func:`sso_middleware.demo.demo_user_store`)."""
    return demo_user_store()


@pytest.fixture
def make_middleware(redis_client, user_store):
    """Build the middleware around ``echo_app`` on real Redis. Keyword
    arguments override the defaults, options by their ini names;
    ``tokens``, ``counters`` and ``credentials`` replace one of the Redis
    stores."""

    def make(**overrides: t.Any) -> SSOMiddleware:
        app = overrides.pop("app", echo_app)
        replaced = {name: overrides.pop(name) for name in STORE_FIELDS if name in overrides}
        # options may be given by their ini names (idle_timeout=…, redeem_limit=…)
        flat = {"api_credentials": {API_IDENTIFIER: hash_secret(API_SECRET)}}
        flat.update({name: overrides.pop(name) for name in ini_fields() if name in overrides})
        if flat["api_credentials"] is None:
            del flat["api_credentials"]
        options: dict[str, t.Any] = dict(
            system_url=SYSTEM_URL,
            secret_keys=[SECRET_KEY],
            user_store=user_store,
            stores=dataclasses.replace(Stores.redis(redis_client), **replaced),
            **by_ini_names(flat),
        )
        options.update(overrides)
        return SSOMiddleware(app, **options)

    return make


@pytest.fixture
def middleware(make_middleware):
    return make_middleware()


@pytest.fixture
def app(middleware):
    return browser(middleware)


@pytest.fixture
def mint(middleware):
    """Mint a token through the Python API; return the SSO path to open."""

    def mint(**inputs: t.Any) -> str:
        result = middleware.create_sso_token(**inputs)
        assert result["result"] == "success", result
        return sso_path(result["redirect_url"])

    return mint


@pytest.fixture(autouse=True)
def no_secrets_leak(request, monkeypatch, caplog):
    """Canary: no token or session id generated during a test, nor the admin
    API secret, appears in any log record or in Redis."""
    generated: list[str] = []
    real = secrets.token_urlsafe

    def recording(nbytes: int | None = None) -> str:
        value = real(nbytes)
        generated.append(value)
        return value

    monkeypatch.setattr(secrets, "token_urlsafe", recording)
    caplog.set_level(logging.DEBUG, logger="sso_middleware")
    uses_redis = "redis_client" in request.fixturenames
    client = request.getfixturevalue("redis_client") if uses_redis else None
    yield
    canaries = [*generated, API_SECRET]
    for record in caplog.records:
        text = record.getMessage() + (caplog.handler.format(record) if record.exc_info else "")
        text += repr(vars(record))
        for canary in canaries:
            assert canary not in text, f"a secret leaked into the log: {record.getMessage()!r}"
    if client is not None:
        try:
            keys = list(client.scan_iter(count=1000))
        except Exception:  # the test stopped Redis on purpose
            return
        dump = b" ".join(keys + [client.dump(k) or b"" for k in keys])
        for canary in canaries:
            assert canary.encode() not in dump, "a secret leaked into Redis"
