"""Shared helpers of the benchmark scripts: a real redis-server, the
middleware as the benchmarks build it, token pools, WSGI call helpers and
alternating timing with medians.

Only the package's public API is used (``SSOMiddleware``, ``Stores``,
``TokenIssuer``, ``RecordSealer``, ``RedisTokenStore``, ``connect``), so the
benchmarks keep working while the package's internals change.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import statistics
import sys
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import redis

from sso_middleware import (
    AdminAPIOptions,
    Destinations,
    Limit,
    Limits,
    SessionOptions,
    SSOMiddleware,
    Stores,
)
from sso_middleware.credentials import hash_secret
from sso_middleware.demo import demo_user_store
from sso_middleware.issuer import MintRequest, TokenIssuer
from sso_middleware.sealing import RecordSealer
from sso_middleware.stores.redis import RedisTokenStore, connect
from tests.support.redis_server import RedisServer

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

HERE = Path(__file__).resolve().parent
#: The checkout: benchmark processes run from it (``python -m benchmarks.…``).
ROOT = HERE.parent

SYSTEM_URL = "http://127.0.0.1:8000"
SSO_PATH = "/oauth/singlesignon.php"
TOKEN_PATH = "/oauth/token.php"
API_PATH = "/includes/api.php"
PREFIX = "sso:v2:"
#: Fixed (benchmark-only) secrets, so server processes and the benchmark agree.
SECRET_KEY = "benchmark-secret-key-0123456789-abcdefghijklmnop"
API_IDENTIFIER = "bench"
API_SECRET = "benchmark-api-secret-0123456789"
#: The destination every benchmark token carries.
DESTINATION = "clientarea:invoices"
HUGE = Limit(10**9, 600)


#: Seals records as the middleware under test does (the same secret keys):
#: a record written to Redis by a benchmark must carry its MAC to redeem.
SEALER = RecordSealer([SECRET_KEY])


def build_middleware(
    app: WSGIApplication, url_or_client: str | redis.Redis, *, revocation_delay: int = 0
) -> SSOMiddleware:
    """The middleware as a deployment would build it (from a URL, or from a
    client such as :func:`counting_client`'s), limits raised so a
    benchmark's failures never trip them."""
    return SSOMiddleware(
        app,
        system_url=SYSTEM_URL,
        secret_keys=[SECRET_KEY],
        user_store=demo_user_store(),
        stores=Stores.redis(url_or_client),
        api=AdminAPIOptions(credentials={API_IDENTIFIER: hash_secret(API_SECRET)}),
        sessions=SessionOptions(secure=False, revocation_delay=revocation_delay),
        limits=Limits(redeem=HUGE, client_auth=HUGE, address_auth=HUGE),
    )


class CountingConnection(redis.Connection):
    """A connection that counts what the client sends, for every connection
    of the class at once: each request written to the socket (one command,
    or a whole pipeline) is one round trip; ``sent`` counts the commands in
    them by name (``EVALSHA`` once, whatever its script runs in Redis)."""

    round_trips = 0
    sent: t.Counter[str] = collections.Counter()

    def send_packed_command(self, command: t.Any, check_health: bool = True) -> None:
        CountingConnection.round_trips += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

    def send_command(self, *args: t.Any, **kwargs: t.Any) -> None:
        CountingConnection.sent[_name(args[0])] += 1
        super().send_command(*args, **kwargs)  # type: ignore[no-untyped-call]

    def pack_commands(self, commands: t.Iterable[t.Sequence[t.Any]]) -> list[bytes]:
        commands = list(commands)
        CountingConnection.sent.update(_name(command[0]) for command in commands)
        return t.cast("list[bytes]", super().pack_commands(commands))  # type: ignore[no-untyped-call]

    @classmethod
    def reset(cls) -> None:
        cls.round_trips = 0
        cls.sent = collections.Counter()


def _name(command: str | bytes) -> str:
    """A command's name as ``INFO commandstats`` spells it (no subcommand)."""
    return (command.decode() if isinstance(command, bytes) else command).split()[0].lower()


def counting_client(redis_url: str) -> redis.Redis:
    """A client with the middleware's settings whose connections count what
    they send (:class:`CountingConnection`); never used inside a timing."""
    client: redis.Redis = connect(redis_url, connection_class=CountingConnection)
    return client


class TokenPool:
    """Mints tokens from the benchmark process, as the deployment would, with
    a :class:`TokenIssuer` on the same Redis and prefix, the same user store
    data and the same secret keys (records are sealed, and only records
    sealed with the middleware's keys redeem). ``mint(n)`` pipelines the
    ``SET`` commands, so a pool of thousands takes a fraction of a second;
    it is never part of a timing."""

    def __init__(self, redis_url: str, *, ttl: int = 60):
        self.client = connect(redis_url)
        # RedisTokenStore over a pipeline: add() queues the SET ... EX NX
        # and mint() sends a whole batch in one go.
        self.pipe = self.client.pipeline(transaction=False)
        self.issuer = TokenIssuer(
            RedisTokenStore(t.cast(redis.Redis, self.pipe), prefix=PREFIX),
            SEALER,
            demo_user_store(),
            Destinations(),
            sso_url=SYSTEM_URL + SSO_PATH,
            ttl=ttl,
        )

    def mint(
        self, n: int, *, client_id: int = 1, destination: str = DESTINATION, batch: int = 2000
    ) -> list[str]:
        tokens: list[str] = []
        while len(tokens) < n:
            for _ in range(min(batch, n - len(tokens))):
                tokens.append(self.issuer.issue(MintRequest(client_id=client_id, destination=destination)))
            results = self.pipe.execute()
            if not all(results):
                raise RuntimeError("a pooled token collided or was refused")
        return tokens

    def close(self) -> None:
        self.client.close()


# -- WSGI --------------------------------------------------------------------


def environ(
    path: str,
    query: str = "",
    *,
    method: str = "GET",
    cookie: str | None = None,
    body: bytes = b"",
    content_type: str = "",
    headers: t.Mapping[str, str] | None = None,
) -> dict[str, t.Any]:
    """A WSGI environ like gunicorn's for a small request."""
    import io

    env: dict[str, t.Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "RAW_URI": path + ("?" + query if query else ""),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench/1.0",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if cookie:
        env["HTTP_COOKIE"] = cookie
    if body or content_type:
        env["CONTENT_LENGTH"] = str(len(body))
        env["CONTENT_TYPE"] = content_type
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


class Reply:
    """What one WSGI call answered."""

    __slots__ = ("status", "headers", "body")

    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.body = b""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def call(app: WSGIApplication, env: WSGIEnvironment) -> Reply:
    """Call a WSGI app as a server would: start_response, body, close."""
    reply = Reply()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Any:
        reply.status, reply.headers = status, headers
        return None

    result = app(env, start_response)
    try:
        reply.body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return reply


def bare_app(environ: WSGIEnvironment, start_response: t.Any) -> list[bytes]:
    """The application behind the middleware in the pass-through benchmarks:
    the smallest realistic WSGI app (raw WSGI, a fixed small page)."""
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "3")])
    return [b"ok\n"]


