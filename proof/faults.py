"""
Faults (figure 10)
==================

- **Redis killed mid-load**: minting (admin API) and redemption alternate at
  a fixed rate from a thread pool; the fault Redis is SIGKILLed at 5 s and
  restarted (empty, same port) at 8 s, the app is never restarted. Every
  response is classified. Each 303 is checked at once, from a separate
  connection, for its session record; a 303 or a minted token while Redis
  is down is a false success outright.
- **Redis that never answers** (a proxy that accepts and reads but never
  replies; 32 concurrent clients, 8 with ``--quick``): every SSO and API
  request a bounded 503, every page request anonymous within the bound, and
  the workers still answer afterwards.
- **Connection pool exhausted** (two connections per process, each reply
  delayed 0.1 s by a proxy, 24 concurrent redemptions): some 503s, each
  within the bound; every 303 has its record.
- **Redis failing after the burn** (an ACL user that may use token keys,
  where sessions live too, but not accounts' end times, on a real Redis; a
  browser with a well-signed cookie follows a link, so the burn succeeds and
  the look-up of its current session fails): 503, no cookie, no Location,
  the token spent, no live session left in its place. The session itself
  is written by the burn, in the same atomic step, so it cannot fail apart.
"""

from __future__ import annotations

import collections
import secrets
import threading
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sso_middleware import SSOMiddleware, Stores
from sso_middleware.demo import demo_user_store
from sso_middleware.sessions import SessionManager, secret_digest
from sso_middleware.stores import SESSION_MARK
from sso_middleware.stores.memory import MemoryTokenStore
from sso_middleware.tokens import new_token, token_key

from . import registry
from .figures import Figure, ms
from .harness import API_IDENTIFIER, API_PATH, COOKIE_NAME, SSO_PATH, Lab, Response, form, http_request, log
from .proxy import Proxy

#: redis-py's socket_timeout as ``connect()`` sets it by default.
SOCKET_TIMEOUT = 0.2
#: The "small margin" over the socket timeout for a 503 while Redis is
#: down: connection refused is immediate, so this is the server's own time.
MARGIN = 0.1
#: The README's promise for a Redis that is hung or out of connections
#: ("at most about 0.8 s"), plus 0.2 s.
HUNG_BOUND = 1.0
#: Seconds from restarting Redis to working sign-ons.
RECOVERY_BAR = 2.0
ACL_USER = "proof-noaccounts"


@registry.variants
def fault_variants(lab: Lab) -> dict[str, dict[str, t.Any]]:
    return {
        "fault": lab.variant(redis_url=lab.fault_redis.url),
        "silent": lab.variant(redis_url=lab.extra["silent"].url, prefix="silent:"),
        "pool": lab.variant(
            redis_url=lab.extra["slow"].url, prefix="pool:", max_connections=2, pool_timeout=0.25
        ),
        "noaccounts": lab.variant(
            prefix="noaccounts:", username=ACL_USER, password=lab.extra["acl"].password
        ),
    }


class _Secret:
    def __init__(self, password: str):
        self.password = password


@registry.fixture
def prepare_fault_fixtures(lab: Lab) -> None:
    silent = Proxy("silent")
    silent.start()
    lab.extra["silent"] = silent
    slow = Proxy("delay", lab.redis.port, delay=0.1)
    slow.start()
    lab.extra["slow"] = slow
    password = lab.canary.new_secret("ACL password")
    lab.extra["acl"] = _Secret(password)
    client = lab.redises.client(lab.redis)
    try:
        # may use tokens (and so sessions), the latest end time (which a
        # redemption reads), counters and credentials, never a user's or an
        # account's end time, which every session look-up reads
        client.acl_setuser(
            ACL_USER,
            enabled=True,
            reset=True,
            passwords=["+" + password],
            keys=["noaccounts:t:*", "noaccounts:ended", "noaccounts:rl:*", "noaccounts:{credentials}:*"],
            commands=["+@all"],
        )
    finally:
        client.close()


def _signer(lab: Lab) -> t.Any:
    return SessionManager(MemoryTokenStore(), [lab.secret_key]).signer


