"""A real redis-server (or valkey-server), run as a child process on a free
loopback port.

:data:`REDIS` and :data:`VALKEY` are the two server flavours the tests run
on. Each names its server and command-line client, and
:meth:`Flavour.check` makes sure a started server is the one asked for: a
``redis-server`` that is Valkey in disguise (a compatibility symlink) would
otherwise pass the Redis runs off as tested on Redis.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import tempfile
import time
import typing as t

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass(frozen=True)
class Flavour:
    """A Redis-compatible server: its programs, and how to get them."""

    name: str
    server: str
    cli: str
    install: str

    def require(self, cli: bool = False) -> None:
        """Raise a :class:`RuntimeError` saying how to install the server
        (and, with ``cli``, its command-line client) when missing."""
        programs = (self.server, self.cli) if cli else (self.server,)
        missing = [program for program in programs if shutil.which(program) is None]
        if missing:
            raise RuntimeError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: {self.install}"
            )

    def version(self) -> str | None:
        """``server --version``'s version (``7.0.15``), or None when missing."""
        if shutil.which(self.server) is None:
            return None
        try:
            output = subprocess.run(
                [self.server, "--version"], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError) as e:
            return f"unknown ({e})"
        return next(
            (word[2:] for word in output.split() if word.startswith("v=")), output.strip() or "unknown"
        )

    def check(self, client: redis.Redis, where: str) -> None:
        """Raise a :class:`RuntimeError` unless the server ``client`` talks
        to is this flavour. Valkey answers ``INFO`` with ``valkey_version``
        (and ``redis_version:7.2.4``, the Redis it forked from); Redis
        has no ``valkey_version``."""
        info = t.cast(dict[str, t.Any], client.info("server"))
        actual = "valkey" if "valkey_version" in info else "redis"
        if actual != self.name:
            version = info.get(f"{actual}_version")
            raise RuntimeError(f"{self.server} on {where} is {actual} {version}, not {self.name}")


REDIS = Flavour("redis", "redis-server", "redis-cli", "run scripts/setup")
VALKEY = Flavour(
    "valkey",
    "valkey-server",
    "valkey-cli",
    "run scripts/setup valkey (on Debian 12 it enables bookworm-backports), "
    'or deselect the Valkey runs with -m "not valkey"',
)
FLAVOURS = {flavour.name: flavour for flavour in (REDIS, VALKEY)}


class RedisServer:
    """Start, stop and restart one ``redis-server`` (or, with
    ``flavour=VALKEY``, ``valkey-server``) without persistence."""

    def __init__(self, flavour: Flavour = REDIS) -> None:
        flavour.require()
        self.flavour = flavour
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"sso-{flavour.name}-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.flavour.server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.2, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.flavour.server} did not start on port {self.port}") from None
                time.sleep(0.02)
        try:
            self.flavour.check(client, f"port {self.port}")
        except RuntimeError:
            self.stop()
            raise
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def remove(self) -> None:
        """Stop, and delete the working folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
