"""The Redis broadcaster on a real local Redis Cluster: sharded pub/sub, one shard per call, failovers."""

# mypy: disallow-untyped-calls=False

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import pytest

from c2c_broadcast import BroadcastResponse, BroadcastUnavailableError, MissingAnswer, Settings
from c2c_testing import RedisCluster, RedisServer, key_slot

try:
    from c2c_broadcast.redis import RedisBroadcaster
    from c2c_config.redis import CLUSTER_MIN_REDIS_PY, RedisFactory, redis_py_version, request_scope
except ModuleNotFoundError:  # the run without the redis extra
    CLUSTER_CAPABLE = False
else:
    CLUSTER_CAPABLE = redis_py_version() >= CLUSTER_MIN_REDIS_PY

# The redis-py floor run (5.x) has no sharded pub/sub on its asyncio cluster client.
pytestmark = pytest.mark.skipif(not CLUSTER_CAPABLE, reason="Redis Cluster mode needs redis-py >= 8")

PREFIX = "broadcast_api_"
HOST = socket.gethostname()
FAST = {
    "C2C__BROADCAST__HEARTBEAT_INTERVAL": "1",  # PINGs every node every second, no PONG in 2 s: lost
    "C2C__BROADCAST__REPLICA_TTL": "5",
    "C2C__BROADCAST__RECONNECT_MAX_DELAY": "0.3",
    "C2C__BROADCAST__CONNECT_TIMEOUT": "1",
}
SECRET = "a-shared-secret-of-32-characters!"

Replicas: TypeAlias = "tuple[RedisFactory, list[RedisBroadcaster]]"  # a string: no redis in one isolated run


def _channels_on_every_master(cluster: RedisCluster) -> list[str]:
    """One broadcast channel per master: `{broadcast_api_<name>}` hashes to that master's slots."""
    found: dict[int, str] = {}
    for index in range(1000):
        name = f"fn{index}"
        found.setdefault(cluster.master_for_key("{" + PREFIX + name + "}").port, name)
        if len(found) == len(cluster.masters()):
            return list(found.values())
    raise AssertionError("no channel name for some master")


async def _replicas(monkeypatch: pytest.MonkeyPatch, cluster: RedisCluster, count: int, **extra: str) -> Replicas:
    """`count` broadcasters (replicas of one service) in this process, on one cluster factory."""
    for name, value in {"C2C__REDIS__CLUSTER": "true", "C2C__REDIS__URL": cluster.url, **FAST, **extra}.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    factory = RedisFactory(settings.redis)
    assert factory.cluster
    replicas = [RedisBroadcaster(factory, settings.broadcast, prefix=PREFIX) for _ in range(count)]
    for replica in replicas:
        await replica.start()
    return factory, replicas


@pytest.fixture
async def teardown() -> AsyncIterator[list[Replicas]]:
    started: list[Replicas] = []
    yield started
    for factory, replicas in started:
        for replica in replicas:
            await replica.close()
        await factory.aclose()


def _handler(index: int) -> Callable[..., Awaitable[Any]]:
    async def handler(**params: Any) -> Any:
        return {"replica": index, **params}

    return handler


async def _call(caller: RedisBroadcaster, channel: str, params: dict[str, Any]) -> list[Any]:
    answers = await caller.broadcast(channel, params, True, 10)
    assert answers is not None
    return answers


def _payloads(answers: list[Any]) -> list[Any]:
    assert not [answer for answer in answers if isinstance(answer, MissingAnswer)], answers
    return sorted((answer.payload for answer in answers if isinstance(answer, BroadcastResponse)), key=json.dumps)


async def _until(condition: Callable[[], bool], seconds: float = 20) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - polling a snapshot
            await asyncio.sleep(0.05)


def _shard_subscribers(node: RedisServer, channel: str) -> int:
    """`PUBSUB SHARDNUMSUB channel` on `node`: how many connections of that node subscribe to it."""
    reply = node.command("PUBSUB", "SHARDNUMSUB", channel)
    assert isinstance(reply, list)
    count = reply[1]
    assert isinstance(count, int)
    return count


