"""
Stores
======

Where tokens and the sessions they become, rate-limit counters and OAuth
credential sets live. Each kind of store is a small protocol with two
implementations: :mod:`.redis` for production (any number of processes and
machines) and :mod:`.memory` for a single development process.

Stores see only opaque keys (digests, never a raw token or session id) and
opaque byte records (the token store tells session records apart by their
first byte, :data:`SESSION_MARK`); what a record means is the business of :mod:`..tokens`,
:mod:`..sessions` and :mod:`..oauth`.

A deployment hands the middleware one :class:`Stores` bundle:

.. code-block:: python

    Stores.redis("redis://localhost:6379/0")   # production
    Stores.memory()                           # one development process
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from .protocols import SESSION_MARK as SESSION_MARK
from .protocols import CounterStore as CounterStore
from .protocols import CredentialStore as CredentialStore
from .protocols import TokenStore as TokenStore


@dataclass(frozen=True)
class Stores:
    """The three stores of a deployment. Mix implementations freely, e.g.
    ``dataclasses.replace(Stores.redis(url), counters=...)``."""

    tokens: TokenStore
    counters: CounterStore
    credentials: CredentialStore

    @classmethod
    def redis(
        cls, url_or_client: t.Any, *, prefix: str | None = None, wait: tuple[int, int] | None = None
    ) -> Stores:
        """All three in Redis: a URL (see :func:`.redis.connect`) or a client
        from :func:`.redis.connect`, :func:`.redis.connect_sentinel` or
        :func:`.redis.connect_cluster`. ``wait=(replicas, milliseconds)``
        makes every mint and redemption wait for replicas (see
        :class:`.redis.RedisTokenStore`)."""
        from . import redis as impl

        client = impl.connect(url_or_client) if isinstance(url_or_client, str) else url_or_client
        options = {} if prefix is None else {"prefix": prefix}
        return cls(
            impl.RedisTokenStore(client, wait=wait, **options),
            impl.RedisCounterStore(client, **options),
            impl.RedisCredentialStore(client, **options),
        )

    @classmethod
    def memory(cls) -> Stores:
        """All three in this process's memory."""
        from . import memory as impl

        return cls(impl.MemoryTokenStore(), impl.MemoryCounterStore(), impl.MemoryCredentialStore())
