"""The contracts every token and session store fulfils."""

from __future__ import annotations

import typing as t


@t.runtime_checkable
class TokenStore(t.Protocol):
    """Keeps single-use token records until they are burned or expire.

    Both methods raise :class:`~sso_middleware.exceptions.StoreUnavailable`
    when the store cannot answer; they never report a guess.
    """

    def add(self, key: str, record: bytes, ttl: int) -> bool:
        """Store ``record`` under ``key`` for ``ttl`` seconds unless ``key``
        already exists. Return ``False`` on such a collision (the caller makes
        a new token), ``True`` once stored."""

    def burn(self, key: str, marker: bytes) -> bytes | None:
        """Atomically return what is stored under ``key`` and put ``marker``
        in its place for the rest of its TTL.

        Of any number of concurrent calls for one key, at most one ever gets
        the record; the others get the marker (a replay, which the caller can
        tell apart and act on), and a call for an unknown or expired key gets
        ``None``. There is no separate read: a token is spent by looking at
        it.
        """


@t.runtime_checkable
class SessionStore(t.Protocol):
    """Keeps server-side session records, so that logout and revocation are
    real even though the cookie is self-contained.

    All methods raise :class:`~sso_middleware.exceptions.StoreUnavailable`
    when the store cannot answer.
    """

    def save(self, key: str, record: bytes, ttl: int, account: str, lifetime: int) -> bool:
        """Store ``record`` under ``key`` unless ``key`` is taken (revoked
        before it started: return ``False``), expiring ``ttl`` seconds from
        now, and list it under ``account`` for at least ``lifetime`` seconds
        (the most a session may live), so :meth:`delete_account` finds it."""

    def load(self, key: str, ttl: int) -> bytes | None:
        """Return the record under ``key`` and push its expiry back to ``ttl``
        seconds from now (the idle timeout), in one step. ``None`` if there is
        no such session."""

    def delete(self, key: str) -> None:
        """End the session under ``key``; a missing key is not an error."""

    def revoke(self, key: str, ttl: int) -> None:
        """End the session under ``key`` and keep ``key`` taken by an empty
        record for ``ttl`` seconds, so a :meth:`save` racing this call fails."""

    def delete_account(self, account: str) -> int:
        """End every session listed under ``account``; return how many were
        still live."""


@t.runtime_checkable
class CounterStore(t.Protocol):
    """Counts events in fixed windows, for rate limits.

    Raises :class:`~sso_middleware.exceptions.StoreUnavailable` when the store
    cannot answer.
    """

    def hit(self, key: str, window: int) -> tuple[int, int]:
        """Count one event under ``key`` and return ``(count, seconds left)``
        of the current window. The first event starts a window of ``window``
        seconds; the count and its expiry are set in one atomic step."""


@t.runtime_checkable
class CredentialStore(t.Protocol):
    """Keeps OAuth credential sets. Unlike tokens and sessions they are
    durable: they live until deleted.

    All methods raise :class:`~sso_middleware.exceptions.StoreUnavailable`
    when the store cannot answer.
    """

    def next_id(self) -> int:
        """Return a new ``credentialId``, never handed out before."""

    def add(self, credential_id: int, identifier: str, record: bytes) -> None:
        """Store a new credential set, found by ``credential_id`` and by its
        client ``identifier`` (which never changes for one set)."""

    def replace(self, identifier: str, record: bytes, previous: bytes) -> bool:
        """Replace the record of a set if it is still ``previous``, in one
        atomic step; return ``False`` (and store nothing) if the set was
        changed or deleted meanwhile."""

    def get(self, identifier: str) -> bytes | None:
        """Return the record for a client identifier, or ``None``."""

    def find(self, credential_id: int) -> bytes | None:
        """Return the record for a ``credentialId``, or ``None``."""

    def all(self) -> list[bytes]:
        """Return every record."""

    def delete(self, credential_id: int, identifier: str) -> None:
        """Remove a credential set; a missing one is not an error."""
