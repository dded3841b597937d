"""Real Redis topologies for the tests and benchmarks: a Sentinel-monitored
master with replicas, and a Redis Cluster. Every process listens on a free
loopback port, keeps its configuration and log in a temporary directory and
is killed by :meth:`stop` (and, as a last resort, at interpreter exit).
Either runs on Redis (``redis-server``, ``redis-cli``) or, with
``flavour=VALKEY``, on Valkey (``valkey-server``, ``valkey-cli``).

- :class:`SentinelTopology`: one master, ``replicas`` replicas and
  ``sentinels`` sentinels (``redis-server --sentinel``). The sentinels'
  configuration names each other and the replicas from the start, so a
  failover is possible as soon as :meth:`~SentinelTopology.start` returns,
  without the usual ten seconds of discovery.
- :class:`ClusterTopology`: ``masters`` masters without replicas, created
  with ``redis-cli --cluster create … --cluster-replicas 0 --cluster-yes``
  (three or more masters; fewer are assembled with ``CLUSTER ADDSLOTSRANGE``
  and ``CLUSTER MEET``, which ``redis-cli`` refuses to do).
"""

from __future__ import annotations

import abc
import atexit
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import typing as t
from pathlib import Path

import redis

from .redis_server import REDIS, Flavour, free_port

HOST = "127.0.0.1"

_running: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_running):
        if process.poll() is None:
            process.kill()
            process.wait()


def _client(port: int, **kwargs: t.Any) -> redis.Redis:
    return redis.Redis(host=HOST, port=port, socket_timeout=1, socket_connect_timeout=1, **kwargs)


