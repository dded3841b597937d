"""Measured prototypes of the next steps for the goals still missed, each
next to what the package does today, alternating, pinned with redis-server
to one CPU, medians (µs per call). Context for RESULTS.md, not goals.

    python -m benchmarks.prototypes [--quick]

1. **A smaller client path for the session read.** ``RedisTokenStore.resume``
   sends one ``EVALSHA`` through redis-py's ``execute_command`` (its retry
   wrapper, the pool's lock, the observability hooks). The prototype sends
   the same command on a connection taken from the same pool
   (``send_command`` + ``read_response``), with no retry: what a lean path
   for this one command could save. A bare ``GET`` both ways is the
   reference.
2. **A token endpoint that reads its small form without a werkzeug
   ``Request``.** The grant's request handling today: a ``BoundedRequest``
   (the strict form parse, the ``Authorization`` header), then
   ``json_response`` (a werkzeug ``Response``). The prototype: the body read
   from ``wsgi.input`` up to the limit, the same strict parse, and the JSON
   answered with a header list. Neither touches Redis; the whole grant
   (``SSOMiddleware``, one round trip) is measured beside them for scale.
"""

from __future__ import annotations

import argparse
import base64
import json
import typing as t

from sso_middleware.endpoints.bodies import BoundedRequest, _parse_strictly
from sso_middleware.responses import HARDENING_HEADERS, json_response

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


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> None:
    return None


def werkzeug_handling(env: dict[str, t.Any]) -> None:
    """What the endpoint does around the grant today, minus the grant."""
    request = BoundedRequest(env, LIMIT)
    form, authorization = request.form, request.headers.get("Authorization")
    assert form["grant_type"] == "single_sign_on" and authorization
    b"".join(json_response(ANSWER)(env, _start_response))


def lean_handling(env: dict[str, t.Any]) -> None:
    """The prototype: the same strict parse and answer, no werkzeug objects."""
    length = int(env.get("CONTENT_LENGTH") or 0)
    if length > LIMIT:
        raise ValueError("too large")
    form = dict(_parse_strictly(env["wsgi.input"].read(length)))
    authorization = env.get("HTTP_AUTHORIZATION")
    assert form["grant_type"] == "single_sign_on" and authorization
    body = json.dumps(ANSWER, separators=(",", ":")).encode()
    _start_response(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *HARDENING_HEADERS,
        ],
    )


def measure(url: str, rounds: int, n: int) -> list[tuple[str, float]]:
    mw = build_middleware(hello_app, url)
    store, idle = mw.sessions.store, mw.sessions.idle_timeout
    client = store.client  # type: ignore[attr-defined]
    pool = TokenPool(url)
    raw = connect(url)

    # a live session, read as resume() reads it
    reply = call(mw, environ(SSO_PATH, "access_token=" + pool.mint(1)[0]))
    cookie = (reply.header("Set-Cookie") or "").split(";", 1)[0]
    key = mw.sessions.signer.unsign(cookie.split("=", 1)[1]).decode().split(".")[0]
    subjects = ("user:1", "client:1")
    keys = (PREFIX + "t:" + key, *(PREFIX + "e:" + s for s in subjects))
    sha = store._resume.sha  # type: ignore[attr-defined]
    connections = client.connection_pool

    def lean(*command: t.Any) -> t.Any:
        conn = connections.get_connection()
        try:
            conn.send_command(*command)
            return conn.read_response()
        finally:
            connections.release(conn)

    if store.resume(key, idle, subjects)[0] is None or lean("EVALSHA", sha, 3, *keys, idle)[0] is None:
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

    werkzeug_handling(grant_env())  # both parse the same grant
    lean_handling(grant_env())

    runs = {
        "GET through redis-py (execute_command)": per_op(lambda: raw.get(keys[0]), n),
        "GET on a pooled connection (send_command + read_response)": per_op(lambda: lean("GET", keys[0]), n),
        "session read today: RedisTokenStore.resume (EVALSHA)": per_op(
            lambda: store.resume(key, idle, subjects), n
        ),
        "prototype: the same EVALSHA on a pooled connection": per_op(
            lambda: lean("EVALSHA", sha, 3, *keys, idle), n
        ),
        "token endpoint handling today: BoundedRequest + json_response": handling(werkzeug_handling),
        "prototype: body read + strict parse + header list": handling(lean_handling),
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
    saved_read = (
        by["session read today: RedisTokenStore.resume (EVALSHA)"]
        - by["prototype: the same EVALSHA on a pooled connection"]
    )
    saved_handling = (
        by["token endpoint handling today: BoundedRequest + json_response"]
        - by["prototype: body read + strict parse + header list"]
    )
    print(
        json.dumps(
            {
                "prototype_session_read_saving_us": round(saved_read * 1e6, 1),
                "prototype_token_handling_saving_us": round(saved_handling * 1e6, 1),
                "grant_us": round(by["a whole grant (SSOMiddleware, one round trip)"] * 1e6, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
