"""
Instrumentation
===============

Wrappers that measure the middleware's parts from the outside, built only
when :class:`~sso_middleware.SSOMiddleware` is given ``metrics=``; without
them the stores, the endpoints and the session check are the plain objects,
so measuring nothing costs nothing.

- :func:`timed_stores` times every store call;
- :class:`TimedEndpoint` times every answer of an endpoint;
- :class:`ObservedResumes` resumes sessions as
  :meth:`SessionManager.resume <sso_middleware.sessions.SessionManager.resume>`
  does and reports how each check ended.
"""

from __future__ import annotations

import time
import typing as t

from ..sessions import Session, SessionManager
from ..stores import CounterStore, CredentialStore, Stores, TokenStore
from . import Endpoint, Metrics, StoreName

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_P = t.ParamSpec("_P")
_R = t.TypeVar("_R")


class _TimedStore:
    """Times each call to a store and reports it under the store's name."""

    #: The store's name in the ``store`` label.
    name: t.ClassVar[StoreName]

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def _time(self, operation: str, call: t.Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self.metrics.store_called(self.name, operation, time.perf_counter() - start)


class TimedTokenStore(_TimedStore):
    """A :class:`~sso_middleware.stores.TokenStore` that times each call to
    ``store``."""

    name = "tokens"

    def __init__(self, store: TokenStore, metrics: Metrics) -> None:
        super().__init__(metrics)
        #: The store measured.
        self.store = store

    def add(self, key: str, record: bytes, ttl: int) -> bool:
        return self._time("add", self.store.add, key, record, ttl)

    def redeem(self, key: str, session: bytes, ttl: int, end_found: bool) -> tuple[bytes | None, int]:
        return self._time("redeem", self.store.redeem, key, session, ttl, end_found)

    def resume(self, key: str, ttl: int, subjects: t.Sequence[str]) -> tuple[bytes | None, int]:
        return self._time("resume", self.store.resume, key, ttl, subjects)

    def ended(self, subjects: t.Sequence[str]) -> int:
        return self._time("ended", self.store.ended, subjects)

    def end(self, key: str) -> None:
        self._time("end", self.store.end, key)

    def end_sessions(self, subjects: t.Sequence[str], at_ms: int, lifetime: int) -> None:
        self._time("end_sessions", self.store.end_sessions, subjects, at_ms, lifetime)


class TimedCounterStore(_TimedStore):
    """A :class:`~sso_middleware.stores.CounterStore` that times each call."""

    name = "counters"

    def __init__(self, store: CounterStore, metrics: Metrics) -> None:
        super().__init__(metrics)
        #: The store measured.
        self.store = store

    def hit(self, key: str, window: int) -> tuple[int, int]:
        return self._time("hit", self.store.hit, key, window)


class TimedCredentialStore(_TimedStore):
    """A :class:`~sso_middleware.stores.CredentialStore` that times each
    call, keeping the one-step token grant of stores that have one."""

    name = "credentials"

    def __init__(self, store: CredentialStore, metrics: Metrics) -> None:
        super().__init__(metrics)
        #: The store measured.
        self.store = store

    def next_id(self) -> int:
        return self._time("next_id", self.store.next_id)

    def add(self, credential_id: int, identifier: str, record: bytes) -> bool:
        return self._time("add", self.store.add, credential_id, identifier, record)

    def replace(self, identifier: str, record: bytes, previous: bytes) -> bool:
        return self._time("replace", self.store.replace, identifier, record, previous)

    def get(self, identifier: str) -> bytes | None:
        return self._time("get", self.store.get, identifier)

    def find(self, credential_id: int) -> bytes | None:
        return self._time("find", self.store.find, credential_id)

    def all(self) -> list[bytes]:
        return self._time("all", self.store.all)

    def delete(self, credential_id: int, identifier: str) -> None:
        self._time("delete", self.store.delete, credential_id, identifier)

    def add_token_if_current(
        self, identifier: str, copy: bytes, tokens: t.Any, key: str, record: bytes, ttl: int
    ) -> bool | None:
        """The measured store's one-step grant (see
        :meth:`RedisCredentialStore.add_token_if_current
        <sso_middleware.stores.redis.RedisCredentialStore.add_token_if_current>`),
        given the measured token store, which it recognises; ``NotImplemented``
        if it has none, as the protocol says."""
        atomic = getattr(self.store, "add_token_if_current", None)
        if atomic is None:
            return NotImplemented  # type: ignore[no-any-return]
        inner = tokens.store if isinstance(tokens, TimedTokenStore) else tokens
        added: bool | None = self._time(
            "add_token_if_current", atomic, identifier, copy, inner, key, record, ttl
        )
        return added


def timed_stores(stores: Stores, metrics: Metrics) -> Stores:
    """``stores``, each wrapped to report the time of every call."""
    return Stores(
        TimedTokenStore(stores.tokens, metrics),
        TimedCounterStore(stores.counters, metrics),
        TimedCredentialStore(stores.credentials, metrics),
    )


class TimedEndpoint:
    """An endpoint's WSGI application that reports how long each answer
    took. Endpoints build their whole answer before returning it, so the
    time covers the work, not the sending.

    :param name: the endpoint's name in the ``endpoint`` label.
    :param app: the endpoint.
    :param metrics: where to report.
    """

    def __init__(self, name: Endpoint, app: WSGIApplication, metrics: Metrics) -> None:
        self.name: Endpoint = name
        #: The endpoint measured.
        self.app = app
        self.metrics = metrics

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        start = time.perf_counter()
        try:
            return self.app(environ, start_response)
        finally:
            self.metrics.answered(self.name, time.perf_counter() - start)


class ObservedResumes:
    """Resumes sessions with ``sessions`` and reports how each check ended
    (:meth:`SessionManager.check <sso_middleware.sessions.SessionManager.check>`),
    or that the store failed."""

    def __init__(self, sessions: SessionManager, metrics: Metrics) -> None:
        self.sessions = sessions
        self.metrics = metrics

    def resume(self, cookie_value: str) -> Session | None:
        """:meth:`SessionManager.resume
        <sso_middleware.sessions.SessionManager.resume>`, reported."""
        try:
            session, outcome = self.sessions.check(cookie_value)
        except Exception:
            self.metrics.resumed("unavailable")
            raise
        self.metrics.resumed(outcome)
        return session
