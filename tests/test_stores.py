"""Contract tests for every store protocol: tokens (and the sessions they
become), rate-limit counters and OAuth credential sets.

Each contract is written once, as a base class whose tests use a ``store``
fixture (and, where time matters, a ``wait`` fixture: how to let time pass),
and is run against both implementations: the in-memory store on an injected
fake clock, the Redis store on a real ``redis-server`` and on a real
``valkey-server`` (those runs are marked ``valkey``), where only the
server's own expiry needs real seconds.
"""

from __future__ import annotations

import threading
import time
import typing as t
import uuid

import pytest
import redis

from sso_middleware.exceptions import ConfigurationError, StoreUnavailable
from sso_middleware.stores import SESSION_MARK, CounterStore, CredentialStore, TokenStore
from sso_middleware.stores.memory import MemoryCounterStore, MemoryCredentialStore, MemoryTokenStore
from sso_middleware.stores.redis import RedisCounterStore, RedisCredentialStore, RedisTokenStore, connect
from tests.support.helpers import FakeClock
from tests.support.redis_server import free_port

# Records are opaque bytes: include a NUL and a byte that is not UTF-8.
# Session records start with the mark, token records never do.
SUBJECTS = ("user:3", "client:7")
RECORD = b"\x00record-\xff-one"
OTHER = b"record-two"
SESSION = SESSION_MARK + b"session-\xff-one"
OTHER_SESSION = SESSION_MARK + b"session-two"

#: Run a test class on redis-server and on valkey-server (``redis_client``
#: follows ``server_flavour``, see tests/conftest.py).
ON_EVERY_SERVER = pytest.mark.parametrize(
    "server_flavour", [pytest.param("redis"), pytest.param("valkey", marks=pytest.mark.valkey)]
)


def new_key() -> str:
    # Not secrets.token_urlsafe: the canary in conftest treats its values as
    # secrets that must never reach Redis, and store keys do reach Redis.
    return uuid.uuid4().hex


def race(action: t.Callable[[], t.Any], threads: int = 50) -> list[t.Any]:
    """Run ``action`` in ``threads`` threads released at once by a barrier;
    return what each returned (or raised)."""
    barrier = threading.Barrier(threads)
    results: list[t.Any] = [None] * threads

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action()
        except BaseException as e:  # reported by the caller's assertions
            results[i] = e

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert not any(w.is_alive() for w in workers), "a thread hung"
    return results


# ---------------------------------------------------------------------------
# Token store contract


