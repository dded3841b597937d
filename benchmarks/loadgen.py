"""Load generators for the end-to-end benchmarks: ``wrk`` when it is
installed, else a small Python one. Both sides of every comparison use the
same generator with the same settings.

A run sends requests built from a :class:`Load` (method, paths, headers,
body) for a fixed duration over ``connections`` concurrent connections and
reports throughput, status counts and latency percentiles.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

PERCENTILES = (50, 75, 90, 99, 99.9)


@dataclass
class Load:
    """What to send: each request takes the next of ``paths`` (each used
    once, e.g. one fresh token per request) or ``path`` when there are none."""

    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    paths: list[str] = field(default_factory=list)


@dataclass
class Result:
    requests: int
    seconds: float
    #: responses whose status was not the expected one, or failed connections
    errors: int
    #: latency percentile (as in PERCENTILES) → µs
    latency_us: dict[float, float]
    loadgen_cpu: float | None = None  # share of one core the generator used

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def which() -> str:
    """``wrk`` if installed, else ``python``."""
    return "wrk" if shutil.which("wrk") else "python"


# -- wrk ---------------------------------------------------------------------

_WRK_SCRIPT = """
wrk.method = {method}
wrk.body = {body}
{headers}
local paths = {{}}
local i = 0
init = function(args)
  if args[1] then for line in io.lines(args[1]) do paths[#paths + 1] = line end end
end
request = function()
  if #paths == 0 then return wrk.format() end
  i = i + 1
  return wrk.format(nil, paths[i])  -- past the end: the bare path, an error
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d", summary.requests, summary.duration,
                         e.connect + e.read + e.write + e.status + e.timeout))
  for _, p in ipairs({{{percentiles}}}) do io.write(string.format(" %d", latency:percentile(p))) end
  io.write("\\n")
end
"""


def _lua(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid Lua string literal here (ASCII)


def run_wrk(port: int, load: Load, seconds: float, connections: int) -> Result:
    headers = "\n".join(f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in load.headers.items())
    script = _WRK_SCRIPT.format(
        method=_lua(load.method),
        body=_lua(load.body.decode()),
        headers=headers,
        percentiles=", ".join(str(p) for p in PERCENTILES),
    )
    with tempfile.TemporaryDirectory(prefix="sso-bench-") as tmp:
        lua = os.path.join(tmp, "load.lua")
        with open(lua, "w") as f:
            f.write(script)
        args = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            lua,
            f"http://127.0.0.1:{port}{load.path}",
        ]
        if load.paths:
            paths = os.path.join(tmp, "paths.txt")
            with open(paths, "w") as f:
                f.write("\n".join(load.paths) + "\n")
            args += ["--", paths]
        out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout}{out.stderr}")
    fields = [int(x) for x in line.split()[1:]]
    requests, duration_us, errors = fields[:3]
    return Result(requests, duration_us / 1e6, errors, dict(zip(PERCENTILES, map(float, fields[3:]))))


# -- Python ------------------------------------------------------------------


def run_python(port: int, load: Load, seconds: float, connections: int, expect: int) -> Result:
    """One thread per connection, one TCP connection per request (gunicorn's
    sync workers close after each response), raw sockets."""
    head = "".join(f"{k}: {v}\r\n" for k, v in load.headers.items())
    if load.body:
        head += f"Content-Length: {len(load.body)}\r\n"
    template = f"{load.method} {{}} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}Connection: close\r\n\r\n"
    paths = iter(load.paths) if load.paths else None
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    expected = f" {expect} ".encode()
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    cpu0 = time.process_time()

    def worker() -> None:
        local: list[float] = []
        bad = 0
        while time.perf_counter() < deadline:
            if paths is None:
                path = load.path
            else:
                with lock:
                    path = next(paths, load.path)  # past the end: an error
            request = template.format(path).encode() + load.body
            t0 = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(request)
                    chunks = []
                    while chunk := sock.recv(65536):
                        chunks.append(chunk)
                reply = b"".join(chunks)
                if reply[8:13] != expected:
                    bad += 1
            except OSError:
                bad += 1
            local.append((time.perf_counter() - t0) * 1e6)
        with lock:
            latencies.extend(local)
            errors[0] += bad

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - started
    cpu = (time.process_time() - cpu0) / elapsed
    latencies.sort()
    pct = (
        {p: latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] for p in PERCENTILES}
        if latencies
        else {p: 0.0 for p in PERCENTILES}
    )
    return Result(len(latencies), elapsed, errors[0], pct, cpu)


def run(generator: str, port: int, load: Load, seconds: float, connections: int, expect: int) -> Result:
    if generator == "wrk":
        return run_wrk(port, load, seconds, connections)
    return run_python(port, load, seconds, connections, expect)


def wait_until_serving(port: int, timeout: float = 30) -> None:
    """Wait until a server answers HTTP on ``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(16).startswith(b"HTTP/"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no server answered on port {port}")
        time.sleep(0.1)
