"""
User stores
===========

The middleware does not own accounts or users: the wrapped application does.
A :class:`UserStore` is the small window through which the middleware asks the
application's own database three questions at minting and at redemption time.

Implement it over your models; :class:`MemoryUserStore` is the reference
implementation (and the demo's), ``examples/sqlite_user_store.py`` shows one
over SQL.

.. code-block:: python

    class MyUserStore:
        def get_account(self, client_id):
            row = db.clients.get(client_id)
            if row is None:
                return None
            return Account(row.id, AccountStatus(row.status), row.allow_sso, row.owner_id)

        def get_user(self, user_id): ...
        def owner_of(self, kind, object_id): ...
"""

from __future__ import annotations

import enum
import threading
import typing as t
from dataclasses import dataclass, field, replace


class AccountStatus(str, enum.Enum):
    """The status of an account. Active and Inactive accounts may use single
    sign-on; Closed accounts may not."""

    ACTIVE = "Active"
    INACTIVE = "Inactive"
    CLOSED = "Closed"


#: The statuses that may use single sign-on.
OPEN_STATUSES = frozenset({AccountStatus.ACTIVE, AccountStatus.INACTIVE})


@dataclass(frozen=True, slots=True)
class Account:
    """An account (the reference system's *client*)."""

    client_id: int
    status: AccountStatus
    #: The account's "Allow Single Sign-On" setting; on unless the account
    #: switched it off.
    sso_allowed: bool = True
    #: The user who owns the account; signed in when a token names no user.
    owner_user_id: int | None = None

    @property
    def open(self) -> bool:
        """Whether the status lets the account sign on: Active or Inactive,
        nothing else (an unexpected value from a user store is refused)."""
        return self.status in OPEN_STATUSES

    @property
    def allows_sso(self) -> bool:
        """Whether "Allow Single Sign-On" is on: exactly ``True``, so that a
        driver's idea of false (``b"\\x00"``, ``"0"``) never reads as on."""
        return self.sso_allowed is True


@dataclass(frozen=True, slots=True)
class User:
    """A person who logs in and acts for one or more accounts."""

    user_id: int
    #: The accounts this user may act for, the one to use when a token names
    #: only the user first.
    client_ids: tuple[int, ...] = ()


#: What a destination input refers to.
ObjectKind = t.Literal["service", "domain"]


@t.runtime_checkable
class UserStore(t.Protocol):
    """Answers the middleware's questions about accounts and users.

    Every method must read the *current* state from the application's
    database, not a cached copy: a status change must take effect for the
    very next token. Unknown ids are answered with ``None`` or ``False``,
    never an exception. An exception from a user store is treated like a
    store outage: the request fails closed with a 503.
    """

    def get_account(self, client_id: int) -> Account | None:
        """Return the account, or ``None`` if there is no such account."""

    def get_user(self, user_id: int) -> User | None:
        """Return the user, or ``None`` if there is no such user."""

    def owner_of(self, kind: ObjectKind, object_id: int) -> int | None:
        """Return the ``client_id`` of the account that owns the service or
        domain ``object_id``, or ``None`` if there is no such object."""


@dataclass
class MemoryUserStore:
    """A :class:`UserStore` held in memory, safe to change from other threads.

    .. code-block:: python

        users = MemoryUserStore()
        users.add_account(Account(1, AccountStatus.ACTIVE, owner_user_id=1))
        users.add_user(User(1, client_ids=(1,)))
        users.add_service(client_id=1, service_id=101)
    """

    accounts: dict[int, Account] = field(default_factory=dict)
    users: dict[int, User] = field(default_factory=dict)
    #: (kind, object id) → owning client_id
    objects: dict[tuple[str, int], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get_account(self, client_id: int) -> Account | None:
        return self.accounts.get(client_id)

    def get_user(self, user_id: int) -> User | None:
        return self.users.get(user_id)

    def owner_of(self, kind: ObjectKind, object_id: int) -> int | None:
        return self.objects.get((kind, object_id))

    def add_account(self, account: Account) -> None:
        self.accounts[account.client_id] = account

    def add_user(self, user: User) -> None:
        self.users[user.user_id] = user

    def add_service(self, client_id: int, service_id: int) -> None:
        self.objects[("service", service_id)] = client_id

    def add_domain(self, client_id: int, domain_id: int) -> None:
        self.objects[("domain", domain_id)] = client_id

    def set_status(self, client_id: int, status: AccountStatus) -> None:
        """Change an account's status, as an admin would."""
        with self._lock:
            self.accounts[client_id] = replace(self.accounts[client_id], status=status)

    def set_sso_allowed(self, client_id: int, allowed: bool) -> None:
        """Switch "Allow Single Sign-On" for an account, as its user would."""
        with self._lock:
            self.accounts[client_id] = replace(self.accounts[client_id], sso_allowed=allowed)