class TokenStoreContract:
    """Run by each implementation's subclass, which supplies two fixtures:
    ``store`` (a fresh store) and ``wait`` (lets ``seconds`` pass for it)."""

    def test_implements_protocol(self, store):
        assert isinstance(store, TokenStore)

    def test_redeem_returns_the_record_and_leaves_the_session_in_its_place(self, store):
        key = new_key()
        assert store.add(key, RECORD, 60) is True
        assert store.redeem(key, SESSION, 60, True) == (RECORD, 0)
        assert store.resume(key, 60, SUBJECTS) == (SESSION + RECORD, 0)  # the token's record follows

    @pytest.mark.parametrize("end_found, left", [(False, SESSION + RECORD), (True, SESSION_MARK)])
    def test_a_second_redeem_finds_the_session(self, store, end_found, left):
        key = new_key()
        store.add(key, RECORD, 60)
        store.redeem(key, SESSION, 60, True)
        found, _ = store.redeem(key, OTHER_SESSION, 60, end_found)
        assert found == SESSION + RECORD  # a replay, recognisable as one
        assert store.resume(key, 60, SUBJECTS) == (left, 0)
        assert store.redeem(key, OTHER_SESSION, 60, True)[0] == left  # and so is every later one

    def test_unknown_key_redeems_to_none_and_stores_nothing(self, store):
        key = new_key()
        assert store.redeem(key, SESSION, 60, True) == (None, 0)
        assert store.resume(key, 60, SUBJECTS) == (None, 0)
        assert store.add(key, RECORD, 60) is True

    def test_redeem_affects_only_its_key(self, store):
        first, second = new_key(), new_key()
        store.add(first, RECORD, 60)
        store.add(second, OTHER, 60)
        assert store.redeem(first, SESSION, 60, True)[0] == RECORD
        assert store.redeem(second, OTHER_SESSION, 60, True)[0] == OTHER
        assert store.resume(first, 60, SUBJECTS)[0] == SESSION + RECORD
        assert store.resume(second, 60, SUBJECTS)[0] == OTHER_SESSION + OTHER

    def test_add_on_existing_key_is_refused_and_keeps_the_first_record(self, store):
        key = new_key()
        assert store.add(key, RECORD, 60) is True
        assert store.add(key, OTHER, 60) is False
        assert store.redeem(key, SESSION, 60, True)[0] == RECORD

    def test_the_session_gets_its_own_ttl_and_keeps_the_key_taken(self, store, wait):
        key = new_key()
        store.add(key, RECORD, 1)
        store.redeem(key, SESSION, 3, True)
        wait(1.5)  # past the token's TTL, within the session's
        assert store.add(key, OTHER, 60) is False
        assert store.redeem(key, OTHER_SESSION, 3, False)[0] == SESSION + RECORD
        wait(1.6)  # a replay that keeps the session keeps its expiry too
        assert store.resume(key, 60, SUBJECTS) == (None, 0)
        assert store.add(key, OTHER, 60) is True

    def test_records_expire_after_their_ttl(self, store, wait):
        expiring, reused, lasting = new_key(), new_key(), new_key()
        assert store.add(expiring, RECORD, 1)
        assert store.add(reused, RECORD, 1)
        assert store.add(lasting, RECORD, 60)
        wait(1.1)
        assert store.redeem(expiring, SESSION, 60, True)[0] is None
        # An expired key no longer blocks a new token under it.
        assert store.add(reused, OTHER, 60) is True
        assert store.redeem(reused, SESSION, 60, True)[0] == OTHER
        # A longer TTL is honoured, not cut to the shortest.
        assert store.redeem(lasting, SESSION, 60, True)[0] == RECORD

    @pytest.mark.parametrize("end_found, left", [(False, SESSION + RECORD), (True, SESSION_MARK)])
    def test_concurrent_redeems_give_the_record_to_exactly_one(self, store, end_found, left):
        for _ in range(10):
            key = new_key()
            assert store.add(key, RECORD, 60)
            results = race(lambda: store.redeem(key, SESSION, 60, end_found))  # noqa: B023 (joined here)
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, errors[0]
            found = [r[0] for r in results]
            assert found.count(RECORD) == 1, found
            assert set(found) - {RECORD} <= {SESSION + RECORD, SESSION_MARK}, found
            assert store.resume(key, 60, SUBJECTS)[0] == left

    def test_resume_extends_the_session_to_the_idle_timeout(self, store, wait):
        key = new_key()
        store.add(key, RECORD, 60)
        store.redeem(key, SESSION, 2, True)
        wait(1.5)
        assert store.resume(key, 3, SUBJECTS)[0] == SESSION + RECORD  # now 3 s from here
        wait(1.5)
        assert store.resume(key, 1, SUBJECTS)[0] == SESSION + RECORD  # and back down to 1 s
        wait(1.1)
        assert store.resume(key, 60, SUBJECTS) == (None, 0)

    def test_resume_without_subjects_reads_the_record_alone(self, store, wait):
        key = new_key()
        store.add(key, RECORD, 60)
        store.redeem(key, SESSION, 1, True)
        store.end_sessions(SUBJECTS, 10**15, 60)  # no subjects asked: never reported
        wait(0.6)
        assert store.resume(key, 2, ()) == (SESSION + RECORD, 0)  # now 2 s from here
        wait(0.6)
        assert store.resume(key, 2, ())[0] == SESSION + RECORD  # past the first second

    def test_end_marks_the_session_ended_and_keeps_the_token_spent(self, store, wait):
        key, missing = new_key(), new_key()
        store.add(key, RECORD, 60)
        store.redeem(key, SESSION, 1, True)
        store.end(key)
        store.end(missing)  # not an error
        assert store.resume(key, 1, SUBJECTS) == (SESSION_MARK, 0)
        assert store.redeem(key, OTHER_SESSION, 1, False)[0] == SESSION_MARK
        assert store.resume(missing, 60, SUBJECTS) == (None, 0)  # and stays missing
        assert store.add(missing, RECORD, 60) is True
        wait(1.1)
        assert store.resume(key, 60, SUBJECTS) == (None, 0)  # the ended mark expires too

    def test_end_times_are_read_along_with_each_session(self, store, wait):
        key = new_key()
        store.add(key, RECORD, 60)
        store.redeem(key, SESSION, 60, True)
        user, account = SUBJECTS
        store.end_sessions([account], 2_000, 1)
        store.end_sessions([account], 1_000, 1)  # an earlier time changes nothing
        assert store.resume(key, 60, SUBJECTS) == (SESSION + RECORD, 2_000)
        assert store.resume(key, 60, ["client:other"]) == (SESSION + RECORD, 0)
        store.end_sessions([user], 3_000, 1)
        assert store.resume(key, 60, SUBJECTS) == (SESSION + RECORD, 3_000)  # the latest of its subjects
        assert store.resume(key, 60, [account]) == (SESSION + RECORD, 2_000)
        assert store.ended(SUBJECTS) == 3_000
        assert store.ended(["user:other", "client:other"]) == 0
        wait(1.1)
        assert store.resume(key, 60, SUBJECTS) == (SESSION + RECORD, 0)  # past the longest session

    def test_a_shorter_lifetime_never_lets_an_end_time_lapse_sooner(self, store, wait):
        """An operator revoking with a short lifetime after a deployment
        revoked with its long absolute timeout must not bring back the
        sessions the first revocation ended."""
        user, account = SUBJECTS
        store.end_sessions([account], 1_000, 60)
        store.end_sessions([account], 2_000, 1)  # later, with a shorter lifetime
        store.end_sessions([user], 3_000, 60)
        store.end_sessions([user], 2_500, 1)  # earlier, with a shorter lifetime
        wait(1.1)
        assert store.ended([account]) == 2_000 and store.ended([user]) == 3_000

    def test_redeem_reports_the_latest_end_time_of_any_subject(self, store):
        key, later = new_key(), new_key()
        store.add(key, RECORD, 60)
        store.add(later, RECORD, 60)
        store.end_sessions(["client:1", "user:2"], 5_000, 60)
        store.end_sessions(["client:9"], 4_000, 60)  # earlier than the latest: it stays
        assert store.redeem(key, SESSION, 60, True) == (RECORD, 5_000)
        store.end_sessions(["user:3"], 6_000, 60)
        assert store.redeem(later, SESSION, 60, True) == (RECORD, 6_000)


