"""
A UserStore over SQLite
=======================

A reference :class:`~sso_middleware.users.UserStore` over the standard
library's :mod:`sqlite3`, showing how to answer the middleware's three
questions from an application's own SQL tables. Adapt the queries to your
schema; the rules they follow are the protocol's:

- Every call reads the database afresh; nothing is cached, so closing an
  account or switching off single sign-on takes effect for the very next
  token and the very next redemption.
- Unknown ids are answered with ``None`` or ``False``, never an exception.
- ``User.client_ids`` lists the accounts the user owns first (a token naming
  only the user signs in to the first one), then the others by ``position``.

Threads: the store holds **one connection guarded by a lock**, so it works
for a file and for ``":memory:"`` alike and every thread of a WSGI server can
share it. A path is opened with ``check_same_thread=False``; a connection you
pass in must be opened that way too if several threads use the store. Reads
run outside any transaction, so each sees the latest committed state, also
of changes made through other connections or processes.

.. code-block:: python

    import sqlite3
    from sqlite_user_store import SQLiteUserStore, seed_demo

    connection = sqlite3.connect("portal.db", check_same_thread=False)
    seed_demo(connection)  # the demo's accounts, or your own data
    app = SSOMiddleware(portal, user_store=SQLiteUserStore(connection), ...)
"""

from __future__ import annotations

import os
import sqlite3
import threading
import typing as t
from os import PathLike

from sso_middleware.users import Account, AccountStatus, ObjectKind, User

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id       INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS accounts (
    client_id     INTEGER PRIMARY KEY,
    status        TEXT    NOT NULL CHECK (status IN ('Active', 'Inactive', 'Closed')),
    sso_allowed   INTEGER NOT NULL DEFAULT 1 CHECK (sso_allowed IN (0, 1)),
    owner_user_id INTEGER REFERENCES users (user_id)
);
-- Who may act for which account; the owner is listed here too.
CREATE TABLE IF NOT EXISTS account_users (
    user_id       INTEGER NOT NULL REFERENCES users (user_id),
    client_id     INTEGER NOT NULL REFERENCES accounts (client_id),
    position      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, client_id)
);
CREATE TABLE IF NOT EXISTS services (
    service_id    INTEGER PRIMARY KEY,
    client_id     INTEGER NOT NULL REFERENCES accounts (client_id)
);
CREATE TABLE IF NOT EXISTS domains (
    domain_id     INTEGER PRIMARY KEY,
    client_id     INTEGER NOT NULL REFERENCES accounts (client_id)
);
"""

#: The largest id SQLite can store; anything else cannot name a row.
_MAX_ID = 2**63 - 1

#: Owner queries by kind of object (a fixed table, never interpolated input).
_OWNER = {
    "service": "SELECT client_id FROM services WHERE service_id = ?",
    "domain": "SELECT client_id FROM domains WHERE domain_id = ?",
}


def _valid(*ids: object) -> bool:
    return all(type(i) is int and 0 < i <= _MAX_ID for i in ids)


class SQLiteUserStore:
    """A :class:`~sso_middleware.users.UserStore` over SQLite tables laid
    out as in :data:`SCHEMA`.

    :param path_or_connection: a database path (opened here) or an open
        :class:`sqlite3.Connection`.
    """

    def __init__(self, path_or_connection: str | PathLike[str] | sqlite3.Connection):
        self._path = None if isinstance(path_or_connection, sqlite3.Connection) else path_or_connection
        self._connection = path_or_connection if self._path is None else None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection, opened again in a forked child (a server that
        forks its workers after loading the app): SQLite connections must
        not cross a fork."""
        if self._path is not None and (self._connection is None or self._pid != os.getpid()):
            self._connection = sqlite3.connect(self._path, check_same_thread=False)
            self._pid = os.getpid()
        assert self._connection is not None
        return self._connection

    def _query(self, sql: str, *params: object) -> list[t.Any]:
        with self._lock:
            return self.connection.execute(sql, params).fetchall()

    def get_account(self, client_id: int) -> Account | None:
        if not _valid(client_id):
            return None
        rows = self._query(
            "SELECT status, sso_allowed, owner_user_id FROM accounts WHERE client_id = ?",
            client_id,
        )
        if not rows:
            return None
        status, sso_allowed, owner_user_id = rows[0]
        return Account(client_id, AccountStatus(status), bool(sso_allowed), owner_user_id)

    def get_user(self, user_id: int) -> User | None:
        if not _valid(user_id) or not self._query("SELECT 1 FROM users WHERE user_id = ?", user_id):
            return None
        rows = self._query(
            """SELECT au.client_id FROM account_users AS au
               JOIN accounts AS a ON a.client_id = au.client_id
               WHERE au.user_id = ?
               ORDER BY a.owner_user_id IS au.user_id DESC, au.position, au.client_id""",
            user_id,
        )
        return User(user_id, tuple(client_id for (client_id,) in rows))

    def owner_of(self, kind: ObjectKind, object_id: int) -> int | None:
        sql = _OWNER.get(kind)
        if sql is None or not _valid(object_id):
            return None
        rows = self._query(sql, object_id)
        return rows[0][0] if rows else None

    def set_sso_allowed(self, client_id: int, allowed: bool) -> None:
        """Switch "Allow Single Sign-On" for an account, as its user would.

        :raises KeyError: there is no such account.
        """
        with self._lock, self.connection:  # commits, or rolls back on error
            cursor = self.connection.execute(
                "UPDATE accounts SET sso_allowed = ? WHERE client_id = ?", (int(allowed), client_id)
            )
        if cursor.rowcount == 0:
            raise KeyError(client_id)


def seed_demo(connection: sqlite3.Connection) -> None:
    """Create :data:`SCHEMA` and fill it with the accounts of
    :func:`sso_middleware.demo.demo_user_store`."""
    connection.executescript(SCHEMA)
    with connection:
        connection.executemany("INSERT INTO users (user_id) VALUES (?)", [(1,), (2,), (3,), (4,), (5,), (6,)])
        connection.executemany(
            "INSERT INTO accounts (client_id, status, sso_allowed, owner_user_id) VALUES (?, ?, ?, ?)",
            [(1, "Active", 1, 1), (2, "Inactive", 1, 2), (3, "Closed", 1, 3), (4, "Active", 0, 4)],
        )
        connection.executemany(
            "INSERT INTO account_users (user_id, client_id) VALUES (?, ?)",
            [(1, 1), (2, 2), (3, 3), (4, 4), (5, 1)],
        )
        connection.executemany(
            "INSERT INTO services (service_id, client_id) VALUES (?, ?)", [(101, 1), (201, 2), (301, 3)]
        )
        connection.execute("INSERT INTO domains (domain_id, client_id) VALUES (111, 1)")
