"""The contracts every store fulfils."""

from __future__ import annotations

import typing as t

#: Starts every session record; token records never start with it. A
#: session record that is this byte alone is an ended session.
SESSION_MARK = b"!"


@t.runtime_checkable
class TokenStore(t.Protocol):
    """Keeps single-use tokens and the sessions they turn into.

    A sign-on lives under one key from start to end: minted as a token
    record, it becomes a session record (starting with
    :data:`SESSION_MARK`, followed by the token's record) in the same atomic
    step that spends the token. So a token works at most once whatever the
    concurrency, a replay finds the session its token started, a session
    record carries everything its token stood for, and a redemption costs
    one round trip.

    Sessions can also be ended in bulk by *subject* (an opaque name, such as
    an account or a user): every session of a subject that started at or
    before a given time counts as ended.

    All methods raise :class:`~sso_middleware.exceptions.StoreUnavailable`
    when the store cannot answer; they never report a guess.
    """

    def add(self, key: str, record: bytes, ttl: int) -> bool:
        """Store ``record`` under ``key`` for ``ttl`` seconds unless ``key``
        already exists. Return ``False`` on such a collision (the caller makes
        a new token), ``True`` once stored."""

    def redeem(self, key: str, session: bytes, ttl: int, end_found: bool) -> tuple[bytes | None, int]:
        """Atomically return what is stored under ``key`` and, if it is a
        token record, put ``session`` followed by that record in its place
        for ``ttl`` seconds. Along with it, in the same round trip, return
        the latest time any :meth:`end_sessions` call named (0 if none is
        recorded), so a caller knows whether it must ask :meth:`ended`.

        Of any number of concurrent calls for one key, at most one ever gets
        the token record. The others find a session record (a replay): they
        leave it as it is, expiry included, or, with ``end_found``, end it
        as :meth:`end` does. A
        call for an unknown or expired key gets ``None`` and stores nothing.
        There is no separate read: a token is spent by looking at it.
        """

    def resume(self, key: str, ttl: int, subjects: t.Sequence[str]) -> tuple[bytes | None, int]:
        """Return the session record under ``key`` (``None`` if there is
        none), pushing its expiry back to ``ttl`` seconds from now (the idle
        timeout), and the latest time in milliseconds up to which the
        sessions of any of ``subjects`` were ended (0 if never): one round
        trip, as it runs on every signed-in request. With no ``subjects``
        only the record is read, and the time is 0."""

    def ended(self, subjects: t.Sequence[str]) -> int:
        """Return the latest time in milliseconds up to which the sessions
        of any of ``subjects`` were ended (0 if never)."""

    def end(self, key: str) -> None:
        """End the session under ``key``: its record becomes
        :data:`SESSION_MARK` alone, keeping its expiry, so its token stays
        spent. A missing key is not an error and stays missing."""

    def end_sessions(self, subjects: t.Sequence[str], at_ms: int, lifetime: int) -> None:
        """Record that every session of each of ``subjects`` started at or
        before ``at_ms`` (milliseconds) has ended, for ``lifetime`` seconds
        (the most a session may live), and make ``at_ms`` the latest time
        :meth:`redeem` reports. An earlier time than one already recorded
        changes nothing, and a shorter ``lifetime`` never shortens how long
        a time already recorded is kept."""


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

    def add(self, credential_id: int, identifier: str, record: bytes) -> bool:
        """Store a new credential set, found by ``credential_id`` and by its
        client ``identifier`` (which never changes for one set), in one
        atomic step; return ``False`` (and store nothing) if either is taken
        already, so one id never names two sets."""

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