class TestMemoryTokenStore(TokenStoreContract):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def store(self, clock) -> MemoryTokenStore:
        return MemoryTokenStore(clock=clock)

    @pytest.fixture
    def wait(self, clock):
        return clock.advance

    def test_expiry_is_exact_to_the_clock(self, store, clock):
        key = new_key()
        store.add(key, RECORD, 10)
        clock.advance(9)
        assert store.add(key, OTHER, 10) is False
        clock.advance(1)
        assert store.redeem(key, SESSION, 10, True) == (None, 0)

    @pytest.mark.parametrize("sweep_every", [16, None])
    def test_expired_tokens_and_sessions_are_swept(self, store, clock, sweep_every):
        if sweep_every is not None:
            store.sweep_every = sweep_every
        bound = store.sweep_every + 5
        largest = 0
        for i in range(3 * store.sweep_every + 7):
            # Minted and never redeemed, or redeemed and never used again:
            # only the sweep can drop them.
            assert store.add(f"token-{i}", RECORD, 1)
            if i % 2:
                store.redeem(f"token-{i}", SESSION, 1, True)
            clock.advance(0.5)
            largest = max(largest, len(store._data))
        assert largest <= bound, f"{largest} entries kept for at most 3 live ones"
        assert len(store) <= 3

    def test_end_times_are_dropped_once_past(self, store, clock):
        for i in range(100):
            store.end_sessions([f"client:{i}"], 1_000 + i, 1)
            clock.advance(0.5)
        assert len(store._ended) <= 3


