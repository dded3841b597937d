"""
Redemption
==========

:class:`SingleSignOnEndpoint` answers ``GET /oauth/singlesignon.php?access_token=...``:
the browser arrives with a token and leaves signed in, redirected to the
token's destination.

The order matters and is the point of this module:

1. **Parse** the request from its shape alone; a malformed link is a 400 that
   never reaches a store.
2. **Burn** the token: one atomic step puts a new session record in the
   place of the token's record. Whatever happens next, the token is spent,
   so a token denied for a status that is later fixed cannot be retried; of
   concurrent requests at most one gets the record, and the others are
   replays: denied, audited, and (by default) the end of the session the
   first one started, even if its cookie has not been sent yet. The new
   session is usable only through the cookie of step 4; a denial never
   sends it.
3. **Check** the record (its MAC, age and scope, and that no sessions of
   its user or account were ended since it was minted), the browser's
   current session and the account, against the *current* state of the
   user store.
4. **Sign in**: end the browser's previous session, set the cookie of the
   session the burn started and redirect (303) to the destination under
   ``system_url``; the ``Host`` header plays no part.

Every failure after the burn is one identical 403 page; the precise reason
goes to the audit log only.
"""

from __future__ import annotations

import logging
import re
import time
import typing as t

from werkzeug.wrappers import Request, Response

from ..audit import audit, unavailable
from ..destinations import SSO_SCOPE, is_safe_path
from ..exceptions import (
    Denied,
    MalformedRequest,
    StoreUnavailable,
    TamperedRecord,
)
from ..identity import Identity
from ..metrics import NO_METRICS, Metrics
from ..options import RedemptionOptions
from ..ratelimit import RateLimiter, remote_address
from ..responses import SeeOther, confirm_page, error_page
from ..sessions import Redemption, Session, SessionManager
from ..tokens import TOKEN_PATTERN, TokenRecord, fingerprint, token_key
from ..users import UserStore
from .origin import from_origin, origin_of

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: The reason logged for a token that is unknown, used, expired or corrupted.
UNKNOWN_TOKEN = "Unable to authenticate with Single Sign-On token"

#: The query string of a link exactly as :class:`TokenIssuer` makes it.
PLAIN_LINK = re.compile(r"access_token=([A-Za-z0-9_-]{43})")


