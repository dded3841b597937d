"""
API credentials
===============

Admin API credentials are an *identifier* and a *secret*, configured by the
operator. Only a hash of each secret is kept (:func:`hash_secret`): the
secrets are long random strings, so a fast hash is as strong as a slow one and
costs the API nothing. Verification is constant-time, and an unknown
identifier costs the same comparison as a wrong secret.

.. code-block:: console

    $ sso-middleware hash-secret
    Secret: ...
    sha256:5e884898da28...
"""

from __future__ import annotations

import hashlib
import hmac
import re
import typing as t

from .exceptions import ConfigurationError

_HASH = re.compile(r"sha256:[0-9a-f]{64}")

#: Compared against when the identifier is unknown, so that case takes as
#: long as a wrong secret.
_DUMMY_HASH = "sha256:" + "0" * 64


def hash_secret(secret: str) -> str:
    """Return the storable hash of an API secret: ``sha256:<hex digest>``."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


class APICredentials:
    """The admin API credentials of a deployment.

    :param hashes: identifier → :func:`hash_secret` of its secret.
    :raises ConfigurationError: for a value that is not such a hash (a
        plaintext secret pasted by mistake, for instance).
    """

    def __init__(self, hashes: t.Mapping[str, str]):
        for identifier, secret_hash in hashes.items():
            if not identifier or not _HASH.fullmatch(secret_hash):
                raise ConfigurationError(
                    f"api_credentials[{identifier!r}] must be 'sha256:' and 64 hex digits;"
                    " make it with: sso-middleware hash-secret"
                )
        self._hashes = dict(hashes)

    def __repr__(self) -> str:
        return f"APICredentials({sorted(self._hashes)!r})"

    def verify(self, identifier: str, secret: str) -> bool:
        """Whether ``secret`` is the secret of ``identifier``."""
        expected = self._hashes.get(identifier, _DUMMY_HASH)
        matches = hmac.compare_digest(hash_secret(secret), expected)
        return matches and identifier in self._hashes