@ON_EVERY_SERVER
class TestRedisTokenStore(TokenStoreContract):
    @pytest.fixture
    def store(self, redis_client) -> RedisTokenStore:
        return RedisTokenStore(redis_client)

    @pytest.fixture
    def wait(self):
        return time.sleep

    def test_keys_carry_the_default_prefix(self, store, redis_client):
        key = new_key()
        store.add(key, RECORD, 60)
        assert redis_client.keys("*") == [f"sso:v2:t:{key}".encode()]
        assert redis_client.get(f"sso:v2:t:{key}") == RECORD
        store.redeem(key, SESSION, 60, True)
        store.end_sessions(["client:7"], 1_000, 60)
        assert sorted(redis_client.keys("*")) == [
            b"sso:v2:e:client:7",
            b"sso:v2:ended",
            f"sso:v2:t:{key}".encode(),
        ]
        assert redis_client.get(f"sso:v2:t:{key}") == SESSION + RECORD

    def test_custom_prefix_is_honoured(self, redis_client):
        store = RedisTokenStore(redis_client, prefix="tenant-a:")
        key = new_key()
        store.add(key, RECORD, 60)
        store.end_sessions(["client:7"], 1_000, 60)
        assert sorted(redis_client.keys("*")) == [
            b"tenant-a:e:client:7",
            b"tenant-a:ended",
            f"tenant-a:t:{key}".encode(),
        ]
        # A store under another prefix does not see it.
        assert RedisTokenStore(redis_client).redeem(key, SESSION, 60, True) == (None, 0)
        assert RedisTokenStore(redis_client).resume(key, 60, SUBJECTS) == (None, 0)
        assert store.redeem(key, SESSION, 60, True) == (RECORD, 1_000)

    def test_every_key_has_a_ttl(self, store, redis_client):
        keys = [new_key() for _ in range(5)]
        for i, key in enumerate(keys):
            store.add(key, RECORD, 30 + i)
        store.add(keys[0], OTHER, 600)  # a refused add must not touch the TTL
        store.redeem(keys[1], SESSION, 40, True)
        store.redeem(keys[1], OTHER_SESSION, 600, True)  # a replay: at most the session's TTL
        store.end(keys[2])
        store.end_sessions(list(SUBJECTS), 1_000, 40)
        assert len(redis_client.keys("*")) == 5 + 3
        for name in redis_client.keys("*"):
            ttl = redis_client.ttl(name)
            assert 0 < ttl <= 40 or (name.endswith(keys[1].encode()) and 0 < ttl <= 600), (name, ttl)

    @pytest.mark.parametrize("end_found", [True, False])
    def test_redeem_is_one_script_call(self, store, redis_client, end_found):
        key = new_key()
        store.add(key, RECORD, 60)
        store.add(spare := new_key(), RECORD, 60)
        store.redeem(spare, SESSION, 60, end_found)  # loads the script

        def calls(command: str) -> int:
            return redis_client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)

        names = ("evalsha", "eval", "set", "get", "del", "getdel", "expire", "mget")
        before = {c: calls(c) for c in names}
        assert store.redeem(key, SESSION, 1800, end_found) == (RECORD, 0)
        after = {c: calls(c) for c in names}
        # The script's own GET, SET and GET of the latest end time count too.
        assert {c: after[c] - before[c] for c in names if after[c] != before[c]} == {
            "evalsha": 1,
            "get": 2,
            "set": 1,
        }
        assert redis_client.get(f"sso:v2:t:{key}") == SESSION + RECORD
        assert 1790 < redis_client.ttl(f"sso:v2:t:{key}") <= 1800  # the session's TTL

    @pytest.mark.parametrize("operation", ["redeem", "resume"])
    def test_redeem_and_resume_are_one_round_trip(self, store, redis_client, monkeypatch, operation):
        key, spare = new_key(), new_key()
        for name in (key, spare):
            store.add(name, RECORD, 60)
        store.redeem(spare, SESSION, 60, True)  # loads the scripts
        store.resume(spare, 60, SUBJECTS)
        sent = []
        monkeypatch.setattr(
            redis.connection.Connection,
            "send_packed_command",
            _recording(redis.connection.Connection.send_packed_command, sent),
        )
        if operation == "redeem":
            assert store.redeem(key, SESSION, 60, True) == (RECORD, 0)
        else:
            assert store.resume(spare, 60, SUBJECTS) == (SESSION + RECORD, 0)
        assert len(sent) == 1

    def test_redeeming_an_unknown_key_creates_nothing(self, store, redis_client):
        key = new_key()
        assert store.redeem(key, SESSION, 60, True) == (None, 0)
        assert redis_client.exists(f"sso:v2:t:{key}") == 0


