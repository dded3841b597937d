"""
Metrics
=======

What the middleware counts and times, and the seam through which it reports
it: a :class:`Metrics` object given to
:class:`~sso_middleware.SSOMiddleware` as ``metrics=``. Without one nothing
is measured, and nothing is added to any request's path.

:class:`~sso_middleware.metrics.prometheus.PrometheusMetrics` reports to
Prometheus (the ``metrics`` extra); any object with the methods of
:class:`Metrics` may report elsewhere.

.. code-block:: python

    from sso_middleware.metrics.prometheus import PrometheusMetrics, metrics_app

    app = SSOMiddleware(app, ..., metrics=PrometheusMetrics())
    # serve metrics_app() at /metrics: see the metrics guide

Every label is one of the fixed values listed here, so the number of series
is bounded and no label can carry a user, an account, an address, a client
identifier or a token.
"""

from __future__ import annotations

import typing as t

#: How a token was minted: the admin API's ``CreateSsoToken``, the token
#: endpoint's ``single_sign_on`` grant, the same grant from an Application
#: Link (``subscriber_unique_id``/``token``), or
#: :meth:`SSOMiddleware.create_sso_token`.
MintChannel = t.Literal["admin_api", "oauth", "application_link", "python"]

#: What a request to the SSO endpoint came to: ``signed_in`` (303 with a
#: cookie), ``denied`` (403, with a :data:`DenialReason`), ``replay`` (403:
#: the token was redeemed before), ``rate_limited`` (429: a denial past the
#: address's limit), ``malformed`` (400: no well-formed token) or
#: ``unavailable`` (503: a store or the user store failed). A confirmation
#: page, a prefetch and a method other than GET or POST redeem nothing and
#: are not counted.
RedemptionOutcome = t.Literal["signed_in", "denied", "replay", "rate_limited", "malformed", "unavailable"]

#: Why a redemption was ``denied``; the audit log has the precise reason.
#:
#: - ``expired_or_unknown``: no such token (never minted, used long ago,
#:   expired), or a record older than the token lifetime;
#: - ``destination``: the ``scope`` sent along names another destination,
#:   or the record's path is not of this deployment;
#: - ``revoked``: the sessions of its user or account were ended after it
#:   was minted;
#: - ``tampered``: its record fails its MAC or is corrupted;
#: - ``not_found``: the account or user is gone, or the user no longer acts
#:   for the account;
#: - ``closed``: the account is Closed;
#: - ``sso_disabled``: the account has single sign-on switched off;
#: - ``session_conflict``: the browser's current session is for a Closed
#:   account;
#: - ``other``: a denial raised without a kind (a subclass's own
#:   :class:`~sso_middleware.exceptions.Denied`).
DenialReason = t.Literal[
    "expired_or_unknown",
    "destination",
    "revoked",
    "tampered",
    "not_found",
    "closed",
    "sso_disabled",
    "session_conflict",
    "other",
]

#: What a request passed to the application made of its session cookie:
#: ``resumed`` (signed in), ``invalid`` (the cookie fails its signature or
#: shape: made up, altered, or signed with a key since retired),
#: ``expired`` (no session under it: the idle timeout passed),
#: ``ended`` (logged out, or ended with its user's or account's sessions),
#: ``timed_out`` (past the absolute timeout), ``refused`` (a validly signed
#: cookie that does not match its record, audited as ``forged_session``) or
#: ``unavailable`` (the store failed; the request went on anonymous).
#: Requests without the cookie are not counted.
ResumeOutcome = t.Literal["resumed", "invalid", "expired", "ended", "timed_out", "refused", "unavailable"]

#: Where a client failed to authenticate: the admin API (a wrong or
#: unknown identifier or secret) or the token endpoint (a wrong or unknown
#: client identifier or secret, Application Links included).
AuthEndpoint = t.Literal["api", "token"]

