"""What the lean paths of the hot calls save, each next to the full path of
the library it bypasses, in the same run: pinned with redis-server to one
CPU, alternating, medians (µs per call). Context for RESULTS.md.

    python -m benchmarks.lean_paths [--quick]

1. **The session read** (``RedisTokenStore.resume``, and the redemption's
   script the same way) sends its ``EVALSHA`` on a connection of the
   client's pool, with the connection's retry, past redis-py's
   ``execute_command`` (its observability hooks, callbacks and locks);
   beside it, the same store on a client of a ``redis.Redis`` subclass, for
   which it keeps ``execute_command``. A bare ``GET`` both ways is the
   reference.
   Beside them, the prototype of a next step: the same ``EVALSHA`` packed
   by hand instead of by redis-py's encoder.
2. **The token endpoint** reads its form through werkzeug's input stream
   (``FormPost``) and answers with a header list (``Answer``); beside
   it, what it did before: a ``BoundedRequest`` and a werkzeug ``Response``.
   Neither touches Redis; the whole grant (``SSOMiddleware``, one round
   trip) is measured beside them for scale.
"""

from __future__ import annotations

import argparse
import base64
import json
import typing as t

import redis
from werkzeug.wrappers import Response

from sso_middleware.endpoints.bodies import BoundedRequest, FormPost
from sso_middleware.responses import harden, json_response
from sso_middleware.stores.redis import RedisTokenStore

from .apps import hello_app
from .common import (
    DESTINATION,
    PREFIX,
    SSO_PATH,
    TOKEN_PATH,
    RedisServer,
    TokenPool,
    alternate,
    build_middleware,
    call,
    connect,
    environ,
    log,
    pin,
)
from .costs import per_op

#: A grant's form, as clients send it.
GRANT = b"grant_type=single_sign_on&scope=clientarea%3Asso+clientarea%3Ainvoices"
#: A grant's answer, in the endpoint's shape.
ANSWER = {
    "access_token": "A" * 43,
    "token_type": "Bearer",
    "expires_in": 60,
    "scope": "clientarea:sso clientarea:invoices",
    "redirect_url": "http://127.0.0.1:8000/oauth/singlesignon.php?access_token=" + "A" * 43,
}
LIMIT = 16 * 1024


