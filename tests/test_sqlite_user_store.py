"""The SQLite user store of ``examples/``: it keeps the UserStore contract and
drives the middleware like the in-memory one."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from examples.sqlite_user_store import SCHEMA, SQLiteUserStore, seed_demo
from sso_middleware.demo import demo_user_store
from sso_middleware.users import Account, AccountStatus, User, UserStore
from tests.support.helpers import SYSTEM_URL, browser, sso_path

IDS = range(1, 8)
OBJECT_IDS = (101, 111, 201, 301, 999)


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "portal.db"
    connection = sqlite3.connect(path)
    seed_demo(connection)
    connection.close()
    return path


@pytest.fixture
def store(db_path):
    store = SQLiteUserStore(db_path)
    yield store
    store.connection.close()


@pytest.fixture
def admin(db_path):
    """Another connection to the same database, as the application's own
    admin pages would have."""
    connection = sqlite3.connect(db_path)
    yield connection
    connection.close()


def test_implements_protocol(store):
    assert isinstance(store, UserStore)


def test_answers_like_the_demo_store(store):
    demo = demo_user_store()
    for i in IDS:
        assert store.get_account(i) == demo.get_account(i), f"account {i}"
        assert store.get_user(i) == demo.get_user(i), f"user {i}"
    for kind in ("service", "domain"):
        for object_id in OBJECT_IDS:
            assert store.owner_of(kind, object_id) == demo.owner_of(kind, object_id), (kind, object_id)


def test_demo_data_spelled_out(store):
    # Guards against both stores agreeing on something wrong.
    assert store.get_account(1) == Account(1, AccountStatus.ACTIVE, True, 1)
    assert store.get_account(3) == Account(3, AccountStatus.CLOSED, True, 3)
    assert store.get_account(4) == Account(4, AccountStatus.ACTIVE, False, 4)
    assert store.get_user(5) == User(5, (1,))
    assert store.get_user(6) == User(6, ())
    assert store.owner_of("domain", 111) == 1
    assert store.owner_of("service", 111) is None
    assert store.owner_of("service", 101) == 1
    assert store.owner_of("service", 201) == 2


@pytest.mark.parametrize("bad_id", [0, -1, 7, 2**63, 2**70, "1", 1.0, None])
def test_unknown_ids_answer_none_or_false(store, bad_id):
    assert store.get_account(bad_id) is None
    assert store.get_user(bad_id) is None
    assert store.owner_of("service", bad_id) is None


def test_unknown_kind_is_not_owned(store):
    assert store.owner_of("invoice", 101) is None  # type: ignore[arg-type]


def test_changes_are_visible_on_the_next_call(store, admin):
    assert store.get_account(1).status is AccountStatus.ACTIVE
    with admin:
        admin.execute("UPDATE accounts SET status = 'Closed' WHERE client_id = 1")
    assert store.get_account(1).status is AccountStatus.CLOSED
    with admin:
        admin.execute("UPDATE accounts SET status = 'Active', sso_allowed = 0 WHERE client_id = 1")
        admin.execute("DELETE FROM account_users WHERE user_id = 5")
        admin.execute("UPDATE services SET client_id = 2 WHERE service_id = 101")
    assert store.get_account(1) == Account(1, AccountStatus.ACTIVE, False, 1)
    assert store.get_user(5) == User(5, ())
    assert store.owner_of("service", 101) == 2


def test_set_sso_allowed_is_committed(store, admin):
    store.set_sso_allowed(2, False)
    assert admin.execute("SELECT sso_allowed FROM accounts WHERE client_id = 2").fetchone() == (0,)
    assert store.get_account(2).sso_allowed is False
    store.set_sso_allowed(2, True)
    assert store.get_account(2).sso_allowed is True
    with pytest.raises(KeyError):
        store.set_sso_allowed(99, False)


def test_owned_accounts_come_first(store, admin):
    with admin:
        admin.execute("INSERT INTO users (user_id) VALUES (8)")
        admin.execute("INSERT INTO accounts VALUES (9, 'Active', 1, 8)")
        admin.executemany("INSERT INTO account_users VALUES (?, ?, ?)", [(8, 1, 0), (8, 2, 1), (8, 9, 5)])
    assert store.get_user(8) == User(8, (9, 1, 2))
    # A user listed second on an account, owning none, keeps position order.
    with admin:
        admin.execute("UPDATE account_users SET position = 9 WHERE user_id = 8 AND client_id = 1")
    assert store.get_user(8) == User(8, (9, 2, 1))


def test_shared_across_threads():
    connection = sqlite3.connect(":memory:", check_same_thread=False)
    seed_demo(connection)
    store = SQLiteUserStore(connection)
    demo = demo_user_store()
    failures: list[BaseException] = []

    def ask() -> None:
        try:
            for _ in range(50):
                for i in IDS:
                    assert store.get_user(i) == demo.get_user(i)
                    assert store.get_account(i) == demo.get_account(i)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    connection.close()
    assert not failures, failures[0]


def test_schema_is_idempotent():
    connection = sqlite3.connect(":memory:")
    connection.executescript(SCHEMA)
    connection.executescript(SCHEMA)
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    connection.close()
    assert {"accounts", "users", "account_users", "services", "domains"} <= tables


def test_end_to_end_through_the_middleware(make_middleware, store):
    middleware = make_middleware(user_store=store)
    app = browser(middleware)

    result = middleware.create_sso_token(client_id=1)
    assert result["result"] == "success", result
    response = app.get(sso_path(result["redirect_url"]))
    assert response.status_int == 303
    assert response.headers["Location"] == SYSTEM_URL + "/clientarea.php"
    page = app.get("/clientarea.php")
    assert json.loads(page.text)["identity"] == [1, 1]

    # A token minted before the account switches single sign-on off is
    # refused at redemption; after, it is not minted at all.
    early = middleware.create_sso_token(client_id=1, destination="clientarea:invoices")
    assert early["result"] == "success", early
    store.set_sso_allowed(1, False)
    assert browser(middleware).get(sso_path(early["redirect_url"]), status=403).status_int == 403
    assert middleware.create_sso_token(client_id=1) == {
        "result": "error",
        "message": "SSO authentication blocked for client 1",
    }
    assert middleware.create_sso_token(user_id=5) == {
        "result": "error",
        "message": "SSO authentication blocked for client 1",
    }