def _recording(send, sent):
    def record(self, command, *args, **kwargs):
        sent.append(command)
        return send(self, command, *args, **kwargs)

    return record


# ---------------------------------------------------------------------------
# Redis stores and their neighbours


@pytest.mark.parametrize(
    "wait, message",
    [
        ((1, 0), "at least 1"),  # WAIT 1 0 blocks until the socket times out
        ((0, 100), "at least 1"),
        ((1, -5), "at least 1"),
        ((1, 50.5), "whole numbers"),
        ((1, 200), "below the client's socket timeout"),
    ],
)
def test_bad_wait_settings_are_refused(redis_client, wait, message):
    with pytest.raises(ConfigurationError, match=message):
        RedisTokenStore(redis_client, wait=wait)


def test_wait_needs_a_client_with_a_socket_timeout(redis_server):
    client = redis.Redis.from_url(redis_server.url)  # no socket_timeout
    with pytest.raises(ConfigurationError, match="none set"):
        RedisTokenStore(client, wait=(1, 100))
    client.close()


def test_a_client_that_decodes_responses_is_refused(redis_server):
    """Records are bytes; a client returning str would fail on every
    signed-in request instead of at start-up."""
    client = connect(redis_server.url, decode_responses=True)
    with pytest.raises(ConfigurationError, match="decode_responses"):
        RedisTokenStore(client)
    client.close()


def test_float_timeouts_are_refused_at_start_up(make_middleware):
    # Redis takes EX in whole seconds only; a float would turn every sign-in
    # on Redis into a 503 while the memory store worked.
    with pytest.raises(ConfigurationError, match="whole seconds"):
        make_middleware(idle_timeout=1800.0)
    with pytest.raises(ConfigurationError, match="whole seconds"):
        make_middleware(absolute_timeout=43200.0)


@pytest.fixture
def dead_redis():
    """A client for a port nothing listens on."""
    client = connect(f"redis://127.0.0.1:{free_port()}/0")
    yield client
    client.connection_pool.disconnect()
    client.close()


