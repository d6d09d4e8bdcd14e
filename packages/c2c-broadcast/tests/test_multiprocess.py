"""Four worker processes subscribed through a real redis-server (or Sentinel), one broadcasting test process."""

# mypy: disallow-untyped-calls=False
# (redis-py leaves pub/sub methods unannotated)
# ruff: noqa: ASYNC220, ASYNC221
# (the test drives redis-cli and worker processes synchronously on purpose: this process only broadcasts)

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import c2c_broadcast
from c2c_broadcast import BroadcastResponse, BroadcastUnavailableError, ErrorAnswer, MissingAnswer, Settings
from c2c_config import reload_settings
from c2c_testing import RedisCluster, RedisSentinel, RedisServer

try:
    import redis.asyncio as aioredis

    from c2c_broadcast._wire import encode_request
    from c2c_config.redis import request_scope
except ModuleNotFoundError:
    aioredis = None  # type: ignore[assignment]

WORKER_SCRIPT = Path(__file__).with_name("broadcast_worker.py")

# Fast heartbeats and reconnections so that outage tests finish quickly; a long TTL so that a
# killed worker is still registered when the next broadcast looks.
FAST = {
    "C2C__BROADCAST__HEARTBEAT_INTERVAL": "0.5",
    "C2C__BROADCAST__REPLICA_TTL": "20",
    "C2C__BROADCAST__RECONNECT_MAX_DELAY": "0.5",
    "C2C__BROADCAST__CONNECT_TIMEOUT": "2",
}


def environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without `C2C__` variables, plus `settings`."""
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env.update(settings)
    return env


class Worker:
    """One `broadcast_worker.py` process; its log (stderr) goes to a file."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log_file = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env=dict(env),
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode(errors="replace").strip())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_line(self, prefix: str, timeout: float) -> str:
        """The next stdout line starting with `prefix`; fails after `timeout` s, showing the log."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"worker {self.pid}: no {prefix!r} line within {timeout} s\n{self.log()[-3000:]}")
            try:
                line = self._lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self._lines.empty():
                    raise AssertionError(
                        f"worker {self.pid} exited ({self.proc.returncode})\n{self.log()[-3000:]}"
                    ) from None
                continue
            if line.startswith(prefix):
                return line

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, the registry entry stays until it expires."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15) -> int:
        """Close stdin (the worker shuts down cleanly); kill after `timeout` s. Returns the exit status."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        self._log_file.close()
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


@contextlib.contextmanager
def running_workers(env: Mapping[str, str], log_dir: Path, count: int = 4) -> Iterator[list[Worker]]:
    """Start `count` workers, wait until each printed READY, stop them all at the end."""
    workers = [Worker(env, log_dir / f"worker-{index}.log") for index in range(count)]
    try:
        for worker in workers:
            worker.wait_line("READY", timeout=60)
        yield workers
    finally:
        for worker in workers:  # all at once: a worker running calls gives them a grace before it stops
            if worker.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    worker.proc.stdin.close()
        for worker in workers:
            worker.stop()


pytestmark = [
    pytest.mark.skipif(aioredis is None, reason="needs the redis extra: c2c-broadcast[redis]"),
    pytest.mark.slow,
]

SECRET = "shared-secret-for-tests"


def _settings_for(server: RedisServer, **extra: str) -> dict[str, str]:
    return {"C2C__REDIS__URL": server.url, **FAST, **extra}


async def _use(monkeypatch: pytest.MonkeyPatch, settings: dict[str, str]) -> None:
    """Make this process a broadcaster with `settings` too."""
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    reload_settings(Settings)
    await c2c_broadcast.startup()
    assert c2c_broadcast.status().healthy


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _responses(answers: list[BroadcastResponse[Any] | MissingAnswer]) -> list[BroadcastResponse[Any]]:
    return [a for a in answers if isinstance(a, BroadcastResponse)]


