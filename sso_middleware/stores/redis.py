"""
Redis stores
============

Tokens and sessions in Redis, shared by every process and machine of a
deployment. Keys live under one versioned prefix (``sso:v2:`` by default) so
an operator can give the middleware an ACL user restricted to it, and every
key carries a TTL.

.. code-block:: python

    from sso_middleware.stores.redis import RedisTokenStore, connect

    token_store = RedisTokenStore(connect("redis://localhost:6379/0"))

Requires Redis 6.2 or newer (``SET … GET``, ``GETEX``).
"""

from __future__ import annotations

import functools
import typing as t
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError
from redis.retry import Retry
from redis.sentinel import Sentinel

from ..exceptions import ConfigurationError, StoreUnavailable
from .protocols import SESSION_MARK

#: The key prefix used unless another is given.
DEFAULT_PREFIX = "sso:v2:"

#: What follows the prefix in the keys each store writes: tokens and
#: sessions, the end times of users and accounts, the latest of them, rate
#: counters, and credential sets (under one hash tag).
TOKENS, SUBJECTS, LATEST, COUNTERS, CREDENTIALS = "t:", "e:", "ended", "rl:", "{credentials}:"
#: All of them: a key under the prefix that starts with none is not ours.
KEY_KINDS = (TOKENS, SUBJECTS, LATEST, COUNTERS, CREDENTIALS)

#: What the stores accept: a single Redis, a Sentinel master or a Cluster.
Client = redis.Redis | RedisCluster

_P = t.ParamSpec("_P")
_R = t.TypeVar("_R")


#: Connection settings that keep redis-py from sending ``CLIENT SETINFO``
#: on connecting (see :func:`connect`).
UNNAMED: dict[str, t.Any]
try:
    from redis.driver_info import DriverInfo
except ImportError:  # redis-py before 7.1 names connections with these two
    UNNAMED = {"lib_name": None, "lib_version": None}
else:
    UNNAMED = {"driver_info": DriverInfo(name=None, lib_version=None)}


def connect(
    url: str,
    *,
    socket_timeout: float = 0.2,
    max_connections: int = 50,
    pool_timeout: float = 0.25,
    **kwargs: t.Any,
) -> redis.Redis:
    """Return a Redis client with settings that fail fast and fail closed.

    - ``socket_timeout`` bounds connecting and every reply. redis-py tries a
      connection's handshake and then the command twice each, so a Redis that
      is down or hung costs a request at most about four times this long
      (0.8 s by default), then a 503.
    - One retry without backoff, on connection errors only. Every operation
      here tolerates a retry: a retried redemption finds its own session and
      counts as a replay (a false denial, never a second sign-on), a retried
      mint sees its own key and makes a new token.
    - A bounded :class:`~redis.BlockingConnectionPool`: when all connections
      are busy, a request waits at most ``pool_timeout`` and then gets a 503
      rather than opening connections without limit.

    - Connections are not named with ``CLIENT SETINFO``: it would cost a
      round trip per new connection, and an ACL user limited to the
      middleware's commands would leave a denial in ``ACL LOG`` each time
      (on Redis 7.2+ and Valkey, which have the command).

    redis-py re-creates the pool's connections after a fork, so a client made
    before gunicorn forks its workers is safe to use in each of them.

    :param url: ``redis://``, ``rediss://`` or ``unix://`` URL.
    :param kwargs: passed on to the connection pool (``username``,
        ``password``, ``ssl_ca_certs``, ...).
    :raises ConfigurationError: for a URL or options redis-py would refuse
        on the first request.
    """
    try:
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 1),
            **{**UNNAMED, **kwargs},
        )
        # A connection object checks the URL's options (unknown ones, bad
        # values) without connecting: at start-up, not on every request.
        pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError, redis.RedisError) as e:  # the URL is not shown: it may hold a password
        raise ConfigurationError(f"the Redis URL is not usable: {_without_credentials(e, url)}") from None
    if pool.connection_class is redis.UnixDomainSocketConnection and not pool.connection_kwargs.get("path"):
        raise ConfigurationError("the Redis URL is not usable: a unix:// URL needs the socket's path")
    database = urlsplit(url).path.strip("/") if urlsplit(url).scheme in ("redis", "rediss") else ""
    if database and not (database.isascii() and database.isdigit()):
        # redis-py would quietly use database 0
        raise ConfigurationError("the Redis URL is not usable: its path must be a database number, like /0")
    return redis.Redis.from_pool(pool)  # the client owns the pool: close() closes both