#: The endpoints the middleware answers itself.
Endpoint = t.Literal["sso", "token", "api", "logout"]

#: The stores of :class:`~sso_middleware.stores.Stores`.
StoreName = t.Literal["tokens", "counters", "credentials"]

#: The operations of each store: the methods of its protocol (and the
#: credential store's one-step grant, ``add_token_if_current``).
STORE_OPERATIONS: t.Final[t.Mapping[StoreName, tuple[str, ...]]] = {
    "tokens": ("add", "redeem", "resume", "ended", "end", "end_sessions"),
    "counters": ("hit",),
    "credentials": ("next_id", "add", "replace", "get", "find", "all", "delete", "add_token_if_current"),
}

#: The values of :data:`MintChannel`.
MINT_CHANNELS: t.Final[tuple[MintChannel, ...]] = t.get_args(MintChannel)
#: The values of :data:`RedemptionOutcome`.
REDEMPTION_OUTCOMES: t.Final[tuple[RedemptionOutcome, ...]] = t.get_args(RedemptionOutcome)
#: The values of :data:`DenialReason`.
DENIAL_REASONS: t.Final[tuple[DenialReason, ...]] = t.get_args(DenialReason)
#: The values of :data:`ResumeOutcome`.
RESUME_OUTCOMES: t.Final[tuple[ResumeOutcome, ...]] = t.get_args(ResumeOutcome)
#: The values of :data:`AuthEndpoint`.
AUTH_ENDPOINTS: t.Final[tuple[AuthEndpoint, ...]] = t.get_args(AuthEndpoint)
#: The values of :data:`Endpoint`.
ENDPOINTS: t.Final[tuple[Endpoint, ...]] = t.get_args(Endpoint)


@t.runtime_checkable
class Metrics(t.Protocol):
    """Receives what the middleware measures.

    Each method is called once per event, from the thread that serves the
    request, possibly from many threads at once; it must be cheap, must not
    block, and must not raise (the request it reports on would fail with
    it). Arguments are the fixed
    values of this module's types; an implementation should map anything
    else to ``"other"`` rather than create a series for it.
    """

    def minted(self, channel: MintChannel) -> None:
        """A token was minted (stored and handed out) through ``channel``.
        Refused requests mint nothing and are not reported."""

    def redeemed(self, outcome: RedemptionOutcome, reason: DenialReason | None = None) -> None:
        """A request to the SSO endpoint came to ``outcome``; ``reason`` is
        given with ``denied`` only."""

    def resumed(self, outcome: ResumeOutcome) -> None:
        """A request passed to the application carried a session cookie,
        which came to ``outcome``."""

    def auth_failed(self, endpoint: AuthEndpoint) -> None:
        """A client failed to authenticate at ``endpoint`` (each failure the
        audit log records, whether answered 401, 403 or 429)."""

    def store_called(self, store: StoreName, operation: str, seconds: float) -> None:
        """A call to ``store`` took ``seconds``, whether it answered or
        raised; ``operation`` is one of :data:`STORE_OPERATIONS`."""

    def answered(self, endpoint: Endpoint, seconds: float) -> None:
        """``endpoint`` took ``seconds`` to answer a request (the body is
        ready by then; sending it is the server's part)."""


class NoMetrics:
    """Measures nothing: the endpoints' default, so that code reporting an
    event needs no check."""

    def minted(self, channel: MintChannel) -> None:
        pass

    def redeemed(self, outcome: RedemptionOutcome, reason: DenialReason | None = None) -> None:
        pass

    def resumed(self, outcome: ResumeOutcome) -> None:
        pass

    def auth_failed(self, endpoint: AuthEndpoint) -> None:
        pass

    def store_called(self, store: StoreName, operation: str, seconds: float) -> None:
        pass

    def answered(self, endpoint: Endpoint, seconds: float) -> None:
        pass


#: The shared :class:`NoMetrics`.
NO_METRICS: t.Final[Metrics] = NoMetrics()