async def _until_all_four_answer(seconds: float = 30) -> None:
    """Call `echo` until the four workers answer again (an outage or a failover is over), within `seconds`.

    Each attempt is a request of its own (`request_scope`), as a server would serve it: a failed
    attempt must not make the test's later calls refuse Redis (`unreachable_here`) for up to 2 s.
    """
    deadline = time.monotonic() + seconds
    answers: list[BroadcastResponse[Any] | MissingAnswer] = []
    while time.monotonic() < deadline:
        try:
            with request_scope():
                answers = await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=2)
        except BroadcastUnavailableError:
            await asyncio.sleep(0.2)
            continue
        if len(_responses(answers)) == 4:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the four workers did not all answer within {seconds:g} s: {answers}")


async def _collect(pubsub: Any, seconds: float) -> list[Any]:
    """Every message received on `pubsub` during `seconds`, decoded from JSON."""
    received: list[Any] = []
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(remaining, 0.5))
        if message is not None:
            received.append(json.loads(message["data"]))
    return received


@pytest.fixture
def workers(redis_server: RedisServer, tmp_path: Path) -> Iterator[list[Worker]]:
    with running_workers(environment(_settings_for(redis_server)), tmp_path) as started:
        _wait_for(lambda: redis_server.command("ZCARD", "broadcast_api_c2c_registry:echo") == 4, "4 registered workers")
        yield started


@pytest.fixture
async def broadcaster(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> AsyncIterator[None]:
    await _use(monkeypatch, _settings_for(redis_server))
    yield
    await c2c_broadcast.shutdown()


async def test_four_workers_answer(workers: list[Worker], broadcaster: None) -> None:
    begin = time.monotonic()
    answers = await c2c_broadcast.broadcast("echo", {"value": 1}, expect_answers=True, timeout=10)
    elapsed = time.monotonic() - begin
    responses = _responses(answers)
    assert len(answers) == len(responses) == 4
    assert sorted(r.pid for r in responses) == sorted(w.pid for w in workers)
    assert all(r.payload == {"pid": r.pid, "params": {"value": 1}} for r in responses)
    assert elapsed < 5  # timeout=10: it stopped as soon as the four registered workers answered


async def test_handler_error_comes_back_as_error_answers(workers: list[Worker], broadcaster: None) -> None:
    answers = await c2c_broadcast.broadcast("fail", expect_answers=True, timeout=10)
    assert len(answers) == 4
    assert all(isinstance(a, ErrorAnswer) for a in answers)
    assert {(a.error_type, a.message) for a in answers if isinstance(a, ErrorAnswer)} == {
        ("RuntimeError", "worker failure")
    }
    assert sorted(a.pid for a in answers if isinstance(a, ErrorAnswer)) == sorted(w.pid for w in workers)


async def test_killed_worker_is_a_missing_answer_without_waiting(workers: list[Worker], broadcaster: None) -> None:
    victim = workers[1]
    victim.kill()
    begin = time.monotonic()
    answers = await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10)
    elapsed = time.monotonic() - begin
    # Still registered (its entry has not expired) but PUBLISH no longer reaches it: 3 answers, one
    # MissingAnswer naming it, and no wait for the timeout.
    assert sorted(r.pid for r in _responses(answers)) == sorted(w.pid for w in workers if w is not victim)
    missing = [a for a in answers if not isinstance(a, BroadcastResponse)]
    assert missing == [MissingAnswer(hostname=missing[0].hostname, pid=victim.pid)]
    assert elapsed < 5


async def test_slow_worker_is_missing_after_the_timeout(workers: list[Worker], broadcaster: None) -> None:
    begin = time.monotonic()
    answers = await c2c_broadcast.broadcast("slow", {"seconds": 30}, expect_answers=True, timeout=0.5)
    elapsed = time.monotonic() - begin
    assert sorted(a.pid or 0 for a in answers) == sorted(w.pid for w in workers)
    assert all(type(a) is MissingAnswer for a in answers)
    assert elapsed < 5
    # The slow handlers do not block the listeners: an echo right after gets four answers.
    assert len(_responses(await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10))) == 4


