"""
Issuing tokens
==============

:class:`TokenIssuer` mints single-use tokens, the reference system's
``CreateSsoToken``. It checks everything that can be checked before the user
arrives (the account exists and may use single sign-on, the user may act for
it, the destination exists and its inputs belong to the account), stores the
token's record and returns the URL to send the user's browser to.

Checks are repeated at redemption: an account closed between minting and
redemption is still refused.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import typing as t

from .audit import audit
from .destinations import Destinations
from .exceptions import APIError
from .sealing import RecordSealer
from .stores import TokenStore
from .tokens import TokenRecord, fingerprint, new_token, token_key
from .users import ObjectKind, UserStore

#: Largest accepted id (a signed 64-bit integer, what databases store).
MAX_ID = 2**63 - 1

#: Attempts at a fresh token when one collides with a live one (which, at
#: 256 bits, means the random source is broken).
MINT_ATTEMPTS = 3

Id = int | str | None


def parse_id(value: Id, name: str) -> int | None:
    """Parse an id given as an int or a string of decimal digits.

    ``None`` and ``""`` mean "not given". Anything else that is not a positive
    integer (signs, spaces, floats, booleans, huge numbers) is refused with
    ``Invalid <name>``.
    """
    if value is None or value == "":
        return None
    if type(value) is int:
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
    else:
        raise APIError(f"Invalid {name}")
    if not 0 < number <= MAX_ID:
        raise APIError(f"Invalid {name}")
    return number


@dataclasses.dataclass(frozen=True)
class MintRequest:
    """What a token is minted for: the inputs of ``CreateSsoToken``. Ids
    may be ints or decimal strings, as they arrive over HTTP; the issuer
    checks them."""

    #: The account; default: the user's first account.
    client_id: Id = None
    #: The user; default: the account's owner.
    user_id: Id = None
    #: A scope such as ``clientarea:invoices``; default: client area home.
    destination: str | None = None
    #: For destinations whose path names a service.
    service_id: Id = None
    #: For destinations whose path names a domain.
    domain_id: Id = None
    #: With ``sso:custom_redirect``: a path of this deployment.
    sso_redirect_path: str | None = None

    @classmethod
    def from_params(cls, params: t.Mapping[str, str]) -> MintRequest:
        """The inputs found among request parameters; others are ignored."""
        return cls(**{f.name: params[f.name] for f in dataclasses.fields(cls) if f.name in params})


class TokenIssuer:
    """Mints tokens for one deployment.

    :param token_store: where token records go.
    :param sealer: seals each record under its key, so the store alone
        cannot sign anyone in (see :mod:`.sealing`).
    :param user_store: the app's accounts and users.
    :param destinations: the deployment's scope table.
    :param sso_url: the absolute URL of the SSO endpoint; tokens are appended
        as ``?access_token=``.
    :param ttl: token lifetime in seconds (1 to :data:`~sso_middleware.options.MAX_TTL`).
    :param clock: returns UNIX time; tests may inject one.
    """

    def __init__(
        self,
        token_store: TokenStore,
        sealer: RecordSealer,
        user_store: UserStore,
        destinations: Destinations,
        *,
        sso_url: str,
        ttl: int,
        clock: t.Callable[[], float] = time.time,
    ):
        self.token_store = token_store
        self.sealer = sealer
        self.user_store = user_store
        self.destinations = destinations
        self.sso_url = sso_url
        self.ttl = ttl
        self.clock = clock

    def create_sso_token(self, request: MintRequest, *, actor: str = "python") -> dict[str, str]:
        """``CreateSsoToken``: mint a token, answered in the API's shape.

        Returns ``{"result": "success", "access_token": ..., "redirect_url":
        ...}`` or ``{"result": "error", "message": ...}`` with the reference
        system's message.

        :param actor: who asked, for the audit log (e.g. the API identifier).
        :raises StoreUnavailable: the token could not be stored; nothing was
            issued.
        """
        try:
            token = self.issue(request, actor=actor)
        except APIError as e:
            return {"result": "error", "message": e.message}
        return {"result": "success", "access_token": token, "redirect_url": self.redirect_url(token)}

    def redirect_url(self, token: str) -> str:
        """The URL that redeems ``token``."""
        return f"{self.sso_url}?access_token={token}"

    def issue(
        self,
        request: MintRequest,
        *,
        actor: str = "python",
        add: t.Callable[[str, bytes, int], bool] | None = None,
    ) -> str:
        """Mint a token and return it. Raises :class:`APIError` with the
        reference system's message, or :class:`StoreUnavailable`.

        :param add: stores the token's sealed record (``key, record, ttl``;
            ``False`` if the key is taken); the token store's ``add`` unless
            a caller must make storing conditional, as the token endpoint
            does (see :meth:`CredentialManager.add_token_if_current`)."""
        add = add or self.token_store.add
        client = parse_id(request.client_id, "client_id")
        user = parse_id(request.user_id, "user_id")
        service = parse_id(request.service_id, "service_id")
        domain = parse_id(request.domain_id, "domain_id")
        destination = request.destination
        client, user = self._resolve_identity(client, user)
        path = self.destinations.resolve(
            destination, service_id=service, domain_id=domain, sso_redirect_path=request.sso_redirect_path
        )
        self._check_owned(client, "service", service)
        self._check_owned(client, "domain", domain)
        issued_ms = int(self.clock() * 1000)
        record = TokenRecord(user, client, destination or "", path, issued_ms).encode()
        for _ in range(MINT_ATTEMPTS):
            token = new_token()
            key = token_key(token)
            if add(key, self.sealer.seal(key, record), self.ttl):
                audit(
                    logging.INFO,
                    "issued",
                    "Issued Single Sign-On token %s for User ID: %d, client %d, destination %s, by %s",
                    fingerprint(key),
                    user,
                    client,
                    destination or "home",
                    actor,
                    token=fingerprint(key),
                    user_id=user,
                    client_id=client,
                    actor=actor,
                )
                return token
        raise RuntimeError("the random source keeps repeating tokens")

    def _resolve_identity(self, client_id: int | None, user_id: int | None) -> tuple[int, int]:
        """Find the account and user a token is for, as ``CreateSsoToken``
        does: the owner when only the account is named, the user's first
        account when only the user is."""
        users = self.user_store
        if client_id is None and user_id is None:
            raise APIError("A valid client_id or user_id is required")
        if client_id is None:
            user = users.get_user(t.cast(int, user_id))
            if user is None:
                raise APIError("Invalid user_id")
            if not user.client_ids:
                raise APIError("A valid client_id or user_id is required")
            client_id = user.client_ids[0]
        account = users.get_account(client_id)
        if account is None:
            raise APIError("Invalid client_id")
        if user_id is None:
            if account.owner_user_id is None or users.get_user(account.owner_user_id) is None:
                raise APIError("No owner found for client")
            user_id = account.owner_user_id
        else:
            user = users.get_user(user_id)
            if user is None:
                raise APIError("Invalid user_id")
            if client_id not in user.client_ids:
                raise APIError("Invalid user_id for client")
        if not account.open or not account.allows_sso:
            raise APIError(f"SSO authentication blocked for client {client_id}")
        return client_id, user_id

    def _check_owned(self, client_id: int, kind: ObjectKind, object_id: int | None) -> None:
        """Refuse a service or domain the account does not own, whether or
        not the destination uses it: a caller naming another account's
        object is confused or probing, and must hear so."""
        if object_id is not None and self.user_store.owner_of(kind, object_id) != client_id:
            raise APIError(f"Invalid {kind}_id for client")
