"""Contract tests for the token and session stores.

Each contract is written once, as a base class whose tests use a ``store``
fixture and a ``wait`` fixture (how to let time pass), and is run against
both implementations: the in-memory stores on an injected fake clock, the
Redis stores on a real ``redis-server`` with real sleeps.
"""

from __future__ import annotations

import threading
import time
import typing as t
import uuid

import pytest
import redis

from redis_server import free_port
from sso_middleware.exceptions import ConfigurationError, StoreUnavailable
from sso_middleware.stores import SessionStore, TokenStore
from sso_middleware.stores.memory import MemorySessionStore, MemoryTokenStore
from sso_middleware.stores.redis import RedisSessionStore, RedisTokenStore, connect

# Records are opaque bytes: include a NUL and a byte that is not UTF-8.
MARK = b"!marker"
ACCOUNT = "7"
RECORD = b"\x00record-\xff-one"
OTHER = b"record-two"


def new_key() -> str:
    # Not secrets.token_urlsafe: the canary in conftest treats its values as
    # secrets that must never reach Redis, and store keys do reach Redis.
    return uuid.uuid4().hex


class FakeClock:
    """A clock for the memory stores that moves only when told to."""

    def __init__(self, now: float = 1_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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

    def test_add_then_burn_returns_the_record(self, store):
        key = new_key()
        assert store.add(key, RECORD, 60) is True
        assert store.burn(key, MARK) == RECORD

    def test_second_burn_gets_the_marker(self, store):
        key = new_key()
        store.add(key, RECORD, 60)
        assert store.burn(key, MARK) == RECORD
        assert store.burn(key, OTHER) == MARK  # a replay, recognisable as one

    def test_unknown_key_burns_to_none(self, store):
        assert store.burn(new_key(), MARK) is None

    def test_burn_affects_only_its_key(self, store):
        first, second = new_key(), new_key()
        store.add(first, RECORD, 60)
        store.add(second, OTHER, 60)
        assert store.burn(first, MARK) == RECORD
        assert store.burn(second, MARK) == OTHER

    def test_add_on_existing_key_is_refused_and_keeps_the_first_record(self, store):
        key = new_key()
        assert store.add(key, RECORD, 60) is True
        assert store.add(key, OTHER, 60) is False
        assert store.burn(key, MARK) == RECORD

    def test_burned_key_stays_taken_until_it_expires(self, store, wait):
        key = new_key()
        store.add(key, RECORD, 1)
        store.burn(key, MARK)
        assert store.add(key, OTHER, 60) is False  # the marker holds it
        wait(1.1)
        assert store.burn(key, MARK) is None  # the marker kept the token's TTL
        assert store.add(key, OTHER, 60) is True

    def test_records_expire_after_their_ttl(self, store, wait):
        expiring, reused, lasting = new_key(), new_key(), new_key()
        assert store.add(expiring, RECORD, 1)
        assert store.add(reused, RECORD, 1)
        assert store.add(lasting, RECORD, 60)
        wait(1.1)
        assert store.burn(expiring, MARK) is None
        # An expired key no longer blocks a new token under it.
        assert store.add(reused, OTHER, 60) is True
        assert store.burn(reused, MARK) == OTHER
        # A longer TTL is honoured, not cut to the shortest.
        assert store.burn(lasting, MARK) == RECORD

    def test_concurrent_burns_give_the_record_to_exactly_one(self, store):
        for _ in range(20):
            key = new_key()
            assert store.add(key, RECORD, 60)
            results = race(lambda: store.burn(key, MARK))
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, errors[0]
            assert results.count(RECORD) == 1, results
            assert results.count(MARK) == len(results) - 1, results


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
        assert store.burn(key, MARK) is None

    @pytest.mark.parametrize("sweep_every", [16, None])
    def test_expired_tokens_are_swept(self, store, clock, sweep_every):
        if sweep_every is not None:
            store.sweep_every = sweep_every
        bound = store.sweep_every + 5
        largest = 0
        for i in range(3 * store.sweep_every + 7):
            # Minted and never redeemed: only the sweep can drop them.
            assert store.add(f"never-redeemed-{i}", RECORD, 1)
            clock.advance(0.5)
            largest = max(largest, len(store._data))
        assert largest <= bound, f"{largest} entries kept for at most 3 live ones"
        assert len(store) <= 3


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
        assert redis_client.keys("*") == [f"sso:v1:t:{key}".encode()]
        assert redis_client.get(f"sso:v1:t:{key}") == RECORD

    def test_custom_prefix_is_honoured(self, redis_client):
        store = RedisTokenStore(redis_client, prefix="tenant-a:")
        key = new_key()
        store.add(key, RECORD, 60)
        assert redis_client.keys("*") == [f"tenant-a:t:{key}".encode()]
        # A store under another prefix does not see it.
        assert RedisTokenStore(redis_client).burn(key, MARK) is None
        assert store.burn(key, MARK) == RECORD

    def test_every_key_has_a_ttl(self, store, redis_client):
        keys = [new_key() for _ in range(5)]
        for i, key in enumerate(keys):
            store.add(key, RECORD, 30 + i)
        store.add(keys[0], OTHER, 600)  # a refused add must not touch the TTL
        for key in keys:
            ttl = redis_client.ttl(f"sso:v1:t:{key}")
            assert 0 < ttl <= 34, (key, ttl)

    def test_burn_is_one_set_with_get(self, store, redis_client):
        key = new_key()
        store.add(key, RECORD, 60)

        def calls(command: str) -> int:
            return redis_client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)

        commands = ("set", "get", "del", "getdel")
        before = {c: calls(c) for c in commands}
        assert store.burn(key, MARK) == RECORD
        after = {c: calls(c) for c in commands}
        assert after == {**before, "set": before["set"] + 1}
        assert redis_client.get(f"sso:v1:t:{key}") == MARK
        assert 0 < redis_client.ttl(f"sso:v1:t:{key}") <= 60  # the token's own TTL, kept

    def test_burning_an_unknown_key_creates_nothing(self, store, redis_client):
        key = new_key()
        assert store.burn(key, MARK) is None
        assert redis_client.exists(f"sso:v1:t:{key}") == 0


