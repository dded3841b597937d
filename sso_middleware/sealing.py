"""
Sealing
=======

Records at rest carry a MAC made with a key derived from the deployment's
secret keys, so write access to the store alone signs nobody in.

Keys are SHA-256 digests and hold no secret, so without a MAC anyone who can
write to Redis (an exposed port, SSRF, a shared instance) could store a
record for any user under the digest of a token of their choosing, or copy a
real record under another key. :class:`RecordSealer` appends an HMAC-SHA256
of the record's key and content; a record that fails it is treated as
unknown. Two deployments that share a Redis and a prefix but not their keys
cannot redeem each other's tokens, nor use each other's OAuth credential
sets, either.

The keys are the signing keys of the session cookie, derived with a salt of
their own (:class:`itsdangerous.Signer`'s key derivation), so rotation works
as it does for cookies: records sealed with any listed key are accepted, new
ones are sealed with the newest. The MAC is truncated to 128 bits, the
length RFC 4868 uses for HMAC-SHA-256 in IPsec: forging one is a 2**128
guess, and a session record stays within a small Redis allocation.
"""

from __future__ import annotations

import hashlib
import hmac
import typing as t

from itsdangerous import Signer

from .exceptions import ConfigurationError, TamperedRecord

#: Shortest accepted secret key, in bytes.
MIN_KEY_BYTES = 32

#: Bytes of MAC appended to each record.
MAC_BYTES = 16


def check_secret_keys(secret_keys: t.Sequence[str | bytes]) -> list[bytes]:
    """Validate secret keys (oldest first, newest last) and return them as
    bytes. Raises :class:`ConfigurationError` for an empty list or a key
    shorter than :data:`MIN_KEY_BYTES`."""
    if isinstance(secret_keys, (str, bytes)) or not secret_keys:
        raise ConfigurationError(
            "secret_keys must be a non-empty list of keys, oldest first;"
            ' make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    keys = [k.encode() if isinstance(k, str) else k for k in secret_keys]
    for i, key in enumerate(keys):
        if len(key) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"secret_keys[{i}] is {len(key)} bytes; each key needs at least"
                f" {MIN_KEY_BYTES} (make one with secrets.token_urlsafe(32))"
            )
    return keys


class RecordSealer:
    """Seals and opens records stored under a key.

    :param secret_keys: the deployment's secret keys, oldest first.
    """

    #: Keeps these MACs apart from every other use of the same keys.
    salt = "sso_middleware.record"

    def __init__(self, secret_keys: t.Sequence[str | bytes]):
        signer = Signer(check_secret_keys(secret_keys), salt=self.salt, digest_method=hashlib.sha256)
        # Keyed once, newest first: sealing uses the first, opening tries all;
        # each MAC starts from a copy (half the cost of keying anew).
        self._keys = [
            hmac.new(signer.derive_key(key), digestmod=hashlib.sha256) for key in reversed(signer.secret_keys)
        ]

    def _mac(self, keyed: hmac.HMAC, key: str, data: bytes) -> bytes:
        mac = keyed.copy()
        # Keys are ASCII without NUL, so key + NUL + data cannot be split two ways.
        mac.update(key.encode("ascii") + b"\0" + data)
        return mac.digest()[:MAC_BYTES]

    def seal(self, key: str, data: bytes) -> bytes:
        """``data`` with the MAC of it stored under ``key`` appended."""
        return data + self._mac(self._keys[0], key, data)

    def open(self, key: str, sealed: bytes) -> bytes:
        """The data of a record read from under ``key``. Raises
        :class:`TamperedRecord` unless one of the keys sealed it there."""
        data, mac = sealed[:-MAC_BYTES], sealed[-MAC_BYTES:]
        if len(sealed) > MAC_BYTES:
            for keyed in self._keys:
                if hmac.compare_digest(mac, self._mac(keyed, key, data)):
                    return data
        raise TamperedRecord("the record's MAC does not match")
