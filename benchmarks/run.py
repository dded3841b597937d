"""Run every benchmark and print one table; the last line is one JSON
object with the ratios.

    python -m benchmarks.run            # full run (several minutes)
    python -m benchmarks.run --quick    # under a minute on 2 cores
    python -m benchmarks.run --plot benchmarks/latency.png --json results.json

From the checkout (the benchmarks are a package, and use ``tests.support``).

A real ``redis-server`` is started on a free loopback port for the run.
Ratios compare each subject with its baseline in the same run, alternating
runs and taking medians; absolute times are context only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata

import redis

from . import e2e, inprocess, loadgen, memory, scaling
from .common import RedisServer, Section, pin, table

#: The JSON line's keys, in order.
KEYS = (
    "passthrough_overhead",
    "session_overhead",
    "redeem_vs_getdel",
    "mint_vs_set",
    "redis_round_trips_per_redeem",
    "redis_round_trips_per_mint",
    "e2e_sso_vs_redirect",
    "e2e_sso_vs_flask_handrolled",
    "e2e_token_endpoint_vs_authlib",
    "e2e_passthrough",
    "redis_bytes_per_token",
    "redis_bytes_per_session",
)
#: Extra context keys after them.
EXTRA = (
    "session_overhead_us",
    "raw_get_us",
    "session_overhead_delayed_us",
    "redis_script_commands_per_redeem",
    "rss_growth_kib",
    "rss_redemptions",
    "e2e_loadgen",
    "scaling_redeem_spread",
    "scaling_session_spread",
    "scaling_redis_mb_per_million_sessions",
    "scaling_slot_max_vs_mean",
    "e2e_floor_rps",
    # costs with the server floor subtracted, the goals of the end-to-end
    # comparisons: last in the line
    "e2e_sso_cost_vs_flask_handrolled",
    "e2e_token_cost_vs_authlib",
    "e2e_session_cost_vs_flask_session",
)


def machine(generator: str) -> list[str]:
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
            platform.processor(),
        )
    packages = ", ".join(
        f"{name} {_version(name)}"
        for name in (
            "redis",
            "hiredis",
            "werkzeug",
            "itsdangerous",
            "flask",
            "flask-login",
            "authlib",
            "gunicorn",
        )
    )
    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    wrk = (
        subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        if shutil.which("wrk")
        else "not installed"
    )
    return [
        f"machine: {os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}",
        f"python {platform.python_version()}; {packages}",
        (
            f"redis-server {next((w[2:] for w in server if w.startswith('v=')), '?')}; wrk: {wrk.strip()}; "
            f"e2e load generator: {generator}"
        ),
    ]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs (< 1 min)")
    parser.add_argument(
        "--loadgen", choices=["wrk", "python"], help="e2e load generator (default: wrk if installed)"
    )
    parser.add_argument(
        "--only",
        choices=["inprocess", "memory", "scaling", "e2e"],
        action="append",
        help="run only these parts (repeatable)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the in-process benchmarks and redis-server to one CPU",
    )
    parser.add_argument("--plot", metavar="PNG", help="write the latency-percentile plot here")
    parser.add_argument("--json", metavar="FILE", help="write all results (with latency samples) here")
    args = parser.parse_args()
    parts = args.only or ["inprocess", "memory", "scaling", "e2e"]
    generator = args.loadgen or loadgen.which()

    started = time.monotonic()
    server = RedisServer()
    server.start()
    sections: list[Section] = []
    try:
        client = redis.Redis.from_url(server.url)
        for part in parts:
            client.flushall()
            placement = pin(server, None if args.no_pin or part == "e2e" else {0})
            if part != "e2e":
                sections.append(Section(notes=[f"{part}: benchmark process {placement}"]))
            if part == "inprocess":
                sections.append(inprocess.run(server.url, args.quick))
            elif part == "memory":
                sections.append(memory.run(server.url, args.quick))
            elif part == "scaling":
                sections.append(scaling.run(server.url, args.quick))
            else:
                sections.append(e2e.run(server.url, args.quick, generator))
        client.close()
    finally:
        server.stop()

    metrics: dict[str, object] = {}
    latencies: dict[str, list[float]] = {}
    for section in sections:
        metrics.update(section.metrics)
        latencies.update(section.latencies)
    elapsed = time.monotonic() - started
    if args.plot:
        from . import plot

        plot.plot(latencies, args.plot, title=f"sso_middleware {'quick' if args.quick else 'full'} run")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"metrics": metrics, "latencies": latencies, "machine": machine(generator)}, f)

    print("\n".join(machine(generator)))
    print(f"{'quick' if args.quick else 'full'} run, {elapsed:.0f} s")
    print()
    print(table([row for section in sections for row in section.rows]))
    for section in sections:
        for note in section.notes:
            print(note)
    line = {k: _round(metrics[k]) for k in (*KEYS, *EXTRA) if k in metrics}
    sys.stdout.flush()
    print(json.dumps(line), flush=True)


def _round(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else value


if __name__ == "__main__":
    main()