# ---------------------------------------------------------------------------
# Session store contract


class SessionStoreContract:
    """Run by each implementation's subclass, which supplies two fixtures:
    ``store`` (a fresh store) and ``wait`` (lets ``seconds`` pass for it)."""

    def test_implements_protocol(self, store):
        assert isinstance(store, SessionStore)

    def test_save_then_load(self, store):
        key = new_key()
        assert store.save(key, RECORD, 60, ACCOUNT, 600) is True
        assert store.load(key, 60) == RECORD
        # Loading does not consume the session.
        assert store.load(key, 60) == RECORD

    def test_save_never_overwrites_a_key(self, store):
        key = new_key()
        assert store.save(key, RECORD, 60, ACCOUNT, 600) is True
        assert store.save(key, OTHER, 60, ACCOUNT, 600) is False
        assert store.load(key, 60) == RECORD

    def test_revoke_ends_a_session_and_blocks_its_start(self, store):
        live, pending = new_key(), new_key()
        store.save(live, RECORD, 60, ACCOUNT, 600)
        store.revoke(live, 60)
        assert not store.load(live, 60)
        store.revoke(pending, 60)  # a replay, before the first redemption saved its session
        assert store.save(pending, RECORD, 60, ACCOUNT, 600) is False
        assert not store.load(pending, 60)

    def test_missing_session_loads_as_none(self, store):
        assert store.load(new_key(), 60) is None

    def test_delete_ends_the_session(self, store):
        key, kept = new_key(), new_key()
        store.save(key, RECORD, 60, ACCOUNT, 600)
        store.save(kept, OTHER, 60, ACCOUNT, 600)
        assert store.delete(key) is None
        assert store.load(key, 60) is None
        assert store.load(kept, 60) == OTHER

    def test_delete_of_missing_key_is_fine(self, store):
        key = new_key()
        store.delete(key)
        store.save(key, RECORD, 60, ACCOUNT, 600)
        store.delete(key)
        store.delete(key)
        assert store.load(key, 60) is None

    def test_sessions_expire_when_idle(self, store, wait):
        idle, lasting = new_key(), new_key()
        store.save(idle, RECORD, 1, ACCOUNT, 600)
        store.save(lasting, OTHER, 60, ACCOUNT, 600)
        wait(1.1)
        assert store.load(idle, 60) is None
        assert store.load(lasting, 60) == OTHER


    def test_delete_account_ends_every_session_of_the_account(self, store):
        mine, also_mine, theirs = new_key(), new_key(), new_key()
        store.save(mine, RECORD, 60, ACCOUNT, 600)
        store.save(also_mine, RECORD, 60, ACCOUNT, 600)
        store.save(theirs, OTHER, 60, "8", 600)
        assert store.delete_account(ACCOUNT) == 2
        assert store.load(mine, 60) is None and store.load(also_mine, 60) is None
        assert store.load(theirs, 60) == OTHER
        assert store.delete_account(ACCOUNT) == 0

    def test_delete_account_counts_only_live_sessions(self, store, wait):
        ended, live = new_key(), new_key()
        store.save(ended, RECORD, 1, ACCOUNT, 600)
        store.save(live, RECORD, 60, ACCOUNT, 600)
        wait(1.1)
        assert store.delete_account(ACCOUNT) == 1  # the idle one is gone already
        assert store.load(live, 60) is None

