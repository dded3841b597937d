"""
OAuth credential sets
=====================

A credential set lets a trusted system with only *user-level* trust sign one
account's owner in, through the token endpoint and the ``single_sign_on``
grant, without admin credentials. It is bound to a service and so to the
service's account, and to a list of scopes: its holder can mint tokens for
that account only and for those destinations only.

:class:`CredentialManager` creates, lists, updates and deletes them (the
reference system's ``CreateOAuthCredential`` family) and authenticates
clients. The client secret is shown once, at creation or reset; only its
SHA-256 hash is stored (:func:`~sso_middleware.credentials.hash_secret`).
Records are sealed like token records (:mod:`.sealing`): a set written into
the store by hand, or one of another deployment sharing the store, is not
this deployment's and authenticates nobody.
"""

from __future__ import annotations

import builtins
import collections
import json
import logging
import re
import secrets
import threading
import typing as t
from dataclasses import asdict, dataclass, replace

from .audit import audit
from .credentials import hash_secret, verify_secret
from .destinations import CUSTOM_REDIRECT, SSO_SCOPE, Destinations
from .exceptions import APIError, SSOError
from .issuer import Id, parse_id
from .sealing import RecordSealer
from .stores import CredentialStore, TokenStore
from .users import UserStore

#: The only grant type these credential sets serve.
SINGLE_SIGN_ON = "single_sign_on"

#: The shape of a client identifier: 128 random bits in hex.
IDENTIFIER_PATTERN = re.compile(r"[0-9a-f]{32}")

#: What credential records are sealed under: the record itself names its
#: id and identifier, and every read checks them against what it looked up.
_SEAL_KEY = "credential"


@dataclass(frozen=True, slots=True)
class OAuthCredential:
    """One credential set, as stored (a secret's hash, never the secret)."""

    credential_id: int
    #: The public client identifier (``client_id`` at the token endpoint).
    identifier: str
    secret_hash: str
    #: Allowed scopes, always including the marker scope ``clientarea:sso``.
    scopes: tuple[str, ...]
    #: The account whose owner the tokens sign in.
    client_id: int
    #: The service the set is bound to; the default ``service_id`` input.
    service_id: int | None
    name: str = ""
    description: str = ""
    grant_type: str = SINGLE_SIGN_ON

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> OAuthCredential:
        """Parse what :meth:`encode` wrote. Raises :class:`ValueError` for
        anything else."""
        try:
            raw = json.loads(data)
            raw["scopes"] = tuple(raw["scopes"])
            credential = cls(**raw)
        except (TypeError, KeyError, ValueError) as e:
            raise ValueError("corrupted credential record") from e
        if not (
            type(credential.credential_id) is int
            and credential.credential_id > 0
            and isinstance(credential.identifier, str)
            and IDENTIFIER_PATTERN.fullmatch(credential.identifier)
            and type(credential.client_id) is int
            and (credential.service_id is None or type(credential.service_id) is int)
            and all(
                isinstance(v, str)
                for v in (
                    credential.secret_hash,
                    credential.name,
                    credential.description,
                    credential.grant_type,
                    *credential.scopes,
                )
            )
        ):
            raise ValueError("corrupted credential record")
        return credential

    def describe(self) -> dict[str, t.Any]:
        """The set as ``ListOAuthCredentials`` shows it: everything but the
        secret (and its hash)."""
        return {
            "credentialId": self.credential_id,
            "clientIdentifier": self.identifier,
            "name": self.name,
            "description": self.description,
            "grantTypes": self.grant_type,
            "scope": " ".join(self.scopes),
            "serviceId": self.service_id,
            "clientId": self.client_id,
        }


#: How many sets' records a process keeps copies of (see
#: :meth:`CredentialManager.authenticate_cached`).
MAX_COPIES = 1024


class CredentialChanged(SSOError):
    """The set a grant was checked against was updated, reset or deleted
    before its token was stored; the token was not stored."""


