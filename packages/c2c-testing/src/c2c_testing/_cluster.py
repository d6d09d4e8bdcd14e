"""A real local Redis Cluster: `redis-server --cluster-enabled yes` nodes joined by `redis-cli --cluster create`."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from typing import Self

from c2c_testing._binaries import find_executable
from c2c_testing._net import free_port
from c2c_testing._process import ServerError, ServerGroup
from c2c_testing._redis import RedisServer
from c2c_testing._resp import RespError, as_text

# Hash slots of a cluster (CRC16 of the key, or of its {hash tag}, modulo 16384).
SLOTS = 16384

_MANUAL_FAILOVER_WAIT = 7.0
"""Seconds to wait for a manual failover before asking again (Redis drops one after 5 s)."""


@dataclasses.dataclass(frozen=True)
class ClusterNode:
    """One line of `CLUSTER NODES`, as seen by one node."""

    node_id: str
    address: tuple[str, int]
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        """Whether the node serves slots as a master (failed masters included)."""
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        """Whether the cluster agreed the node is down (`fail`, not only `fail?`)."""
        return "fail" in self.flags


def parse_cluster_nodes(text: str) -> list[ClusterNode]:
    """Parse the reply of `CLUSTER NODES` (one node per line)."""
    nodes: list[ClusterNode] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        host_port = fields[1].split("@", 1)[0].split(",", 1)[0]
        host, _, port = host_port.rpartition(":")
        slots: list[tuple[int, int]] = []
        for item in fields[8:]:
            if item.startswith("["):  # a slot being migrated or imported
                continue
            first, _, last = item.partition("-")
            slots.append((int(first), int(last or first)))
        nodes.append(
            ClusterNode(
                node_id=fields[0],
                address=(host, int(port)),
                flags=frozenset(fields[2].split(",")),
                master_id=None if fields[3] == "-" else fields[3],
                slots=tuple(slots),
            )
        )
    return nodes


def key_slot(key: str | bytes) -> int:
    """The hash slot of `key` (CRC16/XMODEM of its hash tag when it has a non-empty one)."""
    data = key.encode() if isinstance(key, str) else key
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % SLOTS


class RedisCluster(ServerGroup):
    """`masters` masters with `replicas` replicas each, on free loopback ports, joined into one cluster.

    Every node has `cluster-node-timeout` `node_timeout_ms` (short by default, so that a master's
    failure is detected and its replica promoted within a few seconds) and keeps its
    `nodes.conf` in its own directory, so a stopped node restarted with `restart()` rejoins with its
    identity. `start()` waits until every node reports `cluster_state:ok`, knows every other node
    and every replica is linked.
    """

    def __init__(
        self,
        *,
        masters: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        password: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        """Prepare (not start) the nodes."""
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least three masters")
        server = find_executable("redis-server")
        self._cli = find_executable("redis-cli")
        self.masters_count = masters
        self.replicas_per_master = replicas
        self.password = password
        self.startup_timeout = startup_timeout
        args = (
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(node_timeout_ms),
            # Redis 7 waits 5 s before a diskless full sync by default: a replica would lag behind.
            "--repl-diskless-sync-delay",
            "0",
        )
        # The cluster bus defaults to the port + 10000, impossible above 55535: each node gets its own.
        self.nodes = [
            RedisServer(executable=server, args=(*args, "--cluster-port", str(free_port())), password=password)
            for _ in range(masters * (1 + replicas))
        ]

    # -- information ------------------------------------------------------------------------

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """`[(host, port), ...]` of every node."""
        return [node.address for node in self.nodes]

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:PORT` of the first running node (a cluster client discovers the others)."""
        node = next((node for node in self.nodes if node.is_running), self.nodes[0])
        return node.url.rsplit("/", 1)[0]

    def node_at(self, address: tuple[str, int]) -> RedisServer:
        """The server listening on `address`."""
        for node in self.nodes:
            if node.address == address:
                return node
        raise KeyError(address)

    def topology(self) -> list[ClusterNode]:
        """`CLUSTER NODES` as seen by the first running node that answers."""
        errors: list[str] = []
        for node in self.nodes:
            if not node.is_running:
                continue
            try:
                return parse_cluster_nodes(as_text(node.command("CLUSTER", "NODES")))
            except (OSError, RespError) as error:
                errors.append(f"{node.port}: {error}")
        raise ServerError("no cluster node answered CLUSTER NODES: " + "; ".join(errors))

    def masters(self) -> list[RedisServer]:
        """The running nodes that are masters now (after failovers, not the initial roles)."""
        return [
            self.node_at(entry.address)
            for entry in self.topology()
            if entry.is_master and not entry.failed and entry.slots and self.node_at(entry.address).is_running
        ]

    def master_for_slot(self, slot: int) -> RedisServer:
        """The master serving `slot` now."""
        for entry in self.topology():
            if entry.is_master and not entry.failed and any(first <= slot <= last for first, last in entry.slots):
                return self.node_at(entry.address)
        raise ServerError(f"no master serves slot {slot}")

    def master_for_key(self, key: str | bytes) -> RedisServer:
        """The master serving `key`'s slot now (its hash tag decides)."""
        return self.master_for_slot(key_slot(key))

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        """The running replicas linked to `master` now, as `master` itself reports them (`ROLE`).

        The master's own view, not another node's `CLUSTER NODES`: gossip may not have told that
        node yet that a restarted node became a replica (seen under load in CI).
        """
        role = master.command("ROLE")
        if not (isinstance(role, list) and len(role) >= 3 and role[0] == b"master" and isinstance(role[2], list)):
            return []
        linked: list[RedisServer] = []
        for entry in role[2]:
            if not (isinstance(entry, list) and len(entry) >= 2):
                continue
            address = (as_text(entry[0]), int(as_text(entry[1])))
            try:
                node = self.node_at(address)
            except KeyError:
                continue
            if node.is_running:
                linked.append(node)
        return linked

    def _linked_replicas(self, master: RedisServer, deadline: float) -> list[RedisServer]:
        """`replicas_of(master)`, waiting until there is one (a replica just restarted reconnects)."""
        found: list[RedisServer] = []

        def linked() -> bool:
            found[:] = self.replicas_of(master)
            return bool(found)

        self._wait(deadline, f"a replica linked to {master.host}:{master.port}", linked)
        return found

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start every node, create the cluster and wait until it is fully up."""
        deadline = time.monotonic() + self.startup_timeout
        for node in self.nodes:
            node.start()
        command = [self._cli, "--cluster", "create", *(f"{host}:{port}" for host, port in self.startup_nodes)]
        command += ["--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"]
        if self.password is not None:
            command += ["-a", self.password, "--no-auth-warning"]
        remaining = max(deadline - time.monotonic(), 1.0)
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=remaining, check=False)
        except subprocess.TimeoutExpired as error:
            raw: object = error.stdout
            said = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
            raise ServerError(
                f"redis-cli --cluster create did not finish in {remaining:.0f} s; it said:\n{said[-1500:]}"
            ) from error
        if result.returncode != 0:
            raise ServerError(
                f"redis-cli --cluster create failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        self.wait_healthy(max(deadline - time.monotonic(), 1.0))
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every running node says `cluster_state:ok`, sees the same masters and every replica is linked."""
        self._wait(time.monotonic() + timeout, "the cluster to be healthy", self._healthy)

    def _healthy(self) -> bool:
        running = [node for node in self.nodes if node.is_running]
        for node in running:
            if b"cluster_state:ok" not in _bytes(node.command("CLUSTER", "INFO")):
                return False
            entries = parse_cluster_nodes(as_text(node.command("CLUSTER", "NODES")))
            if len(entries) != len(self.nodes) or any("handshake" in entry.flags for entry in entries):
                return False
            live = {entry.address for entry in entries if not entry.failed and "fail?" not in entry.flags}
            if any(other.address not in live for other in running):
                return False
            masters = [entry for entry in entries if entry.is_master and entry.slots]
            if any(entry.failed or "fail?" in entry.flags for entry in masters):
                return False  # a master serving slots is down: no replica took over yet
            if len(masters) != self.masters_count:
                return False
        for node in running:
            role = node.command("ROLE")
            if not (isinstance(role, list) and role and role[0] == b"slave"):
                continue
            if len(role) < 4 or role[3] != b"connected":
                return False
            # The master lists a replica only once it has acknowledged the sync, a moment after the
            # replica says "connected" (`replicas_of` read an empty list in that window, in CI).
            port = role[2]  # an integer reply here (a bulk string in a master's list)
            master = self.node_at((as_text(role[1]), port if isinstance(port, int) else int(as_text(port))))
            if not master.is_running or node not in self.replicas_of(master):
                return False
        return True

    def kill_master(self, master: RedisServer, timeout: float = 30.0) -> RedisServer:
        """Stop `master` (SIGKILL-free stop of the process) and wait until one of its replicas replaces it.

        Returns the promoted replica. The old master stays stopped: `restart(node)` brings it back
        as a replica of the new one.
        """
        deadline = time.monotonic() + timeout
        candidates = self._linked_replicas(master, deadline)
        master.stop()

        def promoted() -> bool:
            for candidate in candidates:
                role = candidate.command("ROLE")
                if isinstance(role, list) and role and role[0] == b"master":
                    info = _bytes(candidate.command("CLUSTER", "INFO"))
                    return b"cluster_state:ok" in info
            return False

        self._wait(deadline, f"a replica of {master.host}:{master.port} to be promoted", promoted)
        self.wait_healthy(max(deadline - time.monotonic(), 1.0))
        for candidate in candidates:
            role = candidate.command("ROLE")
            if isinstance(role, list) and role and role[0] == b"master":
                return candidate
        raise ServerError("no replica was promoted")  # pragma: no cover - promoted() returned True

    def failover(self, master: RedisServer, timeout: float = 30.0) -> RedisServer:
        """A manual, lossless failover: a replica of `master` takes over (`CLUSTER FAILOVER`); returns it."""
        deadline = time.monotonic() + timeout
        replica = self._linked_replicas(master, deadline)[0]

        def swapped() -> bool:
            role = replica.command("ROLE")
            old = master.command("ROLE")
            return (
                isinstance(role, list)
                and bool(role)
                and role[0] == b"master"
                and isinstance(old, list)
                and bool(old)
                and old[0] == b"slave"
            )

        # Redis gives a manual failover 5 s to agree with the master, then drops it and the replica
        # stays one (a master busy catching up after a restart, a loaded machine): ask again.
        while True:
            replica.command("CLUSTER", "FAILOVER")
            attempt = min(deadline, time.monotonic() + _MANUAL_FAILOVER_WAIT)
            try:
                self._wait(attempt, f"{replica.host}:{replica.port} to take over", swapped)
                break
            except ServerError:
                if time.monotonic() >= deadline:
                    raise
        self.wait_healthy(max(deadline - time.monotonic(), 1.0))
        return replica

    def restart(self, node: RedisServer, timeout: float = 30.0) -> None:
        """Start a stopped node again (same port and identity) and wait until the cluster is healthy."""
        node.start()
        self.wait_healthy(timeout)

    def servers(self) -> list[RedisServer]:
        """Every node."""
        return list(self.nodes)

    def __repr__(self) -> str:
        return f"<RedisCluster {self.masters_count}x{1 + self.replicas_per_master} {self.startup_nodes}>"


def _bytes(reply: object) -> bytes:
    if isinstance(reply, bytes):
        return reply
    if isinstance(reply, str):
        return reply.encode()
    return b""