def wait_until(condition: t.Callable[[], t.Any], timeout: float, what: str, interval: float = 0.02) -> t.Any:
    """Poll ``condition`` until it returns something true; Redis errors
    count as not yet. Raise :class:`TimeoutError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
            if result:
                return result
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Node:
    """One ``redis-server`` (or sentinel, or ``valkey-server``) process with
    its own config file."""

    def __init__(
        self,
        folder: Path,
        name: str,
        config: list[str],
        sentinel: bool = False,
        flavour: Flavour = REDIS,
    ):
        flavour.require()
        self.flavour = flavour
        self.checked = False
        self.port = free_port()
        self.name = name
        self.folder = folder
        self.sentinel = sentinel
        self.config_file = folder / f"{name}.conf"
        self.log_file = folder / f"{name}.log"
        lines = [
            f"port {self.port}",
            f"bind {HOST}",
            "protected-mode no",
            "daemonize no",
            f"dir {folder}",
            f"logfile {self.log_file}",
            *config,
        ]
        self.config_file.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def append_config(self, *lines: str) -> None:
        with open(self.config_file, "a") as file:
            file.write("".join(line + "\n" for line in lines))

    def start(self) -> None:
        command = [self.flavour.server, str(self.config_file)] + (["--sentinel"] if self.sentinel else [])
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _running.add(self.process)

    def wait_ready(self, timeout: float = 10) -> None:
        def ping() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log()}")
            with self.client() as client:
                return bool(client.ping())

        wait_until(ping, timeout, f"{self.name} on port {self.port}")
        if not self.checked:
            with self.client() as client:
                self.flavour.check(client, f"port {self.port} ({self.name})")
            self.checked = True

    def client(self, **kwargs: t.Any) -> redis.Redis:
        return _client(self.port, **kwargs)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye to replicas or clients, like a crashed host."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(10)
            _running.discard(self.process)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the process stops answering, its sockets stay open."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def log(self) -> str:
        try:
            return self.log_file.read_text()[-4000:]
        except OSError:
            return "(no log)"


DATA_CONFIG = ['save ""', "appendonly no", "loglevel notice"]


class Topology(abc.ABC):
    """Processes on loopback, started by :meth:`start`, all killed by :meth:`stop`."""

    def __init__(self, prefix: str, flavour: Flavour = REDIS):
        self.flavour = flavour
        self.folder = Path(tempfile.mkdtemp(prefix=prefix))
        self.nodes: list[Node] = []

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()  # SIGKILL ends a SIGSTOPped process too
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> t.Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @abc.abstractmethod
    def start(self) -> None:
        """Start every node and wait until the topology serves."""

    def logs(self) -> str:
        return "\n".join(f"--- {node.name} ---\n{node.log()}" for node in self.nodes)


class SentinelTopology(Topology):
    """A master, its replicas and the sentinels that watch them."""

    service = "sso-master"

    def __init__(
        self,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        master_config: t.Sequence[str] = (),
        flavour: Flavour = REDIS,
    ):
        flavour.require()
        super().__init__(f"sso-{flavour.name}-sentinel-", flavour)
        self.master = Node(
            self.folder,
            "master",
            [*DATA_CONFIG, "repl-diskless-sync yes", "repl-diskless-sync-delay 0", *master_config],
            flavour=flavour,
        )
        self.replicas = [
            Node(
                self.folder,
                f"replica-{i}",
                [
                    *DATA_CONFIG,
                    "repl-diskless-sync yes",
                    "repl-diskless-sync-delay 0",
                    f"replicaof {HOST} {self.master.port}",
                ],
                flavour=flavour,
            )
            for i in range(replicas)
        ]
        self.data_nodes = [self.master, *self.replicas]
        ids = [secrets.token_hex(20) for _ in range(sentinels)]
        self.sentinels = [
            Node(
                self.folder,
                f"sentinel-{i}",
                [
                    f"sentinel myid {ids[i]}",
                    f"sentinel monitor {self.service} {HOST} {self.master.port} {quorum}",
                    f"sentinel down-after-milliseconds {self.service} {down_after_ms}",
                    f"sentinel failover-timeout {self.service} {failover_timeout_ms}",
                    f"sentinel parallel-syncs {self.service} 1",
                ],
                sentinel=True,
                flavour=flavour,
            )
            for i in range(sentinels)
        ]
        for i, node in enumerate(self.sentinels):
            node.append_config(
                *(f"sentinel known-replica {self.service} {HOST} {r.port}" for r in self.replicas),
                *(
                    f"sentinel known-sentinel {self.service} {HOST} {other.port} {ids[j]}"
                    for j, other in enumerate(self.sentinels)
                    if j != i
                ),
            )
        self.nodes = [*self.data_nodes, *self.sentinels]

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [(HOST, node.port) for node in self.sentinels]

    def start(self) -> None:
        for node in self.data_nodes:
            node.start()
        for node in self.data_nodes:
            node.wait_ready()
        self.wait_replicated(self.master, len(self.replicas))
        for node in self.sentinels:
            node.start()
        for node in self.sentinels:
            node.wait_ready()
        self.wait_watched(self.master)

    def wait_replicated(self, master: Node, replicas: int, timeout: float = 15) -> None:
        """Until ``master`` has ``replicas`` replicas online and in sync."""

        def synced() -> bool:
            # "online" is not enough: after a diskless sync the master holds
            # the stream back until the replica's first ACK (up to a second)
            with master.client() as client:
                client.set("topology:sync", "1")
                acknowledged = client.wait(replicas, 100)
                client.delete("topology:sync")
            return acknowledged >= replicas

        wait_until(synced, timeout, f"{replicas} replica(s) in sync with {master.name}")

    def wait_watched(self, master: Node, timeout: float = 15) -> None:
        """Until every live sentinel names ``master``, sees it up, knows the
        other sentinels and the live replicas."""
        replicas = sum(1 for node in self.data_nodes if node is not master and node.alive)

        def watched() -> bool:
            for sentinel in self.sentinels:
                with sentinel.client(decode_responses=True) as client:
                    state = client.sentinel_master(self.service)
                if (
                    state["port"] != master.port
                    or not state["is_master"]
                    or state["is_sdown"]
                    or state["num-other-sentinels"] < len(self.sentinels) - 1
                    or state["num-slaves"] < replicas
                ):
                    return False
            return True

        wait_until(watched, timeout, f"the sentinels to watch {master.name}", interval=0.05)

    def current_master(self) -> Node:
        """The data node the sentinels name as master now."""
        with self.sentinels[0].client(decode_responses=True) as client:
            _, port = client.sentinel_get_master_addr_by_name(self.service)
        return next(node for node in self.data_nodes if node.port == int(port))

    def wait_failover(self, old: Node, timeout: float = 20) -> Node:
        """Until every sentinel names a new master and that node says it is
        one; return it."""

        def promoted() -> Node | None:
            ports = set()
            for sentinel in self.sentinels:
                with sentinel.client(decode_responses=True) as client:
                    ports.add(int(client.sentinel_get_master_addr_by_name(self.service)[1]))
            if len(ports) != 1 or old.port in ports:
                return None
            node = next(n for n in self.data_nodes if n.port in ports)
            with node.client() as client:
                return node if client.info("replication")["role"] == "master" else None

        try:
            return t.cast(Node, wait_until(promoted, timeout, "a failover", interval=0.05))
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.logs()}") from None


class ClusterTopology(Topology):
    """``masters`` Redis Cluster masters without replicas, created with the
    flavour's ``redis-cli`` or ``valkey-cli``."""

    def __init__(self, masters: int = 3, *, extra_config: t.Sequence[str] = (), flavour: Flavour = REDIS):
        flavour.require(cli=masters >= 3)
        super().__init__(f"sso-{flavour.name}-cluster-", flavour)
        self.masters = []
        for i in range(masters):
            cluster_port = free_port()
            self.masters.append(
                Node(
                    self.folder,
                    f"cluster-{i}",
                    [
                        *DATA_CONFIG,
                        "cluster-enabled yes",
                        f"cluster-config-file nodes-{i}.conf",
                        f"cluster-port {cluster_port}",
                        "cluster-node-timeout 2000",
                        *extra_config,
                    ],
                    flavour=flavour,
                )
            )
        self.nodes = list(self.masters)

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, node.port) for node in self.masters]

    def start(self) -> None:
        for node in self.masters:
            node.start()
        for node in self.masters:
            node.wait_ready()
        if len(self.masters) >= 3:
            subprocess.run(
                [
                    self.flavour.cli,
                    "--cluster",
                    "create",
                    *(f"{HOST}:{node.port}" for node in self.masters),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
        else:
            step = 16384 // len(self.masters)
            for i, node in enumerate(self.masters):
                last = 16383 if i == len(self.masters) - 1 else (i + 1) * step - 1
                with node.client() as client:
                    client.execute_command("CLUSTER ADDSLOTSRANGE", i * step, last)
                    if i:
                        client.execute_command("CLUSTER MEET", HOST, self.masters[0].port)

        def ready() -> bool:
            for node in self.masters:
                with node.client(decode_responses=True) as client:
                    info = client.cluster("info")
                if info["cluster_state"] != "ok" or int(info["cluster_known_nodes"]) != len(self.masters):
                    return False
            return True

        wait_until(ready, 30, "the cluster to be ok on every node", interval=0.05)

    def clients(self) -> list[redis.Redis]:
        return [node.client() for node in self.masters]


def free_cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def documented_acl_rules() -> list[str]:
    """The rules of the ``ACL SETUSER sso-app …`` line of docs/deployment.md,
    so the documented line is the tested one."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
    match = re.search(r"^ACL SETUSER sso-app (.+)$", docs.read_text(), re.MULTILINE)
    assert match, "docs/deployment.md lost its ACL SETUSER line"
    return match.group(1).split()