OPERATIONS = {
    "add": lambda s: s.add(new_key(), RECORD, 60),
    "redeem": lambda s: s.redeem(new_key(), SESSION, 60, True),
    "resume": lambda s: s.resume(new_key(), 60, SUBJECTS),
    "ended": lambda s: s.ended(SUBJECTS),
    "end": lambda s: s.end(new_key()),
    "end_sessions": lambda s: s.end_sessions(SUBJECTS, 1_000, 60),
}


OTHER_OPERATIONS = {
    "RedisCounterStore.hit": lambda d: RedisCounterStore(d).hit(new_key(), 60),
    "RedisCredentialStore.next_id": lambda d: RedisCredentialStore(d).next_id(),
    "RedisCredentialStore.add": lambda d: RedisCredentialStore(d).add(1, "id", RECORD),
    "RedisCredentialStore.replace": lambda d: RedisCredentialStore(d).replace("id", OTHER, RECORD),
    "RedisCredentialStore.get": lambda d: RedisCredentialStore(d).get("id"),
    "RedisCredentialStore.find": lambda d: RedisCredentialStore(d).find(1),
    "RedisCredentialStore.all": lambda d: RedisCredentialStore(d).all(),
    "RedisCredentialStore.delete": lambda d: RedisCredentialStore(d).delete(1, "id"),
    "RedisCredentialStore.add_token_if_current": lambda d: RedisCredentialStore(d).add_token_if_current(
        "id", RECORD, RedisTokenStore(d), new_key(), RECORD, 60
    ),
}


def test_every_store_operation_is_covered_below():
    """A new public method of a Redis store must join the fail-closed test."""
    for cls, covered in (
        (RedisTokenStore, set(OPERATIONS)),
        (
            RedisCounterStore,
            {name.split(".")[1] for name in OTHER_OPERATIONS if name.startswith("RedisCounter")},
        ),
        (
            RedisCredentialStore,
            {n.split(".")[1] for n in OTHER_OPERATIONS if n.startswith("RedisCredential")},
        ),
    ):
        public = {name for name, value in vars(cls).items() if callable(value) and not name.startswith("_")}
        assert public == covered, cls.__name__


@pytest.mark.parametrize("operation", [*OPERATIONS, *OTHER_OPERATIONS])
def test_unreachable_redis_raises_store_unavailable_quickly(dead_redis, operation):
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        if operation in OPERATIONS:
            OPERATIONS[operation](RedisTokenStore(dead_redis))
        else:
            OTHER_OPERATIONS[operation](dead_redis)
    assert time.monotonic() - started < 1.0
    assert isinstance(raised.value.original_error, redis.ConnectionError)
    assert raised.value.__cause__ is raised.value.original_error
    assert str(raised.value) == "Redis error: ConnectionError"


# ---------------------------------------------------------------------------
# Counter store contract


class CounterStoreContract:
    """Run by each implementation's subclass, which supplies ``store`` and
    ``wait``."""

    def test_implements_protocol(self, store):
        assert isinstance(store, CounterStore)

    def test_hits_count_up_within_a_window(self, store):
        key = new_key()
        counts = [store.hit(key, 60) for _ in range(3)]
        assert [count for count, _ in counts] == [1, 2, 3]
        assert all(0 < left <= 60 for _, left in counts)

    def test_keys_count_apart(self, store):
        first, second = new_key(), new_key()
        store.hit(first, 60)
        store.hit(first, 60)
        assert store.hit(second, 60)[0] == 1

    def test_a_new_window_starts_after_the_old_one_ends(self, store, wait):
        key = new_key()
        store.hit(key, 1)
        assert store.hit(key, 1)[0] == 2
        wait(1.2)
        assert store.hit(key, 1)[0] == 1

    def test_concurrent_hits_are_each_counted_once(self, store):
        key = new_key()
        results = race(lambda: store.hit(key, 60))
        assert sorted(count for count, _ in results) == list(range(1, 51))


class TestMemoryCounterStore(CounterStoreContract):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def store(self, clock) -> MemoryCounterStore:
        return MemoryCounterStore(clock=clock)

    @pytest.fixture
    def wait(self, clock):
        return clock.advance


