"""Cost as the work grows: redemption and signed-in request latency with
10³, 10⁵ and 10⁶ live sessions in Redis, Redis's memory at the largest, and
how evenly the keys would spread over a Redis Cluster's slots.

    python -m benchmarks.scaling [--quick]

``--quick`` stops at 10⁵ sessions. The sessions other than the measured one
are written directly in the store's format (the session mark, the digest of
a random secret, the sealed token record; ``SET … EX`` in pipelined
batches), which is what redemption leaves behind, without a million
redemptions. Latencies are in-process (the middleware called as gunicorn
would), median of many requests, on the same Redis.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import statistics
import time
import typing as t

import redis
from redis.crc import key_slot

from sso_middleware.stores import SESSION_MARK
from sso_middleware.tokens import TokenRecord, token_key

from .apps import hello_app
from .common import (
    DESTINATION,
    PREFIX,
    SEALER,
    SSO_PATH,
    Row,
    Section,
    TokenPool,
    build_middleware,
    call,
    environ,
    log,
    run_alone,
)

QUICK_SIZES = (10**3, 10**5)
FULL_SIZES = (10**3, 10**5, 10**6)
#: Passes of requests timed per size and operation; the fastest pass's
#: median counts, since this machine's noise only ever adds time and the
#: sizes cannot be interleaved (a size is reached by adding sessions).
PASSES = 5
SAMPLES = 600
#: Redis Cluster's slot count, and the masters of the cluster we reason about.
SLOTS = 16384
MASTERS = 3


def fill(client: t.Any, count: int, batch: int = 10_000) -> None:
    """Add ``count`` sessions of user 1, as redemption leaves them."""
    record = TokenRecord(
        1, 1, DESTINATION, "/clientarea.php?action=invoices", int(time.time() * 1000)
    ).encode()
    pipe = client.pipeline(transaction=False)
    for done in range(0, count, batch):
        for _ in range(min(batch, count - done)):
            key = token_key(secrets.token_urlsafe(32))
            digest = hashlib.sha256(secrets.token_urlsafe(32).encode("ascii")).digest()[:16]
            pipe.set(PREFIX + "t:" + key, SESSION_MARK + digest + SEALER.seal(key, record), ex=1800)
        pipe.execute()


def fastest_median_us(action: t.Callable[[], t.Any]) -> float:
    medians = []
    for _ in range(PASSES):
        times = []
        for _ in range(SAMPLES):
            started = time.perf_counter_ns()
            action()
            times.append(time.perf_counter_ns() - started)
        medians.append(statistics.median(times) / 1000)
    return min(medians)


def measure(url: str, quick: bool) -> dict[str, t.Any]:
    # not the middleware's fail-fast client: a million keys take longer
    # than its 0.2 s timeout to write, scan or flush
    client = redis.Redis.from_url(url)
    client.flushall()
    middleware = build_middleware(hello_app, url)
    pool = TokenPool(url)
    baseline = client.info("memory")["used_memory"]
    link = SSO_PATH, "access_token=" + pool.mint(1)[0]
    reply = call(middleware, environ(*link))
    cookie = next(v for k, v in reply.headers if k == "Set-Cookie").split(";", 1)[0].split("=", 1)[1]
    page = environ("/clientarea.php", cookie=f"{middleware.sessions.cookie_name}={cookie}")
    results: dict[str, t.Any] = {"sizes": [], "redeem_us": [], "session_us": []}
    live = 1
    for size in QUICK_SIZES if quick else FULL_SIZES:
        log(f"scaling: {size:,} live sessions")
        fill(client, size - live)
        live = size
        tokens = iter(pool.mint(PASSES * SAMPLES))

        def redeem(tokens: t.Iterator[str] = tokens) -> None:
            reply = call(middleware, environ(SSO_PATH, "access_token=" + next(tokens)))
            assert reply.status.startswith("303")

        def signed_in() -> None:
            assert call(middleware, dict(page)).status.startswith("200")

        results["sizes"].append(size)
        results["redeem_us"].append(fastest_median_us(redeem))
        results["session_us"].append(fastest_median_us(signed_in))
        live += PASSES * SAMPLES  # each redemption left a session
    results["memory_mb"] = (client.info("memory")["used_memory"] - baseline) / 2**20
    results["memory_sessions"] = live
    per_slot = [0] * SLOTS
    for key in client.scan_iter(match=PREFIX + "*", count=10_000):
        per_slot[key_slot(key)] += 1
    mean = sum(per_slot) / SLOTS
    results["slot_max_vs_mean"] = max(per_slot) / mean
    bounds = [round(SLOTS * i / MASTERS) for i in range(MASTERS + 1)]
    per_master = [sum(per_slot[bounds[i] : bounds[i + 1]]) for i in range(MASTERS)]
    results["master_max_vs_mean"] = max(per_master) / (sum(per_master) / MASTERS)
    pool.close()
    client.flushall()
    client.close()
    return results


def run(url: str, quick: bool) -> Section:
    r = measure(url, quick)
    out = Section()
    sizes = r["sizes"]
    for name, label in (("redeem_us", "redemption"), ("session_us", "signed-in request")):
        values = r[name]
        spread = max(values) / min(values)
        metric = f"scaling_{name.removesuffix('_us')}_spread"
        out.metrics[metric] = spread
        context = ", ".join(f"{v:.0f} µs at {s:,}" for s, v in zip(sizes, values))
        out.rows.append(Row(metric, spread, "x", "≤ 1.1", spread <= 1.1, f"{label}: {context}"))
    per_million = r["memory_mb"] * 10**6 / r["memory_sessions"]
    out.metrics["scaling_redis_mb_per_million_sessions"] = per_million
    out.rows.append(
        Row(
            "scaling_redis_mb_per_million_sessions",
            per_million,
            "MB",
            "≤ 250",
            per_million <= 250,
            f"{r['memory_mb']:.0f} MB for {r['memory_sessions']:,} sessions"
            + ("" if r["memory_sessions"] >= 10**6 else ", scaled to 10⁶"),
        )
    )
    out.metrics["scaling_slot_max_vs_mean"] = r["slot_max_vs_mean"]
    out.rows.append(
        Row(
            "scaling_slot_max_vs_mean",
            r["slot_max_vs_mean"],
            "x",
            "≤ 1.5",
            r["slot_max_vs_mean"] <= 1.5,
            f"the fullest of {SLOTS} slots vs the mean; the fullest of {MASTERS} masters"
            f" {r['master_max_vs_mean']:.3f}x the mean",
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="stop at 10⁵ sessions")
    run_alone(run, parser.parse_args().quick)


if __name__ == "__main__":
    main()