def _without_credentials(error: Exception, url: str) -> str:
    """redis-py's words about a URL it refused, unless the URL holds
    credentials: a password holding ``/``, ``#`` or ``?`` is read as a host
    and a port, and the port error quotes that piece of it. An unknown
    option (``TypeError``) is named from the query string, never a password."""
    if isinstance(error, TypeError) or not url.partition("://")[2].rpartition("@")[0]:
        return str(error)
    return "it does not parse; percent-encode '/', '#', '?', '@' and ':' in a user name or password"


def connect_sentinel(
    sentinels: t.Sequence[tuple[str, int]],
    service_name: str,
    *,
    socket_timeout: float = 0.2,
    max_connections: int = 50,
    sentinel_kwargs: dict[str, t.Any] | None = None,
    **kwargs: t.Any,
) -> redis.Redis:
    """Return a client for the current master of a Sentinel-monitored
    service, with the same fail-fast settings as :func:`connect`. After a
    failover it finds the new master by itself; reads and burns always go to
    the master, never to a replica.

    :param sentinels: ``(host, port)`` of each sentinel.
    :param service_name: the monitored master's name.
    :param sentinel_kwargs: connection settings for the sentinels themselves
        (e.g. their own password); timeouts default to ``socket_timeout``.
    :param kwargs: connection settings for the master (``username``,
        ``password``, ``ssl``, ...).
    """
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(sentinels),
        sentinel_kwargs={
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_timeout,
            **UNNAMED,
            **(sentinel_kwargs or {}),
        },
    )
    return t.cast(
        redis.Redis,
        sentinel.master_for(  # type: ignore[no-untyped-call]
            service_name,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 1),
            max_connections=max_connections,
            **{**UNNAMED, **kwargs},
        ),
    )


def connect_cluster(
    startup_nodes: t.Sequence[tuple[str, int]],
    *,
    socket_timeout: float = 0.2,
    max_connections: int = 50,
    **kwargs: t.Any,
) -> RedisCluster:
    """Return a Redis Cluster client with the fail-fast settings of
    :func:`connect` (short timeouts, one retry, bounded connections per
    node; redis-py's cluster client has no per-connection health check, its
    topology refresh stands in). Every operation of these stores touches one
    key, or keys that share a hash tag, so each is served by one shard;
    reads go to masters only (redis-py's default).

    :param startup_nodes: ``(host, port)`` of some cluster nodes.
    :param kwargs: connection settings (``username``, ``password``, ``ssl``, ...).
    """
    return RedisCluster(
        startup_nodes=[
            ClusterNode(host, port)  # type: ignore[no-untyped-call]
            for host, port in startup_nodes
        ],
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 1),
        max_connections=max_connections,
        **{**UNNAMED, **kwargs},
    )


def _send_and_read(conn: redis.connection.AbstractConnection, command: tuple[t.Any, ...]) -> t.Any:
    conn.send_command(*command)  # type: ignore[no-untyped-call]
    return conn.read_response()


def _fail_closed(method: t.Callable[_P, _R]) -> t.Callable[_P, _R]:
    """Turn any Redis error into :class:`StoreUnavailable`."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as e:
            raise StoreUnavailable(f"Redis error: {type(e).__name__}", e) from e

    return wrapper


# Redemption: the token's record becomes the session's (the session's own
# part followed by that record) in one atomic step; a session found there
# instead (a replay) is ended or, with ARGV[3] = '0', left as it is. The
# reply is what was found, after the latest end_sessions() time (KEYS[2])
# and a colon: one string, the cheapest reply to read. On Cluster, where
# that time lives on another shard, KEYS[2] is absent and the time is '0'.
_REDEEM = """
local found = redis.call('GET', KEYS[1])
if not found then return false end
if string.byte(found, 1) ~= 33 then
  redis.call('SET', KEYS[1], ARGV[1] .. found, 'EX', ARGV[2])
elseif ARGV[3] == '1' then
  redis.call('SET', KEYS[1], '!', 'KEEPTTL')