@ON_EVERY_SERVER
class TestRedisCounterStore(CounterStoreContract):
    @pytest.fixture
    def store(self, redis_client) -> RedisCounterStore:
        return RedisCounterStore(redis_client)

    @pytest.fixture
    def wait(self):
        return time.sleep  # the window is the key's expiry, kept by Redis itself


# ---------------------------------------------------------------------------
# Credential store contract


class CredentialStoreContract:
    """Run by each implementation's subclass, which supplies ``store``."""

    def test_implements_protocol(self, store):
        assert isinstance(store, CredentialStore)

    def test_ids_are_never_handed_out_twice(self, store):
        ids = race(store.next_id)
        assert len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids)

    def test_a_set_is_found_by_identifier_and_by_id(self, store):
        credential_id = store.next_id()
        assert store.add(credential_id, "id-one", RECORD)
        assert store.get("id-one") == RECORD
        assert store.find(credential_id) == RECORD
        assert store.get("id-two") is None and store.find(credential_id + 1000) is None
        assert store.all() == [RECORD]

    def test_add_refuses_a_taken_id_or_identifier_and_stores_nothing(self, store):
        first, second = store.next_id(), store.next_id()
        assert store.add(first, "id-one", RECORD)
        assert store.add(first, "id-two", OTHER) is False
        assert store.add(second, "id-one", OTHER) is False
        assert store.get("id-two") is None and store.find(second) is None
        assert store.get("id-one") == RECORD

    def test_concurrent_adds_of_one_id_store_one_set(self, store):
        credential_id = store.next_id()
        results = race(lambda: store.add(credential_id, new_key(), RECORD))
        assert results.count(True) == 1
        assert len(store.all()) == 1

    def test_replace_only_what_was_read(self, store):
        credential_id = store.next_id()
        store.add(credential_id, "id-one", RECORD)
        assert store.replace("id-one", OTHER, previous=RECORD)
        assert store.get("id-one") == OTHER == store.find(credential_id)
        assert store.replace("id-one", RECORD, previous=RECORD) is False  # changed meanwhile
        assert store.get("id-one") == OTHER

    def test_replace_of_a_deleted_set_stores_nothing(self, store):
        credential_id = store.next_id()
        store.add(credential_id, "id-one", RECORD)
        store.delete(credential_id, "id-one")
        assert store.replace("id-one", OTHER, previous=RECORD) is False
        assert store.get("id-one") is None and store.find(credential_id) is None
        assert store.all() == []

    def test_delete_of_a_missing_set_is_no_error(self, store):
        store.delete(12345, "nobody")


class TestMemoryCredentialStore(CredentialStoreContract):
    @pytest.fixture
    def store(self) -> MemoryCredentialStore:
        return MemoryCredentialStore()


@ON_EVERY_SERVER
class TestRedisCredentialStore(CredentialStoreContract):
    @pytest.fixture
    def store(self, redis_client) -> RedisCredentialStore:
        return RedisCredentialStore(redis_client)


def test_one_connection_error_on_a_script_is_retried(redis_server, monkeypatch):
    """The session read's lean script call keeps the one retry ``connect()``
    promises: a connection reset once is not an outage."""
    client = connect(redis_server.url)
    store = RedisTokenStore(client)
    store.resume("k" * 22, 60, ["1"])  # the script loaded, the pool's connection open
    failures = []
    real = redis.connection.Connection.send_packed_command

    def flaky(self, *args, **kwargs):
        if not failures:
            failures.append(1)
            self.disconnect()  # as redis-py does on a broken socket
            raise redis.ConnectionError("Error 104 while writing to socket. Connection reset by peer.")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", flaky)
    try:
        assert store.resume("k" * 22, 60, ["1"]) == (None, 0)
    finally:
        monkeypatch.undo()
        client.close()
    assert failures == [1]
