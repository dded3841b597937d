"""
Audit log
=========

Every security-relevant event is one record on the ``sso_middleware`` logger,
with a readable message and structured fields in ``record.sso_*`` attributes
(``sso_event``, ``sso_user_id``, ``sso_client_id``, ``sso_token``, ...) for a
JSON formatter to pick up. Denials are WARNING and their message is exactly
the reference system's reason text; the rest is INFO.

A token appears only as its :func:`~sso_middleware.tokens.fingerprint`;
tokens, secrets and cookies are never passed to a log call.
"""

from __future__ import annotations

import logging
import typing as t

from .exceptions import StoreUnavailable

logger = logging.getLogger("sso_middleware")


def audit(level: int, event: str, message: str, *args: object, **fields: t.Any) -> None:
    """Log ``event``; ``fields`` become ``record.sso_<name>`` attributes."""
    if logger.isEnabledFor(level):
        extra = {f"sso_{name}": value for name, value in fields.items()}
        extra["sso_event"] = event
        logger.log(level, message, *args, extra=extra)


def unavailable(where: str, error: Exception) -> None:
    """Log why ``where`` answered 503 instead of its usual answer: a store
    outage in one line, anything else (a failing user store, a bug) with its
    traceback."""
    if isinstance(error, StoreUnavailable):
        audit(logging.ERROR, "store_unavailable", "%s unavailable: %s", where, error, error=str(error))
    else:
        logger.error("%s failed unexpectedly", where, exc_info=error, extra={"sso_event": "error"})