async def test_a_worker_stopping_mid_call_answers_or_cuts_its_running_calls(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM (clean shutdown) while a worker runs two calls: the one that finishes within the grace
    is answered, the other one comes back at once as an error answer (it was cut), not as a
    MissingAnswer after the call's whole timeout."""
    with running_workers(environment(_settings_for(redis_server)), tmp_path, count=1) as (worker,):
        await _use(monkeypatch, _settings_for(redis_server))
        quick = asyncio.create_task(c2c_broadcast.broadcast("slow", {"seconds": 1.5}, expect_answers=True, timeout=20))
        stuck = asyncio.create_task(c2c_broadcast.broadcast("slow", {"seconds": 60}, expect_answers=True, timeout=20))
        await asyncio.sleep(1)  # both handlers run
        worker.proc.send_signal(signal.SIGTERM)
        begin = time.monotonic()
        async with asyncio.timeout(10):  # half the calls' timeout
            quick_answers, stuck_answers = await asyncio.gather(quick, stuck)
        elapsed = time.monotonic() - begin
        worker.wait_line("STOPPED", timeout=15)
    assert [(a.pid, a.payload) for a in _responses(quick_answers)] == [(worker.pid, "slow done")]
    assert len(stuck_answers) == 1 and isinstance(stuck_answers[0], ErrorAnswer), stuck_answers
    assert (stuck_answers[0].pid, stuck_answers[0].error_type) == (worker.pid, "ReplicaStoppedError")
    assert elapsed < 6, elapsed  # the grace (2 s) and the publication, not the calls' 20 s
    cut = [line for line in worker.log().splitlines() if "running call(s) finished" in line]
    assert len(cut) == 1 and cut[0].startswith("WARNING "), cut
    assert "stopped before 1 running call(s) finished (1 on 'slow';" in cut[0]


async def test_monitoring_subscribers_do_not_delay_answers(
    workers: list[Worker], broadcaster: None, redis_server: RedisServer
) -> None:
    """A `PSUBSCRIBE *` inflates PUBLISH's count and costs nothing; a `SUBSCRIBE` on the channel costs `legacy_wait`.

    c2casgiutils 0.14 waited its full timeout for each of them. Ours counts exact-channel subscribers
    (PUBSUB NUMSUB) so that 0.14 replicas are waited for during a mixed rollout, with a bounded wait:
    a monitoring `SUBSCRIBE` looks like a 0.14 replica that does not answer.
    """
    port = str(redis_server.port)
    pattern = subprocess.Popen(["redis-cli", "-p", port, "PSUBSCRIBE", "*"], stdout=subprocess.DEVNULL)
    exact: subprocess.Popen[bytes] | None = None
    try:
        _wait_for(lambda: redis_server.command("PUBSUB", "NUMPAT") == 6, "the redis-cli PSUBSCRIBE")
        begin = time.monotonic()
        answers = await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10)
        assert len(_responses(answers)) == len(answers) == 4
        assert time.monotonic() - begin < 1.5  # no extra wait at all
        exact = subprocess.Popen(
            ["redis-cli", "-p", port, "SUBSCRIBE", "broadcast_api_echo"], stdout=subprocess.DEVNULL
        )
        _wait_for(
            lambda: redis_server.command("PUBSUB", "NUMSUB", "broadcast_api_echo")[1] == 5,  # type: ignore[index]
            "the redis-cli SUBSCRIBE",
        )
        begin = time.monotonic()
        answers = await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10)
        elapsed = time.monotonic() - begin
        assert len(_responses(answers)) == 4
        assert [a for a in answers if not isinstance(a, BroadcastResponse)] == [MissingAnswer()]
        assert 1.9 < elapsed < 5  # legacy_wait (2 s by default), not the 10 s timeout
    finally:
        for monitor in (pattern, exact):
            if monitor is not None:
                monitor.terminate()
                monitor.wait(timeout=10)