class CredentialManager:
    """Manages the credential sets of a deployment.

    :param store: where credential sets live.
    :param user_store: to find the account a service belongs to.
    :param destinations: the scopes a set may be granted.
    :param sealer: seals each record, so only this deployment's sets count.
    """

    #: Reads of a record an update makes while other updates keep changing it.
    update_attempts = 3

    #: Ids a new set tries before giving up (each taken one was skipped).
    add_attempts = 1000

    def __init__(
        self, store: CredentialStore, user_store: UserStore, destinations: Destinations, sealer: RecordSealer
    ):
        self.store = store
        self.user_store = user_store
        self.destinations = destinations
        self.sealer = sealer
        #: identifier → the set's record as last read, and the set opened from
        #: it, so a grant needs no read (nor a seal check) of its own; see
        #: :meth:`authenticate_cached`.
        self._copies: collections.OrderedDict[str, tuple[bytes, OAuthCredential]] = collections.OrderedDict()
        self._copies_lock = threading.Lock()

    def seal(self, credential: OAuthCredential) -> bytes:
        """The stored form of a set: its record, sealed."""
        return self.sealer.seal(_SEAL_KEY, credential.encode())

    def _open(self, record: bytes) -> OAuthCredential | None:
        """The set a stored record holds, or ``None`` (audited) if this
        deployment did not seal it."""
        try:
            return OAuthCredential.decode(self.sealer.open(_SEAL_KEY, record))
        except ValueError:
            audit(
                logging.WARNING,
                "tampered_record",
                "OAuth credential record refused: it fails its MAC or is corrupted;"
                " the store may have been written to by someone else",
            )
            return None

    def parse_scopes(self, scope: str) -> tuple[str, ...]:
        """Parse a space-separated scope list into the stored form: the
        marker scope first, then each destination once. ``sso:custom_redirect``
        is for the admin API only and cannot be granted."""
        scopes = [SSO_SCOPE]
        for name in scope.split():
            if name != SSO_SCOPE and (name not in self.destinations or name == CUSTOM_REDIRECT):
                raise APIError(f'The requested scope "{name[:100]}" is invalid.')
            if name not in scopes:
                scopes.append(name)
        return tuple(scopes)

    def create(
        self,
        *,
        grant_type: str | None,
        scope: str = "",
        service_id: Id = None,
        name: str = "",
        description: str = "",
        actor: str = "python",
    ) -> tuple[OAuthCredential, str]:
        """``CreateOAuthCredential``: return the new set and its secret,
        which is not stored and cannot be shown again."""
        if grant_type != SINGLE_SIGN_ON:
            if grant_type == "authorization_code":
                raise APIError(
                    "The authorization_code grant type is not supported:"
                    " this middleware serves only single_sign_on"
                )
            raise APIError("A valid grant type is required.")
        service = parse_id(service_id, "serviceId")
        if service is None:
            raise APIError("A service ID is required for the single sign-on grant type.")
        client_id = self.user_store.owner_of("service", service)
        if client_id is None or self.user_store.get_account(client_id) is None:
            raise APIError("Service ID not associated with valid Client.")
        scopes = self.parse_scopes(scope)
        secret = secrets.token_urlsafe(32)
        credential = self._add(
            OAuthCredential(
                0,
                secrets.token_hex(16),
                hash_secret(secret),
                scopes,
                client_id,
                service,
                name,
                description,
            )
        )
        self._audit("credential_created", credential, actor)
        return credential, secret

    def _add(self, credential: OAuthCredential) -> OAuthCredential:
        """Store a new set under the next free ``credentialId``: an id
        already taken (a counter reset behind our back) is skipped, never
        shared, so deleting by id always deletes the set listed."""
        for _ in range(self.add_attempts):
            credential = replace(credential, credential_id=self.store.next_id())
            if self.store.add(credential.credential_id, credential.identifier, self.seal(credential)):
                return credential
        raise APIError("No free credentialId; the credential store needs attention")

    def list(self) -> list[OAuthCredential]:
        """``ListOAuthCredentials``, by ``credentialId``."""
        credentials = (self._open(record) for record in self.store.all())
        return sorted((c for c in credentials if c is not None), key=lambda c: c.credential_id)

    def get(self, credential_id: Id) -> OAuthCredential:
        """The set with this ``credentialId``, or ``Invalid credentialId``."""
        return self._read(credential_id)[1]

    def _read(self, credential_id: Id) -> tuple[bytes, OAuthCredential]:
        """The stored record of a set and the set, or ``Invalid credentialId``."""
        number = parse_id(credential_id, "credentialId")
        record = self.store.find(number) if number is not None else None
        credential = self._open(record) if record is not None else None
        if record is None or credential is None or credential.credential_id != number:
            raise APIError("Invalid credentialId")
        return record, credential

    def update(
        self,
        credential_id: Id,
        *,
        name: str | None = None,
        description: str | None = None,
        scope: str | None = None,
        reset_secret: bool = False,
        actor: str = "python",
    ) -> tuple[OAuthCredential, str | None]:
        """``UpdateOAuthCredential``: change what is given; with
        ``reset_secret`` the old secret stops working at once and the new
        one is returned. A concurrent change is never undone: the write
        succeeds only over the record this call read (read again up to
        :attr:`update_attempts` times)."""
        changes: dict[str, t.Any] = {}
        if name is not None:
            changes["name"] = name
        if description is not None:
            changes["description"] = description
        if scope is not None:
            changes["scopes"] = self.parse_scopes(scope)
        secret = None
        if reset_secret:
            secret = secrets.token_urlsafe(32)
            changes["secret_hash"] = hash_secret(secret)
        for _ in range(self.update_attempts):
            previous, current = self._read(credential_id)  # Invalid credentialId once deleted
            credential = replace(current, **changes)
            if self.store.replace(credential.identifier, self.seal(credential), previous):
                self._audit("credential_reset" if reset_secret else "credential_updated", credential, actor)
                return credential, secret
        raise APIError("The credential set keeps changing; try again")

    def delete(self, credential_id: Id, *, actor: str = "python") -> OAuthCredential:
        """``DeleteOAuthCredential``; its tokens already minted stay valid
        until they expire (60 s by default)."""
        credential = self.get(credential_id)
        self.store.delete(credential.credential_id, credential.identifier)
        self._audit("credential_deleted", credential, actor)
        return credential

    def import_unsealed(
        self,
        records: t.Iterable[bytes],
        *,
        only: t.Collection[str] = (),
        reset_secrets: bool = False,
        apply: bool = False,
        actor: str = "python",
    ) -> tuple[builtins.list[dict[str, t.Any]], int]:
        """Seal and store the credential sets of a release that kept them
        unsealed (``sso:v1:``). Each gets a new
        ``credentialId`` (the old one may be taken here); its identifier
        keeps working, and so does its secret unless ``reset_secrets``.
        Sets already here are left alone, so running it twice is harmless.

        Unsealed records cannot say who wrote them, and a changed secret
        hash looks like any other: keeping the secrets trusts the old store
        as the old release did. So nothing is written unless ``apply``;
        review the sets first, pass ``only`` (identifiers) to import some,
        and ``reset_secrets`` to trust none of the old secrets (the new ones
        are returned, once). Return the sets (described, with their
        ``previousCredentialId``) and how many records were unreadable or
        claimed an identifier another record claims too (a planted copy;
        neither is imported)."""
        sets: dict[str, OAuthCredential | None] = {}
        unreadable = 0
        for record in records:
            try:
                old = OAuthCredential.decode(record)
            except ValueError:
                unreadable += 1
                continue
            if old.identifier in sets:
                unreadable += 1 + (sets[old.identifier] is not None)
                sets[old.identifier] = None
            else:
                sets[old.identifier] = old
        described = []
        for identifier, found in sets.items():
            if found is None or (only and identifier not in only) or self.store.get(identifier) is not None:
                continue
            old = found
            secret = secrets.token_urlsafe(32) if reset_secrets else None
            if secret is not None:
                old = replace(old, secret_hash=hash_secret(secret))
            credential = self._add(old) if apply else old
            if apply:
                self._audit("credential_imported", credential, actor)
            shown = {"clientSecret": secret} if secret is not None and apply else {}
            described.append({**credential.describe(), "previousCredentialId": old.credential_id, **shown})
        return described, unreadable

    def authenticate(self, identifier: str, secret: str) -> OAuthCredential | None:
        """The set whose identifier and secret these are, or ``None``. An
        unknown identifier costs the same comparison as a wrong secret."""
        record = self.store.get(identifier) if identifier else None
        credential = self._open_as(identifier, record)
        # the stored record, whatever the secret: a wrong one must not make
        # the owner's next grant read the store again
        self._remember(identifier, record, credential)
        expected = credential.secret_hash if credential is not None else None
        return credential if verify_secret(secret, expected) else None

    def authenticate_cached(
        self, identifier: str, secret: str
    ) -> tuple[OAuthCredential, bytes | None] | None:
        """:meth:`authenticate`, from this process's copy of the set's
        record when it has one: the set and that copy, which
        :meth:`add_token_if_current` confirms as it stores the token; or the
        set and ``None`` when it was just read from the store. A secret the
        copy refuses is checked against the store (it may have been reset),
        so every failure costs one read, as without copies."""
        cached = self._copies.get(identifier)
        if cached is not None:
            copy, credential = cached  # opened (its seal checked) when remembered
            if verify_secret(secret, credential.secret_hash):
                return credential, copy
        checked = self.authenticate(identifier, secret)
        return None if checked is None else (checked, None)

    def add_token_if_current(
        self, identifier: str, copy: bytes, tokens: TokenStore, key: str, record: bytes, ttl: int
    ) -> bool:
        """``tokens.add(key, record, ttl)`` if the set's stored record is
        still ``copy``; in one round trip when the store can do both at once
        (:meth:`RedisCredentialStore.add_token_if_current`), else a read and
        then the write. Raises :class:`CredentialChanged` (and forgets the
        copy) if the set was updated, reset or deleted since."""
        atomic = getattr(self.store, "add_token_if_current", None)
        added = atomic(identifier, copy, tokens, key, record, ttl) if atomic is not None else NotImplemented
        if added is NotImplemented:  # no one-step path for these stores
            added = tokens.add(key, record, ttl) if self.store.get(identifier) == copy else None
        if added is None:
            self._remember(identifier, None, None)
            raise CredentialChanged(identifier)
        return bool(added)

    def _open_as(self, identifier: str, record: bytes | None) -> OAuthCredential | None:
        """The set ``record`` holds, if it is sealed and the set of
        ``identifier`` (a sealed record moved under another is not)."""
        credential = self._open(record) if record is not None else None
        return credential if credential is not None and credential.identifier == identifier else None

    def _remember(self, identifier: str, record: bytes | None, credential: OAuthCredential | None) -> None:
        """Keep ``record`` and the set opened from it as this process's copy;
        forget the copy when there is no such set."""
        with self._copies_lock:
            if record is None or credential is None:
                self._copies.pop(identifier, None)
                return
            self._copies[identifier] = (record, credential)
            self._copies.move_to_end(identifier)
            while len(self._copies) > MAX_COPIES:
                self._copies.popitem(last=False)

    @staticmethod
    def _audit(event: str, credential: OAuthCredential, actor: str) -> None:
        audit(
            logging.INFO,
            event,
            "OAuth credential %d (%s) for client %d: %s by %s",
            credential.credential_id,
            credential.identifier,
            credential.client_id,
            event.removeprefix("credential_"),
            actor,
            credential_id=credential.credential_id,
            client_id=credential.client_id,
            actor=actor,
        )
