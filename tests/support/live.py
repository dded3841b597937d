"""The middleware served over real HTTP on a free loopback port (in this
process, or by gunicorn), and a browser with a cookie jar to follow its
links."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

from werkzeug.serving import make_server

from sso_middleware.credentials import hash_secret
from sso_middleware.demo import RedactingRequestHandler
from tests.support.helpers import ROOT


def placeholder(environ, start_response):
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


class Served(t.NamedTuple):
    base: str
    middleware: t.Any


class Servers:
    """Start ``make_middleware(**overrides)`` servers, each with
    ``system_url`` set to its own port; :meth:`close` stops them all."""

    def __init__(self, make_middleware: t.Callable[..., t.Any]):
        self.make_middleware = make_middleware
        self.running: list[tuple[t.Any, threading.Thread]] = []

    def __call__(self, **overrides: t.Any) -> Served:
        # the demo's handler keeps access_token values out of the access log
        server = make_server(
            "127.0.0.1", 0, placeholder, threaded=True, request_handler=RedactingRequestHandler
        )
        base = f"http://127.0.0.1:{server.server_port}"
        middleware = self.make_middleware(system_url=base, secure_cookies=False, **overrides)
        server.app = middleware
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        self.running.append((server, thread))
        return Served(base, middleware)

    def close(self) -> None:
        for server, thread in self.running:
            server.shutdown()
            server.server_close()
            thread.join(10)


def new_browser() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def follow(browser: urllib.request.OpenerDirector, url: str) -> tuple[str, dict]:
    """Open ``url`` in ``browser`` (redirects followed); the final URL and
    the echo app's JSON."""
    with browser.open(url, timeout=5) as response:
        assert response.status == 200
        return response.url, json.load(response)


def status_of(browser: urllib.request.OpenerDirector, url: str) -> int:
    try:
        with browser.open(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        with e:
            return e.code


def pipeline_args(
    port: int, public_url: str, redis_url: str, api_secret: str, *, secure_cookies: bool = True
) -> list[str]:
    """gunicorn's arguments to serve examples/pipeline.ini on
    127.0.0.1:``port`` with two workers forked after loading it, given the
    globals it reads, with ``Secure`` cookies (unless ``secure_cookies`` is
    false, for plain HTTP) and the admin API credential ``demo``, logging
    each request as "pid method path status"."""
    return [
        "--paste",
        str(ROOT / "examples" / "pipeline.ini"),
        "--pythonpath",
        str(ROOT),
        "--workers",
        "2",
        "--preload",
        "--bind",
        f"127.0.0.1:{port}",
        "--paste-global",
        f"public_url={public_url}",
        "--paste-global",
        f"redis={redis_url}",
        "--paste-global",
        f"cookies_secure={str(secure_cookies).lower()}",
        "--paste-global",
        f"admin_api_credentials=demo = {hash_secret(api_secret)}",
        "--access-logfile",
        "-",
        "--access-logformat",
        "%(p)s %(m)s %(U)s %(s)s",
    ]


@contextlib.contextmanager
def serve_process(
    command: t.Sequence[str],
    *,
    url: str,
    log: Path,
    cwd: Path = ROOT,
    env: t.Mapping[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    stop: signal.Signals = signal.SIGTERM,
) -> t.Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in ``cwd``, its output in ``log``, and yield the
    process once ``url`` answers (``context`` for HTTPS). Raises
    RuntimeError with the log if it exits or does not answer within 30
    seconds; sends it ``stop`` on the way out (killed if it lingers)."""
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1, context=context).close()
                break
            except (urllib.error.URLError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    raise RuntimeError(f"{command[0]} did not start:\n" + log.read_text()) from None
                time.sleep(0.1)
        yield process
    finally:
        process.send_signal(stop)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def serve_gunicorn(
    args: t.Sequence[str],
    *,
    url: str,
    log: Path,
    cwd: Path,
    env: t.Mapping[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> t.ContextManager[subprocess.Popen[bytes]]:
    """:func:`serve_process` of ``python -m gunicorn *args``."""
    return serve_process(
        [sys.executable, "-m", "gunicorn", *args], url=url, log=log, cwd=cwd, env=env, context=context
    )
