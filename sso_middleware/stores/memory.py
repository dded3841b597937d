"""
In-memory stores
================

For development and single-process deployments: the demo runs on these when
no Redis URL is given. They keep the same guarantees as the Redis stores
within one process (atomic burn under threads, expiry), and lose everything
on restart. Several worker processes each get their own, so a token minted in
one cannot be redeemed in another: use :mod:`.redis` there.

.. code-block:: python

    from sso_middleware.stores.memory import MemorySessionStore, MemoryTokenStore

    token_store, session_store = MemoryTokenStore(), MemorySessionStore()
"""

from __future__ import annotations

import threading
import time
import typing as t


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

    def add(self, key: str, record: bytes, ttl: int) -> bool:
        with self._lock:
            now = self._clock()
            if self._live(key, now) is not None:
                return False
            self._put(key, record, ttl, now)
            return True

    def burn(self, key: str) -> bytes | None:
        with self._lock:
            record = self._live(key, self._clock())
            self._data.pop(key, None)
            return record


class MemorySessionStore(_ExpiringDict):
    """A :class:`~sso_middleware.stores.SessionStore` in this process's memory.

    :param clock: returns the current time in seconds; tests may inject one.
    """

    def __init__(self, clock: t.Callable[[], float] = time.monotonic):
        super().__init__(clock)

    def save(self, key: str, record: bytes, ttl: int) -> None:
        with self._lock:
            self._put(key, record, ttl, self._clock())

    def load(self, key: str, ttl: int) -> bytes | None:
        with self._lock:
            now = self._clock()
            record = self._live(key, now)
            if record is not None:
                self._data[key] = (now + ttl, record)
            return record

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)
