"""What each piece of a redemption and of a session request costs, next to
raw Redis baselines. Every subject of a group alternates with the others,
with this process and redis-server pinned to one CPU; medians reported.
Context for RESULTS.md: nothing here is one of run.py's goals.

    python benchmarks/costs.py [--quick]

A redemption is the link's parse (the ``PLAIN_LINK`` regex, Werkzeug's
parser for any other query), ``token_key``, one script call
(``RedisTokenStore.redeem``: ``SET key session XX GET EX idle`` swaps the
token's record for the session's), the record's decode and checks, the
signed cookie and the 303. A session request is the cookie's signature and
payload checks, ``token_key`` of its secret and one script call
(``RedisTokenStore.resume``: ``GETEX`` of the record and ``GET`` of the
account's end time; on Cluster the same two commands as a pipeline). The
Redis calls use a client with the middleware's settings (``connect``); the
RESP parser in use (pure Python or hiredis) is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
import typing as t

import redis
from werkzeug.wrappers import Request

from apps import hello_app
from common import (PREFIX, SSO_PATH, RedisServer, TokenPool, alternate, build_middleware, call, connect, environ,
                    pin)
from sso_middleware.endpoints.sso import PLAIN_LINK
from sso_middleware.sessions import _PAYLOAD as PAYLOAD  # the shape resume() checks a cookie's payload against
from sso_middleware.stores import SESSION_MARK
from sso_middleware.stores.redis import RedisTokenStore
from sso_middleware.tokens import TokenRecord, new_token, token_key

#: A token record as the package writes it.
RECORD = TokenRecord(1, 1, "clientarea:invoices", "/clientarea.php?action=invoices", 1767225600123).encode()
#: A session record as the package writes it: the digest of a session secret.
SESSION = SESSION_MARK + token_key(new_token()).encode()

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
    key, secret, _, client_id, _ = (part.decode() for part in match.groups())
    session_key, account_key = PREFIX + "t:" + key, PREFIX + "a:" + client_id
    if store.resume(key, idle, client_id)[0] != SESSION_MARK + token_key(secret).encode():
        raise RuntimeError("resume() does not find the session the sign-on started")

    def fresh(count: int) -> list[str]:
        return [token_key(new_token()) for _ in range(count)]

    def tokens(count: int) -> list[str]:
        keys = fresh(count)
        with raw.pipeline(transaction=False) as pipe:
            for k in keys:
                pipe.set(PREFIX + "t:" + k, RECORD, ex=60)
            pipe.execute()
        return keys

    if store.redeem(tokens(1)[0], SESSION, idle, True) != RECORD:
        raise RuntimeError("redeem() does not return the token record")

    def resume_pipelined() -> t.Any:
        with raw.pipeline(transaction=False) as pipe:
            pipe.getex(session_key, ex=idle)
            pipe.get(account_key)
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

    redeem = "RedisTokenStore.redeem: SET … XX GET EX (the default replay policy)"
    resume = "RedisTokenStore.resume: EVALSHA (GETEX + GET)"
    redemption, session, bare = ("redemption (SSOMiddleware, 303)", "session request (SSOMiddleware + hello app)",
                                 "hello app alone, same request")
    get, get_bare = "GET (session key)", "GET, then the hello app"
    calls = {
        get: per_op(lambda: raw.get(session_key), n),
        "GETDEL (token key)": keyed(lambda k: raw.getdel(PREFIX + "t:" + k), tokens, n),
        "SET … EX NX (a mint's command)": keyed(lambda k: raw.set(PREFIX + "t:" + k, RECORD, ex=60, nx=True),
                                                fresh, n),
        redeem: keyed(lambda k: store.redeem(k, SESSION, idle, True), tokens, n),
        "RedisTokenStore.redeem keeping a replay's session: EVAL (the SET in a script)":
            keyed(lambda k: store.redeem(k, SESSION, idle, False), tokens, n),
        resume: per_op(lambda: store.resume(key, idle, client_id), n),
        "resume as on Cluster: pipeline GETEX + GET": per_op(resume_pipelined, n),
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
        "redemption: PLAIN_LINK.fullmatch (the link as minted)": per_op(lambda: PLAIN_LINK.fullmatch(query), n * 10),
        "redemption: Request(environ).args + getlist (fallback parser)": per_op(fallback_parse, n * 10),
        "redemption: token_key (SHA-256 + base64)": per_op(lambda: token_key(secret), n * 10),
        "redemption: TokenRecord.decode": per_op(lambda: TokenRecord.decode(RECORD), n * 10),
        "redemption: Signer.sign (cookie payload)": per_op(lambda: sessions.signer.sign(text), n * 10),
        "redemption: cookie_header (attributes made once)": per_op(lambda: sessions.cookie_header(value), n * 10),
        "session: read_cookie": per_op(lambda: sessions.read_cookie(page), n * 10),
        "session: Signer.unsign (cookie)": per_op(lambda: sessions.signer.unsign(value), n * 10),
        "session: payload regex fullmatch": per_op(lambda: PAYLOAD.fullmatch(payload), n * 10),
    }
    for fn in (*calls.values(), *requests.values(), *pieces.values()):
        fn()  # warm-up
    rs = alternate({**calls, **requests}, rounds)  # together, so the differences below are per round
    ps = alternate(pieces, rounds)
    pool.close()
    client.close()
    raw.close()
    return ([(name, rs.median(name)) for name in calls], [(name, ps.median(name)) for name in pieces], [
        *((name, rs.median(name)) for name in requests),
        ("redemption − its redeem() call", rs.difference(redemption, redeem)),
        ("session request − hello app (the middleware's overhead)", rs.difference(session, bare)),
        ("that overhead − its resume() call", statistics.median(
            s - b - r for s, b, r in zip(rs[session], rs[bare], rs[resume]))),
        # Python right after a round trip runs slower than in a loop of its own
        # (redis-server ran on the same CPU in between): part of every difference above
        ("GET, then the hello app − GET − hello app", statistics.median(
            gb - g - b for gb, g, b in zip(rs[get_bare], rs[get], rs[bare]))),
    ])


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
