"""
Rate limits
===========

Failed attempts (redemptions of bad tokens, wrong client secrets) are counted
per remote address and per client identifier in fixed windows, in a shared
:class:`~sso_middleware.stores.CounterStore`. The attempt after the limit is
answered 429 with ``Retry-After``; nothing is locked for good, the window
simply runs out.

Only failures touch the store: a successful sign-on costs no extra round
trip. Each process also remembers which keys are over their limit until the
window ends, and refuses them before doing any work; a process that has not
seen a key's failures yet learns it on the next one.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
import typing as t
from dataclasses import dataclass

from .audit import logger
from .exceptions import ConfigurationError
from .stores import CounterStore

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``attempts`` failures per ``window`` seconds."""

    attempts: int
    window: int

    def __post_init__(self) -> None:
        if not (
            type(self.attempts) is int and type(self.window) is int and self.attempts > 0 and self.window > 0
        ):
            raise ConfigurationError(f"a rate limit needs positive whole numbers; got {self!r}")


class RateLimiter:
    """Counts failures of one kind and says when a key must wait.

    :param store: where the counts live.
    :param limit: the allowed failures per window.
    :param scope: a name that keeps this limiter's keys apart from others'.
    :param clock: returns monotonic seconds; tests may inject one.
    """

    def __init__(
        self, store: CounterStore, limit: Limit, scope: str, clock: t.Callable[[], float] = time.monotonic
    ):
        self.store = store
        self.limit = limit
        self.scope = scope
        self.clock = clock
        self._blocked: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int | None:
        """Seconds ``key`` must still wait, if this process knows it is over
        its limit; ``None`` otherwise. Never asks the store."""
        key = _digest(key)
        until = self._blocked.get(key)
        if until is None:
            return None
        left = until - self.clock()
        if left <= 0:
            with self._lock:
                self._blocked.pop(key, None)
            return None
        return max(1, round(left))

    def failed(self, key: str) -> int | None:
        """Count a failure for ``key``. Return the seconds to wait when this
        failure is beyond the limit, else ``None``. Raises
        :class:`~sso_middleware.exceptions.StoreUnavailable`."""
        key = _digest(key)
        count, seconds_left = self.store.hit(f"{self.scope}:{key}", self.limit.window)
        if count <= self.limit.attempts:
            return None
        with self._lock:
            now = self.clock()
            for stale in [k for k, until in self._blocked.items() if until <= now]:
                del self._blocked[stale]
            self._blocked[key] = now + seconds_left
        return seconds_left


class AuthFailures:
    """Failed client authentications, limited per client identifier and per
    remote address; shared by the admin API and the token endpoint. Only
    failures are counted: a right secret always passes, so no one can lock a
    client out by failing in its name."""

    def __init__(self, per_client: RateLimiter, per_address: RateLimiter):
        self.per_client = per_client
        self.per_address = per_address

    def failed(self, identifier: str, address: str) -> int | None:
        """Count a failure; return the seconds to wait if either limit is
        passed (already known, or by this failure), else ``None``. Raises
        :class:`~sso_middleware.exceptions.StoreUnavailable`."""
        wait = (
            self.per_client.retry_after(identifier)
            or self.per_address.retry_after(address)
            or max(self.per_client.failed(identifier) or 0, self.per_address.failed(address) or 0)
        )
        return wait or None


def _digest(key: str) -> str:
    """A short fixed-size name for a key: identifiers are client-chosen, so
    they may be long or odd."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def remote_address(environ: WSGIEnvironment, trusted_proxies: int) -> str:
    """The client's address: ``REMOTE_ADDR``, or, behind ``trusted_proxies``
    proxies that each append to ``X-Forwarded-For``, the address the
    outermost trusted proxy saw. Entries a client put in the header itself
    are never used."""
    if trusted_proxies:
        header = str(environ.get("HTTP_X_FORWARDED_FOR", ""))
        forwarded = [a.strip() for a in header.split(",") if a.strip()]
        if len(forwarded) >= trusted_proxies:
            return forwarded[-trusted_proxies]
    elif "HTTP_X_FORWARDED_FOR" in environ:
        _warn_untrusted_forwarding()
    return str(environ.get("REMOTE_ADDR", ""))


@functools.cache
def _warn_untrusted_forwarding() -> None:
    """Say once per process that requests arrive through a proxy nobody
    declared: then every user shares the proxy's address, and one address
    over its limit is all of them."""
    logger.warning(
        "Requests carry X-Forwarded-For but trusted_proxies is 0: every client is counted as the"
        " proxy's address (REMOTE_ADDR) for rate limits and audit lines. Set trusted_proxies to the"
        " number of proxies in front of the app (or remove the header if no proxy adds it).",
        extra={"sso_event": "untrusted_forwarding"},
    )