def _forged_cookie(lab: Lab) -> str:
    """A well-signed cookie for a session that does not exist: it passes
    every check but the store's, so a request carrying it asks Redis."""
    payload = f"{token_key(new_token())}.{new_token()}.1.1"
    cookie = _signer(lab).sign(payload).decode()
    lab.canary.add_cookie(cookie)
    return cookie


def _session_exists(check: redis.Redis, signer: t.Any, prefix: str, cookie: str) -> bool | None:
    """Whether the live session record a cookie names is in Redis now;
    None if Redis cannot say."""
    key, secret = signer.unsign(cookie).decode("ascii").split(".")[:2]
    try:
        record = check.get(f"{prefix}t:{key}") or b""
        return record.startswith(SESSION_MARK + secret_digest(secret))
    except redis.RedisError:
        return None


def _live_sessions(client: redis.Redis, prefix: str) -> int:
    """How many live session records are under ``prefix``: token keys that
    hold a session record, not a token's nor an ended session's."""
    values = (client.get(key) or b"" for key in client.scan_iter(f"{prefix}t:*"))
    return sum(1 for value in values if value.startswith(SESSION_MARK) and len(value) > 1)


def _well_formed_unknown_token() -> str:
    return secrets.token_urlsafe(32)


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --------------------------------------------------------------------------- kill


