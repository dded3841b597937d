"""
In-memory stores
================

For development and single-process deployments: the demo runs on these when
no Redis URL is given. They keep the same guarantees as the Redis stores
within one process (atomic burn under threads, expiry), and lose everything
on restart. Several worker processes each get their own, so a token minted in
one cannot be redeemed in another: use :mod:`.redis` there.

.. code-block:: python

    from sso_middleware.stores.memory import MemoryTokenStore

    token_store = MemoryTokenStore()
"""

from __future__ import annotations

import math
import threading
import time
import typing as t

from .protocols import SESSION_MARK


class _ExpiringDict:
    """A lock-guarded mapping whose entries expire; expired entries are
    dropped when read and swept every :attr:`sweep_every` writes, so memory
    stays bounded by what is live."""

    #: Writes between two sweeps of expired entries.
    sweep_every = 1024

    def __init__(self, clock: t.Callable[[], float]):
        self._clock = clock
        self._lock = threading.Lock()
        self._data: dict[str, tuple[float, bytes]] = {}
        self._writes = 0

    def _live(self, key: str, now: float) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._data[key]
            return None
        return entry[1]

    def _put(self, key: str, value: bytes, ttl: int, now: float) -> None:
        self._data[key] = (now + ttl, value)
        self._writes += 1
        if self._writes % self.sweep_every == 0:
            for k in [k for k, (exp, _) in self._data.items() if exp <= now]:
                del self._data[k]

    def __len__(self) -> int:
        with self._lock:
            now = self._clock()
            return sum(1 for exp, _ in self._data.values() if exp > now)


class MemoryTokenStore(_ExpiringDict):
    """A :class:`~sso_middleware.stores.TokenStore` in this process's memory.

    :param clock: returns the current time in seconds; tests may inject one.
    """

    def __init__(self, clock: t.Callable[[], float] = time.monotonic):
        super().__init__(clock)
        self._ended: dict[str, tuple[float, int]] = {}  # subject: (expiry, at_ms)
        self._latest = 0

    def add(self, key: str, record: bytes, ttl: int) -> bool:
        with self._lock:
            now = self._clock()
            if self._live(key, now) is not None:
                return False
            self._put(key, record, ttl, now)
            return True

    def redeem(self, key: str, session: bytes, ttl: int, end_found: bool) -> tuple[bytes | None, int]:
        with self._lock:
            now = self._clock()
            found = self._live(key, now)
            if found is not None and not found.startswith(SESSION_MARK):
                self._put(key, session + found, ttl, now)
            elif found is not None and end_found:
                self._data[key] = (self._data[key][0], SESSION_MARK)
            return found, self._latest

    def resume(self, key: str, ttl: int, subjects: t.Sequence[str]) -> tuple[bytes | None, int]:
        with self._lock:
            now = self._clock()
            record = self._live(key, now)
            if record is not None:
                self._data[key] = (now + ttl, record)
            return record, self._ended_until(subjects, now)

    def ended(self, subjects: t.Sequence[str]) -> int:
        with self._lock:
            return self._ended_until(subjects, self._clock())

    def _ended_until(self, subjects: t.Sequence[str], now: float) -> int:
        entries = [self._ended.get(subject, (now, 0)) for subject in subjects]
        return max((at_ms for expiry, at_ms in entries if expiry > now), default=0)

    def end(self, key: str) -> None:
        with self._lock:
            if self._live(key, self._clock()) is not None:
                self._data[key] = (self._data[key][0], SESSION_MARK)

    def end_sessions(self, subjects: t.Sequence[str], at_ms: int, lifetime: int) -> None:
        with self._lock:
            now = self._clock()
            for stale in [s for s, (expiry, _) in self._ended.items() if expiry <= now]:
                del self._ended[stale]
            for subject in subjects:
                expiry, recorded = self._ended.get(subject, (now, 0))
                self._ended[subject] = (max(expiry, now + lifetime), max(recorded, at_ms))
            self._latest = max(self._latest, at_ms)


class MemoryCounterStore(_ExpiringDict):
    """A :class:`~sso_middleware.stores.CounterStore` in this process's memory.

    :param clock: returns the current time in seconds; tests may inject one.
    """

    def __init__(self, clock: t.Callable[[], float] = time.monotonic):
        super().__init__(clock)

    def hit(self, key: str, window: int) -> tuple[int, int]:
        with self._lock:
            now = self._clock()
            entry = self._data.get(key)
            if entry is None or entry[0] <= now:
                self._put(key, b"1", window, now)
                return 1, window
            count = int(entry[1]) + 1
            self._data[key] = (entry[0], str(count).encode())
            return count, max(1, math.ceil(entry[0] - now))


class MemoryCredentialStore:
    """A :class:`~sso_middleware.stores.CredentialStore` in this process's
    memory: credentials vanish on restart, so for tests and the demo only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[int, tuple[str, bytes]] = {}
        self._ids: dict[str, int] = {}
        self._last_id = 0

    def next_id(self) -> int:
        with self._lock:
            self._last_id += 1
            return self._last_id

    def add(self, credential_id: int, identifier: str, record: bytes) -> bool:
        with self._lock:
            if credential_id in self._records or identifier in self._ids:
                return False
            self._records[credential_id] = (identifier, record)
            self._ids[identifier] = credential_id
            return True

    def replace(self, identifier: str, record: bytes, previous: bytes) -> bool:
        with self._lock:
            credential_id = self._ids.get(identifier)
            if credential_id is None or self._records[credential_id][1] != previous:
                return False
            self._records[credential_id] = (identifier, record)
            return True

    def get(self, identifier: str) -> bytes | None:
        with self._lock:
            credential_id = self._ids.get(identifier)
            return None if credential_id is None else self._records[credential_id][1]

    def find(self, credential_id: int) -> bytes | None:
        with self._lock:
            entry = self._records.get(credential_id)
            return None if entry is None else entry[1]

    def all(self) -> list[bytes]:
        with self._lock:
            return [record for _, record in self._records.values()]

    def delete(self, credential_id: int, identifier: str) -> None:
        with self._lock:
            self._records.pop(credential_id, None)
            self._ids.pop(identifier, None)
