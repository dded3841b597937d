"""End-to-end benchmarks: each app behind gunicorn (2 sync workers,
``--preload``), load from ``wrk`` when installed, else from the Python
generator in loadgen.py; the same generator and settings for both sides.

    python -m benchmarks.e2e [--quick] [--loadgen wrk|python]

Every pair alternates runs (A B, B A, ...) and reports the median of the
per-round throughput ratios. Redemption runs each get a fresh pool of
tokens, minted into Redis from this process just before the run.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import secrets
import statistics
import subprocess
import sys
import typing as t
from dataclasses import dataclass, field

from tests.support.redis_server import free_port

from . import apps, loadgen
from .apps import AUTHLIB_CLIENT_ID, AUTHLIB_CLIENT_SECRET, hello_app, mint_handrolled
from .common import (
    DESTINATION,
    ROOT,
    SSO_PATH,
    TOKEN_PATH,
    RedisServer,
    Row,
    Section,
    TokenPool,
    build_middleware,
    connect,
    log,
    quiet_env,
    table,
)

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Settings:
    rounds: int
    seconds: int  # per run (wrk takes whole seconds)
    warmup: float  # per app, with the Python generator, before the first run
    connections: int = 4


QUICK = Settings(rounds=3, seconds=1, warmup=0.3)
FULL = Settings(rounds=12, seconds=2, warmup=1.0)

#: (metric, subject app, baseline app, goal)
PAIRS: tuple[tuple[str, str, str, float], ...] = (
    ("e2e_sso_vs_redirect", "sso", "redirect", 0.5),
    ("e2e_sso_vs_flask_handrolled", "flask_sso", "flask_handrolled", 2.0),
    ("e2e_token_endpoint_vs_authlib", "token", "authlib", 3.0),
    ("e2e_passthrough", "passthrough_mw", "passthrough_bare", 0.97),
    ("e2e_session_vs_flask_session", "session_mw", "flask_session", 1.0),
)

#: (metric, subject app, baseline app, goal): the cost of each request
#: beyond what the server itself takes, ``1/rps - 1/floor_rps``, where the
#: floor is a zero-cost endpoint (``redirect``) on the same server in the
#: same run; throughput ratios are capped by that floor, costs are not.
COSTS: tuple[tuple[str, str, str, float], ...] = (
    ("e2e_sso_cost_vs_flask_handrolled", "flask_sso", "flask_handrolled", 0.40),
    ("e2e_token_cost_vs_authlib", "token", "authlib", 0.50),
    ("e2e_session_cost_vs_flask_session", "session_mw", "flask_session", 0.35),
)
FLOOR = "redirect"


class Server:
    """One gunicorn serving ``benchmarks.apps.make(name)``."""

    def __init__(self, name: str, redis_url: str):
        self.name = name
        self.port = free_port()
        env = quiet_env()
        env["BENCH_REDIS_URL"] = redis_url
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                "2",
                "--preload",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--chdir",
                str(ROOT),
                "--log-level",
                "warning",
                f"benchmarks.apps:make({name!r})",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait(self) -> None:
        try:
            loadgen.wait_until_serving(self.port)
        except RuntimeError:
            self.stop()
            raise RuntimeError(
                f"gunicorn for {self.name} did not start: "
                f"{self.process.stderr.read().decode() if self.process.stderr else ''}"
            ) from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Loads:
    """Builds each app's requests; redemption loads mint fresh tokens."""

    redis_url: str
    pool: TokenPool = field(init=False)

    def __post_init__(self) -> None:
        self.pool = TokenPool(self.redis_url)
        self.raw = connect(self.redis_url)
        mw = build_middleware(hello_app, self.redis_url)
        credential, secret = mw.oauth_credentials.create(
            grant_type="single_sign_on", scope=DESTINATION, service_id=101, name="benchmark"
        )
        self.token_basic = _basic(credential.identifier, secret)
        self.cookies = {
            "session_mw": _signed_in(mw, self.pool),
            "flask_session": _flask_session_cookie(self.redis_url),
        }

    def build(self, app: str, tokens: int) -> tuple[loadgen.Load, int]:
        """The load for ``app`` with room for ``tokens`` requests, and the
        status every response must have."""
        sso = SSO_PATH + "?access_token="
        if app in ("sso", "flask_sso"):
            return loadgen.Load(SSO_PATH, paths=[sso + tk for tk in self.pool.mint(tokens)]), 303
        if app == "flask_handrolled":
            return loadgen.Load(SSO_PATH, paths=[sso + tk for tk in mint_handrolled(self.raw, tokens)]), 303
        if app == "redirect":
            return loadgen.Load(sso + secrets.token_urlsafe(32)), 303
        if app == "token":
            return loadgen.Load(
                TOKEN_PATH,
                "POST",
                {"Authorization": self.token_basic, "Content-Type": FORM},
                b"grant_type=single_sign_on&scope=clientarea%3Asso+clientarea%3Ainvoices",
            ), 200
        if app == "authlib":
            return loadgen.Load(
                "/oauth/token",
                "POST",
                {"Authorization": _basic(AUTHLIB_CLIENT_ID, AUTHLIB_CLIENT_SECRET), "Content-Type": FORM},
                b"grant_type=client_credentials&scope=clientarea%3Asso+clientarea%3Ainvoices",
            ), 200
        if app in ("passthrough_mw", "passthrough_bare"):
            return loadgen.Load("/clientarea.php?action=invoices"), 200
        if app in self.cookies:
            return loadgen.Load("/clientarea.php", headers={"Cookie": self.cookies[app]}), 200
        raise ValueError(app)

    def close(self) -> None:
        self.pool.close()
        self.raw.close()


