"""
The pieces of ``pipeline.ini``
==============================

An ini pipeline names its parts by dotted name; these are the Flask portal's.
The portal and the ``sso`` filter must see the *same* accounts, and every
worker process must too (and ``sso-middleware create-token``, which checks
the account before minting), so the user store is a SQLite file opened once
per process: ``$PORTAL_DB``, or else ``portal.db`` in a folder of the
system's temporary directory that belongs to this user alone
(``/tmp/sso-middleware-example-<uid>/``). It is seeded with the demo's
accounts when new, and never written into the checkout.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import stat
import tempfile
import typing as t
from pathlib import Path

from flask import Flask

from examples.flask_app.app import create_portal
from examples.sqlite_user_store import SQLiteUserStore, seed_demo


def default_db_path() -> Path:
    """``portal.db`` in ``<tmp>/sso-middleware-example-<uid>``, a folder made
    for this user alone: in a shared temporary directory, another user must
    not be able to plant or read the accounts."""
    folder = Path(tempfile.gettempdir()) / f"sso-middleware-example-{os.geteuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise RuntimeError(
            f"{folder} is not a folder of this user's alone (mode 700); remove it, or set PORTAL_DB"
        )
    return folder / "portal.db"


def create_db(path: str | os.PathLike[str]) -> None:
    """Seed a new database at ``path`` unless one is there. It is built
    under another name and linked into place (which fails if the name is
    taken), so that workers starting at once never open a half-made file
    and never seed it twice."""
    if os.path.exists(path):
        return
    descriptor, building = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".new")
    os.close(descriptor)
    try:
        with contextlib.closing(sqlite3.connect(building)) as connection:
            seed_demo(connection)
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(building, path)
    finally:
        os.unlink(building)


@functools.cache
def user_store() -> SQLiteUserStore:
    """The accounts, shared by the portal and the ``sso`` filter."""
    path = os.environ.get("PORTAL_DB") or default_db_path()
    create_db(path)
    return SQLiteUserStore(path)


def portal_factory(global_conf: t.Mapping[str, str], *, system_url: str) -> Flask:
    """``paste.app_factory`` of the bare Flask portal; ``system_url`` is the
    one the filter has (the ini gets both from ``public_url``), for the
    portal's same-origin check."""
    return create_portal(user_store=user_store(), system_url=system_url)