def kill_under_load(
    lab: Lab, *, duration: float, kill_at: float, restart_at: float, rate: float
) -> dict[str, t.Any]:
    server = lab.server
    fault = lab.fault_redis
    boots_before = server.worker_boots()
    # no retries (redis-py's default spans seconds): a check that outlived the
    # outage would find the restarted, empty Redis and call a real sign-on false
    check = redis.Redis(
        port=fault.port, socket_timeout=0.2, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    signer = _signer(lab)
    tokens: collections.deque[str] = collections.deque()
    records: list[dict[str, t.Any]] = []
    lock = threading.Lock()
    mint_body, mint_headers = form(
        {
            "action": "CreateSsoToken",
            "identifier": API_IDENTIFIER,
            "secret": lab.api_secret,
            "responsetype": "json",
            "client_id": 1,
            "destination": "clientarea:invoices",
        }
    )

    def operation(i: int) -> None:
        record: dict[str, t.Any] = {"op": "mint" if i % 2 == 0 else "redeem"}
        try:
            if record["op"] == "mint":
                response = server.request(
                    "POST", "fault", API_PATH, body=mint_body, headers=mint_headers, timeout=30
                )
                if response.status == 200:
                    tokens.append(server.take_token(response, "fault")[0])
            else:
                try:
                    token = tokens.popleft()
                    record["fresh"] = True
                except IndexError:
                    token, record["fresh"] = _well_formed_unknown_token(), False
                response = server.request("GET", "fault", f"{SSO_PATH}?access_token={token}", timeout=30)
                cookie = response.cookie()
                if response.status == 303 and cookie:
                    lab.canary.add_cookie(cookie)
                    record["verified"] = _session_exists(check, signer, "sso:v2:", cookie)
                    record["checked_at"] = time.monotonic()
            record.update(status=response.status, start=response.start, end=response.end)
        except OSError as e:
            record.update(status=f"client error {type(e).__name__}", start=None, end=time.monotonic())
        with lock:
            records.append(record)

    marks: dict[str, float] = {}

    def chaos(t0: float) -> None:
        time.sleep(max(0.0, t0 + kill_at - time.monotonic()))
        lab.redises.scan(fault, "fault redis (before the kill)")
        marks["kill"] = time.monotonic()
        lab.redises.kill(fault)
        time.sleep(max(0.0, t0 + restart_at - time.monotonic()))
        marks["restart"] = time.monotonic()
        fault.start()
        marks["ready"] = time.monotonic()

    count = int(duration * rate)
    with ThreadPoolExecutor(max_workers=64) as pool:
        t0 = time.monotonic() + 0.05
        chaos_thread = threading.Thread(target=chaos, args=(t0,))
        chaos_thread.start()
        for i in range(count):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(operation, i)
        chaos_thread.join()
    check.close()

    kill, restart = marks["kill"], marks["restart"]

    def in_outage(r: dict[str, t.Any]) -> bool:
        return r["start"] is not None and r["start"] >= kill and r["end"] <= restart

    false_successes = []
    unverifiable = 0
    for r in records:
        if r["op"] == "mint" and r["status"] == 200 and in_outage(r):
            false_successes.append(r)
        if r["op"] == "redeem" and r["status"] == 303:
            verified = r.get("verified")
            if verified is False or in_outage(r):
                false_successes.append(r)
            elif verified is None:
                unverifiable += 1  # Redis died between this 303 and the check
    errors = [
        r for r in records if isinstance(r["status"], int) and r["status"] >= 500 and r["status"] != 503
    ]
    client_errors = [r for r in records if not isinstance(r["status"], int)]
    latencies_503 = [r["end"] - r["start"] for r in records if r["status"] == 503]
    first_mint = min(
        (r["end"] for r in records if r["op"] == "mint" and r["status"] == 200 and r["start"] >= restart),
        default=None,
    )
    first_redeem = min(
        (
            r["end"]
            for r in records
            if r["op"] == "redeem" and r["status"] == 303 and r.get("verified") and r["start"] >= restart
        ),
        default=None,
    )
    recovery = None if first_mint is None or first_redeem is None else max(first_mint, first_redeem) - restart
    statuses = collections.Counter(str(r["status"]) for r in records)
    return {
        "requests": len(records),
        "rate": rate,
        "duration": duration,
        "kill_at": kill_at,
        "restart_at": restart_at,
        "statuses": dict(statuses),
        "successes_verified": sum(1 for r in records if r["status"] == 303 and r.get("verified")),
        "false_successes": len(false_successes),
        "unverifiable": unverifiable,
        "errors_5xx": len(errors),
        "client_errors": len(client_errors),
        "count_503": len(latencies_503),
        "worst_503": max(latencies_503, default=None),
        "p99_503": _percentile(latencies_503, 0.99),
        "redis_restart_seconds": marks["ready"] - restart,
        "recovery": recovery,
        "worker_restarts": server.worker_boots() - boots_before,
    }


# --------------------------------------------------------------------------- silent and pool


def _hammer(
    seconds: float, concurrency: int, job: t.Callable[[int], dict[str, t.Any]]
) -> list[dict[str, t.Any]]:
    deadline = time.monotonic() + seconds
    results: list[dict[str, t.Any]] = []
    lock = threading.Lock()

    def loop(worker: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            try:
                result = job(worker * 100000 + n)
            except OSError as e:
                result = {"kind": "?", "status": f"client error {type(e).__name__}", "elapsed": None}
            with lock:
                results.append(result)
            n += 1

    threads = [threading.Thread(target=loop, args=(w,)) for w in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def silent_redis(lab: Lab, *, seconds: float, concurrency: int = 32) -> dict[str, t.Any]:
    server = lab.server
    boots_before = server.worker_boots()
    cookie = _forged_cookie(lab)
    mint_body, mint_headers = form(
        {"action": "CreateSsoToken", "identifier": API_IDENTIFIER, "secret": lab.api_secret, "client_id": 1}
    )

    def job(n: int) -> dict[str, t.Any]:
        kind = ("sso", "api", "page")[n % 3]
        if kind == "sso":
            r = server.request("GET", "silent", f"{SSO_PATH}?access_token={_well_formed_unknown_token()}")
            ok = r.status == 503
        elif kind == "api":
            r = server.request("POST", "silent", API_PATH, body=mint_body, headers=mint_headers)
            ok = r.status == 503
        else:
            r = server.request("GET", "silent", "/page", headers={"Cookie": f"__Host-sso_session={cookie}"})
            ok = r.status == 200 and r.json()["identity"] is None
        return {"kind": kind, "status": r.status, "elapsed": r.elapsed, "ok": ok}

    results = _hammer(seconds, concurrency, job)
    after = server.request("GET", "main", "/healthz", timeout=5)
    by_kind = collections.Counter(r["kind"] for r in results)
    return {
        "requests": len(results),
        "by_kind": dict(by_kind),
        "unexpected": sum(1 for r in results if not r.get("ok")),
        "client_errors": sum(1 for r in results if r["elapsed"] is None),
        "worst": max((r["elapsed"] for r in results if r["elapsed"] is not None), default=None),
        "worst_by_kind": {
            k: max(r["elapsed"] for r in results if r["kind"] == k and r["elapsed"]) for k in by_kind
        },
        "p50": _percentile([r["elapsed"] for r in results if r["elapsed"] is not None], 0.5),
        "statuses": dict(collections.Counter(str(r["status"]) for r in results)),
        "healthy_after": after.status == 200 and after.elapsed < 0.5,
        "health_latency": after.elapsed,
        "worker_restarts": server.worker_boots() - boots_before,
    }


def pool_exhausted(lab: Lab, *, seconds: float, concurrency: int = 24) -> dict[str, t.Any]:
    server = lab.server
    direct = lab.redises.client(lab.redis)
    minter = SSOMiddleware(
        lambda e, s: [],
        system_url=server.system_url("pool"),
        secret_keys=[lab.secret_key],
        user_store=demo_user_store(),
        stores=Stores.redis(direct, prefix="pool:"),
    )
    links: collections.deque[str] = collections.deque()
    for _ in range(int(seconds * 100) + concurrency):
        result = minter.create_sso_token(client_id=1)
        lab.canary.add(result["access_token"])
        links.append(result["redirect_url"][len(server.base) :])
    signer = _signer(lab)

    def job(n: int) -> dict[str, t.Any]:
        r = _redeem_pool(server, links)
        result: dict[str, t.Any] = {"kind": "sso", "status": r.status, "elapsed": r.elapsed}
        cookie = r.cookie()
        if r.status == 303 and cookie:
            lab.canary.add_cookie(cookie)
            result["verified"] = _session_exists(direct, signer, "pool:", cookie)
        return result

    results = _hammer(seconds, concurrency, job)
    direct.close()
    latencies_503 = [r["elapsed"] for r in results if r["status"] == 503]
    return {
        "requests": len(results),
        "statuses": dict(collections.Counter(str(r["status"]) for r in results)),
        "count_503": len(latencies_503),
        "worst_503": max(latencies_503, default=None),
        "false_successes": sum(1 for r in results if r["status"] == 303 and not r.get("verified")),
        "errors_5xx": sum(
            1 for r in results if isinstance(r["status"], int) and r["status"] >= 500 and r["status"] != 503
        ),
        "client_errors": sum(1 for r in results if r["elapsed"] is None),
    }


def _redeem_pool(server: t.Any, links: collections.deque[str]) -> Response:
    try:
        link = links.popleft()
    except IndexError:
        link = f"/pool{SSO_PATH}?access_token={_well_formed_unknown_token()}"
    return _get(server, link)


def _get(server: t.Any, link: str) -> Response:
    return http_request(server.port, "GET", link, timeout=30)


# --------------------------------------------------------------------------- after the burn


def fails_after_burn(lab: Lab, *, trials: int) -> dict[str, t.Any]:
    server = lab.server
    direct = lab.redises.client(lab.redis)
    signed_in = {"Cookie": f"{COOKIE_NAME}={_forged_cookie(lab)}"}
    outcomes = collections.Counter()
    try:
        for _ in range(trials):
            token, link = server.mint("noaccounts")
            r = http_request(server.port, "GET", link, headers=signed_in, timeout=30)
            burned = (direct.get(f"noaccounts:t:{token_key(token)}") or b"").startswith(SESSION_MARK)
            clean = (
                r.status == 503
                and r.cookie() is None
                and r.header("Location") is None
                and not any(k.lower() == "set-cookie" for k, _ in r.headers)
            )
            outcomes["503 without cookie or Location" if clean else f"other {r.status}"] += 1
            outcomes["token spent"] += burned
        sessions = _live_sessions(direct, "noaccounts:")
    finally:
        direct.close()
    return {"trials": trials, "outcomes": dict(outcomes), "live_sessions": sessions}


# --------------------------------------------------------------------------- figures


def prove(lab: Lab) -> list[Figure]:
    if lab.quick:
        timeline = dict(duration=4.0, kill_at=1.5, restart_at=2.5, rate=100.0)
    else:
        timeline = dict(duration=10.0, kill_at=5.0, restart_at=8.0, rate=200.0)
    log(
        "faults: Redis killed mid-load ({duration:.0f} s at {rate:.0f} req/s, kill at {kill_at} s,"
        " restart at {restart_at} s)".format(**timeline)
    )
    kill = kill_under_load(lab, **timeline)
    seconds = 2.0 if lab.quick else 5.0
    concurrency = 8 if lab.quick else 32
    log(f"faults: a Redis that never answers ({seconds:.0f} s, {concurrency} concurrent)")
    silent = silent_redis(lab, seconds=seconds, concurrency=concurrency)
    log(f"faults: connection pool exhausted ({seconds:.0f} s, 24 concurrent, 2 connections)")
    pool = pool_exhausted(lab, seconds=seconds)
    trials = 5 if lab.quick else 20
    log(f"faults: Redis failing after the burn ({trials} trials)")
    write = fails_after_burn(lab, trials=trials)
    bound_503 = SOCKET_TIMEOUT + MARGIN
    clean = write["outcomes"].get("503 without cookie or Location", 0)
    return [
        Figure(
            "10",
            "Redis killed mid-load: false successes",
            f"{kill['false_successes']} of {kill['requests']} requests "
            f"({kill['successes_verified']} sign-ons verified in Redis, "
            f"{kill['unverifiable']} unverifiable: Redis died between 303 and check)",
            "0",
            kill["false_successes"] == 0,
            kill,
        ),
        Figure(
            "10",
            "Redis killed mid-load: 500s and transport errors",
            f"{kill['errors_5xx']} 5xx other than 503, {kill['client_errors']} transport errors; "
            f"statuses {kill['statuses']}",
            "0 and 0",
            kill["errors_5xx"] == 0 and kill["client_errors"] == 0,
            {},
        ),
        Figure(
            "10",
            "Redis killed mid-load: worst 503 latency",
            f"{ms(kill['worst_503'])} (p99 {ms(kill['p99_503'])}, {kill['count_503']} 503s)",
            f"<= socket_timeout {ms(SOCKET_TIMEOUT)} + {ms(MARGIN)}",
            kill["worst_503"] is not None and kill["worst_503"] <= bound_503,
            {},
        ),
        Figure(
            "10",
            "Redis killed mid-load: recovery after restart",
            f"{ms(kill['recovery'])} to first mint and verified sign-on "
            f"(Redis itself up after {ms(kill['redis_restart_seconds'])}); "
            f"{kill['worker_restarts']} worker restarts",
            f"<= {RECOVERY_BAR:.0f} s, no app restart",
            kill["recovery"] is not None
            and kill["recovery"] <= RECOVERY_BAR
            and kill["worker_restarts"] == 0,
            {},
        ),
        Figure(
            "10",
            "Redis that never answers",
            f"{silent['requests']} requests, worst {ms(silent['worst'])}, "
            f"{silent['unexpected']} not 503/anonymous, {silent['client_errors']} hung; "
            f"healthy after: {silent['healthy_after']} ({ms(silent['health_latency'])})",
            f"all 503 (pages anonymous) <= {ms(HUNG_BOUND)}, no hung worker",
            silent["unexpected"] == 0
            and silent["client_errors"] == 0
            and silent["worst"] is not None
            and silent["worst"] <= HUNG_BOUND
            and silent["healthy_after"]
            and silent["worker_restarts"] == 0,
            silent,
        ),
        Figure(
            "10",
            "Connection pool exhausted",
            f"{pool['count_503']} 503s of {pool['requests']}, worst {ms(pool['worst_503'])}; "
            f"{pool['false_successes']} false successes, {pool['errors_5xx']} other 5xx",
            f"some 503s, each <= {ms(HUNG_BOUND)}; 0 false successes",
            pool["count_503"] > 0
            and pool["worst_503"] is not None
            and pool["worst_503"] <= HUNG_BOUND
            and pool["false_successes"] == 0
            and pool["errors_5xx"] == 0
            and pool["client_errors"] == 0,
            pool,
        ),
        Figure(
            "10",
            "Redis failing after the burn",
            f"{clean}/{trials} 503 without cookie or Location; "
            f"{write['outcomes'].get('token spent', 0)}/{trials} tokens spent; "
            f"{write['live_sessions']} live session records",
            f"{trials}/{trials} each, 0 live sessions",
            clean == write["outcomes"].get("token spent") == trials and write["live_sessions"] == 0,
            write,
        ),
    ]
