"""Redemption throughput on a Redis Cluster of 1 and of 3 masters.

Standalone: starts each cluster itself (on free loopback ports, in a
temporary directory, with ``tests/support/redis_topologies.py``), measures, stops it.

    .venv/bin/python -m benchmarks.cluster_scaling [--tokens 3000] [--processes N] [--masters 1 3]

Two measurements per cluster size, each with ``--processes`` worker processes
released together after an untimed preparation:

``redeem``
    End to end: each worker mints ``--tokens`` tokens (untimed) through
    ``SSOMiddleware.create_sso_token`` on ``connect_cluster``, for accounts
    spread over 10,000, then redeems
    them all (timed) with ``GET /oauth/singlesignon.php`` through the WSGI
    stack: the script call (``EVALSHA``; inside it ``GET`` and ``SET``
    turn the token's record into the session's: one key, one slot), then,
    on Cluster only, a ``GET`` of the latest end time (``{prefix}ended``,
    one key every redemption reads, on whichever shard owns its slot): two
    round trips; then the record's MAC, the account checks, the cookie. This
    is what a deployment scales.
``burn``
    Server capacity: the Redis calls of a redemption alone (the script that
    ``RedisTokenStore.redeem`` sends, with the token's key only, as on
    Cluster, and the ``GET`` of ``{prefix}ended``) on freshly minted, sealed
    token keys, in cluster pipelines of 200 redemptions, so that the Redis
    servers rather than Python are the bottleneck. The one ``ended`` key
    puts a read of every redemption on one master.

Throughput is total operations / wall time from the release to the last
worker's end. The ratio 3 masters / 1 master is printed with the machine's
CPU count: all processes (Redis servers and workers) share this machine, so
on a small machine the ratio says more about CPU contention than about Redis
Cluster. On separate machines each master brings its own core.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import statistics
import time
import typing as t
import warnings
from pathlib import Path

from tests.support.redis_topologies import ClusterTopology, free_cpu_count

SYSTEM_URL = "https://portal.example.com"
SECRET_KEY = "cluster-scaling-benchmark-key-0123456789"
DESTINATION = "clientarea:invoices"
ACCOUNTS = 10_000
IDLE_TIMEOUT = 30 * 60  # the middleware's default


def _quiet() -> None:
    # connect_cluster passes redis-py's deprecated read_from_replicas
    warnings.filterwarnings("ignore", message=".*read_from_replicas.*", category=DeprecationWarning)


def _middleware(startup_nodes: list[tuple[str, int]]) -> t.Any:
    from sso_middleware import Limit, Limits, SSOMiddleware, Stores
    from sso_middleware.stores.redis import connect_cluster
    from sso_middleware.users import Account, AccountStatus, MemoryUserStore, User

    users = MemoryUserStore()  # many accounts and users, as in a deployment
    for client_id in range(1, ACCOUNTS + 1):
        users.add_account(Account(client_id, AccountStatus.ACTIVE, True, owner_user_id=client_id))
        users.add_user(User(client_id, client_ids=(client_id,)))

    def app(environ: t.Any, start_response: t.Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return SSOMiddleware(
        app,
        system_url=SYSTEM_URL,
        secret_keys=[SECRET_KEY],
        user_store=users,
        stores=Stores.redis(connect_cluster(startup_nodes)),
        limits=Limits(redeem=Limit(10**9, 600)),
    )


def _redeem_worker(
    startup_nodes: list[tuple[str, int]], tokens: int, barriers: t.Any, results: t.Any
) -> None:
    _quiet()
    middleware = _middleware(startup_nodes)
    queries = []
    for i in range(tokens):
        url = middleware.create_sso_token(
            client_id=1 + (i * 7919 + os.getpid()) % ACCOUNTS, destination=DESTINATION
        )["redirect_url"]
        queries.append(url.split("?", 1)[1])
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Any:
        statuses.append(status)
        return lambda data: None

    environ_base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/oauth/singlesignon.php",
        "SERVER_NAME": "portal.example.com",
        "SERVER_PORT": "443",
        "REMOTE_ADDR": "10.0.0.1",
        "wsgi.url_scheme": "https",
        "wsgi.input": None,
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    for barrier in barriers:  # ready, then go (the parent samples Redis CPU in between)
        barrier.wait()
    started = time.perf_counter()
    for query in queries:
        for _ in middleware({**environ_base, "QUERY_STRING": query}, start_response):
            pass
    finished = time.perf_counter()
    results.put((started, finished, sum(s.startswith("303") for s in statuses), len(statuses)))


def _burn_worker(startup_nodes: list[tuple[str, int]], tokens: int, barriers: t.Any, results: t.Any) -> None:
    _quiet()
    from sso_middleware.sealing import RecordSealer
    from sso_middleware.sessions import secret_digest
    from sso_middleware.stores import SESSION_MARK
    from sso_middleware.stores.redis import (
        _REDEEM,  # the script RedisTokenStore.redeem sends
        DEFAULT_PREFIX,
        connect_cluster,
    )
    from sso_middleware.tokens import TokenRecord, new_token, token_key

    client = connect_cluster(startup_nodes)
    record = TokenRecord(
        1, 1, DESTINATION, "/clientarea.php?action=invoices", int(time.time() * 1000)
    ).encode()
    sealer = RecordSealer([SECRET_KEY])  # records are sealed under their key, as TokenIssuer does
    sealed = {
        DEFAULT_PREFIX + "t:" + key: sealer.seal(key, record)
        for key in (token_key(new_token()) for _ in range(tokens))
    }
    names = list(sealed)
    session = SESSION_MARK + secret_digest(new_token())
    latest = DEFAULT_PREFIX + "ended"
    sha = client.script_load(_REDEEM)  # on every master
    batches = [names[i : i + 200] for i in range(0, len(names), 200)]
    for batch in batches:  # minting, untimed: what TokenIssuer sends
        with client.pipeline() as pipe:
            for name in batch:
                pipe.set(name, sealed[name], ex=600, nx=True)
            pipe.execute()
    for barrier in barriers:  # ready, then go (the parent samples Redis CPU in between)
        barrier.wait()
    started = time.perf_counter()
    redeemed = 0
    # redis-py's cluster pipelines refuse scripts, so the batch goes to each
    # master in a pipeline of its own (what a cluster pipeline does anyway)
    masters = {node.name: node.redis_connection for node in client.get_primaries()}
    latest_on = client.get_node_from_key(latest).name
    for batch in batches:  # what RedisTokenStore.redeem sends on Cluster, default replay policy
        by_master: dict[str, list[str]] = {name: [] for name in masters}
        for name in batch:
            by_master[client.get_node_from_key(name).name].append(name)
        for master, owned in by_master.items():
            with masters[master].pipeline(transaction=False) as pipe:
                for name in owned:
                    pipe.evalsha(sha, 1, name, session, IDLE_TIMEOUT, 1)
                for _ in batch if master == latest_on else ():
                    pipe.get(latest)
                replies = pipe.execute()
            redeemed += sum(1 for name, r in zip(owned, replies) if r and r[0] == sealed[name])
    finished = time.perf_counter()
    results.put((started, finished, redeemed, tokens))


def server_cpu(clients: list[t.Any]) -> list[float]:
    """CPU seconds (user + system) each Redis master has used so far."""
    return [
        float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        for info in (client.info("cpu") for client in clients)
    ]


def _result(results: t.Any, workers: list[t.Any]) -> t.Any:
    """The next worker's figures; fails at once if a worker died instead."""
    while True:
        try:
            return results.get(timeout=1)
        except queue.Empty:
            if any(w.exitcode not in (None, 0) for w in workers):
                raise RuntimeError("a worker process failed; its traceback is above") from None