class TestMemorySessionStore(SessionStoreContract):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def store(self, clock) -> MemorySessionStore:
        return MemorySessionStore(clock=clock)

    @pytest.fixture
    def wait(self, clock):
        return clock.advance

    def test_load_extends_the_ttl(self, store, clock):
        key = new_key()
        store.save(key, RECORD, 10, ACCOUNT, 600)
        clock.advance(8)
        assert store.load(key, 10) == RECORD  # now expires at 18
        clock.advance(8)  # 16: past the saved expiry, within the extended one
        assert store.load(key, 10) == RECORD  # now expires at 26
        clock.advance(10)
        assert store.load(key, 10) is None

    def test_load_sets_the_given_ttl_not_the_saved_one(self, store, clock):
        key = new_key()
        store.save(key, RECORD, 10, ACCOUNT, 600)
        assert store.load(key, 100) == RECORD
        clock.advance(99)
        assert store.load(key, 1) == RECORD
        clock.advance(1)
        assert store.load(key, 1) is None

    @pytest.mark.parametrize("sweep_every", [16, None])
    def test_expired_sessions_are_swept(self, store, clock, sweep_every):
        if sweep_every is not None:
            store.sweep_every = sweep_every
        largest = 0
        for i in range(3 * store.sweep_every + 7):
            # Abandoned sessions: never loaded or deleted again.
            store.save(f"abandoned-{i}", RECORD, 1, ACCOUNT, 600)
            clock.advance(0.5)
            largest = max(largest, len(store._data))
        assert largest <= store.sweep_every + 5, f"{largest} entries kept for at most 3 live ones"


class TestRedisSessionStore(SessionStoreContract):
    @pytest.fixture
    def store(self, redis_client) -> RedisSessionStore:
        return RedisSessionStore(redis_client)

    @pytest.fixture
    def wait(self):
        return time.sleep

    def test_load_extends_the_ttl(self, store, redis_client):
        key = new_key()
        store.save(key, RECORD, 10, ACCOUNT, 600)
        name = f"sso:v1:s:{key}"
        assert 0 < redis_client.ttl(name) <= 10
        assert store.load(key, 1000) == RECORD
        assert 990 <= redis_client.ttl(name) <= 1000
        # And back down: load sets the idle timeout, it does not add to it.
        assert store.load(key, 20) == RECORD
        assert 10 < redis_client.ttl(name) <= 20

    def test_keys_carry_the_default_prefix(self, store, redis_client):
        key = new_key()
        store.save(key, RECORD, 60, ACCOUNT, 600)
        assert sorted(redis_client.keys("*")) == [f"sso:v1:a:{ACCOUNT}".encode(),
                                                  f"sso:v1:s:{key}".encode()]

    def test_custom_prefix_is_honoured(self, redis_client):
        store = RedisSessionStore(redis_client, prefix="tenant-a:")
        key = new_key()
        store.save(key, RECORD, 60, ACCOUNT, 600)
        assert sorted(redis_client.keys("*")) == [f"tenant-a:a:{ACCOUNT}".encode(),
                                                  f"tenant-a:s:{key}".encode()]
        assert RedisSessionStore(redis_client).load(key, 60) is None
        assert store.load(key, 60) == RECORD
        store.delete(key)
        assert redis_client.keys("*") == [f"tenant-a:a:{ACCOUNT}".encode()]

    def test_every_key_has_a_ttl(self, store, redis_client):
        keys = [new_key() for _ in range(5)]
        for key in keys:
            store.save(key, RECORD, 60, ACCOUNT, 600)
        store.save(keys[0], OTHER, 30, ACCOUNT, 600)  # overwritten
        store.load(keys[1], 120)  # extended
        for key in keys:
            ttl = redis_client.ttl(f"sso:v1:s:{key}")
            assert 0 < ttl <= 120, (key, ttl)


# ---------------------------------------------------------------------------
# Redis stores and their neighbours


def test_token_and_session_keys_do_not_collide(redis_client):
    tokens, sessions = RedisTokenStore(redis_client), RedisSessionStore(redis_client)
    key = new_key()
    tokens.add(key, RECORD, 60)
    sessions.save(key, OTHER, 60, ACCOUNT, 600)
    assert sorted(redis_client.keys("*")) == sorted(
        [f"sso:v1:t:{key}".encode(), f"sso:v1:s:{key}".encode(), f"sso:v1:a:{ACCOUNT}".encode()])
    assert sessions.load(key, 60) == OTHER
    assert tokens.burn(key, MARK) == RECORD
    assert sessions.load(key, 60) == OTHER


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
    "add": lambda s: s[0].add(new_key(), RECORD, 60),
    "burn": lambda s: s[0].burn(new_key(), MARK),
    "save": lambda s: s[1].save(new_key(), RECORD, 60, ACCOUNT, 600),
    "delete_account": lambda s: s[1].delete_account(ACCOUNT),
    "load": lambda s: s[1].load(new_key(), 60),
    "delete": lambda s: s[1].delete(new_key()),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_unreachable_redis_raises_store_unavailable_quickly(dead_redis, operation):
    stores = (RedisTokenStore(dead_redis), RedisSessionStore(dead_redis))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        OPERATIONS[operation](stores)
    assert time.monotonic() - started < 1.0
    assert isinstance(raised.value.original_error, redis.ConnectionError)
    assert raised.value.__cause__ is raised.value.original_error
    assert str(raised.value) == "Redis error: ConnectionError"
