"""What each piece of a redemption and of a session request costs, next to
raw Redis baselines. Every subject of a group alternates with the others,
with this process and redis-server pinned to one CPU; medians reported.
Context for RESULTS.md: nothing here is one of run.py's goals.

    python -m benchmarks.costs [--quick]

A redemption is the link's parse (the ``PLAIN_LINK`` regex, Werkzeug's
parser for any other query), ``token_key``, the SHA-256 of a fresh session
secret, one script call (``RedisTokenStore.redeem``: ``EVALSHA``, whose
``GET`` of the token's record, ``SET`` of the session record embedding it
and ``GET`` of the latest end time run in Redis), the record's MAC
(``RecordSealer.open``), decode and checks, the signed cookie and the 303.
Next to the script: the plain ``SET … XX GET EX`` the previous design sent
(the same bytes written), a script that runs one ``GET`` (what any script
call costs) and the redemption's script sent with a bare ``evalsha`` (so
the rest of ``redeem()`` is redis-py's ``Script`` object and the store's
own Python). A session request is the cookie's signature and
payload checks, one script call (``RedisTokenStore.resume``: ``GETEX`` of
the record and ``MGET`` of the user's and the account's end times; on
Cluster the same commands as a pipeline), the secret's digest and the
embedded record's MAC and decode. The Redis calls use a client with the
middleware's settings (``connect``); the RESP parser in use (pure Python or
hiredis) is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
import typing as t

import redis
from werkzeug.wrappers import Request

from sso_middleware.endpoints.sso import PLAIN_LINK
from sso_middleware.sessions import (
    _PAYLOAD as PAYLOAD,
)  # the shape resume() checks a cookie's payload against
from sso_middleware.sessions import secret_digest
from sso_middleware.stores import SESSION_MARK
from sso_middleware.stores.redis import (
    _REDEEM,  # the script RedisTokenStore.redeem sends
    RedisTokenStore,
)
from sso_middleware.tokens import TokenRecord, new_token, token_key

from .apps import hello_app
from .common import (
    PREFIX,
    SEALER,
    SSO_PATH,
    RedisServer,
    TokenPool,
    alternate,
    build_middleware,
    call,
    connect,
    environ,
    pin,
)

#: A token record as the package encodes it (sealed under each key it is stored at).
RECORD = TokenRecord(1, 1, "clientarea:invoices", "/clientarea.php?action=invoices", 1767225600123).encode()
#: What a redemption hands the store: the mark and the digest of a session
#: secret (the store appends the token's sealed record).
SESSION = SESSION_MARK + secret_digest(new_token())
#: A script that runs one command: what a script call costs over a plain one.
_GET_SCRIPT = "return redis.call('GET', KEYS[1])"

Timings = list[tuple[str, float]]


def per_op(fn: t.Callable[[], t.Any], n: int) -> t.Callable[[], float]:
    """Time ``n`` calls of ``fn``; seconds per call."""

    def run() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        return (time.perf_counter_ns() - t0) / n / 1e9

    return run


def keyed(fn: t.Callable[[str], t.Any], make: t.Callable[[int], list[str]], n: int) -> t.Callable[[], float]:
    """Time ``fn`` over ``n`` fresh keys made (untimed) by ``make``."""

    def run() -> float:
        keys = make(n)
        t0 = time.perf_counter_ns()
        for key in keys:
            fn(key)
        return (time.perf_counter_ns() - t0) / n / 1e9

    return run


def costs(url: str, rounds: int, n: int) -> tuple[Timings, Timings, Timings]:
    """The Redis calls, the Python pieces and the whole requests."""
    mw = build_middleware(hello_app, url)
    sessions = mw.sessions
    idle = sessions.idle_timeout
    client = connect(url)
    store = RedisTokenStore(client, prefix=PREFIX)
    raw = connect(url)  # the raw commands' own client, with the same settings
    pool = TokenPool(url)

    # One real sign-on: its cookie, and the session it names.
    reply = call(mw, environ(SSO_PATH, "access_token=" + pool.mint(1)[0]))
    cookie = (reply.header("Set-Cookie") or "").split(";", 1)[0]
    value = cookie.split("=", 1)[1]
    payload = sessions.signer.unsign(value)
    text = payload.decode()  # what cookie_value() signs
    match = PAYLOAD.fullmatch(payload)
    if not reply.status.startswith("303") or match is None:
        raise RuntimeError(f"the sign-on answered {reply.status} with cookie {cookie!r}")
    key, secret, user_id, client_id = (part.decode() for part in match.groups())
    subjects = (f"user:{user_id}", f"client:{client_id}")  # the end times resume() reads
    session_key = PREFIX + "t:" + key
    record = store.resume(key, idle, subjects)[0] or b""
    digest = secret_digest(secret)
    if not record.startswith(SESSION_MARK + digest):
        raise RuntimeError("resume() does not find the session the sign-on started")
    embedded = record[len(SESSION_MARK + digest) :]  # the token's sealed record
    sealed = SEALER.seal(key, RECORD)

    def fresh(count: int) -> list[str]:
        return [token_key(new_token()) for _ in range(count)]

    def tokens(count: int) -> list[str]:
        keys = fresh(count)
        with raw.pipeline(transaction=False) as pipe:
            for k in keys:
                pipe.set(PREFIX + "t:" + k, SEALER.seal(k, RECORD), ex=60)
            pipe.execute()
        return keys

    probe = tokens(1)[0]
    if store.redeem(probe, SESSION, idle, True) != (SEALER.seal(probe, RECORD), 0):
        raise RuntimeError("redeem() does not return the token's sealed record")
    get_sha, redeem_sha = raw.script_load(_GET_SCRIPT), raw.script_load(_REDEEM)

    def resume_pipelined() -> t.Any:
        with raw.pipeline(transaction=False) as pipe:
            pipe.getex(session_key, ex=idle)
            for subject in subjects:
                pipe.get(PREFIX + "e:" + subject)
            return pipe.execute()

    def redemptions() -> float:
        envs = [environ(SSO_PATH, "access_token=" + tk) for tk in pool.mint(n)]
        t0 = time.perf_counter_ns()
        replies = [call(mw, env) for env in envs]
        took = (time.perf_counter_ns() - t0) / n / 1e9
        if not all(r.status.startswith("303") for r in replies):
            raise RuntimeError("a redemption failed")
        return took

    page = environ("/clientarea.php", "action=invoices", cookie=cookie)
    if call(mw, dict(page)).body != b"ok /clientarea.php 1\n":
        raise RuntimeError("the session request is not signed in")

    redeem = "RedisTokenStore.redeem: EVALSHA (GET, SET of session + record, GET of the latest end time)"
    resume = "RedisTokenStore.resume: EVALSHA (GETEX + MGET of 2 end times)"
    redemption, session, bare = (
        "redemption (SSOMiddleware, 303)",
        "session request (SSOMiddleware + hello app)",
        "hello app alone, same request",
    )
    get, get_bare = "GET (session key)", "GET, then the hello app"
    calls = {
        get: per_op(lambda: raw.get(session_key), n),
        "GETDEL (token key)": keyed(lambda k: raw.getdel(PREFIX + "t:" + k), tokens, n),
        "SET … EX NX (a mint's command)": keyed(
            lambda k: raw.set(PREFIX + "t:" + k, RECORD, ex=60, nx=True), fresh, n
        ),
        redeem: keyed(lambda k: store.redeem(k, SESSION, idle, True), tokens, n),
        "the previous redemption: SET … XX GET EX (plain, the same session record written)": keyed(
            lambda k: raw.set(PREFIX + "t:" + k, SESSION + sealed, xx=True, get=True, ex=idle), tokens, n
        ),
        "bare evalsha of a script running one GET (token key)": keyed(
            lambda k: raw.evalsha(get_sha, 1, PREFIX + "t:" + k), tokens, n
        ),
        "bare evalsha of the redemption's script (as redeem() sends it)": keyed(
            lambda k: raw.evalsha(redeem_sha, 2, PREFIX + "t:" + k, PREFIX + "ended", SESSION, idle, 1),
            tokens,
            n,
        ),
        resume: per_op(lambda: store.resume(key, idle, subjects), n),
        "resume as on Cluster: pipeline GETEX + GET + GET": per_op(resume_pipelined, n),
    }
    requests = {
        redemption: redemptions,
        session: per_op(lambda: call(mw, dict(page)), n),
        bare: per_op(lambda: call(hello_app, dict(page)), n),
        get_bare: per_op(lambda: (raw.get(session_key), call(hello_app, dict(page))), n),
    }
    query = "access_token=" + new_token()
    link = environ(SSO_PATH, query)

    def fallback_parse() -> None:
        args = Request(link).args
        args.getlist("access_token"), args.getlist("scope")

    pieces = {
        "redemption: PLAIN_LINK.fullmatch (the link as minted)": per_op(
            lambda: PLAIN_LINK.fullmatch(query), n * 10
        ),
        "redemption: Request(environ).args + getlist (fallback parser)": per_op(fallback_parse, n * 10),
        "redemption: token_key (SHA-256 + base64)": per_op(lambda: token_key(secret), n * 10),
        "redemption and session: secret_digest (SHA-256 of the session secret)": per_op(
            lambda: secret_digest(secret), n * 10
        ),
        "redemption and session: RecordSealer.open (HMAC-SHA256)": per_op(
            lambda: SEALER.open(key, sealed), n * 10
        ),
        "redemption and session: TokenRecord.decode": per_op(lambda: TokenRecord.decode(RECORD), n * 10),
        "mint: RecordSealer.seal (HMAC-SHA256)": per_op(lambda: SEALER.seal(key, RECORD), n * 10),
        "redemption: Signer.sign (cookie payload)": per_op(lambda: sessions.signer.sign(text), n * 10),
        "redemption: cookie_header (attributes made once)": per_op(
            lambda: sessions.cookie_header(value), n * 10
        ),
        "session: read_cookie": per_op(lambda: sessions.read_cookie(page), n * 10),
        "session: Signer.unsign (cookie)": per_op(lambda: sessions.signer.unsign(value), n * 10),
        "session: payload regex fullmatch": per_op(lambda: PAYLOAD.fullmatch(payload), n * 10),
        "session: open + decode of the embedded record": per_op(
            lambda: TokenRecord.decode(SEALER.open(key, embedded)), n * 10
        ),
    }
    for fn in (*calls.values(), *requests.values(), *pieces.values()):
        fn()  # warm-up
    rs = alternate({**calls, **requests}, rounds)  # together, so the differences below are per round
    ps = alternate(pieces, rounds)
    pool.close()
    client.close()
    raw.close()
    return (
        [(name, rs.median(name)) for name in calls],
        [(name, ps.median(name)) for name in pieces],
        [
            *((name, rs.median(name)) for name in requests),
            ("redemption − its redeem() call", rs.difference(redemption, redeem)),
            ("session request − hello app (the middleware's overhead)", rs.difference(session, bare)),
            (
                "that overhead − its resume() call",
                statistics.median(s - b - r for s, b, r in zip(rs[session], rs[bare], rs[resume])),
            ),
            # Python right after a round trip runs slower than in a loop of its own
            # (redis-server ran on the same CPU in between): part of every difference above
            (
                "GET, then the hello app − GET − hello app",
                statistics.median(gb - g - b for gb, g, b in zip(rs[get_bare], rs[get], rs[bare])),
            ),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args()
    rounds, n = (5, 300) if args.quick else (15, 1000)
    server = RedisServer()
    server.start()
    try:
        print(pin(server, {0}))
        parser_name = "hiredis" if redis.utils.HIREDIS_AVAILABLE else "pure-Python RESP parser"
        print(f"redis-py {redis.__version__}, {parser_name}; medians of {rounds} alternating rounds")
        tables = costs(server.url, rounds, n)
    finally:
        server.remove()
    for heading, rows in zip(("Redis call (one round trip)", "Python piece", "whole request"), tables):
        print(f"\n| {heading} | µs per call |\n|---|---|")
        for name, seconds in rows:
            print(f"| {name} | {seconds * 1e6:.2f} |")


if __name__ == "__main__":
    main()