def measure(kind: str, cluster: ClusterTopology, processes: int, tokens: int) -> dict[str, t.Any]:
    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Barrier(processes + 1), context.Barrier(processes + 1), context.Queue()
    target = _redeem_worker if kind == "redeem" else _burn_worker
    workers = [
        context.Process(target=target, args=(cluster.startup_nodes, tokens, (ready, go), results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    clients = cluster.clients()
    try:
        ready.wait(timeout=600)
        before = server_cpu(clients)
        go.wait(timeout=60)
        outcomes = [_result(results, workers) for _ in workers]
        after = server_cpu(clients)
    finally:
        for client in clients:
            client.close()
    for worker in workers:
        worker.join(60)
    started = min(o[0] for o in outcomes)
    finished = max(o[1] for o in outcomes)
    succeeded = sum(o[2] for o in outcomes)
    total = sum(o[3] for o in outcomes)
    if succeeded != total:
        raise RuntimeError(f"{kind}: only {succeeded} of {total} operations succeeded")
    busiest = max(a - b for a, b in zip(after, before))
    return {
        "operations": total,
        "seconds": finished - started,
        "per_second": total / (finished - started),
        "server_cpu_seconds": [round(a - b, 3) for a, b in zip(after, before)],
        # what the busiest master could serve with a core of its own
        "per_busiest_master_cpu_second": total / busiest if busiest > 0 else float("inf"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--masters", type=int, nargs="+", default=[1, 3])
    parser.add_argument(
        "--processes",
        type=int,
        default=max(2, free_cpu_count()),
        help="worker processes (default: the CPU count, at least 2)",
    )
    parser.add_argument("--tokens", type=int, default=3000, help="tokens per worker for 'redeem'")
    parser.add_argument("--burns", type=int, default=50000, help="tokens per worker for 'burn'")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    _quiet()

    figures: dict[str, dict[int, list[dict[str, t.Any]]]] = {
        "redeem": {m: [] for m in args.masters},
        "burn": {m: [] for m in args.masters},
    }
    clusters = [ClusterTopology(masters) for masters in args.masters]
    try:
        for cluster in clusters:
            cluster.start()
        for round_ in range(args.rounds):  # alternate sizes, so warm-up and drift hit both
            for masters, cluster in zip(args.masters, clusters):
                for kind, count in (("redeem", args.tokens), ("burn", args.burns)):
                    for client in cluster.clients():
                        client.flushall()
                        client.close()
                    run = measure(kind, cluster, args.processes, count)
                    figures[kind][masters].append(run)
                    print(
                        f"round {round_ + 1}, {masters} master(s), {kind:6}: {run['per_second']:8.0f}/s"
                        f" wall clock; {run['per_busiest_master_cpu_second']:8.0f}/s per CPU-second of"
                        f" the busiest master (server CPU s: {run['server_cpu_seconds']})",
                        flush=True,
                    )
    finally:
        for cluster in clusters:
            cluster.stop()

    def median(kind: str, masters: int, field: str) -> float:
        return statistics.median(run[field] for run in figures[kind][masters])

    cpus = free_cpu_count()
    print(
        f"\nmedians of {args.rounds} rounds; {cpus} CPU(s), {args.processes} worker processes,"
        " every redis-server and worker on this machine"
    )
    for kind in ("redeem", "burn"):
        for masters in args.masters:
            print(
                f"{kind:6} {masters} master(s): {median(kind, masters, 'per_second'):8.0f}/s wall clock,"
                f" {median(kind, masters, 'per_busiest_master_cpu_second'):8.0f}/s per busiest-master"
                " CPU-second"
            )
    low, high = min(args.masters), max(args.masters)
    if low != high:
        for kind in ("redeem", "burn"):
            wall = median(kind, high, "per_second") / median(kind, low, "per_second")
            capacity = median(kind, high, "per_busiest_master_cpu_second") / median(
                kind, low, "per_busiest_master_cpu_second"
            )
            print(
                f"{kind}: {high} masters / {low} master = {wall:.2f}x wall clock here,"
                f" {capacity:.2f}x server capacity (busiest master's CPU)"
            )
    if cpus < high + args.processes:
        print(
            f"note: {high} redis-servers and {args.processes} workers share {cpus} CPU(s): the wall"
            " clock ratio is bounded by CPU contention on this machine, not by Redis Cluster; the"
            " capacity ratio is what separate cores or machines per master would allow, as long as"
            " the clients keep up"
        )
    if args.json:
        args.json.write_text(json.dumps({"cpus": cpus, "processes": args.processes, **figures}, indent=2))


if __name__ == "__main__":
    main()
