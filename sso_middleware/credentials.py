"""
Secrets of API clients
======================

Admin API credentials and OAuth client secrets are long random strings held
by machines. Only a hash of each is kept (:func:`hash_secret`): for secrets
of this entropy a fast hash is as strong as a slow KDF and costs a request
nothing. Checks are constant-time, and an unknown client costs the same
comparison as a wrong secret (:func:`verify_secret`).

Admin API credentials (:class:`APICredentials`) are configured by the
operator as identifier → hash, and each may be limited to some actions (its
role, as the reference system calls it):

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

#: Compared against when the client is unknown, so that case takes as long
#: as a wrong secret.
_DUMMY_HASH = "sha256:" + "0" * 64


def hash_secret(secret: str) -> str:
    """Return the storable hash of a secret: ``sha256:<hex digest>``."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def verify_secret(secret: str, expected: str | None) -> bool:
    """Whether ``secret`` hashes to ``expected``; ``None`` (an unknown
    client) is compared too, and never matches."""
    matches = hmac.compare_digest(hash_secret(secret), expected or _DUMMY_HASH)
    return matches and expected is not None


class APICredentials:
    """The admin API credentials of a deployment.

    :param hashes: identifier → :func:`hash_secret` of its secret.
    :param roles: identifier → the actions it may call, in any case, as a
        list or a space-separated string (e.g. ``{"billing":
        ["CreateSsoToken"]}``); an identifier left out may call every action.
    :raises ConfigurationError: for a value that is not such a hash (a
        plaintext secret pasted by mistake, for instance), or a role for an
        identifier that is not configured or that allows no action.
    """

    def __init__(self, hashes: t.Mapping[str, str], roles: t.Mapping[str, t.Iterable[str]] | None = None):
        for identifier, secret_hash in hashes.items():
            if not (isinstance(identifier, str) and identifier and isinstance(secret_hash, str)) or not (
                _HASH.fullmatch(secret_hash)
            ):
                raise ConfigurationError(
                    f"api_credentials[{identifier!r}] must be 'sha256:' and 64 hex digits;"
                    " make it with: sso-middleware hash-secret"
                )
        self._hashes = dict(hashes)
        #: identifier → the lower-case names of the actions it may call.
        self.roles: dict[str, frozenset[str]] = {}
        if not isinstance(roles or {}, t.Mapping):
            raise ConfigurationError(f"api_roles must map identifiers to actions; got {type(roles).__name__}")
        for identifier, actions in (roles or {}).items():
            if identifier not in self._hashes:
                raise ConfigurationError(f"api_roles[{identifier!r}]: no such API credential")
            if isinstance(actions, str):
                names = actions.split()
            else:
                names = list(actions) if isinstance(actions, t.Iterable) else []
            if not names or not all(isinstance(n, str) and n.strip() for n in names):
                raise ConfigurationError(f"api_roles[{identifier!r}] must name at least one action")
            self.roles[identifier] = frozenset(n.strip().lower() for n in names)

    def __repr__(self) -> str:
        return f"APICredentials({sorted(self._hashes)!r})"

    def may_call(self, identifier: str, action: str) -> bool:
        """Whether ``identifier``'s role allows ``action`` (any case)."""
        allowed = self.roles.get(identifier)
        return allowed is None or action.lower() in allowed

    def knows(self, identifier: str) -> bool:
        """Whether ``identifier`` is configured (it is not a secret)."""
        return identifier in self._hashes

    def verify(self, identifier: str, secret: str) -> bool:
        """Whether ``secret`` is the secret of ``identifier``."""
        return verify_secret(secret, self._hashes.get(identifier))