def _stat(node: RedisServer, command: str) -> int:
    """How many times `node` ran `command` since its last CONFIG RESETSTAT (scripts' commands included)."""
    info = node.command("INFO", "commandstats")
    assert isinstance(info, bytes)
    for line in info.decode().splitlines():
        if line.startswith(f"cmdstat_{command}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


@pytest.mark.parametrize("secret", [None, SECRET], ids=["unsigned", "signed"])
async def test_calls_on_a_cluster_touch_one_shard(
    monkeypatch: pytest.MonkeyPatch, redis_cluster: RedisCluster, teardown: list[Replicas], secret: str | None
) -> None:
    extra = {"C2C__BROADCAST__SECRET": secret} if secret else {}
    factory, replicas = await _replicas(monkeypatch, redis_cluster, 3, **extra)
    teardown.append((factory, replicas))
    channels = _channels_on_every_master(redis_cluster)
    received: list[tuple[int, str, Any]] = []

    def recording(index: int, channel: str) -> Callable[..., Awaitable[Any]]:
        async def handler(**params: Any) -> Any:
            received.append((index, channel, params))
            return {"replica": index, **params}

        return handler

    for index, replica in enumerate(replicas):
        for channel in channels:
            await replica.subscribe(channel, recording(index, channel))
    assert all(replica.status().healthy for replica in replicas)
    caller = replicas[0]
    for channel in channels:
        owner = redis_cluster.master_for_key("{" + PREFIX + channel + "}")
        # The three listeners of the channel are shard-channel subscribers on the master that owns its slot.
        assert _shard_subscribers(owner, "{" + PREFIX + channel + "}") == 3
        assert owner.command("ZCARD", "{" + PREFIX + channel + "}:registry") == 3
        for master in redis_cluster.masters():
            master.command("CONFIG", "RESETSTAT")

        answers = await _call(caller, channel, {"x": channel})
        assert _payloads(answers) == [{"replica": index, "x": channel} for index in range(3)]
        assert {(answer.hostname, answer.pid) for answer in answers} == {(HOST, caller.pid)}
        assert await caller.broadcast(channel, {"fire": channel}, False, 10) is None
        await _until(lambda channel=channel: sum(1 for r in received if r[1:] == (channel, {"fire": channel})) == 3)  # type: ignore[misc]

        # One shard: the call, its answers and the fire-and-forget call were SPUBLISHed on the owner
        # only (an ordinary PUBLISH would have gone through every node of the cluster).
        others = [master for master in redis_cluster.masters() if master.port != owner.port]
        assert _stat(owner, "spublish") >= 1 + 3 + 1
        assert [_stat(master, "spublish") for master in others] == [0, 0]
        assert [_stat(master, "publish") for master in redis_cluster.masters()] == [0, 0, 0]
        # The answers came on the caller's fixed answer channel of this channel, in the same slot.
        assert _shard_subscribers(owner, "{" + PREFIX + channel + "}:answers:" + caller._process_token) == 1

    # Each call ran once on each replica (no duplicate from the answer routing by request id).
    assert sorted((r[0], r[1]) for r in received) == sorted((i, c) for i in range(3) for c in channels for _ in (0, 1))
    # Concurrent calls on one channel share the answer channel: each gets its own answers.
    results = await asyncio.gather(*(_call(replicas[n % 3], channels[0], {"n": n}) for n in range(12)))
    for n, answers in enumerate(results):
        assert _payloads(answers) == [{"replica": index, "n": n} for index in range(3)]


async def test_names_that_are_not_one_hash_tag_are_refused_and_unsubscribing(
    monkeypatch: pytest.MonkeyPatch, redis_cluster: RedisCluster, teardown: list[Replicas]
) -> None:
    factory, replicas = await _replicas(monkeypatch, redis_cluster, 1)
    teardown.append((factory, replicas))
    with pytest.raises(ValueError, match="hash"):
        await replicas[0].subscribe("a}b", _handler(0))
    with pytest.raises(ValueError, match="hash"):
        await replicas[0].broadcast("x{y", {}, True, 1)
    assert replicas[0].status().channels == ()

    # Unsubscribing (a sunsubscribe this replica asked for) is not mistaken for a failover.
    wire = "{" + PREFIX + "echo}"
    await replicas[0].subscribe("echo", _handler(0))
    owner = redis_cluster.master_for_key(wire)
    assert _shard_subscribers(owner, wire) == 1
    await replicas[0].unsubscribe("echo")
    await _until(lambda: _shard_subscribers(owner, wire) == 0)
    assert owner.command("ZCARD", wire + ":registry") == 0
    await asyncio.sleep(0.5)
    status = replicas[0].status()
    assert (status.healthy, status.reconnections, status.channels) == (True, 0, ())


async def test_forged_answer_channels_are_refused(
    monkeypatch: pytest.MonkeyPatch, redis_cluster: RedisCluster, teardown: list[Replicas]
) -> None:
    """A call asking for answers outside the channel's own slot is dropped: it could make replicas publish anywhere."""
    factory, replicas = await _replicas(monkeypatch, redis_cluster, 1)
    teardown.append((factory, replicas))
    ran: list[Any] = []

    async def handler(**params: Any) -> Any:
        ran.append(params)
        return 1

    await replicas[0].subscribe("echo", handler)
    client = factory.master()
    assert client is not None
    for answer_channel in ("broadcast_api_c2c_answer_x", "{broadcast_api_other}:answers:x"):
        await client.spublish("{broadcast_api_echo}", json.dumps({"params": {}, "answer_channel": answer_channel}))
    await client.spublish("{broadcast_api_echo}", json.dumps({"params": {"ok": 1}}))
    await _until(lambda: ran == [{"ok": 1}])
    assert replicas[0].memory_metrics.get("messages_dropped", reason="malformed") == 2


async def _all_answer(replicas: list[RedisBroadcaster], channel: str, seconds: float = 25) -> None:
    """Calls complete with every answer again (retrying while the cluster settles).

    Each attempt is a request of its own (`request_scope`), as a server would serve it: a failed
    attempt must not make the test's later calls refuse Redis (`unreachable_here`) for up to 2 s.
    """
    async with asyncio.timeout(seconds):
        while True:
            try:
                with request_scope():
                    answers = await replicas[0].broadcast(channel, {}, True, 2)
            except BroadcastUnavailableError:
                answers = None
            if answers is not None and len(answers) == len(replicas) and _complete(answers):
                return
            await asyncio.sleep(0.1)


async def _two_answering(
    monkeypatch: pytest.MonkeyPatch, cluster: RedisCluster, teardown: list[Replicas]
) -> tuple[list[RedisBroadcaster], str, str]:
    """Two replicas subscribed to a channel of the first master, both answering: (replicas, channel, its wire name)."""
    factory, replicas = await _replicas(monkeypatch, cluster, 2)
    teardown.append((factory, replicas))
    channel = _channels_on_every_master(cluster)[0]
    for index, replica in enumerate(replicas):
        await replica.subscribe(channel, _handler(index))
    await _all_answer(replicas, channel)
    return replicas, channel, "{" + PREFIX + channel + "}"


def _complete(answers: list[Any]) -> bool:
    return all(isinstance(answer, BroadcastResponse) for answer in answers)


async def test_master_failure_restart_and_manual_failover(
    monkeypatch: pytest.MonkeyPatch, redis_cluster: RedisCluster, teardown: list[Replicas]
) -> None:
    replicas, channel, wire = await _two_answering(monkeypatch, redis_cluster, teardown)
    caller = replicas[0]

    # The master owning the channel's slot dies: its replica is promoted (a few seconds).
    old = redis_cluster.master_for_key(wire)
    reconnections = caller.status().reconnections
    promoted = await asyncio.to_thread(redis_cluster.kill_master, old)
    await _until(lambda: not caller.status().healthy or caller.status().reconnections > reconnections)
    await _until(lambda: all(replica.status().healthy for replica in replicas))
    assert caller.status().reconnections > reconnections
    await _all_answer(replicas, channel)
    for _ in range(5):  # after recovery every call completes
        assert _payloads(await _call(caller, channel, {})) == [{"replica": 0}, {"replica": 1}]
    assert redis_cluster.master_for_key(wire).port == promoted.port
    assert _shard_subscribers(promoted, wire) == 2

    # The old master comes back (as a replica of the promoted one): nothing changes for the calls.
    await asyncio.to_thread(redis_cluster.restart, old)
    for _ in range(3):
        assert _payloads(await _call(caller, channel, {})) == [{"replica": 0}, {"replica": 1}]

    # A manual failover gives the slot back to it: the subscribers move with the slot.
    await _until(lambda: [node.port for node in redis_cluster.replicas_of(promoted)] == [old.port])
    reconnections = caller.status().reconnections
    await asyncio.to_thread(redis_cluster.failover, promoted)
    await _until(lambda: caller.status().reconnections > reconnections and caller.status().healthy)
    await _all_answer(replicas, channel)
    for _ in range(5):
        assert _payloads(await _call(caller, channel, {})) == [{"replica": 0}, {"replica": 1}]
    owner = redis_cluster.master_for_key(wire)
    assert owner.port == old.port
    assert _shard_subscribers(owner, wire) == 2


def _migrate_slot(cluster: RedisCluster, slot: int, source: RedisServer, target: RedisServer) -> None:
    """Move `slot` (and its keys) from `source` to `target`, as `redis-cli --cluster reshard` does."""
    source_id, target_id = source.command("CLUSTER", "MYID"), target.command("CLUSTER", "MYID")
    assert isinstance(source_id, bytes) and isinstance(target_id, bytes)
    target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    keys = source.command("CLUSTER", "GETKEYSINSLOT", slot, 100)
    assert isinstance(keys, list)
    if keys:
        names = [key for key in keys if isinstance(key, bytes)]
        source.command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *names)
    for node in (target, source, *cluster.masters()):
        node.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)