end
return (KEYS[2] and redis.call('GET', KEYS[2]) or '0') .. ':' .. found
"""

# A session read: its record, its idle timeout pushed back, and its
# subjects' end times, in one call (single Redis and Sentinel; the keys
# live in different slots, so on Cluster the commands are pipelined).
_RESUME = """
return {redis.call('GETEX', KEYS[1], 'EX', ARGV[1]), redis.call('MGET', unpack(KEYS, 2))}
"""

# Sessions end up to the latest time ever given, never an earlier one
# (processes' clocks differ by a little), and the time is kept as long as
# the longest lifetime ever given: a later call with a shorter one must not
# let an earlier revocation lapse.
_END_SESSIONS = """
local recorded = tonumber(redis.call('GET', KEYS[1]) or '0')
local lifetime = math.max(tonumber(ARGV[2]), redis.call('TTL', KEYS[1]))
if tonumber(ARGV[1]) > recorded then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', lifetime)
else
  redis.call('EXPIRE', KEYS[1], lifetime)
end
"""


def _latest(values: t.Iterable[bytes | None]) -> int:
    return max((int(value) for value in values if value is not None), default=0)


class RedisTokenStore:
    """A :class:`~sso_middleware.stores.TokenStore` in Redis.

    Minting is one ``SET key record EX ttl NX``. Redeeming is one script call
    (``EVALSHA``): atomic in Redis, so of any number of concurrent
    redemptions exactly one gets the record and the others find the session
    it became (and know they are replays, which end it unless
    ``end_found`` is off). The same call reads the latest time any sessions
    were ended. Reading a session is ``GETEX`` (which extends its idle
    timeout) and a read of its subjects' end times: one script call, or on
    Cluster (where the keys live on different shards) one pipeline; on
    Cluster a redemption reads the latest end time in a pipeline of its own.

    With ``wait=(replicas, milliseconds)``, each mint and redemption is
    followed by ``WAIT`` on the same connection (still one round trip): if
    fewer replicas acknowledge in time, the operation fails closed
    (:class:`StoreUnavailable`, a 503), so a failover cannot lose a burn that
    a login was built on, nor a token that was handed out.

    :param client: a client from :func:`connect`, :func:`connect_sentinel`
        or :func:`connect_cluster`.
    :param prefix: the key prefix; token (and session) keys are
        ``{prefix}t:{digest}``, end times ``{prefix}e:{subject}`` and
        ``{prefix}ended`` (the latest of them).
    :param wait: replicas that must acknowledge, and for how long to wait.
    """

    def __init__(self, client: Client, *, prefix: str = DEFAULT_PREFIX, wait: tuple[int, int] | None = None):
        settings = client.get_connection_kwargs()
        if settings.get("decode_responses"):
            raise ConfigurationError("the Redis client must return bytes: create it without decode_responses")
        if wait is not None:
            if isinstance(client, RedisCluster):
                raise ConfigurationError("wait is for a single Redis or Sentinel, not Redis Cluster")
            replicas, timeout = wait
            socket_timeout = settings.get("socket_timeout")
            if not (type(replicas) is int and replicas >= 1 and type(timeout) is int and timeout >= 1):
                raise ConfigurationError(
                    f"wait must be (replicas, milliseconds), both whole numbers of at least 1; got {wait!r}"
                    " (WAIT with 0 ms would block until the socket timeout)"
                )
            if not socket_timeout or timeout >= socket_timeout * 1000:
                raise ConfigurationError(
                    f"wait timeout {timeout} ms must be below the client's socket timeout"
                    f" ({'none set' if not socket_timeout else f'{socket_timeout * 1000:g} ms'}),"
                    " or the client gives up before WAIT answers"
                )
        self.client = client
        self.prefix = prefix + TOKENS
        self.subjects = prefix + SUBJECTS
        self.latest = prefix + LATEST
        self.wait = wait
        self.cluster = isinstance(client, RedisCluster)
        # The pool the hot scripts take a connection from themselves (see
        # _evalsha): a plain client's only; a cluster client routes by key,
        # and a single-connection client or a subclass keeps its own path.
        self._pool: redis.ConnectionPool | None = (
            client.connection_pool if type(client) is redis.Redis and client.connection is None else None
        )
        self._redeem = client.register_script(_REDEEM)
        self._resume = client.register_script(_RESUME)
        self._end_sessions = client.register_script(_END_SESSIONS)

    @_fail_closed
    def add(self, key: str, record: bytes, ttl: int) -> bool:
        return bool(self._write("set", self.prefix + key, record, ex=ttl, nx=True))

    @_fail_closed
    def redeem(self, key: str, session: bytes, ttl: int, end_found: bool) -> tuple[bytes | None, int]:
        keys = (self.prefix + key,) if self.cluster else (self.prefix + key, self.latest)
        if self.wait is None:
            reply = self._call(self._redeem, keys, session, ttl, int(end_found))
        else:  # EVAL rather than EVALSHA: a pipeline would first ask whether the script is loaded
            reply = self._write("eval", _REDEEM, len(keys), *keys, session, ttl, int(end_found))
        if reply is None:
            return None, 0
        latest, _, found = reply.partition(b":")
        if self.cluster and not found.startswith(SESSION_MARK):
            latest = self.client.get(self.latest) or b"0"
        return found, int(latest)

    def _call(self, script: Script, keys: tuple[str, ...], *args: t.Any) -> t.Any:
        """``EVALSHA`` as redis-py's :class:`~redis.commands.core.Script`
        sends it (loading the script on ``NOSCRIPT``), without its per-call
        overhead, which is measurable on the two calls of every sign-on and
        signed-in request."""
        try:
            return self._evalsha(script.sha, keys, args)
        except NoScriptError:
            script.sha = self.client.script_load(script.script)
            return self._evalsha(script.sha, keys, args)

    def _evalsha(self, sha: str, keys: tuple[str, ...], args: tuple[t.Any, ...]) -> t.Any:
        """``EVALSHA`` on a connection of the client's pool, with that
        connection's retry (a connection error disconnects and tries once
        more, as redis-py does) and nothing else of redis-py's command path
        (its observability hooks, callbacks and locks): ~7 µs less on every
        sign-on and signed-in request (``python -m benchmarks.lean_paths``)."""
        if self._pool is None:
            return self.client.evalsha(sha, len(keys), *keys, *args)
        command = ("EVALSHA", sha, len(keys), *keys, *args)
        conn = self._pool.get_connection()
        try:
            return conn.retry.call_with_retry(
                lambda: _send_and_read(conn, command),
                lambda _: conn.disconnect(),  # type: ignore[no-untyped-call]
            )
        finally:
            self._pool.release(conn)

    def _write(self, command: str, *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Run one write command; with ``wait``, follow it by ``WAIT`` on the
        same connection, in the same round trip, and fail closed unless
        enough replicas have it."""
        if self.wait is None:
            return getattr(self.client, command)(*args, **kwargs)
        replicas, timeout = self.wait
        with self.client.pipeline(transaction=False) as pipe:
            getattr(pipe, command)(*args, **kwargs)
            pipe.wait(replicas, timeout)
            result, acknowledged = pipe.execute()
        if acknowledged < replicas:
            raise StoreUnavailable(f"only {acknowledged} of {replicas} replicas acknowledged")
        return result

    @_fail_closed
    def resume(self, key: str, ttl: int, subjects: t.Sequence[str]) -> tuple[bytes | None, int]:
        if not subjects:
            return t.cast("bytes | None", self.client.getex(self.prefix + key, ex=ttl)), 0
        ended = [self.subjects + subject for subject in subjects]
        if not self.cluster:
            record, times = self._call(self._resume, (self.prefix + key, *ended), ttl)
            return record, _latest(times)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.getex(self.prefix + key, ex=ttl)
            for name in ended:
                pipe.get(name)
            record, *times = pipe.execute()
        return record, _latest(times)

    @_fail_closed
    def ended(self, subjects: t.Sequence[str]) -> int:
        with self.client.pipeline(transaction=False) as pipe:
            for subject in subjects:
                pipe.get(self.subjects + subject)
            return _latest(pipe.execute())

    @_fail_closed
    def end(self, key: str) -> None:
        self.client.set(self.prefix + key, SESSION_MARK, xx=True, keepttl=True)

    @_fail_closed
    def end_sessions(self, subjects: t.Sequence[str], at_ms: int, lifetime: int) -> None:
        # One key a call, so each is one slot on Cluster; the latest time
        # last, so a redemption that sees it finds the subjects' times too.
        for name in [*(self.subjects + subject for subject in subjects), self.latest]:
            self._end_sessions(keys=[name], args=[at_ms, lifetime])