async def test_malformed_messages_are_dropped_and_logged(
    workers: list[Worker], broadcaster: None, redis_server: RedisServer
) -> None:
    port = str(redis_server.port)
    for payload in ("not json", '{"params": 5}', "[1, 2]", '{"params": {}, "answer_channel": "elsewhere"}'):
        subprocess.run(["redis-cli", "-p", port, "PUBLISH", "broadcast_api_echo", payload], check=True, timeout=10)
    # Bigger than max_message_size (1 MiB).
    subprocess.run(
        ["redis-cli", "-p", port, "-x", "PUBLISH", "broadcast_api_echo"],
        input=json.dumps({"params": {"big": "x" * 1_500_000}}).encode(),
        check=True,
        timeout=10,
        stdout=subprocess.DEVNULL,
    )
    for worker in workers:
        _wait_for(lambda worker=worker: "oversized" in worker.log(), "the oversized log line")  # type: ignore[misc]
    # Not UTF-8, many times (the pub/sub connection never decodes: each is a malformed message,
    # dropped; it used to cost a reconnection each, and the calls made meanwhile lost answers).
    flood = b"".join(b'PUBLISH broadcast_api_echo "\\xff\\xfe{"\n' for _ in range(200))
    subprocess.run(["redis-cli", "-p", port], input=flood, check=True, timeout=30, stdout=subprocess.DEVNULL)
    started = time.monotonic()
    assert len(_responses(await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=5))) == 4
    assert time.monotonic() - started < 4, "a call waited for a replica"
    for worker in workers:
        log = worker.log()
        assert "dropped a message on broadcast_api_echo (malformed: not JSON" in log
        assert "answer_channel must be a channel of the broadcast prefix" not in log or "malformed" in log
        assert "reconnecting" not in log
        assert "Traceback" not in log


async def test_interoperability_with_a_014_publisher(workers: list[Worker], redis_server: RedisServer) -> None:
    """A publisher writing the 0.14 JSON by hand; answers parsed as 0.14 does (`BroadcastResponse(**json)`)."""
    client = aioredis.Redis.from_url(redis_server.url)
    pubsub = client.pubsub()
    try:
        answer_channel = "broadcast_api_echoABCDEFGHIJ"  # 0.14: request channel + 10 random characters
        await pubsub.subscribe(answer_channel)
        receivers = await client.publish(
            "broadcast_api_echo", json.dumps({"params": {"x": 1}, "answer_channel": answer_channel})
        )
        assert receivers == 4
        fail_receivers = await client.publish(
            "broadcast_api_fail", json.dumps({"params": {}, "answer_channel": answer_channel})
        )
        assert fail_receivers == 4
        answers: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while len(answers) < 8:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    answers.append(json.loads(message["data"]))
        parsed = [BroadcastResponse[Any](**answer) for answer in answers]  # extra keys ignored, as 0.14 does
        echoes = [p for p in parsed if isinstance(p.payload, dict) and "params" in p.payload]
        errors = [p for p in parsed if p not in echoes]
        assert sorted(p.pid for p in echoes) == sorted(w.pid for w in workers)
        assert all(p.payload["params"] == {"x": 1} for p in echoes)
        # What 0.14 expects from a failing handler.
        assert [p.payload for p in errors] == [{"status": 500, "message": "worker failure"}] * 4
        # A fire-and-forget 0.14 message (no answer_channel) is accepted too: no error logged.
        await client.publish("broadcast_api_echo", json.dumps({"params": {"y": 2}}))
    finally:
        await pubsub.aclose()
        await client.aclose()
    for worker in workers:
        assert "dropped a message" not in worker.log()


async def test_redis_restart(
    workers: list[Worker], broadcaster: None, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(_responses(await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10))) == 4
    redis_server.restart()
    await _until_all_four_answer()
    status = c2c_broadcast.status()
    assert status.healthy
    assert status.reconnections >= 1
    # Re-registered after the restart (the registry lived in the restarted server's memory).
    _wait_for(lambda: redis_server.command("ZCARD", "broadcast_api_c2c_registry:echo") == 4, "re-registration")
    for worker in workers:
        assert "lost the Redis connection" in worker.log()
        _wait_for(lambda worker=worker: "Redis is back" in worker.log(), "the 'back' log line")  # type: ignore[misc]


async def test_clean_shutdown_unregisters(workers: list[Worker], redis_server: RedisServer) -> None:
    worker = workers[0]
    begin = time.monotonic()
    assert worker.stop() == 0
    assert time.monotonic() - begin < 10
    assert redis_server.command("ZCARD", "broadcast_api_c2c_registry:echo") == 3
    assert "Traceback" not in worker.log()


