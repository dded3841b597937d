"""Where the time of a request goes: pyinstrument over thousands of
in-process requests, summarised by layer and by function.

    python -m benchmarks.profiles [redeem|session|mint|token|passthrough ...] [--tree]

Layers (by the file that spends the time itself):
``redis socket wait`` (redis-py blocked in ``recv``/``sendall``: the round
trip), ``redis-py`` (the rest of redis-py: pool, packing, parsing, retry),
``werkzeug``, ``itsdangerous``, ``sso_middleware`` and ``other`` (stdlib,
the benchmark harness).
"""

from __future__ import annotations

import argparse
import base64
import collections
import typing as t

from pyinstrument import Profiler
from pyinstrument.frame import Frame

from .apps import hello_app
from .common import (
    DESTINATION,
    SSO_PATH,
    TOKEN_PATH,
    RedisServer,
    TokenPool,
    build_middleware,
    call,
    environ,
    pin,
)

SCENARIOS = ("redeem", "session", "mint", "token", "passthrough")


def layer(frame: Frame, parent: str) -> str:
    """The layer a frame's own time counts for; a C function (``<built-in>``)
    counts for its caller's, except the socket calls of redis-py."""
    path = frame.file_path or ""
    if path.startswith("<built-in>"):
        if parent.startswith("redis") and frame.function.startswith("socket."):
            return "redis socket wait"
        return parent
    if "/redis/" in path:
        return "redis-py"
    for name in ("werkzeug", "itsdangerous", "sso_middleware", "flask", "authlib"):
        if f"/{name}/" in path:
            return name
    return "other"


def walk(frame: Frame, parent: str, layers: t.Counter[str], functions: t.Counter[str]) -> None:
    """Add each frame's self time (its synthetic ``[self]`` children) to
    its layer and to its function."""
    here = layer(frame, parent)
    own = sum(c.time for c in frame.children if c.is_synthetic)
    if frame.file_path and frame.file_path.startswith("<built-in>") and not frame.children:
        own = frame.time  # a leaf C call: all its time is its own
    functions[f"{frame.function} ({frame.file_path_short}:{frame.line_no})"] += own
    layers[here] += own
    for child in frame.children:
        if not child.is_synthetic:
            walk(child, here, layers, functions)


def setup(scenario: str, url: str, n: int) -> t.Callable[[], None]:
    """Build the work of one scenario (untimed) and return it."""
    mw = build_middleware(hello_app, url)
    pool = TokenPool(url)
    if scenario == "redeem":
        envs = [environ(SSO_PATH, "access_token=" + tk) for tk in pool.mint(n)]
        return lambda: [call(mw, e) for e in envs] and None
    if scenario == "session":
        reply = call(mw, environ(SSO_PATH, "access_token=" + pool.mint(1)[0]))
        cookie = (reply.header("Set-Cookie") or "").split(";")[0]
        envs = [environ("/clientarea.php", "action=invoices", cookie=cookie) for _ in range(n)]
        return lambda: [call(mw, e) for e in envs] and None
    if scenario == "mint":
        return lambda: [mw.create_sso_token(client_id=1, destination=DESTINATION) for _ in range(n)] and None
    if scenario == "token":
        credential, secret = mw.oauth_credentials.create(
            grant_type="single_sign_on", scope=DESTINATION, service_id=101
        )
        basic = "Basic " + base64.b64encode(f"{credential.identifier}:{secret}".encode()).decode()
        body = b"grant_type=single_sign_on&scope=clientarea%3Asso+clientarea%3Ainvoices"
        envs = [
            environ(
                TOKEN_PATH,
                method="POST",
                body=body,
                content_type="application/x-www-form-urlencoded",
                headers={"Authorization": basic},
            )
            for _ in range(n)
        ]
        return lambda: [call(mw, e) for e in envs] and None
    if scenario == "passthrough":
        envs = [environ("/clientarea.php", "action=invoices") for _ in range(n * 20)]
        return lambda: [call(mw, e) for e in envs] and None
    raise ValueError(scenario)


def profile(scenario: str, url: str, n: int = 3000, tree: bool = False, interval: float = 0.001) -> str:
    setup(scenario, url, 200)()  # warm-up
    work = setup(scenario, url, n)
    profiler = Profiler(interval=interval)
    profiler.start()
    work()
    profiler.stop()
    session = profiler.last_session
    assert session is not None
    root = session.root_frame()
    assert root is not None
    ops = n * (20 if scenario == "passthrough" else 1)
    layers: t.Counter[str] = collections.Counter()
    functions: t.Counter[str] = collections.Counter()
    walk(root, "other", layers, functions)
    total = sum(layers.values())
    lines = [
        (
            f"## {scenario}: {session.duration / ops * 1e6:.1f} µs per request under the profiler "
            f"({ops} requests, {session.sample_count} samples)"
        ),
        "",
        "| layer | µs/request | share |",
        "|---|---|---|",
    ]
    for name, secs in layers.most_common():
        lines.append(f"| {name} | {secs / ops * 1e6:.1f} | {secs / total:.0%} |")
    lines += ["", "Top functions by self time:", "", "| function | µs/request |", "|---|---|"]
    for name, secs in functions.most_common(15):
        lines.append(f"| `{name}` | {secs / ops * 1e6:.1f} |")
    if tree:
        lines += ["", "```", profiler.output_text(unicode=True, color=False, show_all=False), "```"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS), choices=[[], *SCENARIOS])
    parser.add_argument("-n", type=int, default=3000, help="requests per scenario")
    parser.add_argument("--tree", action="store_true", help="also print pyinstrument's call tree")
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    try:
        print(pin(server, {0}), "\n")
        for scenario in args.scenarios or SCENARIOS:
            print(profile(scenario, server.url, args.n, args.tree))
            print()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
