"""The laboratory every proof runs in: real redis-servers, one real WSGI
server (gunicorn by default, waitress on request) serving several
configurations of the middleware side by side, a plain HTTP client, and the
canary registry that collects every secret the proof sees."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.parse
from pathlib import Path

import redis

from sso_middleware.credentials import hash_secret
from tests.support.redis_server import RedisServer, free_port

from . import registry
from .canary import Canary

ROOT = Path(__file__).resolve().parents[1]

SSO_PATH = "/oauth/singlesignon.php"
API_PATH = "/includes/api.php"
TOKEN_PATH = "/oauth/token.php"
LOGOUT_PATH = "/logout"
COOKIE_NAME = "__Host-sso_session"
API_IDENTIFIER = "proof"
#: Every load variant raises the redemption and authentication limits: all
#: proof traffic comes from one loopback address. The limits themselves are
#: proven in tests/test_rate_limits.py.
HIGH_LIMIT = [10**7, 600]


def log(message: str) -> None:
    """Progress to stderr (the figures table goes to stdout)."""
    print(f"[proof] {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    start: float
    end: float

    @property
    def elapsed(self) -> float:
        return self.end - self.start

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def cookie(self) -> str | None:
        """The session cookie this response sets (not a deletion), if any."""
        for key, value in self.headers:
            if key.lower() == "set-cookie" and value.startswith(COOKIE_NAME + "="):
                cookie = value.split(";", 1)[0].split("=", 1)[1]
                if cookie:
                    return cookie
        return None

    def json(self) -> t.Any:
        return json.loads(self.body)


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: t.Mapping[str, str] | None = None,
    timeout: float = 30,
) -> Response:
    """One request on a fresh connection; raises OSError for transport errors."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    start = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
        return Response(response.status, response.getheaders(), data, start, time.monotonic())
    finally:
        conn.close()


