"""What the pieces of a redemption and of a session request cost, and what
the proposed optimisations would save: each current piece alternates with
its proposed replacement, medians reported. Feeds the plan in RESULTS.md.

    python benchmarks/costs.py [--quick]

Redis pieces use a client with the middleware's settings (``connect``);
the parser in use (pure Python or hiredis) is printed. The Python pieces
call Werkzeug and itsdangerous the way the package does today, next to a
lean prototype of the same step. Nothing here is part of run.py's goals.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import secrets
import time
import typing as t
from base64 import urlsafe_b64encode

import redis
from itsdangerous import TimestampSigner
from werkzeug.http import parse_cookie
from werkzeug.utils import redirect
from werkzeug.wrappers import Request

from common import (PREFIX, SECRET_KEY, SSO_PATH, SYSTEM_URL, RedisServer, alternate, bare_app, build_middleware,
                    call, connect, environ, pin)
from sso_middleware import ENVIRON_KEY
from sso_middleware.responses import HARDENING_HEADERS as HARDENING
from sso_middleware.tokens import TokenRecord

#: A token record as the package writes it.
RECORD = TokenRecord(1, 1, "clientarea:invoices", "/clientarea.php?action=invoices", 1767225600123).encode()
LOCATION = SYSTEM_URL + "/clientarea.php?action=invoices"

#: Proposal: burn the token and start the session in one round trip. The
#: burn comes first and is atomic as today; the session is written only when
#: the record is a record (not a replay marker), keyed by an id the caller
#: chose and has not yet sent anywhere. If a later check denies the sign-on,
#: the caller deletes it (a round trip on the failure path only).
BURN_AND_START = """
local record = redis.call('SET', KEYS[1], ARGV[1], 'XX', 'KEEPTTL', 'GET')
if not record or string.sub(record, 1, 1) == '!' then return record end
local user, client = string.match(record, '^%[(%d+),(%d+),')
redis.call('SET', KEYS[2], '[' .. user .. ',' .. client .. ',' .. ARGV[2] .. ']', 'EX', ARGV[3])
local account = ARGV[4] .. client
redis.call('SADD', account, ARGV[5])
redis.call('EXPIRE', account, ARGV[6])
return record
"""


def per_op(fn: t.Callable[[], t.Any], n: int) -> t.Callable[[], float]:
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


def redis_costs(url: str, rounds: int, n: int) -> list[tuple[str, float]]:
    client = connect(url)
    script = client.register_script(BURN_AND_START)

    def tokens(count: int) -> list[str]:
        keys = [PREFIX + "t:" + secrets.token_urlsafe(32) for _ in range(count)]
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, RECORD, ex=60)
            pipe.execute()
        return keys

    def fresh(count: int) -> list[str]:
        return [PREFIX + "t:" + secrets.token_urlsafe(32) for _ in range(count)]

    def burn(key: str) -> t.Any:
        return client.set(key, b"!" + b"s" * 43, xx=True, keepttl=True, get=True)

    def save(key: str) -> None:
        with client.pipeline(transaction=False) as pipe:
            pipe.set(PREFIX + "s:" + key[-43:], b"[1,1,1767225600.123456]", ex=1800)
            pipe.sadd(PREFIX + "a:1", key[-43:])
            pipe.expire(PREFIX + "a:1", 43200)
            pipe.execute()

    def lua(key: str) -> t.Any:
        sid = key[-43:]
        return script(keys=[key, PREFIX + "s:" + sid],
                      args=[b"!" + sid.encode(), "1767225600.123456", 1800, PREFIX + "a:", sid, 43200])

    def pipelined(key: str) -> t.Any:
        with client.pipeline(transaction=False) as pipe:
            pipe.set(key, b"!" + key[-43:].encode(), xx=True, keepttl=True, get=True)
            pipe.set(PREFIX + "s:" + key[-43:], b"1767225600", ex=1800)
            return pipe.execute()[0]

    def resume_b() -> t.Any:
        with client.pipeline(transaction=False) as pipe:
            pipe.getex(PREFIX + "s:get", ex=1800)
            pipe.get(PREFIX + "rv:1")
            return pipe.execute()

    client.set(PREFIX + "s:get", b"[1,1,1767225600.123456]", ex=1800)
    runs = {
        "GET": per_op(lambda: client.get(PREFIX + "s:get"), n),
        "GETEX … EX (session resume today)": per_op(lambda: client.getex(PREFIX + "s:get", ex=1800), n),
        "GETDEL": keyed(client.getdel, tokens, n),
        "SET … EX NX (mint)": keyed(lambda k: client.set(k, RECORD, ex=60, nx=True), fresh, n),
        "burn today: SET … XX KEEPTTL GET": keyed(burn, tokens, n),
        "session save today: pipeline SET+SADD+EXPIRE": keyed(save, fresh, n),
        "burn + save today (2 round trips)": keyed(lambda k: (burn(k), save(k)), tokens, n),
        "proposed A: EVALSHA burn-and-start (1 round trip, 5 commands)": keyed(lua, tokens, n),
        "proposed B: pipeline burn + liveness SET (1 round trip, 2 commands)": keyed(pipelined, tokens, n),
        "proposed B: resume, pipeline GETEX + GET revocation stamp": per_op(resume_b, n),
    }
    samples = alternate(runs, rounds)
    client.close()
    return [(name, samples.median(name)) for name in runs]


# -- Python pieces: today's way next to a lean prototype ----------------------

TOKEN_QUERY = re.compile(r"access_token=([A-Za-z0-9_-]{43})")


class LeanSigner:
    """What ``TimestampSigner(keys, salt, sha256)`` computes, with the key
    derived once instead of on every call (same output, same checks)."""

    def __init__(self, secret: bytes, salt: bytes):
        self.key = hashlib.sha256(salt + b"signer" + secret).digest()  # itsdangerous "django-concat"

    def sign(self, value: bytes) -> bytes:
        ts = int(time.time()).to_bytes(4, "big").lstrip(b"\0")
        stamped = value + b"." + urlsafe_b64encode(ts).rstrip(b"=")
        mac = hmac.new(self.key, stamped, hashlib.sha256).digest()
        return stamped + b"." + urlsafe_b64encode(mac).rstrip(b"=")

    def unsign(self, signed: bytes) -> bytes | None:
        stamped, _, sig = signed.rpartition(b".")
        mac = hmac.new(self.key, stamped, hashlib.sha256).digest()
        if not hmac.compare_digest(urlsafe_b64encode(mac).rstrip(b"="), sig):
            return None
        return stamped.rpartition(b".")[0]  # (age check omitted: one int compare)


def lean_passthrough(mw: t.Any) -> t.Any:
    """Prototype of a pass-through fast path: one function, no method calls
    unless the request has something to clean or a cookie to check. Reads
    the middleware's attributes (analysis only: may need updating when the
    package changes)."""
    endpoints, app, identify = mw.endpoints, mw.app, mw.identify
    cookie_name = mw.sessions.cookie_name

    def wsgi(env: dict[str, t.Any], start_response: t.Any) -> t.Any:
        endpoint = endpoints.get(env.get("PATH_INFO", ""))
        if endpoint is not None:
            return endpoint(env, start_response)
        query = env.get("QUERY_STRING")
        cookie = env.get("HTTP_COOKIE")
        if ((query and ("access" in query or "%" in query)) or (cookie and cookie_name in cookie)
                or "REMOTE_USER" in env or ENVIRON_KEY in env):
            identify(env)
        return app(env, start_response)
    return wsgi


def python_costs(rounds: int, n: int, redis_url: str) -> list[tuple[str, float]]:
    signer = TimestampSigner([SECRET_KEY.encode()], salt="sso_middleware.session", digest_method=hashlib.sha256)
    lean = LeanSigner(SECRET_KEY.encode(), b"sso_middleware.session")
    sid = secrets.token_urlsafe(32)
    cookie = signer.sign(sid).decode()
    if lean.unsign(lean.sign(sid.encode())) != sid.encode() or lean.unsign(cookie.encode()) != sid.encode():
        raise AssertionError("the lean signer must agree with itsdangerous")
    env = environ(SSO_PATH, "access_token=" + secrets.token_urlsafe(32))
    cookie_header = "other=1; sso_session=" + cookie

    def werkzeug_response() -> None:
        response = redirect(LOCATION, code=303)
        for name, value in HARDENING:
            response.headers[name] = value
        response.set_cookie("sso_session", cookie, path="/", secure=False, httponly=True, samesite="Lax")
        b"".join(response(dict(env), lambda s, h, e=None: None))

    def lean_response() -> None:
        headers = [("Location", LOCATION), *HARDENING, ("Content-Length", "0"),
                   ("Set-Cookie", f"sso_session={cookie}; HttpOnly; Path=/; SameSite=Lax")]
        (lambda s, h, e=None: None)("303 See Other", headers)

    def werkzeug_parse() -> None:
        args = Request(dict(env)).args
        args.getlist("access_token"), args.getlist("scope")

    def lean_parse() -> None:
        m = TOKEN_QUERY.fullmatch(env["QUERY_STRING"])
        if m is None:  # anything else: the general parser, as today
            Request(dict(env)).args
    mw = build_middleware(bare_app, redis_url)
    lean_mw = lean_passthrough(mw)
    plain = environ("/clientarea.php", "action=invoices")
    pairs = {
        "raw WSGI app alone (3 lines)": per_op(lambda: call(bare_app, dict(plain)), n),
        "the middleware around it, no cookie (today)": per_op(lambda: call(mw, dict(plain)), n),
        "lean: pass-through fast path prototype": per_op(lambda: call(lean_mw, dict(plain)), n),
        "werkzeug: redirect + headers + set_cookie + __call__": per_op(werkzeug_response, n),
        "lean: one header list, start_response": per_op(lean_response, n),
        "werkzeug: Request(environ).args (parse)": per_op(werkzeug_parse, n),
        "lean: one regex on QUERY_STRING": per_op(lean_parse, n),
        "itsdangerous TimestampSigner.sign": per_op(lambda: signer.sign(sid), n),
        "lean: sign with the key derived once": per_op(lambda: lean.sign(sid.encode()), n),
        "itsdangerous TimestampSigner.unsign (max_age)": per_op(lambda: signer.unsign(cookie, max_age=43200), n),
        "lean: unsign with the key derived once": per_op(lambda: lean.unsign(cookie.encode()), n),
        "werkzeug parse_cookie": per_op(lambda: parse_cookie(cookie_header).get("sso_session"), n),
        "json.loads token record": per_op(lambda: json.loads(RECORD), n),
        "sha256 + base64 (token_key)": per_op(lambda: urlsafe_b64encode(hashlib.sha256(sid.encode()).digest()), n),
    }
    samples = alternate(pairs, rounds)
    return [(name, samples.median(name)) for name in pairs]


class LeanRedeem:
    """Prototype of a redemption with the proposed changes, to measure their
    combined gain against today's endpoint in the same run. Same steps and
    checks: parse, burn first (atomic, replay marker), record age and
    account checks against the user store, a fresh session (record and
    account index), signed cookie, 303. ``one_trip`` burns and starts the
    session in one script (proposal A); otherwise it keeps today's two round
    trips and only slims the Python around them."""

    def __init__(self, redis_url: str, one_trip: bool):
        from sso_middleware.demo import demo_user_store

        self.client = connect(redis_url)
        self.script = self.client.register_script(BURN_AND_START)
        self.one_trip = one_trip
        self.users = demo_user_store()
        self.signer = LeanSigner(SECRET_KEY.encode(), b"sso_middleware.session")

    @staticmethod
    def refuse(start_response: t.Any) -> list[bytes]:
        start_response("403 Forbidden", [*HARDENING, ("Content-Length", "0")])
        return []

    def __call__(self, env: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        from sso_middleware.tokens import TokenRecord, new_token, token_key

        m = TOKEN_QUERY.fullmatch(env.get("QUERY_STRING", ""))
        if m is None or env.get("REQUEST_METHOD") != "GET":
            return self.refuse(start_response)
        key = PREFIX + "t:" + token_key(m.group(1))
        session_id = new_token()
        session_key = token_key(session_id)
        now = time.time()
        if self.one_trip:
            data = self.script(keys=[key, PREFIX + "s:" + session_key],
                               args=[b"!" + session_key.encode(), repr(now), 1800, PREFIX + "a:", session_key,
                                     43200])
        else:
            data = self.client.set(key, b"!" + session_key.encode(), xx=True, keepttl=True, get=True)
        if data is None or data.startswith(b"!"):
            return self.refuse(start_response)
        record = TokenRecord.decode(data)
        account = self.users.get_account(record.client_id)
        user = self.users.get_user(record.user_id)
        if (now * 1000 - record.issued_at_ms > 60_000 or account is None or user is None
                or record.client_id not in user.client_ids or not account.allows_sso):
            # measured on the success path only: a real failure path would also
            # delete the session the one-trip script started
            return self.refuse(start_response)
        if not self.one_trip:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.set(PREFIX + "s:" + session_key, json.dumps([record.user_id, record.client_id, now]), ex=1800)
                pipe.sadd(PREFIX + "a:" + str(record.client_id), session_key)
                pipe.expire(PREFIX + "a:" + str(record.client_id), 43200)
                pipe.execute()
        cookie = self.signer.sign(session_id.encode()).decode()
        start_response("303 See Other", [
            ("Location", SYSTEM_URL + record.path), *HARDENING, ("Content-Length", "0"),
            ("Set-Cookie", f"sso_session={cookie}; HttpOnly; Path=/; SameSite=Lax")])
        return []


def redemption_costs(redis_url: str, rounds: int, n: int) -> list[tuple[str, float]]:
    from apps import hello_app
    from common import TokenPool

    mw = build_middleware(hello_app, redis_url)
    pool = TokenPool(redis_url)
    client = connect(redis_url)

    def redeem_with(app: t.Any) -> t.Callable[[], float]:
        def run() -> float:
            envs = [environ(SSO_PATH, "access_token=" + tk) for tk in pool.mint(n)]
            t0 = time.perf_counter_ns()
            for env in envs:
                reply = call(app, env)
            took = (time.perf_counter_ns() - t0) / n / 1e9
            if not reply.status.startswith("303"):
                raise RuntimeError(reply.status)
            return took
        return run

    def getdel() -> float:
        keys = [PREFIX + "t:" + secrets.token_urlsafe(32) for _ in range(n)]
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, RECORD, ex=60)
            pipe.execute()
        t0 = time.perf_counter_ns()
        for key in keys:
            client.getdel(key)
        return (time.perf_counter_ns() - t0) / n / 1e9

    runs = {
        "redemption today (SSOMiddleware)": redeem_with(mw),
        "prototype: lean Python, today's 2 round trips": redeem_with(LeanRedeem(redis_url, one_trip=False)),
        "prototype: lean Python + burn-and-start script (1 round trip)": redeem_with(LeanRedeem(redis_url, True)),
        "raw GETDEL": getdel,
    }
    for fn in runs.values():
        fn()  # warm-up
    samples = alternate(runs, rounds)
    out = [(name, samples.median(name)) for name in runs]
    out += [(f"ratio to GETDEL: {name}", samples.ratio(name, "raw GETDEL")) for name in list(runs)[:3]]
    return out


def lean_session(mw: t.Any, app: t.Any, redis_url: str) -> t.Any:
    """Prototype of the session path: the cookie found with one string
    search, the signature checked with a key derived once, the record read
    with the same ``GETEX``, no intermediate objects. (Analysis only.)"""
    from sso_middleware.sessions import Identity
    from sso_middleware.tokens import token_key

    client = connect(redis_url)
    signer = LeanSigner(SECRET_KEY.encode(), b"sso_middleware.session")
    name = mw.sessions.cookie_name + "="
    prefix = PREFIX + "s:"

    def wsgi(env: dict[str, t.Any], start_response: t.Any) -> t.Any:
        env.pop("REMOTE_USER", None)
        env.pop(ENVIRON_KEY, None)
        header = env.get("HTTP_COOKIE")
        if header:
            at = header.find(name)
            if at == 0 or at > 0 and header[at - 1] in " ;":
                value = header[at + len(name):].split(";", 1)[0].strip()
                session_id = signer.unsign(value.encode())
                if session_id is not None:
                    data = client.getex(prefix + token_key(session_id.decode()), ex=1800)
                    if data is not None:
                        user_id, client_id, created_at = json.loads(data)
                        if time.time() - created_at <= 43200:
                            env["REMOTE_USER"] = str(user_id)
                            env[ENVIRON_KEY] = Identity(user_id, client_id)
        return app(env, start_response)
    return wsgi


def session_costs(redis_url: str, rounds: int, n: int) -> list[tuple[str, float]]:
    from apps import hello_app
    from common import TokenPool

    mw = build_middleware(hello_app, redis_url)
    reply = call(mw, environ(SSO_PATH, "access_token=" + TokenPool(redis_url).mint(1)[0]))
    cookie = (reply.header("Set-Cookie") or "").split(";")[0]
    env = environ("/clientarea.php", "action=invoices", cookie=cookie)
    lean = lean_session(mw, hello_app, redis_url)
    if call(lean, dict(env)).body != call(mw, dict(env)).body:
        raise AssertionError("the prototype must identify the same user")
    client = connect(redis_url)
    client.set(PREFIX + "s:get", b"[1,1,1767225600.123456]", ex=1800)
    runs = {
        "session request today": per_op(lambda: call(mw, dict(env)), n),
        "prototype: lean session path": per_op(lambda: call(lean, dict(env)), n),
        "bare app": per_op(lambda: call(hello_app, dict(env)), n),
        "raw GET": per_op(lambda: client.get(PREFIX + "s:get"), n),
    }
    samples = alternate(runs, rounds)
    out = [(name, samples.median(name)) for name in runs]
    out += [(f"overhead over the bare app: {name}", samples.difference(name, "bare app")) for name in list(runs)[:2]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, n = (5, 300) if args.quick else (15, 1000)
    server = RedisServer()
    server.start()
    try:
        print(pin(server, {0}))
        parser_name = "hiredis" if redis.utils.HIREDIS_AVAILABLE else "pure-Python RESP parser"
        print(f"redis-py {redis.__version__}, {parser_name}\n")
        print("| piece | µs |\n|---|---|")
        for name, seconds in redis_costs(server.url, rounds, n) + python_costs(rounds, n * 10, server.url):
            print(f"| {name} | {seconds * 1e6:.1f} |")
        print("\n| session request | µs |\n|---|---|")
        for name, value in session_costs(server.url, rounds, n):
            print(f"| {name} | {value * 1e6:.1f} |")
        print("\n| redemption | µs or ratio |\n|---|---|")
        for name, value in redemption_costs(server.url, rounds, n):
            print(f"| {name} | {value:.2f} |" if name.startswith("ratio") else f"| {name} | {value * 1e6:.1f} |")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
