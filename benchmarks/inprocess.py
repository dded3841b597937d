"""In-process benchmarks: the middleware called directly as a WSGI app (no
HTTP server), each subject alternating with its baseline, medians reported.

    python -m benchmarks.inprocess [--quick]

- ``passthrough_overhead``: a request without a session cookie through the
  middleware ÷ the same app bare (the app is ``apps.hello_app``, a Werkzeug
  request and response; the 3-line raw WSGI app is shown for context).
- ``session_overhead``: the same with a valid session cookie; the goal is in
  microseconds: overhead ≤ one raw ``GET`` + 20 µs.
- ``redeem_vs_getdel``: a full redemption (parse; the one script call,
  ``EVALSHA``, whose ``GET``, ``SET`` and ``GET`` turn the token's record
  into the session's and read the latest end time; the record's MAC, the
  user-store lookup, the cookie, the 303) ÷ one raw ``GETDEL`` on a client
  with the middleware's connection settings
  (``sso_middleware.stores.redis.connect``).
- ``mint_vs_set``: ``SSOMiddleware.create_sso_token`` (the record sealed,
  one ``SET … EX NX``) ÷ one raw ``SET … EX 60 NX``.
- ``redis_round_trips_per_redeem`` / ``_per_mint``: requests the middleware's
  client sends (a pipeline would count once), counted by its connections
  over 1,000 operations. A script's commands cost Redis time but no round
  trip, so ``redis_script_commands_per_redeem`` reports them apart: what
  ``INFO commandstats`` counted beyond the commands the client sent.
"""

from __future__ import annotations

import argparse
import collections
import secrets
import typing as t
import urllib.parse
from dataclasses import dataclass

import redis

from sso_middleware.stores import SESSION_MARK
from sso_middleware.tokens import TokenRecord, token_key

from .apps import hello_app
from .common import (
    API_IDENTIFIER,
    API_PATH,
    API_SECRET,
    DESTINATION,
    PREFIX,
    SEALER,
    SSO_PATH,
    CountingConnection,
    Reply,
    Row,
    Section,
    TokenPool,
    alternate,
    bare_app,
    build_middleware,
    call,
    clock_ns,
    connect,
    counting_client,
    environ,
    log,
    run_alone,
    us,
)

#: A token record as the package writes it, sealed (the GETDEL and SET
#: baselines store it; its size is what matters to them, not its key).
RECORD = SEALER.seal(
    "x" * 43, TokenRecord(1, 1, DESTINATION, "/clientarea.php?action=invoices", 1767225600123).encode()
)


@dataclass(frozen=True)
class Settings:
    rounds: int  # alternating rounds per comparison
    redis_batch: int  # ops per run for Redis-bound subjects
    fast_batch: int  # ops per run for pass-through (µs-scale) subjects


QUICK = Settings(rounds=11, redis_batch=300, fast_batch=10000)
FULL = Settings(rounds=21, redis_batch=1000, fast_batch=20000)


