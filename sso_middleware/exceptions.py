"""
Exceptions
==========

Every failure the middleware knows about is an :class:`SSOError`. The
subclasses say what went wrong *and* how it is answered, so the middleware maps
exception to response in one place and never lets a traceback reach a browser.

.. code-block:: text

    SSOError
    ├── ConfigurationError   bad settings, raised at start-up
    ├── StoreUnavailable     Redis (or another store) failed: 503, fail closed
    ├── MalformedRequest     malformed input, rejected before any store is touched: 400
    ├── APIError             an admin API request is refused: the WHMCS error text
    ├── Denied               a token was burned but does not sign anyone in: 403
    └── TamperedRecord       a stored record fails its MAC: treated as unknown
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from .identity import Identity
    from .metrics import DenialReason


class SSOError(Exception):
    """Base class of every error raised by :mod:`sso_middleware`."""


class ConfigurationError(SSOError, ValueError):
    """A setting is missing or invalid. Raised while the middleware is built,
    never while it serves; the message names the setting and how to fix it."""


class StoreUnavailable(SSOError):
    """A token or session store could not answer (connection refused, timeout,
    pool exhausted). Callers must fail closed: no login, a 503 for the client."""

    def __init__(self, message: str, original_error: BaseException | None = None):
        super().__init__(message)
        #: The store's own exception, also chained as ``__cause__``.
        self.original_error = original_error


class MalformedRequest(SSOError):
    """The request is malformed (missing, duplicated, oversized or ill-formed
    parameters). Detected from the shape of the input alone."""

    def __init__(self, message: str):
        super().__init__(message)
        #: A short, user-safe description; never contains the offending value.
        self.message = message


class APIError(SSOError):
    """A request of the admin API (or its Python equivalent) is refused, such
    as a token that cannot be minted. ``message`` is the reference system's
    error text, such as ``Invalid client_id``."""

    def __init__(self, message: str):
        super().__init__(message)
        #: The text returned as ``{"result": "error", "message": ...}``.
        self.message = message


class Denied(SSOError):
    """A redemption was refused after the token was burned.

    ``reason`` is the reference system's exact text (logged for the operator,
    never shown to the browser)."""

    def __init__(
        self,
        reason: str,
        *,
        kind: DenialReason | t.Literal["replay"] = "other",
        identity: Identity | None = None,
        end_session: bool = False,
    ):
        super().__init__(reason)
        #: The operator-facing reason, e.g. ``Single Sign-On authentication
        #: denied for "Closed" User ID: 42``.
        self.reason = reason
        #: The kind of denial, for metrics: a
        #: :data:`~sso_middleware.metrics.DenialReason`, or ``"replay"`` (the
        #: reason text names the user, so it cannot be a label).
        self.kind = kind
        #: The user and account the token (or the browser's session) names,
        #: once known: the audit record's fields.
        self.identity = identity
        #: Whether the browser's current session was ended and its cookie
        #: must be cleared.
        self.end_session = end_session


class TamperedRecord(SSOError, ValueError):
    """A stored record's MAC does not match: it was written, or moved to
    another key, by someone without the deployment's secret keys. It is
    treated as unknown, and audited."""
