"""
Tokens
======

Single-use access tokens and the record each one stands for.

A token is 256 bits from :mod:`secrets`, encoded as 43 URL-safe characters. It
is shown once, to the trusted system that asked for it; at rest only its
SHA-256 digest (128 bits of it) is kept (:func:`token_key`), so a leaked Redis dump yields no
usable token. Logs name a token by a short :func:`fingerprint` of that digest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass

#: Bytes of randomness per token (256 bits).
TOKEN_BYTES = 32

#: Bytes of a token's SHA-256 digest that name it at rest (128 bits).
KEY_BYTES = 16

#: Parses records: every redemption and signed-in request reads one.
_JSON = json.JSONDecoder()

#: The exact shape of a token; anything else is rejected before a store is asked.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    """Return a fresh token: 32 random bytes, URL-safe base64 without padding."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_key(token: str) -> str:
    """Return the at-rest name of a token or session id: the first 128 bits
    of its SHA-256 digest, URL-safe base64 without padding (22 characters).

    A plain digest, not a keyed one, is enough: the input carries 256 bits of
    entropy, so the digest cannot be inverted or guessed. 128 bits keep a
    second preimage of any of a million live keys a 2**108 search, and make
    the key small enough for Redis's next smaller allocation: 31 MB less per
    million sessions than the whole digest (``benchmarks.scaling``).
    """
    digest = hashlib.sha256(token.encode("ascii")).digest()[:KEY_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def fingerprint(key: str) -> str:
    """Return a short name for a token in logs, derived from its at-rest key."""
    return key[:12]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What a token stands for: the only thing redemption trusts.

    Query parameters sent along with a token never override these fields.
    """

    #: The user who is signed in.
    user_id: int
    #: The account (WHMCS ``client_id``) the user acts for.
    client_id: int
    #: The destination scope, ``""`` for the client area home.
    scope: str
    #: The path of this deployment to redirect to, validated when minted.
    path: str
    #: UNIX time of issue in milliseconds; redemption refuses a record older
    #: than the TTL even if the store failed to expire it.
    issued_at_ms: int

    #: The :class:`ValueError` for anything :meth:`decode` cannot trust.
    _CORRUPTED = "corrupted token record"

    def encode(self) -> bytes:
        """Serialise compactly for the store: a JSON array in field order
        (no field names, so a token costs Redis under 200 bytes)."""
        return json.dumps(
            [self.user_id, self.client_id, self.scope, self.path, self.issued_at_ms],
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> TokenRecord:
        """Parse what :meth:`encode` wrote. Raises :class:`ValueError` on
        anything else, so a corrupted record is denied, not trusted."""
        try:
            text = data.decode("utf-8")
            values, end = _JSON.raw_decode(text)  # json.loads' own parser, minus its overhead
            if end != len(text):
                raise ValueError("trailing data")
            record = cls(*values)
        except (TypeError, ValueError) as e:
            raise ValueError(cls._CORRUPTED) from e
        if not (
            type(record.user_id) is int
            and type(record.client_id) is int
            and isinstance(record.scope, str)
            and isinstance(record.path, str)
            and type(record.issued_at_ms) is int
        ):
            raise ValueError(cls._CORRUPTED)
        return record