class Bench:
    """Holds the middleware, a token pool and a raw client on one Redis."""

    def __init__(self, redis_url: str, settings: Settings):
        self.s = settings
        self.mw = build_middleware(hello_app, redis_url)
        #: the same, with the opt-in revocation delay of a second
        self.delayed_mw = build_middleware(hello_app, redis_url, revocation_delay=1)
        self.raw_mw = build_middleware(bare_app, redis_url)
        self.pool = TokenPool(redis_url)
        self.raw = connect(redis_url)  # the middleware's connection settings
        self.latencies: dict[str, list[float]] = {}
        # A real session record (the mark, the secret's digest, the token's
        # sealed record): the GET baseline reads a copy of it.
        token = self.pool.mint(1)[0]
        call(self.mw, environ(SSO_PATH, "access_token=" + token))
        self.session_record = t.cast("bytes | None", self.raw.get(PREFIX + "t:" + token_key(token))) or b""
        if not self.session_record.startswith(SESSION_MARK) or len(self.session_record) <= len(SESSION_MARK):
            raise RuntimeError(f"no session record where the token was: {self.session_record!r}")

    # -- per-op timing helpers ------------------------------------------------

    def timed_each(self, name: str, ops: t.Sequence[t.Callable[[], t.Any]]) -> float:
        """Time each op; keep the samples for the plot; seconds per op."""
        samples = self.latencies.setdefault(name, [])
        total = 0
        for op in ops:
            t0 = clock_ns()
            op()
            dt = clock_ns() - t0
            total += dt
            samples.append(dt / 1e3)
        return total / len(ops) / 1e9

    def timed_batch(self, app: t.Any, envs: list[dict[str, t.Any]]) -> float:
        """Call ``app`` once per environ, timing the whole batch (for
        µs-scale requests, where a clock read per call would show)."""
        t0 = clock_ns()
        for env in envs:
            call(app, env)
        return (clock_ns() - t0) / len(envs) / 1e9

    # -- subjects ------------------------------------------------------------

    def passthrough(self, app: t.Any, cookie: str | None = None) -> t.Callable[[], float]:
        base = environ("/clientarea.php", "action=invoices", cookie=cookie)
        n = self.s.fast_batch if cookie is None else self.s.redis_batch
        return lambda: self.timed_batch(app, [dict(base) for _ in range(n)])

    def session_request(self, cookie: str, *, delayed: bool = False) -> t.Callable[[], float]:
        base = environ("/clientarea.php", "action=invoices", cookie=cookie)
        app, name = (self.delayed_mw, "session request, delayed") if delayed else (self.mw, "session request")

        def run() -> float:
            envs = [dict(base) for _ in range(self.s.redis_batch)]
            return self.timed_each(name, [lambda e=e: call(app, e) for e in envs])

        return run

    def redeem(self) -> float:
        tokens = self.pool.mint(self.s.redis_batch)
        envs = [environ(SSO_PATH, "access_token=" + token) for token in tokens]
        replies = []
        per_op = self.timed_each("redemption", [lambda e=e: replies.append(call(self.mw, e)) for e in envs])
        bad = [r.status for r in replies if not r.status.startswith("303")]
        if bad:
            raise RuntimeError(f"{len(bad)} redemptions failed, e.g. {bad[0]}")
        return per_op

    def getdel(self) -> float:
        keys = [PREFIX + "t:" + secrets.token_urlsafe(32) for _ in range(self.s.redis_batch)]
        with self.raw.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, RECORD, ex=60)
            pipe.execute()
        return self.timed_each("raw GETDEL", [lambda k=k: self.raw.getdel(k) for k in keys])

    def get(self) -> float:
        key = PREFIX + "t:" + secrets.token_urlsafe(32)
        self.raw.set(key, self.session_record, ex=600)
        return self.timed_each("raw GET", [lambda: self.raw.get(key)] * self.s.redis_batch)

    def mint(self) -> float:
        create = self.mw.create_sso_token
        ops = [lambda: create(client_id=1, destination=DESTINATION)] * self.s.redis_batch
        return self.timed_each("mint (create_sso_token)", ops)

    def admin_api_mint(self) -> float:
        body = urllib.parse.urlencode(
            {
                "action": "CreateSsoToken",
                "identifier": API_IDENTIFIER,
                "secret": API_SECRET,
                "responsetype": "json",
                "client_id": "1",
                "destination": DESTINATION,
            }
        ).encode()
        envs = [
            environ(API_PATH, method="POST", body=body, content_type="application/x-www-form-urlencoded")
            for _ in range(self.s.redis_batch)
        ]
        return self.timed_each("mint (admin API)", [lambda e=e: call(self.mw, e) for e in envs])

    def set_nx(self) -> float:
        keys = [PREFIX + "t:" + secrets.token_urlsafe(32) for _ in range(self.s.redis_batch)]
        return self.timed_each(
            "raw SET EX NX", [lambda k=k: self.raw.set(k, RECORD, ex=60, nx=True) for k in keys]
        )

    def session_cookie(self) -> str:
        reply = call(self.mw, environ(SSO_PATH, "access_token=" + self.pool.mint(1)[0]))
        set_cookie = reply.header("Set-Cookie")
        if not reply.status.startswith("303") or not set_cookie:
            raise RuntimeError(f"redemption answered {reply.status}")
        return set_cookie.split(";", 1)[0]


@dataclass(frozen=True)
class Counts:
    """What ``action`` cost in Redis, per operation."""

    round_trips: float
    #: commands the client sent, by name (``evalsha`` once per script call)
    sent: dict[str, float]
    #: commands Redis ran beyond those: inside scripts, by name
    in_scripts: dict[str, float]


def count(client: redis.Redis, action: t.Callable[[], t.Any], n: int) -> Counts:
    """Round trips and commands of ``n`` operations: the requests the
    middleware's client sent (:class:`CountingConnection`), and
    ``INFO commandstats`` (from another client; its CONFIG and INFO calls
    left out) minus those commands for what Redis ran inside scripts."""
    client.config_resetstat()
    CountingConnection.reset()
    action()
    stats = t.cast(dict[str, dict[str, int]], client.info("commandstats"))
    ran: t.Counter[str] = collections.Counter()
    for name, v in stats.items():
        ran[name.removeprefix("cmdstat_").split("|")[0]] += int(v["calls"])
    sent = CountingConnection.sent
    inside = {k: v - sent[k] for k, v in ran.items() if k not in ("config", "info") and v > sent[k]}
    return Counts(
        CountingConnection.round_trips / n,
        {k: v / n for k, v in sent.items()},
        {k: v / n for k, v in inside.items()},
    )