# -- timing ------------------------------------------------------------------


class Samples(dict[str, list[float]]):
    """Per-op seconds of several subjects, one sample per alternating round."""

    def median(self, name: str) -> float:
        return statistics.median(self[name])

    def ratio(self, subject: str, baseline: str) -> float:
        """Median of the per-round ratios: each ratio comes from two adjacent
        runs, so the slow drift of a noisy machine cancels out."""
        return statistics.median(s / b for s, b in zip(self[subject], self[baseline]))

    def difference(self, subject: str, baseline: str) -> float:
        """Median of the per-round differences, in seconds."""
        return statistics.median(s - b for s, b in zip(self[subject], self[baseline]))


def alternate(runs: t.Mapping[str, t.Callable[[], float]], rounds: int) -> Samples:
    """Run each function (it returns seconds per op) once per round, in an
    order that rotates from round to round, for ``rounds`` rounds."""
    samples = Samples({name: [] for name in runs})
    items = list(runs.items())
    for i in range(rounds):
        k = i % len(items)
        for name, fn in items[k:] + items[:k]:
            gc.collect()
            samples[name].append(fn())
    return samples


def pin(server: RedisServer, cpus: set[int] | None) -> str:
    """Put this process and redis-server on ``cpus`` (``None``: every CPU).

    On this kind of VM a loopback round trip between two processes on one
    core takes ~30 µs and across cores ~120 µs, and the scheduler moves
    between the two at will, so unpinned in-process medians jump between
    regimes. The in-process benchmarks pin both to one core."""
    every = set(range(os.cpu_count() or 1))
    target = every if cpus is None else cpus & every or every
    for pid in (0, server.process.pid if server.process else 0):
        os.sched_setaffinity(pid, target)
    return (
        "unpinned"
        if target == every
        else f"pinned with redis-server to CPU {','.join(map(str, sorted(target)))}"
    )


def clock_ns() -> int:
    return time.perf_counter_ns()


# -- output ------------------------------------------------------------------


@dataclass
class Section:
    """What a benchmark script hands to run.py."""

    metrics: dict[str, float] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    #: per-op latencies in µs, by subject, for the percentile plot
    latencies: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Row:
    """One line of the results table."""

    name: str
    value: float | None
    unit: str  # "x" for a ratio
    goal: str
    met: bool | None
    context: str = ""


def fmt_value(row: Row) -> str:
    if row.value is None:
        return "n/a"
    if row.unit == "x":
        return f"{row.value:.3f}"
    return f"{row.value:,.1f} {row.unit}".strip()


def table(rows: t.Sequence[Row]) -> str:
    """A Markdown table of the rows (readable in a terminal too)."""
    lines = ["| metric | value | goal | met | context |", "|---|---|---|---|---|"]
    for r in rows:
        met = "n/a" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.name} | {fmt_value(r)} | {r.goal} | {met} | {r.context} |")
    return "\n".join(lines)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def write_json(path: Path, data: t.Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


def log(*args: object) -> None:
    """Progress to stderr, so stdout carries only the table and JSON line."""
    print(*args, file=sys.stderr, flush=True)


def quiet_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def run_alone(run: t.Callable[[str, bool], Section], quick: bool) -> None:
    """Run one benchmark script by itself: its own pinned redis-server, then
    its table and its JSON line."""
    server = RedisServer()
    server.start()
    try:
        print(pin(server, {0}))
        section = run(server.url, quick)
    finally:
        server.remove()
    print(table(section.rows))
    print(json.dumps(section.metrics))
