"""Benchmark: broadcast with answers to 4, 50 and 200 replicas on one Redis (and on a Redis Cluster), and churn.

Starts its own redis-server (`c2c_testing.RedisServer`; with `--cluster`, or by default when
available, also a `c2c_testing.RedisCluster` of three masters with a replica each), then for each
replica count N:

- `--processes` worker processes (4 by default) share the N replicas: each process holds its share
  as that many `RedisBroadcaster`s on one `RedisFactory` (one shared command pool per process;
  each broadcaster has its own two pub/sub connections and its own replica id), all subscribed to
  `echo`, whose handler returns the replica id;
- one caller process makes `--calls` sequential `broadcast("echo", expect_answers=True)` calls and
  checks each: N answers, from N distinct replica ids (a call with fewer is *incomplete*).

Per N: complete calls / calls, round trip p50 / p99, answered broadcasts per second (one caller),
Redis connections per replica (`INFO clients` of every node, minus what the caller and this script
hold, divided by N; after a warm-up and after the calls), CPU per broadcast (the caller's and the
workers' CPU from /proc over the calls, divided by the calls; redis-server's apart), each also as a
ratio to N=4.

Churn (at `--churn-replicas`, 50 by default): while the caller broadcasts, one worker process is
killed with SIGKILL, then a new one is started. Reported: how long until the registry's live view
(the entries of `<prefix>c2c_registry:echo` not yet expired, in Redis's clock) and the answers match
the live replicas, against `replica_ttl` and `heartbeat_interval` (short here, printed).

Targets (`--check` exits 1 when one is missed): every call complete; p99 at the largest N at most
50 x p99 at N=4; the pub/sub connections per replica constant within +-0.5 (across N, and before /
after the calls); all connections per replica not growing by more than 0.5 (with N, or with the
calls). The total per replica is *not* held within +-0.5 of N=4's: a process's command pool
(at most `C2C__REDIS__MAX_CONNECTIONS`) is shared by its replicas, so the per-replica share falls
as a process holds more of them; the bench prints it as a note.

Usage:
    uv run --no-sync python bench/bench_replicas.py [--counts 4,50,200] [--calls 100] [--check]
        [--cluster | --no-cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
PREFIX = "bench_replicas_"
CHANNEL = "echo"
HEARTBEAT_INTERVAL = 1.0
REPLICA_TTL = 3.0
CALL_TIMEOUT = 30.0
CHURN_TIMEOUT = 5.0  # a call in flight when its replica dies waits this long (it cannot know)
CHURN_INTERVAL = 0.1  # seconds between two calls of the churn phase


# -- the worker and caller processes (this file, with --worker / --caller) -------------------------


async def _worker(count: int) -> None:
    """`count` replicas in this process, on one factory, until stdin closes."""
    from c2c_broadcast import Settings
    from c2c_broadcast.redis import RedisBroadcaster
    from c2c_config.redis import RedisFactory

    settings = Settings()
    factory = RedisFactory(settings.redis)
    replicas = [RedisBroadcaster(factory, settings.broadcast, prefix=PREFIX) for _ in range(count)]
    await asyncio.gather(*(replica.start() for replica in replicas))

    def handler(replica_id: str) -> Any:
        async def echo(**params: Any) -> dict[str, Any]:
            return {"replica": replica_id, "n": params.get("n")}

        return echo

    for replica in replicas:
        await replica.subscribe(CHANNEL, handler(replica.replica_id))
    print("READY", json.dumps([replica.replica_id for replica in replicas]), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await asyncio.gather(*(replica.close() for replica in replicas))
    await factory.aclose()


async def _one_call(broadcast: Any, n: int, timeout: float = CALL_TIMEOUT) -> tuple[float, int, int]:  # noqa: ASYNC109
    """(seconds, answers with a payload, distinct replica ids) of one call."""
    begin = time.perf_counter()
    answers = await broadcast.broadcast(CHANNEL, {"n": n}, expect_answers=True, timeout=timeout)
    elapsed = time.perf_counter() - begin
    payloads = [answer.payload for answer in answers if hasattr(answer, "payload")]
    return elapsed, len(payloads), len({payload["replica"] for payload in payloads})


async def _stamped_call(broadcast: Any, n: int) -> tuple[float, float, int, int]:
    return (time.time(), *await _one_call(broadcast, n, CHURN_TIMEOUT))


async def _caller() -> None:
    """Commands on stdin: `calls <n>`, `churn <seconds>`, `quit`; one JSON line per command on stdout."""
    import logging

    import c2c_broadcast as broadcast

    logging.disable(logging.WARNING)
    await broadcast.startup()
    loop = asyncio.get_running_loop()
    print("READY", flush=True)
    counter = 0
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "quit":
            break
        results: list[tuple[float, float, int, int]] = []
        if line[0] == "calls":
            for _ in range(int(line[1])):
                counter += 1
                results.append((time.time(), *await _one_call(broadcast, counter)))
        elif line[0] == "churn":
            # Open loop: a call every CHURN_INTERVAL, not after the previous one, so that the calls in
            # flight when a replica dies (they wait their timeout) do not hide the next ones.
            end = time.monotonic() + float(line[1])
            calls = []
            while time.monotonic() < end:
                counter += 1
                calls.append(asyncio.create_task(_stamped_call(broadcast, counter)))
                await asyncio.sleep(CHURN_INTERVAL)
            results = list(await asyncio.gather(*calls))
        print(json.dumps(results), flush=True)
    await broadcast.shutdown()


# -- the orchestration ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


@dataclass
class Backend:
    """The Redis under test: a server or a cluster, the environment its clients need."""

    name: str
    env: dict[str, str]
    nodes: list[Any]  # RedisServer instances (every node of a cluster)
    registry_node: Any  # the node holding the registry key
    registry_key: str
    cluster: bool = False

    def connections(self) -> tuple[int, int]:
        """(every client connection, the pub/sub ones) on every node, without the connections asking."""
        total = pubsub = 0
        for node in self.nodes:
            listing = node.command("CLIENT", "LIST")
            text = listing.decode() if isinstance(listing, bytes) else str(listing)
            for line in text.splitlines():
                fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
                if fields.get("cmd") == "client|list":
                    continue
                total += 1
                if any(fields.get(kind, "0") not in ("0", "") for kind in ("sub", "psub", "ssub")):
                    pubsub += 1
        return total, pubsub

    def server_cpu(self) -> float:
        """CPU seconds of every node (`INFO cpu`: finer than /proc's ticks)."""
        total = 0.0
        for node in self.nodes:
            info = node.command("INFO", "cpu")
            text = info.decode() if isinstance(info, bytes) else str(info)
            for line in text.splitlines():
                if line.startswith(("used_cpu_sys:", "used_cpu_user:")):
                    total += float(line.split(":")[1])
        return total

    def live_registered(self) -> int:
        """Registry entries not expired yet, in Redis's clock (what the publishing script reads)."""
        seconds, micros = self.registry_node.command("TIME")
        now = int(seconds) * 1000 + int(micros) // 1000
        return int(self.registry_node.command("ZCOUNT", self.registry_key, f"({now}", "+inf"))


@dataclass
class Fleet:
    """The worker processes and the caller of one backend."""

    backend: Backend
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    caller: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
        env.update(self.backend.env)
        env["C2C__REDIS__BROADCAST_PREFIX"] = PREFIX
        env["C2C__BROADCAST__HEARTBEAT_INTERVAL"] = str(HEARTBEAT_INTERVAL)
        env["C2C__BROADCAST__REPLICA_TTL"] = str(REPLICA_TTL)
        env["C2C__BROADCAST__CONNECT_TIMEOUT"] = "5"
        env["C2C__BROADCAST__RECONNECT_MAX_DELAY"] = "0.5"
        return env

    def start_worker(self, count: int) -> subprocess.Popen[bytes]:
        env = self.environment()
        if self.backend.cluster:
            # redis-py's cluster client does not wait for a free connection: a command beyond
            # max_connections (per node) fails at once, and `count` replicas answer a call at once.
            env["C2C__REDIS__MAX_CONNECTIONS"] = str(cluster_max_connections(count))
        worker = subprocess.Popen(
            [sys.executable, str(HERE), "--worker", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.workers.append(worker)
        return worker

    @staticmethod
    def wait_ready(process: subprocess.Popen[bytes], what: str) -> str:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("READY"):
            sys.exit(f"{what} did not start")
        return line

    def start_caller(self) -> None:
        self.caller = subprocess.Popen(
            [sys.executable, str(HERE), "--caller"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.environment(),
        )
        self.wait_ready(self.caller, "the caller")

    def command(self, text: str) -> list[list[float]]:
        assert self.caller is not None
        assert self.caller.stdin is not None
        assert self.caller.stdout is not None
        self.caller.stdin.write(text.encode() + b"\n")
        self.caller.stdin.flush()
        line = self.caller.stdout.readline()
        if not line:
            sys.exit(f"the caller stopped during {text!r}")
        result: list[list[float]] = json.loads(line)
        return result

    def stop_worker(self, worker: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(OSError):
            assert worker.stdin is not None
            worker.stdin.close()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
        if worker.stdout is not None:
            worker.stdout.close()
        if worker in self.workers:
            self.workers.remove(worker)

    def close(self) -> None:
        for worker in list(self.workers):
            self.stop_worker(worker)
        if self.caller is not None:
            with contextlib.suppress(OSError):
                assert self.caller.stdin is not None
                self.caller.stdin.write(b"quit\n")
                self.caller.stdin.flush()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.caller.wait(timeout=15)
            if self.caller.poll() is None:
                self.caller.kill()
                self.caller.wait(timeout=10)
            for stream in (self.caller.stdin, self.caller.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def cluster_max_connections(replicas: int) -> int:
    """C2C__REDIS__MAX_CONNECTIONS for a cluster worker holding `replicas` replicas (an answer and a heartbeat each)."""
    return max(20, 2 * replicas + 10)


def shares(total: int, processes: int) -> list[int]:
    """`total` replicas spread over at most `processes` processes."""
    count = min(total, processes)
    return [total // count + (1 if index < total % count else 0) for index in range(count)]


def wait_registered(backend: Backend, expected: int, timeout: float = 60) -> float:
    """Seconds until the registry's live view holds `expected` replicas."""
    begin = time.monotonic()
    while backend.live_registered() != expected:
        if time.monotonic() - begin > timeout:
            sys.exit(f"the registry did not reach {expected} replicas (it has {backend.live_registered()})")
        time.sleep(0.02)
    return time.monotonic() - begin


def measure(fleet: Fleet, replicas: int, processes: int, calls: int) -> dict[str, float]:
    """Start `replicas` replicas, make `calls` calls, measure; stop the replicas."""
    backend = fleet.backend
    baseline = backend.connections()  # the caller's connections (and nothing else)
    workers = [fleet.start_worker(count) for count in shares(replicas, processes)]
    for worker in workers:
        fleet.wait_ready(worker, "a worker")
    wait_registered(backend, replicas)
    fleet.command(f"calls {max(calls // 3, 10)}")  # warm-up: the pools reach their working size
    before = backend.connections()
    pids = [worker.pid for worker in workers]
    assert fleet.caller is not None
    pids.append(fleet.caller.pid)
    cpu_before, server_before = sum(cpu_seconds(pid) for pid in pids), backend.server_cpu()
    results = fleet.command(f"calls {calls}")
    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    server = backend.server_cpu() - server_before
    after = backend.connections()
    for worker in workers:
        fleet.stop_worker(worker)
    wait_registered(backend, 0)
    samples = [row[1] for row in results]
    print(f"  {backend.name}, {replicas} replicas: done", file=sys.stderr, flush=True)
    complete = sum(1 for row in results if row[2] == replicas and row[3] == replicas)
    return {
        "replicas": replicas,
        "calls": len(results),
        "complete": complete,
        "p50_ms": percentile(samples, 0.5) * 1000,
        "p99_ms": percentile(samples, 0.99) * 1000,
        "per_s": len(samples) / sum(samples),
        "conn_before": (before[0] - baseline[0]) / replicas,
        "conn_after": (after[0] - baseline[0]) / replicas,
        "pubsub_before": (before[1] - baseline[1]) / replicas,
        "pubsub_after": (after[1] - baseline[1]) / replicas,
        "commands_per_process": (after[0] - after[1] - baseline[0] + baseline[1]) / len(workers),
        "cpu_ms": cpu / len(results) * 1000,
        "redis_cpu_ms": server / len(results) * 1000,
    }


def churn(fleet: Fleet, replicas: int, processes: int, seconds: float) -> dict[str, Any]:
    """Kill -9 a worker process during calls, then start a new one; when do registry and answers follow?"""
    backend = fleet.backend
    counts = shares(replicas, processes)
    workers = [fleet.start_worker(count) for count in counts]
    for worker in workers:
        fleet.wait_ready(worker, "a worker")
    wait_registered(backend, replicas)
    assert fleet.caller is not None
    assert fleet.caller.stdin is not None
    fleet.caller.stdin.write(f"churn {seconds}\n".encode())
    fleet.caller.stdin.flush()
    time.sleep(1.0)
    victim, lost = workers[0], counts[0]
    killed_at = time.time()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    fleet.workers.remove(victim)
    registry_down = wait_registered(backend, replicas - lost)
    time.sleep(0.5)
    started_at = time.time()
    newcomer = fleet.start_worker(lost)
    fleet.wait_ready(newcomer, "the new worker")
    ready_at = time.time()
    wait_registered(backend, replicas)
    registry_up = time.time() - started_at
    assert fleet.caller.stdout is not None
    results: list[list[float]] = json.loads(fleet.caller.stdout.readline())
    if os.environ.get("BENCH_REPLICAS_DUMP"):
        Path(os.environ["BENCH_REPLICAS_DUMP"]).write_text(
            json.dumps({"killed": killed_at, "started": started_at, "ready": ready_at, "calls": results})
        )
    for worker in list(fleet.workers):
        fleet.stop_worker(worker)
    wait_registered(backend, 0)

    def settled(after: float, expected: int, until: float) -> float | None:
        """Seconds from `after` to the first call from which on every call started before `until` had `expected`."""
        window = [row for row in results if after < row[0] <= until]
        for index, row in enumerate(window):
            if all(later[2] == expected and later[3] == expected for later in window[index:]):
                return row[0] - after
        return None

    during = [row for row in results if row[0] > killed_at]
    in_flight = [row for row in results if row[0] <= killed_at < row[0] + row[1]]
    return {
        "replicas": replicas,
        "killed": lost,
        "calls": len(results),
        "registry_down_s": registry_down,
        "answers_down_s": settled(killed_at, replicas - lost, started_at),
        "worker_start_s": ready_at - started_at,
        "registry_up_s": registry_up,
        "answers_up_s": settled(started_at, replicas, float("inf")),
        "max_call_ms": max((row[1] for row in during), default=0.0) * 1000,
        "wrong_calls": sum(1 for row in results if row[2] not in (replicas, replicas - lost)),
        "in_flight": [(row[1], row[2]) for row in in_flight],
    }


@contextlib.contextmanager
def single_redis() -> Iterator[Backend]:
    from c2c_testing import RedisServer

    with RedisServer() as server:
        yield Backend(
            "single Redis", {"C2C__REDIS__URL": server.url}, [server], server, f"{PREFIX}c2c_registry:{CHANNEL}"
        )


@contextlib.contextmanager
def redis_cluster() -> Iterator[Backend]:
    from c2c_testing import RedisCluster

    cluster = RedisCluster()
    cluster.start()
    try:
        key = "{" + PREFIX + CHANNEL + "}:registry"
        yield Backend(
            "Redis Cluster (3 masters + 3 replicas)",
            {"C2C__REDIS__URL": cluster.url, "C2C__REDIS__CLUSTER": "true"},
            cluster.servers(),
            cluster.master_for_key(key),
            key,
            cluster=True,
        )
    finally:
        cluster.close()


def run_backend(backend_context: Any, args: argparse.Namespace) -> tuple[list[dict[str, float]], dict[str, Any] | None]:
    with backend_context() as backend:
        fleet = Fleet(backend)
        try:
            fleet.start_caller()
            fleet.command("calls 3")  # the caller's own connections exist before the baseline
            rows = [measure(fleet, count, args.processes, args.calls) for count in args.counts]
            churned = (
                churn(fleet, args.churn_replicas, args.processes, args.churn_seconds) if args.churn_seconds else None
            )
        finally:
            fleet.close()
    return rows, churned


def report(name: str, rows: list[dict[str, float]], churned: dict[str, Any] | None) -> list[str]:
    """Print the table; return the targets missed."""
    base = rows[0]
    print(f"\n{name}: replicas in {ARGS.processes} worker processes, one sequential caller")
    header = (
        f"{'replicas':>8} {'complete':>10} {'p50 ms':>8} {'p99 ms':>8} {'x4':>5} {'answered/s':>10} {'x4':>5}"
        f" {'conn/replica':>13} {'pub/sub':>7} {'cmd/proc':>8} {'CPU ms/call':>11} {'x4':>5}"
        f" {'redis ms/call':>13} {'x4':>5}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['replicas']:>8.0f} {row['complete']:>4.0f}/{row['calls']:<5.0f} {row['p50_ms']:>8.2f}"
            f" {row['p99_ms']:>8.2f} {row['p99_ms'] / base['p99_ms']:>5.1f} {row['per_s']:>10.1f}"
            f" {row['per_s'] / base['per_s']:>5.2f} {row['conn_before']:>5.2f} -> {row['conn_after']:<4.2f}"
            f" {row['pubsub_after']:>7.2f} {row['commands_per_process']:>8.1f}"
            f" {row['cpu_ms']:>11.2f} {row['cpu_ms'] / base['cpu_ms']:>5.1f} {row['redis_cpu_ms']:>13.3f}"
            f" {row['redis_cpu_ms'] / base['redis_cpu_ms']:>5.1f}"
        )
    if "Cluster" in name:
        print(
            "cluster workers run with C2C__REDIS__MAX_CONNECTIONS = 2 x their replicas + 10 (at least 20):"
            " redis-py's cluster client fails a command beyond it instead of waiting (with 20, 50 replicas"
            " per process lost about half of the answers)"
        )
    print(
        "conn/replica: every connection of the workers / N, after the warm-up -> after the calls; pub/sub: the"
        " pub/sub ones / N; cmd/proc: command connections per worker process (one shared pool each)"
    )
    missed: list[str] = []
    notes: list[str] = []
    for row in rows:
        at = f"{name}, {row['replicas']:.0f} replicas"
        if row["complete"] != row["calls"]:
            missed.append(f"{at}: {row['calls'] - row['complete']:.0f} incomplete calls")
        pubsub_drift = max(
            abs(row["pubsub_after"] - base["pubsub_after"]), abs(row["pubsub_after"] - row["pubsub_before"])
        )
        if pubsub_drift > 0.5:
            missed.append(f"{at}: pub/sub connections per replica not constant (+-{pubsub_drift:.2f})")
        if row["conn_after"] > base["conn_after"] + 0.5 or row["conn_after"] > row["conn_before"] + 0.5:
            missed.append(f"{at}: connections per replica grow ({row['conn_before']:.2f} -> {row['conn_after']:.2f})")
        if abs(row["conn_after"] - base["conn_after"]) > 0.5:
            notes.append(
                f"{at}: {row['conn_after']:.2f} connections per replica against {base['conn_after']:.2f} at"
                f" {base['replicas']:.0f}: fewer, the command pool of a process is shared by more replicas"
            )
    largest = rows[-1]
    if largest["p99_ms"] > 50 * base["p99_ms"]:
        missed.append(f"{name}: p99 at {largest['replicas']:.0f} is {largest['p99_ms'] / base['p99_ms']:.1f}x p99 at 4")
    if churned is not None:
        print(
            f"churn at {churned['replicas']} replicas (heartbeat_interval {HEARTBEAT_INTERVAL:g} s, replica_ttl"
            f" {REPLICA_TTL:g} s; a call every {CHURN_INTERVAL:g} s, timeout {CHURN_TIMEOUT:g} s;"
            f" {churned['calls']} calls):"
        )
        print(
            f"  a process of {churned['killed']} replicas killed -9: registry converged in"
            f" {churned['registry_down_s']:.2f} s, answers in {_s(churned['answers_down_s'])};"
            f" {len(churned['in_flight'])} call(s) in flight at the kill:"
            f" {_in_flight(churned['in_flight'])}"
        )
        print(
            f"  a new process of {churned['killed']} started (ready in {churned['worker_start_s']:.2f} s): registry"
            f" converged {churned['registry_up_s']:.2f} s after its start, answers {_s(churned['answers_up_s'])};"
            f" calls with a count other than {churned['replicas']} or {churned['replicas'] - churned['killed']}:"
            f" {churned['wrong_calls']}; longest call started after the kill {churned['max_call_ms']:.0f} ms"
        )
    for note in notes:
        print(f"note: {note}")
    return missed


def _in_flight(calls: list[tuple[float, int]]) -> str:
    return ", ".join(f"{answers:.0f} answers in {seconds:.2f} s" for seconds, answers in calls) or "-"


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


ARGS = argparse.Namespace()


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--caller", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--counts", default="4,50,200", help="replica counts, the first is the reference")
    parser.add_argument("--processes", type=int, default=4, help="worker processes holding the replicas")
    parser.add_argument("--calls", type=int, default=100, help="measured calls per replica count")
    parser.add_argument("--churn-replicas", type=int, default=50)
    parser.add_argument("--churn-seconds", type=float, default=8.0, help="0: no churn phase")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--cluster", action="store_true", help="also on a Redis Cluster (fail if unavailable)")
    cluster.add_argument("--no-cluster", action="store_true", help="single Redis only")
    cluster.add_argument("--only-cluster", action="store_true", help="Redis Cluster only")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    if args.worker is not None:
        asyncio.run(_worker(args.worker))
        return
    if args.caller:
        asyncio.run(_caller())
        return
    args.counts = [int(count) for count in args.counts.split(",")]
    ARGS = args
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs")
    backends: list[Any] = [] if args.only_cluster else [single_redis]
    if not args.no_cluster:
        try:
            from c2c_testing import RedisCluster  # noqa: F401
        except ImportError:
            if args.cluster or args.only_cluster:
                sys.exit("c2c_testing.RedisCluster is not available")
            print("no c2c_testing.RedisCluster: single Redis only")
        else:
            backends.append(redis_cluster)
    missed: list[str] = []
    for backend in backends:
        begin = time.monotonic()
        rows, churned = run_backend(backend, args)
        name = "single Redis" if backend is single_redis else "Redis Cluster (3 masters + 3 replicas)"
        missed += report(name, rows, churned)
        print(f"({time.monotonic() - begin:.0f} s)")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        "\ntargets: every call complete; p99(largest) <= 50 x p99(4); pub/sub connections per replica constant"
        " (+-0.5); connections per replica not growing (+0.5) with the replicas or the calls"
    )
    print("all met" if not missed else "missed:\n  " + "\n  ".join(missed))
    if args.check and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