def run(redis_url: str, quick: bool) -> Section:
    s = QUICK if quick else FULL
    b = Bench(redis_url, s)
    out = Section()
    # warm-up: imports, connections, caches
    for fn in (b.redeem, b.getdel, b.mint, b.set_nx, b.passthrough(b.mw), b.passthrough(hello_app)):
        fn()
    b.latencies.clear()

    log("in-process: pass-through")
    cookie = b.session_cookie()
    pt = alternate(
        {
            "wrapped": b.passthrough(b.mw),
            "bare": b.passthrough(hello_app),
            "raw wrapped": b.passthrough(b.raw_mw),
            "raw bare": b.passthrough(bare_app),
        },
        s.rounds,
    )
    log("in-process: session")
    ss = alternate(
        {
            "session": b.session_request(cookie),
            "delayed": b.session_request(cookie, delayed=True),
            "bare": b.passthrough(hello_app, cookie),
            "GET": b.get,
        },
        s.rounds,
    )
    log("in-process: redemption")
    rd = alternate({"redeem": b.redeem, "GETDEL": b.getdel}, s.rounds)
    log("in-process: minting")
    mt = alternate({"mint": b.mint, "SET": b.set_nx, "admin API": b.admin_api_mint}, s.rounds)

    log("in-process: round trips and commands")
    counted = build_middleware(hello_app, counting_client(redis_url))  # the same middleware, counting
    for token in b.pool.mint(10):  # warm-up: connections, script loads
        call(counted, environ(SSO_PATH, "access_token=" + token))
    envs = [environ(SSO_PATH, "access_token=" + token) for token in b.pool.mint(1000)]
    replies: list[Reply] = []
    redeem_counts = count(b.raw, lambda: replies.extend(call(counted, e) for e in envs), 1000)
    if not all(r.status.startswith("303") for r in replies):
        raise RuntimeError("a counted redemption failed")
    mint_counts = count(
        b.raw,
        lambda: [counted.create_sso_token(client_id=1, destination=DESTINATION) for _ in range(1000)],
        1000,
    )

    passthrough = pt.ratio("wrapped", "bare")
    session = ss.ratio("session", "bare")
    session_us = ss.difference("session", "bare")
    get_s = ss.median("GET")
    redeem = rd.ratio("redeem", "GETDEL")
    mint = mt.ratio("mint", "SET")
    per_redeem, per_mint = redeem_counts.round_trips, mint_counts.round_trips
    in_script = sum(redeem_counts.in_scripts.values())
    out.metrics.update(
        {
            "passthrough_overhead": passthrough,
            "session_overhead": session,
            "redeem_vs_getdel": redeem,
            "mint_vs_set": mint,
            "redis_round_trips_per_redeem": per_redeem,
            "redis_round_trips_per_mint": per_mint,
        }
    )
    out.metrics["redis_script_commands_per_redeem"] = in_script
    out.metrics["session_overhead_us"] = session_us * 1e6
    out.metrics["raw_get_us"] = get_s * 1e6
    out.metrics["session_overhead_delayed_us"] = ss.difference("delayed", "bare") * 1e6

    def breakdown(counts: Counts) -> str:
        def names(by: dict[str, float]) -> str:
            return ", ".join(f"{k.upper()} {v:g}" for k, v in sorted(by.items())) or "none"

        return f"sent: {names(counts.sent)}; run inside scripts: {names(counts.in_scripts)}"

    out.rows += [
        Row(
            "passthrough_overhead",
            passthrough,
            "x",
            "≤ 1.05",
            passthrough <= 1.05,
            f"{us(pt.median('wrapped'))} vs {us(pt.median('bare'))} (Werkzeug hello app); "
            f"+{pt.difference('wrapped', 'bare') * 1e9:.0f} ns; vs a 3-line raw WSGI app: "
            f"{pt.ratio('raw wrapped', 'raw bare'):.2f}x ({us(pt.median('raw wrapped'))} vs "
            f"{us(pt.median('raw bare'))})",
        ),
        Row(
            "session_overhead",
            session,
            "x",
            f"overhead ≤ GET + 20 µs = {us(get_s + 20e-6)}",
            session_us <= get_s + 20e-6,
            f"{us(ss.median('session'))} vs {us(ss.median('bare'))}: +{us(session_us)}; raw GET {us(get_s)}",
        ),
        Row(
            "session_overhead_delayed_us",
            ss.difference("delayed", "bare") * 1e6,
            "µs",
            f"≤ GET + 20 µs = {us(get_s + 20e-6)}",
            ss.difference("delayed", "bare") <= get_s + 20e-6,
            "the same with the opt-in revocation_delay=1 (end times read at most once a second)",
        ),
        Row(
            "redeem_vs_getdel",
            redeem,
            "x",
            "≤ 2.5",
            redeem <= 2.5,
            f"{us(rd.median('redeem'))} vs GETDEL {us(rd.median('GETDEL'))}",
        ),
        Row(
            "mint_vs_set",
            mint,
            "x",
            "≤ 1.5",
            mint <= 1.5,
            f"{us(mt.median('mint'))} vs SET EX NX {us(mt.median('SET'))}; "
            f"via the admin API (WSGI): {us(mt.median('admin API'))}",
        ),
        Row("redis_round_trips_per_redeem", per_redeem, "", "≤ 1", per_redeem <= 1, breakdown(redeem_counts)),
        Row("redis_round_trips_per_mint", per_mint, "", "≤ 1", per_mint <= 1, breakdown(mint_counts)),
    ]
    out.latencies = b.latencies
    b.pool.close()
    b.raw.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run_alone(run, args.quick)


if __name__ == "__main__":
    main()
