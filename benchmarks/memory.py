"""Memory: Redis bytes per token and per session (``MEMORY USAGE``), Redis
memory per redemption (``used_memory``), and the resident memory of a
middleware process after 1,000 redemptions and after 100,000.

A session has no key of its own: redeeming a token rewrites the token's key
to hold the session record (its mark and secret's digest, then the token's
sealed record), so a session's bytes are those of a redeemed token's key.
Token records are sealed by the middleware under test (16 bytes of MAC);
a session keeps its token's sealed record as it is.

    python -m benchmarks.memory [--quick]

The resident-memory check runs in a fresh child process (this script with
``--rss N``) so nothing else lives in it; ``--quick`` redeems 10,000.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import typing as t

import redis

from sso_middleware.stores import SESSION_MARK
from sso_middleware.tokens import token_key

from .apps import hello_app
from .common import (
    DESTINATION,
    PREFIX,
    ROOT,
    SSO_PATH,
    Row,
    Section,
    TokenPool,
    build_middleware,
    call,
    connect,
    environ,
    log,
    quiet_env,
    run_alone,
)

#: Growth of the resident set we call noise (allocator arenas, caches).
RSS_NOISE_KIB = 2048
SAMPLE = 200


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def new_keys(client: redis.Redis, pattern: str, action: t.Callable[[], t.Any]) -> list[bytes]:
    before = set(client.scan_iter(match=pattern, count=1000))
    action()
    return [k for k in client.scan_iter(match=pattern, count=1000) if k not in before]


def usage(client: redis.Redis, keys: list[bytes]) -> float:
    return statistics.median(int(client.memory_usage(k, samples=0) or 0) for k in keys)


def length(client: redis.Redis, keys: list[bytes]) -> float:
    """Median bytes of the values alone (``STRLEN``)."""
    return statistics.median(int(client.strlen(k)) for k in keys)


def used_memory(client: redis.Redis) -> int:
    return int(t.cast(dict[str, t.Any], client.info("memory"))["used_memory"])


def redeem_all(mw: t.Any, tokens: list[str]) -> None:
    for token in tokens:
        reply = call(mw, environ(SSO_PATH, "access_token=" + token))
        if not reply.status.startswith("303"):
            raise RuntimeError(f"redemption answered {reply.status}")


def rss_child(redis_url: str, total: int) -> None:
    """In a fresh process: RSS after 1,000 redemptions and after ``total``."""
    mw = build_middleware(hello_app, redis_url)
    pool = TokenPool(redis_url)
    readings = {}
    done = 0
    while done < total:
        redeem_all(mw, pool.mint(1000))
        done += 1000
        if done in (1000, total):
            gc.collect()
            readings[done] = rss_kib()
    print(json.dumps(readings))


def run(redis_url: str, quick: bool) -> Section:
    out = Section()
    client = connect(redis_url)
    mw = build_middleware(hello_app, redis_url)
    pool = TokenPool(redis_url)
    redeem_all(mw, pool.mint(100))  # warm-up

    log("memory: Redis bytes per token and session")
    token_keys = new_keys(
        client,
        PREFIX + "t:*",
        lambda: [mw.create_sso_token(client_id=1, destination=DESTINATION) for _ in range(SAMPLE)],
    )
    per_token = usage(client, token_keys)
    tokens = pool.mint(SAMPLE)
    redeem_all(mw, tokens)
    redeemed = [PREFIX + "t:" + token_key(token) for token in tokens]
    values = t.cast("list[bytes | None]", client.mget(redeemed))
    session_keys = [
        key.encode()
        for key, value in zip(redeemed, values)
        if value is not None and value.startswith(SESSION_MARK) and len(value) > len(SESSION_MARK)
    ]
    if len(session_keys) != SAMPLE:
        raise RuntimeError(f"only {len(session_keys)} of {SAMPLE} redeemed token keys hold a session record")
    per_session = usage(client, session_keys)

    n = 2000
    tokens = pool.mint(n)
    before = used_memory(client)
    redeem_all(mw, tokens)
    per_redemption = (used_memory(client) - before) / n
    before = used_memory(client)
    pool.mint(n)
    per_mint = (used_memory(client) - before) / n

    total = 10_000 if quick else 100_000
    log(f"memory: resident memory over {total:,} redemptions (child process)")
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--rss", str(total), "--redis-url", redis_url],
        capture_output=True,
        text=True,
        env=quiet_env(),
        cwd=ROOT,
        check=True,
    )
    readings = {int(k): v for k, v in json.loads(child.stdout.strip().splitlines()[-1]).items()}
    growth = readings[total] - readings[1000]

    out.metrics.update(
        {
            "redis_bytes_per_token": per_token,
            "redis_bytes_per_session": per_session,
            "rss_growth_kib": float(growth),
            "rss_redemptions": float(total),
        }
    )
    out.rows += [
        Row(
            "redis_bytes_per_token",
            per_token,
            "B",
            "≤ 200",
            per_token <= 200,
            f"MEMORY USAGE, median of {len(token_keys)} keys (values of {length(client, token_keys):.0f} B, "
            f"sealed); used_memory grows {per_mint:.0f} B per mint",
        ),
        Row(
            "redis_bytes_per_session",
            per_session,
            "B",
            "≤ 250",
            per_session <= 250,
            f"MEMORY USAGE of redeemed token keys (the session record in the token's place, values of "
            f"{length(client, session_keys):.0f} B), median of {len(session_keys)}; used_memory changes "
            f"{per_redemption:+.0f} B per redemption (no new key: the token's record moves into the "
            "session's)",
        ),
        Row(
            f"RSS growth, 1,000 → {total:,} redemptions",
            growth,
            "KiB",
            f"≤ {RSS_NOISE_KIB} KiB (noise)",
            growth <= RSS_NOISE_KIB,
            f"{readings[1000] / 1024:.1f} MiB → {readings[total] / 1024:.1f} MiB; "
            f"{growth * 1024 / (total - 1000):.1f} B per redemption",
        ),
    ]
    pool.close()
    client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rss", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss:
        rss_child(args.redis_url, args.rss)
        return
    run_alone(run, args.quick)


if __name__ == "__main__":
    main()