def _resp(command: tuple[t.Any, ...]) -> bytes:
    """A command in RESP, packed by hand: the prototype of a next step."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _FullPath(redis.Redis):
    """A plain client that the token store does not recognise as one."""


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> None:
    return None


def werkzeug_handling(env: dict[str, t.Any]) -> None:
    """What the endpoint did around a grant: a werkzeug ``Request`` and
    ``Response``."""
    request = BoundedRequest(env, LIMIT)
    form, authorization = request.form, request.headers.get("Authorization")
    assert form["grant_type"] == "single_sign_on" and authorization
    body = json.dumps(ANSWER, separators=(",", ":"))
    b"".join(harden(Response(body, content_type="application/json"))(env, _start_response))


def lean_handling(env: dict[str, t.Any]) -> None:
    """What it does now: the same strict parse and answer, no werkzeug objects."""
    request = FormPost(env, LIMIT)
    assert request.form["grant_type"] == "single_sign_on" and request.authorization
    b"".join(json_response(ANSWER)(env, _start_response))


def measure(url: str, rounds: int, n: int) -> list[tuple[str, float]]:
    mw = build_middleware(hello_app, url)
    store, idle = mw.sessions.store, mw.sessions.idle_timeout
    client = store.client  # type: ignore[attr-defined]
    pool = TokenPool(url)
    raw = connect(url)
    # The same store on a client of a subclass of redis.Redis, for which it
    # keeps redis-py's own command path: the session read as it was.
    full_path = RedisTokenStore(_FullPath.from_pool(connect(url).connection_pool), prefix=PREFIX)

    # a live session, read as resume() reads it
    reply = call(mw, environ(SSO_PATH, "access_token=" + pool.mint(1)[0]))
    cookie = (reply.header("Set-Cookie") or "").split(";", 1)[0]
    key = mw.sessions.signer.unsign(cookie.split("=", 1)[1]).decode().split(".")[0]
    subjects = ("user:1", "client:1")
    keys = (PREFIX + "t:" + key, *(PREFIX + "e:" + s for s in subjects))
    connections = client.connection_pool

    def pooled(*command: t.Any) -> t.Any:
        conn = connections.get_connection()
        try:
            conn.send_command(*command)
            return conn.read_response()
        finally:
            connections.release(conn)

    def hand_packed(*command: t.Any) -> t.Any:
        conn = connections.get_connection()
        try:
            conn.send_packed_command([_resp(command)])
            return conn.read_response()
        finally:
            connections.release(conn)

    sha = store._resume.sha  # type: ignore[attr-defined]
    if store.resume(key, idle, subjects)[0] is None or full_path.resume(key, idle, subjects)[0] is None:
        raise RuntimeError("the session is not live")

    credential, secret = mw.oauth_credentials.create(
        grant_type="single_sign_on", scope=DESTINATION, service_id=101, name="benchmark"
    )
    basic = "Basic " + base64.b64encode(f"{credential.identifier}:{secret}".encode()).decode()

    def grant_env() -> dict[str, t.Any]:
        return environ(
            TOKEN_PATH,
            method="POST",
            body=GRANT,
            content_type="application/x-www-form-urlencoded",
            headers={"Authorization": basic},
        )

    def handling(fn: t.Callable[[dict[str, t.Any]], None]) -> t.Callable[[], float]:
        def run() -> float:
            envs = [grant_env() for _ in range(n)]
            return per_op(lambda: fn(envs.pop()), n)()

        return run

    def grants() -> float:
        envs = [grant_env() for _ in range(n)]
        replies: list[t.Any] = []
        took = per_op(lambda: replies.append(call(mw, envs.pop())), n)()
        if not all(r.status.startswith("200") for r in replies):
            raise RuntimeError("a grant failed")
        return took

    werkzeug_handling(grant_env())  # both read the same grant
    lean_handling(grant_env())

    runs = {
        "GET through redis-py (execute_command)": per_op(lambda: raw.get(keys[0]), n),
        "GET on a pooled connection (send_command + read_response)": per_op(
            lambda: pooled("GET", keys[0]), n
        ),
        "the session's EVALSHA on a pooled connection (redis-py's packer)": per_op(
            lambda: pooled("EVALSHA", sha, 3, *keys, idle), n
        ),
        "prototype: the same EVALSHA packed by hand": per_op(
            lambda: hand_packed("EVALSHA", sha, 3, *keys, idle), n
        ),
        "session read before: RedisTokenStore.resume through execute_command": per_op(
            lambda: full_path.resume(key, idle, subjects), n
        ),
        "session read now: RedisTokenStore.resume (the lean EVALSHA)": per_op(
            lambda: store.resume(key, idle, subjects), n
        ),
        "token endpoint handling before: BoundedRequest + werkzeug Response": handling(werkzeug_handling),
        "token endpoint handling now: FormPost + Answer": handling(lean_handling),
        "a whole grant (SSOMiddleware, one round trip)": grants,
    }
    for fn in runs.values():
        fn()  # warm-up
    samples = alternate(runs, rounds)
    pool.close()
    raw.close()
    return [(name, samples.median(name)) for name in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds, n = (7, 300) if args.quick else (21, 1000)
    server = RedisServer()
    server.start()
    try:
        log(pin(server, {0}))
        rows = measure(server.url, rounds, n)
    finally:
        server.remove()
    print("| subject | µs |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e6:.1f} |")
    by = dict(rows)
    print(
        json.dumps(
            {
                "lean_session_read_saving_us": round(
                    (
                        by["session read before: RedisTokenStore.resume through execute_command"]
                        - by["session read now: RedisTokenStore.resume (the lean EVALSHA)"]
                    )
                    * 1e6,
                    1,
                ),
                "lean_token_handling_saving_us": round(
                    (
                        by["token endpoint handling before: BoundedRequest + werkzeug Response"]
                        - by["token endpoint handling now: FormPost + Answer"]
                    )
                    * 1e6,
                    1,
                ),
                "grant_us": round(by["a whole grant (SSOMiddleware, one round trip)"] * 1e6, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