def _cookie_of(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0]


def _signed_in(middleware: t.Any, pool: TokenPool) -> str:
    """A live session of the middleware: a minted token, redeemed."""
    from werkzeug.test import Client

    response = Client(middleware).get(SSO_PATH + "?access_token=" + pool.mint(1)[0])
    assert response.status_code == 303, response.status
    return _cookie_of(response.headers["Set-Cookie"])


def _flask_session_cookie(redis_url: str) -> str:
    """A Flask-Session session with user 1 signed in, kept in Redis."""
    response = apps.flask_session_portal(redis_url).test_client().get("/login")
    assert response.status_code == 200, response.status
    return _cookie_of(response.headers["Set-Cookie"])


def _basic(identifier: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{identifier}:{secret}".encode()).decode()


def run(redis_url: str, quick: bool, generator: str | None = None) -> Section:
    s = QUICK if quick else FULL
    generator = generator or loadgen.which()
    out = Section()
    names = list(dict.fromkeys(name for _, a, b, _ in PAIRS for name in (a, b)))
    log(f"e2e: starting {len(names)} gunicorn servers (2 workers each); load from {generator}")
    servers = {name: Server(name, redis_url) for name in names}
    loads = Loads(redis_url)
    try:
        for server in servers.values():
            server.wait()
        estimate: dict[str, float] = {}

        def measure(app: str, seconds: float, gen: str = generator) -> loadgen.Result:
            need = math.ceil(max(estimate.get(app, 0), 3000) * seconds * 1.6) + 500
            load, expect = loads.build(app, need)
            result = loadgen.run(gen, servers[app].port, load, seconds, s.connections, expect)
            if result.errors:
                raise RuntimeError(f"{app}: {result.errors} of {result.requests} requests failed")
            estimate[app] = max(estimate.get(app, 0), result.rps)
            return result

        for metric, subject, baseline, goal in PAIRS:
            log(f"e2e: {metric}")
            for app in (subject, baseline):
                measure(app, s.warmup, "python")
            results: dict[str, list[loadgen.Result]] = {subject: [], baseline: []}
            for i in range(s.rounds):
                for app in (subject, baseline) if i % 2 == 0 else (baseline, subject):
                    results[app].append(measure(app, s.seconds))
            ratio = statistics.median(a.rps / b.rps for a, b in zip(results[subject], results[baseline]))
            out.metrics[metric] = ratio
            for app in (subject, baseline):
                rps = statistics.median(r.rps for r in results[app])
                out.metrics[f"e2e_rps_{app}"] = rps
                out.latencies[f"e2e {app}"] = [
                    statistics.median(r.latency_us[p] for r in results[app]) for p in loadgen.PERCENTILES
                ]
            cpu = [r.loadgen_cpu for rs in results.values() for r in rs if r.loadgen_cpu is not None]
            context = (
                f"{out.metrics[f'e2e_rps_{subject}']:,.0f} vs "
                f"{out.metrics[f'e2e_rps_{baseline}']:,.0f} req/s "
                f"({subject} vs {baseline}); p50 {out.latencies[f'e2e {subject}'][0] / 1e3:.2f} vs "
                f"{out.latencies[f'e2e {baseline}'][0] / 1e3:.2f} ms"
            )
            if cpu:
                context += f"; Python load generator used {max(cpu):.0%} of a core at most"
            out.rows.append(Row(metric, ratio, "x", f"≥ {goal}", ratio >= goal, context))
        floor = out.metrics.get(f"e2e_rps_{FLOOR}", 0.0)
        out.metrics["e2e_floor_rps"] = floor
        for metric, subject, baseline, goal in COSTS:
            cost = {app: 1e6 / out.metrics[f"e2e_rps_{app}"] - 1e6 / floor for app in (subject, baseline)}
            ratio = cost[subject] / cost[baseline]
            out.metrics[metric] = ratio
            out.rows.append(
                Row(
                    metric,
                    ratio,
                    "x",
                    f"≤ {goal}",
                    ratio <= goal,
                    f"{cost[subject]:.0f} vs {cost[baseline]:.0f} µs per request beyond the server floor "
                    f"({floor:,.0f} req/s)",
                )
            )
        for row, (_, _, baseline, _) in zip(out.rows, PAIRS):
            if baseline in ("flask_handrolled", "authlib"):
                row.context += (
                    f"; ceiling {floor / out.metrics[f'e2e_rps_{baseline}']:.2f} (a zero-cost "
                    f"endpoint runs at most at the server floor, {floor:,.0f} req/s)"
                )
        out.notes.append(
            f"e2e load generator: {generator}, {s.connections} connections, "
            f"{s.rounds} alternating rounds of {s.seconds:g} s per side"
        )
        out.metrics["e2e_loadgen"] = generator  # type: ignore[assignment]
    finally:
        for server in servers.values():
            server.stop()
        loads.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--loadgen", choices=["wrk", "python"], help="default: wrk when installed")
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    try:
        section = run(server.url, args.quick, args.loadgen)
    finally:
        server.remove()
    print(table(section.rows))
    print("\n".join(section.notes))
    print(json.dumps({k: v for k, v in section.metrics.items() if not k.startswith("e2e_rps")}))


if __name__ == "__main__":
    main()