async def test_signed_messages(redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings_for(redis_server, C2C__BROADCAST__SECRET=SECRET)
    with running_workers(environment(settings), tmp_path) as started:
        _wait_for(lambda: redis_server.command("ZCARD", "broadcast_api_c2c_registry:echo") == 4, "registration")
        await _use(monkeypatch, settings)
        # Signed by this process: accepted.
        assert len(_responses(await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10))) == 4

        client = aioredis.Redis.from_url(redis_server.url)
        pubsub = client.pubsub()
        answer_channel = "broadcast_api_c2c_answer_forgery"
        try:
            await pubsub.subscribe(answer_channel)
            unsigned = json.dumps({"params": {}, "answer_channel": answer_channel})
            forged = json.loads(
                encode_request(
                    "broadcast_api_echo",
                    {},
                    answer_channel=answer_channel,
                    request_id="f" * 32,
                    hostname="attacker",
                    pid=1,
                    now=time.time(),
                    secret=b"wrong secret",
                )
            )
            genuine = encode_request(
                "broadcast_api_echo",
                {"n": 1},
                answer_channel=answer_channel,
                request_id="a" * 32,
                hostname="tester",
                pid=2,
                now=time.time(),
                secret=SECRET.encode(),
            )
            tampered = json.loads(genuine)
            tampered["params"] = {"n": 2}
            for message in (unsigned, json.dumps(forged), json.dumps(tampered)):
                assert await client.publish("broadcast_api_echo", message) == 4
            # The genuine one, twice: the replay is refused.
            await client.publish("broadcast_api_echo", genuine)
            await client.publish("broadcast_api_echo", genuine)
            received = await _collect(pubsub, seconds=3)
            assert len(received) == 4  # only the genuine message, once per worker
            assert {answer["payload"]["params"]["n"] for answer in received} == {1}
        finally:
            await pubsub.aclose()
            await client.aclose()
        for worker in started:
            log = worker.log()
            for reason in ("unsigned", "forged", "replayed"):
                assert f"({reason}:" in log, (reason, log[-2000:])
        await c2c_broadcast.shutdown()


async def test_sentinel_failover(
    redis_sentinel: RedisSentinel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {
        "C2C__REDIS__SENTINELS": redis_sentinel.sentinels_str,
        "C2C__REDIS__SERVICENAME": redis_sentinel.service_name,
        **FAST,
    }
    with running_workers(environment(settings), tmp_path):
        await _use(monkeypatch, settings)
        assert len(_responses(await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10))) == 4
        redis_sentinel.failover()
        # The old master (now a replica) goes away: every pub/sub connection to it must move.
        redis_sentinel.replica.stop()
        await _until_all_four_answer(60)
        await c2c_broadcast.shutdown()


def _cluster_capable() -> bool:
    try:
        from c2c_config.redis import CLUSTER_MIN_REDIS_PY, redis_py_version
    except ModuleNotFoundError:
        return False
    return redis_py_version() >= CLUSTER_MIN_REDIS_PY


@pytest.mark.skipif(not _cluster_capable(), reason="Redis Cluster mode needs redis-py >= 8")
async def test_cluster_failover(redis_cluster: RedisCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As `test_sentinel_failover`, on a Redis Cluster: the master owning the channel's slot dies."""
    settings = {"C2C__REDIS__CLUSTER": "true", "C2C__REDIS__URL": redis_cluster.url, **FAST}
    with running_workers(environment(settings), tmp_path):
        await _use(monkeypatch, settings)
        assert len(_responses(await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10))) == 4
        await asyncio.to_thread(redis_cluster.kill_master, redis_cluster.master_for_key("{broadcast_api_echo}"))
        await _until_all_four_answer()
        for _ in range(3):  # after recovery every call completes
            assert len(_responses(await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10))) == 4
        await c2c_broadcast.shutdown()


