"""
Sessions
========

What a successful sign-on leaves behind: a server-side session record and a
cookie that names it.

The cookie carries only an opaque random session id signed with
:class:`itsdangerous.TimestampSigner` (a salt of its own, a list of keys for
rotation, its age checked on every read). Who is signed in lives in the
:class:`~sso_middleware.stores.SessionStore`, under the id's digest, with an
idle timeout (the record's TTL, extended on every use) and an absolute one
(checked against the creation time). Deleting the record ends the session
wherever its cookie is, which a self-contained signed cookie could not do.
"""

from __future__ import annotations

import hashlib
import json
import time
import typing as t
from dataclasses import dataclass

from itsdangerous import BadSignature, TimestampSigner
from werkzeug.http import dump_cookie
from werkzeug.wrappers import Response

from .exceptions import ConfigurationError, Denied
from .stores import SessionStore
from .tokens import TOKEN_PATTERN, new_token, token_key

#: Shortest accepted signing key, in bytes.
MIN_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is signed in: what the wrapped app gets to see."""

    user_id: int
    client_id: int


@dataclass(frozen=True, slots=True)
class Session:
    """A live session."""

    #: The session id's digest, the record's name in the store.
    key: str
    identity: Identity
    #: UNIX time of the sign-on, for the absolute timeout.
    created_at: float


def check_secret_keys(secret_keys: t.Sequence[str | bytes]) -> list[bytes]:
    """Validate signing keys (oldest first, newest last) and return them as
    bytes. Raises :class:`ConfigurationError` for an empty list or a key
    shorter than :data:`MIN_KEY_BYTES`."""
    if isinstance(secret_keys, (str, bytes)) or not secret_keys:
        raise ConfigurationError(
            "secret_keys must be a non-empty list of keys, oldest first;"
            ' make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    keys = [k.encode() if isinstance(k, str) else k for k in secret_keys]
    for i, key in enumerate(keys):
        if len(key) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"secret_keys[{i}] is {len(key)} bytes; each key needs at least"
                f" {MIN_KEY_BYTES} (make one with secrets.token_urlsafe(32))"
            )
    return keys


class SessionManager:
    """Starts, resumes and ends sessions, and writes their cookie.

    :param store: where session records live.
    :param secret_keys: signing keys, oldest first; new cookies are signed
        with the last, cookies signed with any listed key are accepted. To
        rotate, append a new key, and drop the oldest once
        ``absolute_timeout`` has passed.
    :param idle_timeout: seconds without a request after which a session ends.
    :param absolute_timeout: seconds after sign-on after which a session ends
        however active it is.
    :param secure: send the cookie over HTTPS only. Switch off for plain-HTTP
        development only.
    :param cookie_name: defaults to ``__Host-sso_session`` (the prefix makes
        browsers refuse it unless ``Secure``, ``Path=/`` and host-only), or
        ``sso_session`` when ``secure`` is off.
    :param clock: returns UNIX time; tests may inject one.
    """

    #: Salt of the cookie signature, so no other signature made with the same
    #: keys is accepted as a session cookie.
    salt = "sso_middleware.session"

    def __init__(
        self,
        store: SessionStore,
        secret_keys: t.Sequence[str | bytes],
        *,
        idle_timeout: int = 30 * 60,
        absolute_timeout: int = 12 * 60 * 60,
        secure: bool = True,
        cookie_name: str | None = None,
        clock: t.Callable[[], float] = time.time,
    ):
        if not (type(idle_timeout) is int and type(absolute_timeout) is int
                and 0 < idle_timeout <= absolute_timeout):
            raise ConfigurationError(
                "idle_timeout and absolute_timeout must be whole seconds, idle_timeout"
                f" positive and at most absolute_timeout (got {idle_timeout!r} and {absolute_timeout!r})"
            )
        if cookie_name is None:
            cookie_name = "__Host-sso_session" if secure else "sso_session"
        elif cookie_name.startswith(("__Host-", "__Secure-")) and not secure:
            raise ConfigurationError(
                f"cookie_name {cookie_name!r}: browsers drop __Host-/__Secure- cookies"
                " without Secure; choose another name or keep secure on"
            )
        self.store = store
        self.signer = TimestampSigner(
            check_secret_keys(secret_keys), salt=self.salt, digest_method=hashlib.sha256
        )
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self.secure = secure
        self.cookie_name = cookie_name
        self.clock = clock

    @staticmethod
    def new_id() -> tuple[str, str]:
        """A fresh session id and its key, for :meth:`start`. Made apart so a
        caller can name the key before the session exists."""
        session_id = new_token()
        return session_id, token_key(session_id)

    def start(self, identity: Identity, session_id: str) -> tuple[Session, str]:
        """Create a session with an id from :meth:`new_id`; return it and
        its cookie value. Raises :class:`Denied` if the id was revoked
        meanwhile (a replay of the token being redeemed)."""
        session = Session(token_key(session_id), identity, self.clock())
        record = json.dumps([identity.user_id, identity.client_id, session.created_at])
        if not self.store.save(session.key, record.encode(), self.idle_timeout,
                               str(identity.client_id), self.absolute_timeout):
            # a replay of this token revoked the session before it started
            raise Denied(f"Unable to authenticate with Single Sign-On token for User ID: {identity.user_id}")
        return session, self.signer.sign(session_id).decode("ascii")

    def resume(self, cookie_value: str) -> Session | None:
        """Return the live session a cookie names, or ``None`` for a cookie
        that is forged, expired, from a removed key or for an ended session.
        Raises :class:`~sso_middleware.exceptions.StoreUnavailable`."""
        try:
            session_id = self.signer.unsign(cookie_value, max_age=self.absolute_timeout)
        except BadSignature:
            return None
        if not TOKEN_PATTERN.fullmatch(session_id.decode("ascii", "replace")):
            return None
        key = token_key(session_id.decode("ascii"))
        data = self.store.load(key, self.idle_timeout)
        if not data:  # none, or revoked before it started
            return None
        try:
            user_id, client_id, created_at = json.loads(data)
        except (TypeError, ValueError):
            return None
        if self.clock() - created_at > self.absolute_timeout:
            self.store.delete(key)
            return None
        return Session(key, Identity(user_id, client_id), created_at)

    def end(self, session: Session) -> None:
        """End a session server-side; its cookie stops working everywhere."""
        self.store.delete(session.key)

    def revoke(self, key: str, ttl: int) -> None:
        """End the session stored under ``key``, or keep it from starting if
        its sign-on is still under way (for ``ttl`` seconds)."""
        self.store.revoke(key, ttl)

    def end_account(self, client_id: int) -> int:
        """End every session of an account; return how many were live."""
        return self.store.delete_account(str(client_id))

    def read_cookie(self, environ: t.Mapping[str, t.Any]) -> str | None:
        """Return this middleware's cookie value from a request, if any."""
        header: str = environ.get("HTTP_COOKIE", "")
        if self.cookie_name not in header:
            return None
        # A plain scan rather than werkzeug's full parse: this runs on every
        # request with cookies, our values are never quoted, and bytes that
        # are not UTF-8 (another app's cookie) cannot make it fail.
        for pair in header.split(";"):
            name, _, value = pair.partition("=")
            if name.strip() == self.cookie_name:
                value = value.strip()
                if len(value) > 1 and value[0] == value[-1] == '"':  # RFC 6265 allows quotes
                    value = value[1:-1]
                return value
        return None

    def cookie_header(self, value: str) -> tuple[str, str]:
        """The ``Set-Cookie`` header of the session cookie: host-only,
        ``Path=/``, ``HttpOnly``, ``SameSite=Lax`` (``Strict`` would drop it
        on the cross-site landing from the trusted system) and ``Secure``
        unless switched off. A browser-session cookie: the server record
        decides how long it lives."""
        return "Set-Cookie", dump_cookie(
            self.cookie_name, value, path="/", secure=self.secure, httponly=True, samesite="Lax")

    def clearing_header(self) -> tuple[str, str]:
        """The ``Set-Cookie`` header that removes the session cookie, with
        the attributes it was set with."""
        return "Set-Cookie", dump_cookie(
            self.cookie_name, "", max_age=0, expires=0, path="/", secure=self.secure,
            httponly=True, samesite="Lax")

    def clear_cookie(self, response: Response) -> None:
        """Remove the session cookie from the browser along with ``response``."""
        response.headers.add(*self.clearing_header())
