"""
Canaries
========

Every secret the proof handles is registered here: each raw token a mint
returned, each session cookie a response set (and the session secret inside
it), each OAuth client secret, the admin API secret and the cookie-signing
key. At the end every Redis keyspace (keys and values, by type, not ``DUMP``,
whose compression could hide a value), every captured log line and every
rendered exception is searched for all of them.

Secrets are URL-safe base64 (cookies add ``.``), so a text is cut into runs
of that alphabet and each run's windows of each canary length are looked up
in a set: linear in the text, whatever the number of canaries.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import traceback
import typing as t

if t.TYPE_CHECKING:
    import redis

_RUN = re.compile(r"[A-Za-z0-9_.\-]{16,}")
_SIGNER_SALT = "sso_middleware.session"


class Canary:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lengths: set[int] = set()
        self._lock = threading.Lock()
        self.api_secret = ""
        #: (where, what kind of secret) of every hit.
        self.hits: list[tuple[str, str]] = []
        self.kinds: dict[str, str] = {}
        self.scanned: dict[str, int] = {"redis keys": 0, "log lines": 0, "exceptions": 0}

    def __len__(self) -> int:
        return len(self._secrets)

    def new_secret(self, kind: str = "secret") -> str:
        value = secrets.token_urlsafe(32)
        self.add(value, kind)
        return value

    def add(self, value: str | None, kind: str = "token") -> None:
        if not value or len(value) < 16:
            return
        with self._lock:
            self._secrets.add(value)
            self._lengths.add(len(value))
            self.kinds.setdefault(value, kind)

    def add_cookie(self, cookie: str | None) -> None:
        """A signed session cookie, and the session secret inside it (its
        second field; the first, the record's key, is a token's digest and
        rightly names the record in Redis)."""
        if not cookie:
            return
        self.add(cookie, "cookie")
        fields = cookie.split(".")
        if len(fields) > 1:
            self.add(fields[1], "session secret")

    def find(self, text: str) -> list[str]:
        found = []
        with self._lock:
            lengths = sorted(self._lengths)
            known = self._secrets
            for match in _RUN.finditer(text):
                run = match.group()
                for length in lengths:
                    if length > len(run):
                        break
                    for i in range(len(run) - length + 1):
                        if run[i : i + length] in known:
                            found.append(run[i : i + length])
        return found

    def scan_text(self, text: str, where: str) -> int:
        self.scanned["log lines"] += text.count("\n") + 1
        hits = self.find(text)
        for hit in hits:
            self.hits.append((where, self.kinds.get(hit, "secret")))
        return len(hits)

    def scan_exception(self, error: BaseException, where: str) -> int:
        """An exception as a log would render it (traceback, chained causes)."""
        self.scanned["exceptions"] += 1
        text = "".join(traceback.format_exception(error)) + repr(error) + str(error)
        hits = self.find(text)
        for hit in hits:
            self.hits.append((where, self.kinds.get(hit, "secret")))
        return len(hits)

    def scan_redis(self, client: redis.Redis, where: str) -> int:
        hits = 0
        for key in client.scan_iter(count=1000):
            self.scanned["redis keys"] += 1
            kind = client.type(key)
            if kind == b"string":
                values = [client.get(key) or b""]
            elif kind == b"hash":
                values = [b for pair in client.hgetall(key).items() for b in pair]
            elif kind == b"set":
                values = list(client.smembers(key))
            elif kind == b"list":
                values = client.lrange(key, 0, -1)
            elif kind == b"zset":
                values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
            else:
                values = [client.dump(key) or b""]
            text = b" ".join([key, *values]).decode("latin-1")
            for hit in self.find(text):
                self.hits.append((where, self.kinds.get(hit, "secret")))
                hits += 1
        return hits


class CapturingHandler(logging.Handler):
    """Keeps every record of the proof process, rendered as a log would
    (message, fields, traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record) + " " + repr(vars(record)))
        except Exception:  # a record that cannot even be rendered is itself a finding
            self.lines.append(f"UNRENDERABLE {record.msg!r}")


def figure(canary: Canary) -> t.Any:
    from .figures import Figure

    kinds: dict[str, int] = {}
    for _value, kind in canary.kinds.items():
        kinds[kind] = kinds.get(kind, 0) + 1
    where = sorted({w for w, _ in canary.hits})
    scanned = ", ".join(f"{n} {what}" for what, n in canary.scanned.items())
    return Figure(
        "11",
        "Canary scan: secrets in Redis, logs, rendered exceptions",
        f"{len(canary.hits)} hits{' in ' + ', '.join(where) if where else ''}; "
        f"{len(canary)} canaries ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}); "
        f"scanned {scanned}",
        "0 hits",
        not canary.hits,
        {"hits": canary.hits[:50], "scanned": canary.scanned},
    )