async def test_addressing_a_subset_of_workers(workers: list[Worker], broadcaster: None) -> None:
    chosen = sorted(w.pid for w in workers[:2])
    begin = time.monotonic()
    answers = await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10, pids=chosen)
    assert sorted(r.pid for r in _responses(answers)) == chosen
    assert len(answers) == 2
    assert time.monotonic() - begin < 5  # only the two addressed replicas were waited for


def _connected_clients(server: RedisServer) -> int:
    info = server.command("INFO", "clients")
    assert isinstance(info, bytes)
    return int(info.decode().split("connected_clients:")[1].split()[0])


class _PeakClients:
    """Sample Redis' `connected_clients` in a thread (this sampler's own connection included)."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, _connected_clients(self.server))
            self._stop.wait(0.005)

    def __enter__(self) -> _PeakClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


FLOOD = 20_000
FLOOD_REPLICAS = 2
FLOOD_MAX_CONNECTIONS = 5


async def test_flood_of_forged_calls_keeps_connections_bounded(redis_server: RedisServer, tmp_path: Path) -> None:
    """20,000 forged PUBLISH wanting answers, from one raw connection, to two replicas.

    Before the bounded pool and the answer queue, each replica answered every call concurrently
    on a pool without a maximum: about 1,000 connections per replica. Now a replica holds at most
    `C2C__REDIS__MAX_CONNECTIONS` command connections plus its two pub/sub connections.
    """
    settings = _settings_for(redis_server, C2C__REDIS__MAX_CONNECTIONS=str(FLOOD_MAX_CONNECTIONS))
    answer_channel = "broadcast_api_c2c_answer_flood_x"
    done_channel = "broadcast_api_c2c_answer_flood_done"
    client = aioredis.Redis.from_url(redis_server.url)
    done = client.pubsub()
    statuses: list[dict[str, Any]] = []
    with running_workers(environment(settings), tmp_path, count=FLOOD_REPLICAS) as started:
        _wait_for(lambda: redis_server.command("ZCARD", "broadcast_api_c2c_registry:echo") == 2, "registration")
        try:
            await done.subscribe(done_channel)
            assert (await done.get_message(timeout=5))["type"] == "subscribe"
            with _PeakClients(redis_server) as sampler:
                async with client.pipeline(transaction=False) as pipe:
                    for index in range(FLOOD):
                        pipe.publish(
                            "broadcast_api_echo", json.dumps({"params": {"i": index}, "answer_channel": answer_channel})
                        )
                    receivers = await pipe.execute()
                assert set(receivers) == {FLOOD_REPLICAS}
                # Caught up: both replicas answer a call made after the flood (repeated: it may be dropped).
                answered: set[int] = set()
                async with asyncio.timeout(20):
                    while len(answered) < FLOOD_REPLICAS:
                        await client.publish(
                            "broadcast_api_echo", json.dumps({"params": {}, "answer_channel": done_channel})
                        )
                        while (
                            message := await done.get_message(ignore_subscribe_messages=True, timeout=0.5)
                        ) is not None:
                            answered.add(json.loads(message["data"])["pid"])
        finally:
            await done.aclose()
            await client.aclose()
        for worker in started:
            worker.stop()
            statuses.append(json.loads(worker.wait_line("STATUS", timeout=5).removeprefix("STATUS ")))
    # Each replica: its pool and its two pub/sub connections; this test: the flood client, the
    # subscriber to the "done" answers and the sampler's own connection (two, when Redis has not
    # yet processed the close of the previous sample's).
    bound = FLOOD_REPLICAS * (FLOOD_MAX_CONNECTIONS + 2) + 4
    print(f"flood of {FLOOD}: peak connected_clients {sampler.peak} (bound {bound}); replicas: {statuses}")
    assert sampler.peak <= bound, (sampler.peak, statuses)
    for status in statuses:
        counters = status["counters"]
        handled = counters.get("answers_sent", 0) + status["answers_dropped"]
        overloaded = counters.get("messages_dropped{reason=overloaded}", 0)
        assert handled + overloaded >= FLOOD, status  # every call answered, dropped or refused: none lost silently
        assert counters.get("answers_dropped", 0) == status["answers_dropped"]