def form(fields: t.Mapping[str, t.Any]) -> tuple[bytes, dict[str, str]]:
    return (urllib.parse.urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"})


class Redises:
    """The redis-servers of one run. Each is scanned for canaries before it
    stops (a killed server is scanned just before the kill)."""

    def __init__(self, canary: Canary):
        self.canary = canary
        self.servers: list[RedisServer] = []

    def start(self) -> RedisServer:
        server = RedisServer()
        server.start()
        self.servers.append(server)
        return server

    def client(self, server: RedisServer, **kwargs: t.Any) -> redis.Redis:
        return redis.Redis(
            port=server.port,
            socket_timeout=kwargs.pop("socket_timeout", 2),
            socket_connect_timeout=2,
            **kwargs,
        )

    def scan(self, server: RedisServer, where: str) -> None:
        if server.process is None:
            return
        client = self.client(server)
        try:
            self.canary.scan_redis(client, where)
        finally:
            client.close()

    def kill(self, server: RedisServer) -> None:
        """SIGKILL, as a crash would; the data is gone (no persistence)."""
        assert server.process is not None
        server.process.kill()
        server.process.wait(10)
        server.process = None

    def stop_all(self) -> None:
        for server in self.servers:
            try:
                self.scan(server, f"redis:{server.port}")
            finally:
                server.stop()
                shutil.rmtree(server.dir, ignore_errors=True)
        self.servers.clear()


class AppServer:
    """One WSGI server process serving the variants of :mod:`proof.app`,
    each under its own path prefix (``/main``, ``/control``, ...)."""

    def __init__(
        self,
        variants: dict[str, dict[str, t.Any]],
        workdir: Path,
        canary: Canary,
        *,
        kind: str = "gunicorn",
        workers: int = 2,
        threads: int = 32,
    ):
        self.variants = variants
        self.workdir = workdir
        self.canary = canary
        self.kind = kind
        self.workers = workers
        self.threads = threads
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.app_log = workdir / "app-log.jsonl"
        self.server_log = workdir / f"{kind}.log"
        self.base = f"http://127.0.0.1:{self.port}"

    def system_url(self, variant: str) -> str:
        return f"{self.base}/{variant}"

    def start(self) -> None:
        config = {
            "log_path": str(self.app_log),
            "variants": {
                name: {**options, "system_url": self.system_url(name)}
                for name, options in self.variants.items()
            },
        }
        env = {**os.environ, "SSO_PROOF_CONFIG": json.dumps(config), "PYTHONPATH": str(ROOT)}
        if self.kind == "gunicorn":
            command = [
                sys.executable,
                "-m",
                "gunicorn",
                "--worker-class",
                "gthread",
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--backlog",
                "2048",
                "--timeout",
                "30",
                "--graceful-timeout",
                "3",
                # the README's advice: the path only, never the query with its token
                "--access-logfile",
                "-",
                "--access-logformat",
                "%(m)s %(U)s %(s)s %(L)s",
                "--error-logfile",
                "-",
                "proof.app:create()",
            ]
        elif self.kind == "waitress":
            command = [
                sys.executable,
                "-m",
                "waitress",
                f"--listen=127.0.0.1:{self.port}",
                f"--threads={self.threads}",
                "--backlog=2048",
                "--call",
                "proof.app:create",
            ]
        else:
            raise ValueError(f"unknown server {self.kind!r}")
        with open(self.server_log, "ab") as output:
            self.process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=self.workdir
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if http_request(self.port, "GET", "/main/healthz", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.kind} did not start:\n" + self.server_log.read_text())
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None

    def request(self, method: str, variant: str, path: str, **kwargs: t.Any) -> Response:
        return http_request(self.port, method, f"/{variant}{path}", **kwargs)

    def mint(self, variant: str, **inputs: t.Any) -> tuple[str, str]:
        """CreateSsoToken over HTTP; returns (token, path of the link)."""
        body, headers = form(
            {
                "action": "CreateSsoToken",
                "identifier": API_IDENTIFIER,
                "secret": self.canary.api_secret,
                "responsetype": "json",
                "client_id": 1,
                **inputs,
            }
        )
        response = self.request("POST", variant, API_PATH, body=body, headers=headers)
        if response.status != 200:
            raise RuntimeError(f"minting failed: {response.status} {response.body[:200]!r}")
        return self.take_token(response, variant)

    def take_token(self, response: Response, variant: str) -> tuple[str, str]:
        data = response.json()
        token = data["access_token"]
        self.canary.add(token)
        link = data["redirect_url"]
        assert link.startswith(self.base), link
        return token, link[len(self.base) :]

    def worker_boots(self) -> int:
        """How many times gunicorn booted a worker (a restart shows as more
        boots than workers)."""
        if self.kind != "gunicorn" or not self.server_log.exists():
            return self.workers
        return self.server_log.read_text(errors="replace").count("Booting worker")

    def access_times(self) -> list[tuple[str, str, int, float]]:
        """(method, path, status, seconds) of every request gunicorn logged."""
        rows = []
        if not self.server_log.exists():
            return rows
        for line in self.server_log.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[2].isdigit():
                try:
                    rows.append((parts[0], parts[1], int(parts[2]), float(parts[3])))
                except ValueError:
                    pass
        return rows


class Lab:
    """Everything a proof run shares: a scratch folder, the canary
    registry, the main Redis and (lazily) the app server."""

    def __init__(self, *, quick: bool, server_kind: str = "gunicorn", workdir: Path | None = None):
        self.quick = quick
        self.server_kind = server_kind
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="sso-proof-"))
        self.canary = Canary()
        self.secret_key = self.canary.new_secret("signing key")
        self.canary.api_secret = self.canary.new_secret("admin API secret")
        self.redises = Redises(self.canary)
        self.redis = self.redises.start()
        #: The Redis that the fault proof kills and restarts.
        self.fault_redis = self.redises.start()
        self.extra: dict[str, t.Any] = {}  # proxies and the like, set by the parts' fixtures
        self._server: AppServer | None = None

    @property
    def api_secret(self) -> str:
        return self.canary.api_secret

    def variant(self, **options: t.Any) -> dict[str, t.Any]:
        return {
            "redis_url": self.redis.url,
            "secret_key": self.secret_key,
            "api_identifier": API_IDENTIFIER,
            "api_secret_hash": hash_secret(self.api_secret),
            "limit": HIGH_LIMIT,
            **options,
        }

    def variants(self) -> dict[str, dict[str, t.Any]]:
        return {
            # the product's defaults (but the raised limits)
            "main": self.variant(),
            # single use alone: replays do not end the winner's session
            "single": self.variant(revoke_on_replay=False, prefix="single:"),
            # the deliberately broken GET-then-SET redemption, proof only
            "control": self.variant(token_store="get_then_set", prefix="control:"),
            "ttl1": self.variant(ttl=1, prefix="ttl1:"),
            # a user store that takes 0.3 s to answer get_account
            "slow": self.variant(user_store_delay=0.3, prefix="slow:"),
            "short": self.variant(idle_timeout=1, absolute_timeout=2, prefix="short:"),
            "revoke": self.variant(prefix="revoke:"),
            # the parts' own (the fault proof's), see proof.registry
            **registry.registered_variants(self),
        }

    @property
    def server(self) -> AppServer:
        if self._server is None:
            registry.run_fixtures(self)
            self._server = AppServer(self.variants(), self.workdir, self.canary, kind=self.server_kind)
            log(f"starting {self.server_kind} on port {self._server.port}")
            self._server.start()
        return self._server

    def close(self) -> None:
        try:
            if self._server is not None:
                self._server.stop()
        finally:
            for item in self.extra.values():
                stop = getattr(item, "stop", None)
                if stop is not None:
                    stop()
            self.redises.stop_all()

    def cleanup(self) -> None:
        """Remove the scratch folder (logs); call after :meth:`close`."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def scan_logs(self) -> None:
        """Feed the server's logs to the canary."""
        if self._server is not None:
            for path in (self._server.app_log, self._server.server_log):
                if path.exists():
                    self.canary.scan_text(path.read_text(errors="replace"), str(path.name))
