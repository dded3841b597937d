"""Run every atheris harness for a bounded time, against a real redis-server.

    .venv/bin/python -m proof.fuzz --seconds 30            # each harness 30 s
    .venv/bin/python -m proof.fuzz --only cookie,sso_query --seconds 300

From the checkout. Prints executions and crashes per harness; a crashing
input is kept in ``proof/fuzz/artifacts/`` (replay it with ``python -m
proof.fuzz.fuzz_<name> <file>``).
Exits 1 if any harness crashed. Without atheris (``pip install -e
'.[fuzz]'``; wheels exist for CPython 3.8-3.11 on Linux x86-64) it says so
and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HARNESSES = ("sso_query", "admin_api", "token_endpoint", "cookie", "safe_path")

_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_PROGRESS = re.compile(r"^#(\d+)\s", re.MULTILINE)


def atheris_missing() -> str | None:
    try:
        import atheris  # noqa: F401
    except ImportError as e:
        return (
            f"atheris is not installed for {sys.executable} ({e}); "
            "pip install -e '.[fuzz]' (needs a CPython with atheris wheels, or clang to build it)"
        )
    return None


def run_one(name: str, seconds: float, env: dict[str, str]) -> dict[str, object]:
    artifacts = HERE / "artifacts"
    artifacts.mkdir(exist_ok=True)
    command = [
        sys.executable,
        "-m",
        f"proof.fuzz.fuzz_{name}",
        f"-max_total_time={max(1, math.ceil(seconds))}",
        "-print_final_stats=1",
        "-timeout=10",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={artifacts}/{name}-",
    ]
    started = time.monotonic()
    completed = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=seconds + 120
    )
    output = completed.stdout + completed.stderr
    found = _EXECUTED.findall(output) or _PROGRESS.findall(output)
    executions = max(map(int, found)) if found else 0
    crashed = completed.returncode != 0
    detail = ""
    artifact = ""
    if crashed:
        lines = [line for line in output.splitlines() if line.strip()]
        errors = [line for line in lines if re.match(r"^[\w.]*(Crash|Error|Exception)\b.*:", line)]
        detail = (errors[-1] if errors else lines[-1] if lines else f"exit {completed.returncode}")[:300]
        match = re.search(r"Test unit written to (\S+)", output)
        artifact = match.group(1) if match else ""
    return {
        "name": name,
        "seconds": round(time.monotonic() - started, 1),
        "executions": executions,
        "crashed": crashed,
        "detail": detail,
        "artifact": artifact,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proof.fuzz", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="per harness (default 30)")
    parser.add_argument("--only", default=",".join(HARNESSES), help=f"any of {', '.join(HARNESSES)}")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--redis-url", help="use this Redis instead of starting redis-server")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(HARNESSES)
    if unknown:
        parser.error(f"unknown harness {sorted(unknown)[0]!r}")
    missing = atheris_missing()
    if missing:
        print(f"fuzz: skipped: {missing}")
        if args.json:
            Path(args.json).write_text(json.dumps({"skipped": missing}))
        return 0

    server = None
    url = args.redis_url
    if url is None:
        from tests.support.redis_server import RedisServer

        server = RedisServer()
        server.start()
        url = server.url
    env = {**os.environ, "SSO_FUZZ_REDIS_URL": url}
    results = []
    try:
        for name in names:
            result = run_one(name, args.seconds, env)
            results.append(result)
            state = f"CRASH: {result['detail']}" if result["crashed"] else "no crash"
            print(
                f"fuzz {name:15} {result['executions']:>9} executions in {result['seconds']:>5} s  {state}",
                flush=True,
            )
    finally:
        if server is not None:
            server.stop()
    crashes = sum(1 for r in results if r["crashed"])
    print(f"fuzz: {sum(int(r['executions']) for r in results)} executions, {crashes} crashing harnesses")
    if args.json:
        Path(args.json).write_text(json.dumps({"harnesses": results}, indent=2))
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
