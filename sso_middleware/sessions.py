"""
Sessions
========

What a successful sign-on leaves behind: a server-side session record and a
cookie that names it.

A redeemed token turns into its session: the store swaps the token's record
for the session's in one atomic step (see
:class:`~sso_middleware.stores.TokenStore`), so a sign-on costs one write
and a replayed link finds, and can end, the session its first use started.
The record holds only the SHA-256 digest of a fresh 256-bit session secret;
the cookie carries the secret, the record's key, the user and account ids
and the sign-on time, signed with :class:`itsdangerous.Signer` (a salt of
its own, a list of keys for rotation). A leaked Redis dump therefore yields
no usable cookie; and with the ids in the cookie (readable by its owner, not
changeable) a request reads its session and its account's end time in one
round trip.

A session ends when its record does: an idle timeout (the record's TTL,
extended on every use), an absolute one (the sign-on time in the cookie),
logout (the record is marked ended) or :meth:`SessionManager.end_account`
(a per-account time before which sessions count as ended, read along with
the record in the same round trip).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import typing as t
from dataclasses import dataclass, field

from itsdangerous import BadSignature, Signer
from werkzeug.http import dump_cookie
from werkzeug.wrappers import Response

from .exceptions import ConfigurationError
from .stores import SESSION_MARK, TokenStore
from .tokens import new_token, token_key

#: A cookie's signed payload: the token's key, the session secret, the user
#: and account ids and the sign-on time in milliseconds.
_PAYLOAD = re.compile(rb"([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})\.(0|[1-9][0-9]{0,17})"
                      rb"\.(0|[1-9][0-9]{0,17})\.([1-9][0-9]{0,15})")

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

    #: Its record's key in the store: that of the token it was redeemed from.
    key: str
    identity: Identity
    #: UNIX time of the sign-on in milliseconds.
    created_ms: int


@dataclass(frozen=True, slots=True)
class Redemption:
    """The outcome of spending a token: if it was unspent, a new session
    that no cookie names yet."""

    #: What the token's key held: its record (the new session now stands
    #: in its place), a session record (the token was used before) or
    #: ``None`` (unknown or expired).
    found: bytes | None
    key: str
    #: The session secret, whose digest is the session record.
    secret: str = field(repr=False)
    #: UNIX time in milliseconds, taken before the store was asked.
    created_ms: int

    @property
    def replayed(self) -> bool:
        """Whether the token had been redeemed before."""
        return self.found is not None and self.found.startswith(SESSION_MARK)


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

    :param store: where tokens turn into session records.
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
        store: TokenStore,
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
        self.signer = Signer(check_secret_keys(secret_keys), salt=self.salt, digest_method=hashlib.sha256)
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self.secure = secure
        self.cookie_name = cookie_name
        self.clock = clock
        # The attributes, from werkzeug once rather than per sign-on: a
        # cookie value (base64url, digits, dots) never needs quoting.
        self._cookie_attributes = dump_cookie(
            cookie_name, "", path="/", secure=secure, httponly=True, samesite="Lax").partition(";")[2]

    def redeem(self, key: str, *, end_found: bool) -> Redemption:
        """Spend the token stored under ``key``: one atomic step that puts a
        new session in its place if it was unspent. With ``end_found``, a
        session found there instead (a replay) is ended."""
        secret = new_token()
        record = SESSION_MARK + token_key(secret).encode("ascii")
        created_ms = int(self.clock() * 1000)  # before the write: an end_account() after the write ends it
        found = self.store.redeem(key, record, self.idle_timeout, end_found)
        return Redemption(found, key, secret, created_ms)

    def cookie_value(self, redemption: Redemption, identity: Identity, issued_at_ms: int) -> str:
        """The signed cookie value naming the session of ``redemption``,
        once its record was checked and ``identity`` may sign in.

        The session counts from its token's issue time (``issued_at_ms``,
        if earlier than the redemption), so ending an account's sessions
        also ends the sign-ons of links minted before it."""
        since = min(redemption.created_ms, issued_at_ms)
        payload = f"{redemption.key}.{redemption.secret}.{identity.user_id}.{identity.client_id}.{since}"
        return self.signer.sign(payload).decode("ascii")

    def resume(self, cookie_value: str) -> Session | None:
        """Return the live session a cookie names, or ``None`` for a cookie
        that is forged, malformed, expired, from a removed key or for an
        ended session. Raises
        :class:`~sso_middleware.exceptions.StoreUnavailable`."""
        try:
            payload = _PAYLOAD.fullmatch(self.signer.unsign(cookie_value))
        except BadSignature:
            return None
        if payload is None:  # signed by us, but not in this release's shape
            return None
        key, secret, user_id, client_id, created_ms = payload.groups()
        created = int(created_ms)
        if self.clock() * 1000 - created > self.absolute_timeout * 1000:
            return None
        record, ended_until = self.store.resume(key.decode(), self.idle_timeout, client_id.decode())
        expected = SESSION_MARK + token_key(secret.decode()).encode("ascii")
        if record is None or not hmac.compare_digest(record, expected):
            return None
        if created <= ended_until:
            # Ended with its account: end the record too (once), so the
            # session stays over even when the account's end time expires.
            self.store.end(key.decode())
            return None
        return Session(key.decode(), Identity(int(user_id), int(client_id)), created)

    def end(self, session: Session | Redemption) -> None:
        """End a session server-side (or the new session of a redemption
        whose cookie will not be sent); its cookie stops working everywhere."""
        self.store.end(session.key)

    def end_account(self, client_id: int) -> None:
        """End every session of an account, wherever its cookies are, and
        the sign-ons of links minted for it so far. Call it once the
        account's new state is what the user store answers, or a sign-on
        in between may start after it."""
        at_ms = int(self.clock() * 1000)
        self.store.end_account(str(client_id), at_ms, self.absolute_timeout)
        # Return once that millisecond is over: a link minted after this
        # call (issue times are in milliseconds) then counts as later.
        time.sleep(min(0.001, max(0.0, (at_ms + 1) / 1000 - self.clock())))

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
        return "Set-Cookie", f"{self.cookie_name}={value};{self._cookie_attributes}"

    def clearing_header(self) -> tuple[str, str]:
        """The ``Set-Cookie`` header that removes the session cookie, with
        the attributes it was set with."""
        return "Set-Cookie", dump_cookie(
            self.cookie_name, "", max_age=0, expires=0, path="/", secure=self.secure,
            httponly=True, samesite="Lax")

    def clear_cookie(self, response: Response) -> None:
        """Remove the session cookie from the browser along with ``response``."""
        response.headers.add(*self.clearing_header())
