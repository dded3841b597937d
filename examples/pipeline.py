"""
The pieces of ``pipeline.ini``
==============================

An ini pipeline names its parts by dotted name; these are the Flask portal's.
The portal and the ``sso`` filter must see the *same* accounts, and every
worker process must too, so the user store is a SQLite file
(``$PORTAL_DB``, seeded with the demo's accounts when new) opened once per
process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import typing as t

from flask import Flask

from examples.flask_app.app import create_portal
from examples.sqlite_user_store import SQLiteUserStore, seed_demo


@functools.cache
def user_store() -> SQLiteUserStore:
    """The accounts, shared by the portal and the ``sso`` filter."""
    path = os.environ.get("PORTAL_DB", "portal.db")
    if not os.path.exists(path):
        with contextlib.closing(sqlite3.connect(path)) as connection:
            seed_demo(connection)
    return SQLiteUserStore(path)


def portal_factory(global_conf: t.Mapping[str, str], **settings: str) -> Flask:
    """``paste.app_factory`` of the bare Flask portal."""
    return create_portal(user_store=user_store(), system_url=global_conf["public_url"])