async def test_slot_migration(
    monkeypatch: pytest.MonkeyPatch, redis_cluster: RedisCluster, teardown: list[Replicas]
) -> None:
    """Resharding moves a channel's slot to another master: MOVED for the commands, resubscription for pub/sub."""
    replicas, channel, wire = await _two_answering(monkeypatch, redis_cluster, teardown)
    source = redis_cluster.master_for_key(wire)
    target = next(master for master in redis_cluster.masters() if master.port != source.port)
    reconnections = replicas[0].status().reconnections

    await asyncio.to_thread(_migrate_slot, redis_cluster, key_slot(wire), source, target)
    assert redis_cluster.master_for_key(wire).port == target.port
    await _until(lambda: replicas[0].status().reconnections > reconnections and replicas[0].status().healthy)
    await _all_answer(replicas, channel)
    for _ in range(5):
        assert _payloads(await _call(replicas[0], channel, {})) == [{"replica": 0}, {"replica": 1}]
    assert _shard_subscribers(target, wire) == 2
    assert _shard_subscribers(source, wire) == 0
    assert target.command("ZCARD", wire + ":registry") == 2


async def test_a_frozen_master_is_left_for_its_promoted_replica(
    monkeypatch: pytest.MonkeyPatch, redis_cluster: RedisCluster, teardown: list[Replicas]
) -> None:
    """A master that stops answering (SIGSTOP: its sockets stay open) is noticed by the PINGs, not by an error."""
    replicas, channel, wire = await _two_answering(monkeypatch, redis_cluster, teardown)
    frozen = redis_cluster.master_for_key(wire)
    with frozen.frozen():
        frozen_at = time.monotonic()
        # The listeners notice within PING interval (1 s) + PONG wait (2 s: C2C__REDIS__TIMEOUT, at most
        # 2 intervals), checked loosely (x 1.5 + 1 s); its heartbeat may make it `degraded` first.
        await _until(lambda: replicas[0].status().state == "reconnecting")
        assert time.monotonic() - frozen_at <= (1 + 2) * 1.5 + 1
        assert not replicas[0].status().healthy
        await _all_answer(replicas, channel)  # its replica took over (cluster node timeout 1 s)
        for _ in range(3):
            assert _payloads(await _call(replicas[0], channel, {})) == [{"replica": 0}, {"replica": 1}]
    await asyncio.to_thread(redis_cluster.wait_healthy)
    for _ in range(3):
        assert _payloads(await _call(replicas[0], channel, {})) == [{"replica": 0}, {"replica": 1}]


async def test_a_first_call_to_a_frozen_master_is_bounded_by_its_timeout(
    monkeypatch: pytest.MonkeyPatch, redis_cluster: RedisCluster, teardown: list[Replicas]
) -> None:
    """The first call on a channel subscribes to its answer channel (SSUBSCRIBE on the channel's master,
    a new connection): a master that accepts connections but never answers does not hold the call."""
    factory, replicas = await _replicas(monkeypatch, redis_cluster, 1)
    teardown.append((factory, replicas))
    (caller,) = replicas
    channel = _channels_on_every_master(redis_cluster)[0]
    frozen = redis_cluster.master_for_key("{" + PREFIX + channel + "}")
    with frozen.frozen():
        started = time.monotonic()
        # The test's own bound turns a hang into a failure; the call's is 1 s.
        async with asyncio.timeout(20):
            with pytest.raises(BroadcastUnavailableError), request_scope():
                await caller.broadcast(channel, {}, True, 1)
        elapsed = time.monotonic() - started
    # 1 s, loosely (a loaded CI); the SSUBSCRIBE outside the bound made it 6 s (the default 5 s Redis timeout more).
    assert elapsed < 3.5, elapsed
