"""
Sessions
========

What a successful sign-on leaves behind: a server-side session record and a
cookie that names it.

A redeemed token turns into its session: the store swaps the token's record
for the session's in one atomic step (see
:class:`~sso_middleware.stores.TokenStore`), so a sign-on costs one write
and a replayed link finds, and can end, the session its first use started.
The session record is the SHA-256 digest (128 bits of it) of a fresh
256-bit session secret followed by the token's own record, sealed with a MAC over its key
(:mod:`.sealing`): the user, the account and the sign-on time (the token's
issue time) are bound server-side, and only a holder of the deployment's
secret keys can write them.

The cookie carries the record's key, the secret and the user and account
ids, signed with :class:`itsdangerous.Signer` (a salt of its own, a list of
keys for rotation). The ids only say which end times to read along with the
record in the same round trip; the record decides who is signed in, and a
cookie whose ids disagree with it is refused as forged. A leaked Redis dump
therefore yields no usable cookie, and a leaked signing key alone turns no
session into another user's.

A session ends when its record does: an idle timeout (the record's TTL,
extended on every use), an absolute one (counted from the sign-on time in
the record), logout (the record is marked ended) or
:meth:`SessionManager.end_sessions` (a time per account or user before which
sessions count as ended, read along with the record).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
import typing as t
from dataclasses import dataclass, field

from itsdangerous import BadSignature, Signer
from itsdangerous.signer import HMACAlgorithm
from werkzeug.http import dump_cookie
from werkzeug.wrappers import Response

from .audit import audit
from .exceptions import TamperedRecord
from .identity import Identity
from .options import SessionOptions
from .sealing import RecordSealer, check_secret_keys
from .stores import SESSION_MARK, TokenStore
from .tokens import TokenRecord, fingerprint, new_token

#: A cookie's signed payload: the token's key, the session secret, the user
#: and account ids.
_PAYLOAD = re.compile(
    rb"([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})\.(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})"
)

#: How a session check ended: ``resumed``; ``invalid`` (the cookie fails its
#: signature or shape); ``expired`` (no session under it: the idle timeout
#: passed); ``ended`` (logged out, or ended with its user's or account's
#: sessions); ``timed_out`` (past the absolute timeout); ``refused`` (a
#: validly signed cookie that does not match its record, audited as
#: ``forged_session``).
CheckOutcome = t.Literal["resumed", "invalid", "expired", "ended", "timed_out", "refused"]

#: Bytes of the session secret's SHA-256 digest kept in its record: 128
#: bits bind the cookie's 256-bit secret (a second preimage is a 2**128
#: search) and keep a session within a small Redis allocation.
SECRET_DIGEST_BYTES = 16

#: How many users' and accounts' end times a process remembers with a
#: revocation delay; past it, it forgets them all and reads them again.
MAX_REMEMBERED_END_TIMES = 100_000

#: Where a session record's token record starts: after the mark and the
#: secret's digest.
_RECORD_START = len(SESSION_MARK) + SECRET_DIGEST_BYTES

#: What browsers trim around a cookie's name and value (RFC 6265bis): a
#: wider trim (``str.strip()`` also drops NBSP, NEL and more) would accept
#: cookies a sibling host planted under a look-alike name.
_COOKIE_WHITESPACE = " \t"


class _KeyedHMAC(HMACAlgorithm):
    """itsdangerous's HMAC-SHA256, keyed once per key: each signature starts
    from a copy of the keyed state, which halves the HMAC's cost on every
    signed-in request. Same signatures, same constant-time check."""

    def __init__(self) -> None:
        super().__init__(hashlib.sha256)
        self._keyed: dict[bytes, hmac.HMAC] = {}

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        keyed = self._keyed.get(key)
        if keyed is None:
            keyed = self._keyed.setdefault(key, hmac.new(key, digestmod=hashlib.sha256))
        mac = keyed.copy()
        mac.update(value)
        return mac.digest()


def secret_digest(secret: str) -> bytes:
    """What a session record keeps of its secret."""
    return hashlib.sha256(secret.encode("ascii")).digest()[:SECRET_DIGEST_BYTES]


def _subject(kind: str, id_: int | str) -> str:
    """The name under which the end time of a user's or an account's
    sessions is kept."""
    return f"{kind}:{id_}"


def _subjects(user_id: int | str, client_id: int | str) -> tuple[str, str]:
    """The names of the end times a session of this user and account obeys."""
    return _subject("user", user_id), _subject("client", client_id)


@dataclass(frozen=True, slots=True)
class Session:
    """A live session."""

    #: Its record's key in the store: that of the token it was redeemed from.
    key: str
    identity: Identity
    #: UNIX time of the sign-on in milliseconds: its token's issue time.
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
    #: The session secret, whose digest starts the session record.
    secret: str = field(repr=False)
    #: The latest time (ms) any sessions were ended, as the store said.
    ended_ms: int

    @property
    def replayed(self) -> bool:
        """Whether the token had been redeemed before."""
        return self.found is not None and self.found.startswith(SESSION_MARK)


class SessionManager:
    """Starts, resumes and ends sessions, and writes their cookie.

    :param store: where tokens turn into session records.
    :param secret_keys: signing keys, oldest first; new cookies and records
        are signed with the last, those signed with any listed key are
        accepted. To rotate, append a new key, and drop the oldest once
        ``absolute_timeout`` has passed.
    :param options: timeouts and the cookie; see :class:`SessionOptions`.
        The default name ``__Host-sso_session`` makes browsers refuse the
        cookie unless ``Secure``, ``Path=/`` and host-only.
    :param clock: returns UNIX time; tests may inject one.
    """

    #: Salt of the cookie signature, so no other signature made with the same
    #: keys is accepted as a session cookie.
    salt = "sso_middleware.session"

    def __init__(
        self,
        store: TokenStore,
        secret_keys: t.Sequence[str | bytes],
        options: SessionOptions = SessionOptions(),
        *,
        clock: t.Callable[[], float] = time.time,
    ):
        self.store = store
        self.signer = Signer(
            check_secret_keys(secret_keys),
            salt=self.salt,
            digest_method=hashlib.sha256,
            algorithm=_KeyedHMAC(),
        )
        #: Seals token records at minting and opens them at redemption.
        self.sealer = RecordSealer(secret_keys)
        self.idle_timeout = options.idle_timeout
        self.absolute_timeout = options.absolute_timeout
        self.secure = options.secure
        self.cookie_name = options.cookie
        self.revocation_delay = options.revocation_delay
        #: (user, account) subjects → (when read, their end time), with a
        #: revocation delay; see :meth:`_read`.
        self._end_times: dict[tuple[str, str], tuple[float, int]] = {}
        #: Bumped by every revocation made here, so that a read which began
        #: before it does not remember the end time it replaced.
        self._generation = 0
        self._end_times_lock = threading.Lock()
        self.clock = clock
        # Remembered end times age on a monotonic clock, so a wall clock
        # stepping back cannot stretch the delay (an injected clock drives both).
        self._monotonic = time.monotonic if clock is time.time else clock
        # The attributes, from werkzeug once rather than per sign-on: a
        # cookie value (base64url, digits, dots) never needs quoting.
        self._cookie_attributes = dump_cookie(
            self.cookie_name, "", path="/", secure=self.secure, httponly=True, samesite="Lax"
        ).partition(";")[2]

    def redeem(self, key: str, *, end_found: bool) -> Redemption:
        """Spend the token stored under ``key``: one atomic step that puts a
        new session in its place if it was unspent. With ``end_found``, a
        session found there instead (a replay) is ended."""
        secret = new_token()
        session = SESSION_MARK + secret_digest(secret)
        found, ended_ms = self.store.redeem(key, session, self.idle_timeout, end_found)
        return Redemption(found, key, secret, ended_ms)

    def token_record(self, redemption: Redemption) -> TokenRecord:
        """The record of the token ``redemption`` spent. Raises
        :class:`~sso_middleware.exceptions.TamperedRecord` if it was not
        sealed under its key with the deployment's keys, :class:`ValueError`
        if it is corrupted otherwise."""
        return TokenRecord.decode(self.sealer.open(redemption.key, redemption.found or b""))

    def ended_since(self, record: TokenRecord, redemption: Redemption) -> bool:
        """Whether the sessions of the record's user or account were ended
        at or after its token was minted (:meth:`end_sessions`), so it must
        not sign in. Asks the store only when any sessions were ended since
        the token was minted, which the redemption already told."""
        return record.issued_at_ms <= redemption.ended_ms and record.issued_at_ms <= self.store.ended(
            _subjects(record.user_id, record.client_id)
        )

    def cookie_value(self, redemption: Redemption, identity: Identity) -> str:
        """The signed cookie value naming the session of ``redemption``,
        once its record was checked and ``identity`` may sign in."""
        payload = f"{redemption.key}.{redemption.secret}.{identity.user_id}.{identity.client_id}"
        return self.signer.sign(payload).decode("ascii")

    def resume(self, cookie_value: str) -> Session | None:
        """Return the live session a cookie names, or ``None`` for a cookie
        that is forged, malformed, expired, from a removed key or for an
        ended session. Raises
        :class:`~sso_middleware.exceptions.StoreUnavailable`."""
        return self.check(cookie_value)[0]

    def check(self, cookie_value: str) -> tuple[Session | None, CheckOutcome]:
        """:meth:`resume`, and how it ended (:data:`CheckOutcome`), for
        metrics."""
        try:
            payload = _PAYLOAD.fullmatch(self.signer.unsign(cookie_value))
        except BadSignature:
            return None, "invalid"
        if payload is None:  # signed by us, but not in this release's shape
            return None, "invalid"
        key, secret, user_id, client_id = (part.decode("ascii") for part in payload.groups())
        record, ended_until = self._read(key, _subjects(user_id, client_id))
        if record is None:
            return None, "expired"
        if record == SESSION_MARK:
            return None, "ended"
        # Past this point the cookie is signed with our keys; a mismatch
        # means a forged cookie or a record written behind our back.
        try:
            if not (
                record.startswith(SESSION_MARK)
                and hmac.compare_digest(record[len(SESSION_MARK) : _RECORD_START], secret_digest(secret))
            ):
                raise TamperedRecord("the session secret does not match")
            token = TokenRecord.decode(self.sealer.open(key, record[_RECORD_START:]))
            if (str(token.user_id), str(token.client_id)) != (user_id, client_id):
                raise TamperedRecord("the cookie names other ids than its session")
        except ValueError as e:
            audit(
                logging.WARNING,
                "forged_session",
                "Session %s refused: a validly signed cookie does not match its record (%s);"
                " the signing keys or the store may be compromised",
                fingerprint(key),
                e,
                token=fingerprint(key),
            )
            return None, "refused"
        if self.clock() * 1000 - token.issued_at_ms > self.absolute_timeout * 1000:
            return None, "timed_out"
        if token.issued_at_ms <= ended_until:
            # Ended with its user or account: end the record too (once), so
            # the session stays over even when the end time expires.
            self.store.end(key)
            return None, "ended"
        return Session(key, Identity(token.user_id, token.client_id), token.issued_at_ms), "resumed"

    def _read(self, key: str, subjects: tuple[str, str]) -> tuple[bytes | None, int]:
        """The session record and the end time of its user and account: in
        one step from the store, or, within ``revocation_delay`` seconds of
        the last read of these subjects' end time, the record alone and the
        time remembered."""
        if not self.revocation_delay:
            return self.store.resume(key, self.idle_timeout, subjects)
        now = self._monotonic()
        known = self._end_times.get(subjects)
        if known is not None and 0 <= now - known[0] < self.revocation_delay:
            record, _ = self.store.resume(key, self.idle_timeout, ())
            return record, known[1]
        generation = self._generation
        record, ended_until = self.store.resume(key, self.idle_timeout, subjects)
        with self._end_times_lock:
            if generation == self._generation:  # no revocation here since the read began
                if len(self._end_times) >= MAX_REMEMBERED_END_TIMES:
                    self._end_times.clear()
                self._end_times[subjects] = (now, ended_until)
        return record, ended_until

    def end(self, session: Session | Redemption) -> None:
        """End a session server-side (or the new session of a redemption
        whose cookie will not be sent); its cookie stops working everywhere."""
        self.store.end(session.key)

    def end_sessions(
        self, *, client_id: int | None = None, user_id: int | None = None, actor: str = "python"
    ) -> None:
        """End every session of an account, of a user, or of both, wherever
        their cookies are, and the sign-ons of links minted for them so far.
        Call it once the new state is what the user store answers, or a
        sign-on in between may start after it.

        :param actor: who asked, for the audit log."""
        subjects = [
            _subject(kind, value)
            for kind, value in (("user", user_id), ("client", client_id))
            if value is not None
        ]
        if not subjects:
            raise ValueError("end_sessions needs a client_id, a user_id or both")
        at_ms = int(self.clock() * 1000)
        self.store.end_sessions(subjects, at_ms, self.absolute_timeout)
        with self._end_times_lock:  # revocations made here are seen here at once
            self._generation += 1
            self._end_times.clear()
        audit(
            logging.WARNING,
            "sessions_ended",
            "Sessions of %s ended by %s",
            " and ".join(subjects),
            actor,
            client_id=client_id,
            user_id=user_id,
            actor=actor,
        )
        # Return once that millisecond is over: a link minted after this
        # call (issue times are in milliseconds) then counts as later.
        time.sleep(min(0.001, max(0.0, (at_ms + 1) / 1000 - self.clock())))

    def read_cookie(self, environ: t.Mapping[str, t.Any]) -> str | None:
        """Return this middleware's cookie value from a request, if any.

        Names match byte for byte, trimmed of spaces and tabs only, as
        browsers compare them. A request that carries the name twice gets
        ``None`` and an audit event: one of the two was planted (a sibling
        host can set a cookie of our name for our host), and which one the
        browser sent first proves nothing."""
        header: str = environ.get("HTTP_COOKIE", "")
        if self.cookie_name not in header:
            return None
        # A plain scan rather than werkzeug's full parse: this runs on every
        # request with cookies, our values are never quoted, and bytes that
        # are not UTF-8 (another app's cookie) cannot make it fail.
        found = None
        for pair in header.split(";"):
            name, _, value = pair.partition("=")
            if name.strip(_COOKIE_WHITESPACE) != self.cookie_name:
                continue
            if found is not None:
                audit(
                    logging.WARNING,
                    "duplicate_cookie",
                    "Request with more than one %s cookie treated as anonymous",
                    self.cookie_name,
                )
                return None
            value = value.strip(_COOKIE_WHITESPACE)
            if len(value) > 1 and value[0] == value[-1] == '"':  # RFC 6265 allows quotes
                value = value[1:-1]
            found = value
        return found

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
            self.cookie_name,
            "",
            max_age=0,
            expires=0,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="Lax",
        )

    def clear_cookie(self, response: Response) -> None:
        """Remove the session cookie from the browser along with ``response``."""
        response.headers.add(*self.clearing_header())