class SingleSignOnEndpoint:
    """The WSGI application behind the SSO path.

    A replay ends the session the token's first redemption started
    (``revoke_on_replay``): a replay means the link leaked, so whoever used
    it first may not be its owner. ``confirm="always"`` makes a GET show a
    page whose button POSTs to redeem, for links that travel by e-mail or
    chat, where scanners open them; ``"signed_in"`` shows it only when the
    browser already has a live session, which the sign-on would replace.

    :param user_store: the app's accounts and users.
    :param sessions: turns tokens into sessions, and ends sessions.
    :param system_url: the deployment's public base URL, without trailing
        slash; every redirect goes under it.
    :param options: the token lifetime (an older record is refused even if
        the store still had it), ``revoke_on_replay`` and ``confirm``; see
        :class:`~sso_middleware.options.RedemptionOptions`.
    :param limiter: counts failed redemptions per remote address; past its
        limit, a 429 answers instead of the 403. A valid token still signs
        in from such an address: many users can share one (a proxy, NAT),
        so refusing before the burn would let anyone lock them all out,
        and guessing a 256-bit token is hopeless either way.
    :param trusted_proxies: see :func:`~sso_middleware.ratelimit.remote_address`.
    :param clock: returns UNIX time; tests may inject one.
    :param metrics: told the outcome of every redemption (see
        :data:`~sso_middleware.metrics.RedemptionOutcome`).
    """

    #: Longest query string accepted; a real link is about 60 characters.
    max_query_length = 1024

    def __init__(
        self,
        user_store: UserStore,
        sessions: SessionManager,
        *,
        system_url: str,
        options: RedemptionOptions,
        limiter: RateLimiter,
        trusted_proxies: int = 0,
        clock: t.Callable[[], float] = time.time,
        metrics: Metrics = NO_METRICS,
    ):
        self.user_store = user_store
        self.sessions = sessions
        self.system_url = system_url
        self.ttl = options.token_ttl
        self.limiter = limiter
        self.trusted_proxies = trusted_proxies
        self.revoke_on_replay = options.revoke_on_replay
        self.confirm = options.confirm
        self.methods = ("GET",) if options.confirm == "never" else ("GET", "POST")
        self.origin = origin_of(system_url)
        self.clock = clock
        self.metrics = metrics

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return self.respond(environ)(environ, start_response)

    def respond(self, environ: WSGIEnvironment) -> Response | SeeOther:
        """Answer one request; never raises."""
        method = str(environ.get("REQUEST_METHOD"))
        if method not in self.methods:
            # HEAD and OPTIONS from link scanners must not spend the token.
            return error_page(405, allow=", ".join(self.methods))
        address = remote_address(environ, self.trusted_proxies)
        try:
            token, scope = self.parse(environ)
            if _is_prefetch(environ):
                return error_page(503)  # a browser discards it and asks again when followed
            cookie = self.sessions.read_cookie(environ)
            if self.must_confirm(method, cookie, environ):
                return confirm_page(environ)
            signed_in = self.redeem(token, scope, cookie)
        except MalformedRequest as e:
            audit(logging.INFO, "bad_request", "Malformed Single Sign-On request: %s", e.message)
            self.metrics.redeemed("malformed")
            return error_page(400)
        except Denied as e:
            ids = {}
            if e.identity is not None:
                ids = {"user_id": e.identity.user_id, "client_id": e.identity.client_id}
            audit(logging.WARNING, "denied", e.reason, reason=e.reason, address=address, **ids)
            wait = self.count_failure(address)
            if wait:
                self.metrics.redeemed("rate_limited")
            elif e.kind == "replay":
                self.metrics.redeemed("replay")
            else:
                self.metrics.redeemed("denied", e.kind)
            response = self.limited(address, wait) if wait else error_page(403)
            if e.end_session:
                self.sessions.clear_cookie(response)
            return response
        except Exception as e:  # a store outage, a failing user store, a bug: fail closed
            unavailable("Single Sign-On", e)
            self.metrics.redeemed("unavailable")
            return error_page(503)
        self.metrics.redeemed("signed_in")
        return signed_in

    def must_confirm(self, method: str, cookie: str | None, environ: WSGIEnvironment) -> bool:
        """Whether to show the confirmation page instead of redeeming.

        A POST redeems only when it comes from that page, i.e. from this
        site: a cross-site POST carries no ``SameSite=Lax`` cookie, so it
        would skip the page and replace the victim's session unseen."""
        if method == "POST":
            return from_origin(environ, self.origin) is not True
        if self.confirm == "signed_in":
            return cookie is not None and self.sessions.resume(cookie) is not None
        return self.confirm == "always"

    def count_failure(self, address: str) -> int | None:
        """Count a failed redemption; the seconds to wait if over the limit.
        A store outage here leaves the denial as it is."""
        try:
            return self.limiter.failed(address)
        except StoreUnavailable as e:
            unavailable("Counting a failed redemption", e)
            return None

    @staticmethod
    def limited(address: str, wait: int) -> Response:
        """The 429 for an address past its limit of failed redemptions."""
        audit(
            logging.WARNING,
            "rate_limited",
            "Single Sign-On redemptions from %s rate-limited for %d s",
            address,
            wait,
            address=address,
        )
        response = error_page(429)
        response.headers["Retry-After"] = str(wait)
        return response

    def parse(self, environ: WSGIEnvironment) -> tuple[str, str | None]:
        """Return the token and the optional ``scope``, or raise
        :class:`MalformedRequest` for anything but exactly one well-formed token
        and at most one scope."""
        query = environ.get("QUERY_STRING", "")
        plain = PLAIN_LINK.fullmatch(query)
        if plain:  # the link exactly as minted: no parser needed
            return plain.group(1), None
        if len(query) > self.max_query_length:
            raise MalformedRequest("query string too long")
        try:
            args = Request(environ).args
        except UnicodeError:
            raise MalformedRequest("query string is not UTF-8") from None
        tokens = args.getlist("access_token")
        if len(tokens) != 1:
            raise MalformedRequest("access_token must be given exactly once")
        if not TOKEN_PATTERN.fullmatch(tokens[0]):
            raise MalformedRequest("access_token is not a token")
        scopes = args.getlist("scope")
        if len(scopes) > 1:
            raise MalformedRequest("scope given more than once")
        return tokens[0], scopes[0] if scopes else None

    def redeem(self, token: str, scope: str | None, cookie: str | None) -> SeeOther:
        """Burn ``token`` and sign its user in; raise :class:`Denied`."""
        key = token_key(token)
        redemption = self.sessions.redeem(key, end_found=self.revoke_on_replay)
        if redemption.found is None:
            raise Denied(UNKNOWN_TOKEN, kind="expired_or_unknown")
        if redemption.replayed:
            audit(
                logging.WARNING,
                "replay",
                "Single Sign-On token %s replayed",
                fingerprint(key),
                token=fingerprint(key),
            )
            raise Denied(UNKNOWN_TOKEN, kind="replay")
        try:
            record = self.open(redemption)
            identity = self.check(record, scope)
            if self.sessions.ended_since(record, redemption):
                audit(
                    logging.WARNING,
                    "ended_link",
                    "Single Sign-On token %s was minted before the sessions of User ID: %d,"
                    " client %d were ended",
                    fingerprint(key),
                    record.user_id,
                    record.client_id,
                    token=fingerprint(key),
                    user_id=record.user_id,
                    client_id=record.client_id,
                )
                raise Denied(
                    f"{UNKNOWN_TOKEN} for User ID: {record.user_id}", kind="revoked", identity=identity
                )
            current = self.sessions.resume(cookie) if cookie else None
            if current is not None:
                self.check_current(current)
            self.check_account(record)
            if current is not None:
                self.replace(current, identity)
        except Exception:  # a denial or an outage: no cookie will name the new session
            self.abandon(redemption)
            raise
        audit(
            logging.INFO,
            "redeemed",
            "Single Sign-On token %s redeemed for User ID: %d, client %d",
            fingerprint(key),
            identity.user_id,
            identity.client_id,
            token=fingerprint(key),
            user_id=identity.user_id,
            client_id=identity.client_id,
        )
        cookie_value = self.sessions.cookie_value(redemption, identity)
        return SeeOther(self.system_url + record.path, self.sessions.cookie_header(cookie_value))

    def abandon(self, redemption: Redemption) -> None:
        """End the session a failed redemption put in its token's place.
        Without its cookie nobody could use it, but no live record should
        stand for a sign-on that was refused. A store outage here leaves the
        failure as it is."""
        try:
            self.sessions.end(redemption)
        except StoreUnavailable as e:
            unavailable("Ending a denied redemption's session", e)

    def open(self, redemption: Redemption) -> TokenRecord:
        """The token's record, or :class:`Denied` if it is corrupted or was
        not written by this deployment (audited: someone wrote to the store)."""
        try:
            return self.sessions.token_record(redemption)
        except TamperedRecord:
            audit(
                logging.WARNING,
                "tampered_record",
                "Single Sign-On token %s refused: its record fails its MAC;"
                " the store may have been written to by someone else",
                fingerprint(redemption.key),
                token=fingerprint(redemption.key),
            )
            raise Denied(UNKNOWN_TOKEN, kind="tampered") from None
        except ValueError:
            raise Denied(UNKNOWN_TOKEN, kind="tampered") from None

    def check(self, record: TokenRecord, scope: str | None) -> Identity:
        """Refuse a record that is too old, whose destination disagrees with
        the ``scope`` sent along, or whose path is not of this deployment."""
        reason = f"{UNKNOWN_TOKEN} for User ID: {record.user_id}"
        identity = Identity(record.user_id, record.client_id)
        if self.clock() * 1000 - record.issued_at_ms > self.ttl * 1000:
            raise Denied(reason, kind="expired_or_unknown", identity=identity)
        if (scope is not None and not _scope_matches(scope, record.scope)) or not is_safe_path(record.path):
            raise Denied(reason, kind="destination", identity=identity)
        return identity

    def check_current(self, current: Session) -> None:
        """A session the browser already has for a Closed account is a
        conflict: end it and deny the sign-on."""
        account = self.user_store.get_account(current.identity.client_id)
        if account is None or not account.open:
            self.sessions.end(current)
            raise Denied(
                "OAuth authorization request denied due to unexpected active login session"
                f' for "Closed" User ID: {current.identity.user_id}',
                kind="session_conflict",
                identity=current.identity,
                end_session=True,
            )

    def replace(self, current: Session, identity: Identity) -> None:
        """End the browser's previous session before the new one's cookie
        replaces it, so no session outlives a sign-on, and record a change
        of user."""
        self.sessions.end(current)
        if current.identity != identity:
            audit(
                logging.INFO,
                "session_replaced",
                "Session of User ID: %d replaced by Single Sign-On for User ID: %d",
                current.identity.user_id,
                identity.user_id,
                user_id=identity.user_id,
                previous_user_id=current.identity.user_id,
            )

    def check_account(self, record: TokenRecord) -> None:
        """Deny unless the account may use single sign-on now and the user
        may still act for it."""
        uid = record.user_id
        named = Identity(uid, record.client_id)
        account = self.user_store.get_account(record.client_id)
        user = self.user_store.get_user(uid)
        if account is None or user is None or record.client_id not in user.client_ids:
            raise Denied(f"{UNKNOWN_TOKEN} for User ID: {uid}", kind="not_found", identity=named)
        if not account.open:
            raise Denied(
                f'Single Sign-On authentication denied for "Closed" User ID: {uid}',
                kind="closed",
                identity=named,
            )
        if not account.allows_sso:
            raise Denied(
                f"Single Sign-On authentication denied per configuration for User ID: {uid}",
                kind="sso_disabled",
                identity=named,
            )


#: Headers with which browsers and proxies mark a fetch ahead of the user.
_PURPOSE_HEADERS = ("HTTP_SEC_PURPOSE", "HTTP_PURPOSE", "HTTP_X_PURPOSE", "HTTP_X_MOZ")


def _is_prefetch(environ: WSGIEnvironment) -> bool:
    """Whether a browser or proxy fetches the link ahead of the user."""
    for header in _PURPOSE_HEADERS:
        purpose = str(environ.get(header, "")).lower()
        if "prefetch" in purpose or "preview" in purpose:
            return True
    return False


def _scope_matches(requested: str, destination: str) -> bool:
    """Whether a ``scope`` parameter (space-separated, the marker scope
    optional) names the token's destination."""
    named = set(requested.split()) - {SSO_SCOPE}
    return named == ({destination} if destination else set())