# INCR and, on the window's first event, EXPIRE: atomic, so a counter never
# outlives its window even if the process dies between the two.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""


class RedisCounterStore:
    """A :class:`~sso_middleware.stores.CounterStore` in Redis: one Lua script
    call per event.

    :param client: a client from :func:`connect` (or any ``redis.Redis``).
    :param prefix: the key prefix; counter keys are ``{prefix}rl:{key}``.
    """

    def __init__(self, client: Client, *, prefix: str = DEFAULT_PREFIX):
        self.client = client
        self.prefix = prefix + COUNTERS
        self._hit = client.register_script(_HIT)

    @_fail_closed
    def hit(self, key: str, window: int) -> tuple[int, int]:
        count, ttl = self._hit(keys=[self.prefix + key], args=[window])
        return int(count), max(1, int(ttl))


# Both indexes change together; the keys share a hash tag, so this is one
# slot even on Redis Cluster.
_ADD = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
return 1
"""

_DELETE = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[2])
"""

# HSET only if the field still holds what the update read: an update never
# resurrects a set that a concurrent delete removed, nor undoes a concurrent
# secret reset.
_REPLACE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


# A token is stored only while the credential set it was granted by still
# has the record the grant was checked against: -1 when it changed or is
# gone, else 1 for stored and 0 when the token's key was taken.
_ADD_TOKEN_IF_CURRENT = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return -1 end
if redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4], 'NX') then return 1 end
return 0
"""


class RedisCredentialStore:
    """A :class:`~sso_middleware.stores.CredentialStore` in Redis.

    Records live in two hashes and a counter that share one hash tag
    (``{prefix}{credentials}:…``), so every multi-key step is one Lua script
    on one slot, even on Redis Cluster. These keys have no TTL: configure
    persistence (AOF) for them.

    :param client: a client from :func:`connect` (or any ``redis.Redis``).
    :param prefix: the key prefix.
    """

    def __init__(self, client: Client, *, prefix: str = DEFAULT_PREFIX):
        self.client = client
        base = prefix + CREDENTIALS
        self.by_identifier = base + "by-identifier"
        self.ids = base + "identifiers"
        self.counter = base + "last-id"
        self._replace = client.register_script(_REPLACE)
        self._add = client.register_script(_ADD)
        self._delete = client.register_script(_DELETE)
        self._add_token_if_current = client.register_script(_ADD_TOKEN_IF_CURRENT)

    @_fail_closed
    def next_id(self) -> int:
        return int(self.client.incr(self.counter))

    @_fail_closed
    def add(self, credential_id: int, identifier: str, record: bytes) -> bool:
        return bool(self._add(keys=[self.by_identifier, self.ids], args=[identifier, record, credential_id]))

    @_fail_closed
    def replace(self, identifier: str, record: bytes, previous: bytes) -> bool:
        return bool(self._replace(keys=[self.by_identifier], args=[identifier, record, previous]))

    @_fail_closed
    def get(self, identifier: str) -> bytes | None:
        return t.cast("bytes | None", self.client.hget(self.by_identifier, identifier))

    @_fail_closed
    def find(self, credential_id: int) -> bytes | None:
        identifier = self.client.hget(self.ids, credential_id)
        if identifier is None:
            return None
        return t.cast("bytes | None", self.client.hget(self.by_identifier, identifier))

    @_fail_closed
    def all(self) -> list[bytes]:
        return t.cast("list[bytes]", self.client.hvals(self.by_identifier))

    @_fail_closed
    def add_token_if_current(
        self, identifier: str, copy: bytes, tokens: t.Any, key: str, record: bytes, ttl: int
    ) -> bool | None:
        """Store a token with ``tokens.add`` if the set's record is still
        ``copy``, both in one script: ``True`` stored, ``False`` the key was
        taken, ``None`` the set changed. ``NotImplemented`` when one script
        cannot do it: another kind of token store or client, a Cluster (the
        keys are on different slots) or a token store that waits for
        replicas."""
        if not (
            isinstance(tokens, RedisTokenStore)
            and tokens.client is self.client
            and not tokens.cluster
            and tokens.wait is None
        ):
            return NotImplemented  # type: ignore[no-any-return]
        reply = tokens._call(
            self._add_token_if_current,
            (self.by_identifier, tokens.prefix + key),
            identifier,
            copy,
            record,
            ttl,
        )
        return None if reply == -1 else bool(reply)

    @_fail_closed
    def delete(self, credential_id: int, identifier: str) -> None:
        self._delete(keys=[self.by_identifier, self.ids], args=[identifier, credential_id])
