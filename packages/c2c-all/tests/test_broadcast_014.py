"""c2casgiutils 0.14's broadcaster classes (`broadcast.interface`, `.local`, `.redis`, `.utils`), used for real.

They are thin adapters over c2c-broadcast with 0.14's constructors; the Redis ones run on a real
redis-server, and talk to the process's own (c2c-broadcast) broadcaster over the same wire format.
"""

# mypy: disallow-untyped-calls=False
# (redis-py leaves pub/sub methods unannotated)

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

import c2c_broadcast
import c2casgiutils
from c2c_config import reload_settings
from c2c_testing import RedisServer
from c2casgiutils.broadcast import BroadcastResponse, interface, local, utils
from c2casgiutils.broadcast import redis as broadcast_redis

HOST = socket.gethostname()
PID = os.getpid()


@pytest.fixture(autouse=True)
async def _clean(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("C2C__BROADCAST__CONNECT_TIMEOUT", "2")
    reload_settings(c2c_broadcast.Settings)
    yield
    await c2c_broadcast.shutdown()
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    reload_settings(c2c_broadcast.Settings)


@pytest.fixture
async def master(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


def test_submodules_are_attributes_after_a_plain_import() -> None:
    assert c2casgiutils.broadcast.interface is interface
    assert c2casgiutils.broadcast.local is local
    assert c2casgiutils.broadcast.redis is broadcast_redis
    assert c2casgiutils.broadcast.utils is utils
    assert c2casgiutils.broadcast.types.BroadcastResponse is BroadcastResponse


async def test_base_broadcaster_is_0_14s_plain_interface() -> None:
    base = interface.BaseBroadcaster()  # type: ignore[abstract]  # a plain class, as in 0.14: markers only
    await base.init()
    for name in ("init", "subscribe", "unsubscribe", "broadcast"):
        assert inspect.iscoroutinefunction(getattr(interface.BaseBroadcaster, name)), name
    assert issubclass(local.LocalBroadcaster, interface.BaseBroadcaster)
    assert issubclass(broadcast_redis.RedisBroadcaster, interface.BaseBroadcaster)

    class Recording(interface.BaseBroadcaster):
        """A broadcaster written against 0.14's interface."""

        def __init__(self) -> None:
            self.calls: list[Any] = []

        async def subscribe(self, channel: str, callback: Any) -> None:
            self.calls.append(("subscribe", channel))

        async def unsubscribe(self, channel: str) -> None:
            self.calls.append(("unsubscribe", channel))

        async def broadcast(self, channel: str, params: Any, expect_answers: bool, timeout: float) -> list[Any] | None:  # noqa: ASYNC109
            return [utils.add_host_info(params)] if expect_answers else None

    recording = Recording()
    await recording.init()
    await recording.subscribe("c", print)
    assert await recording.broadcast("c", {"a": 1}, True, 1) == [{"hostname": HOST, "pid": PID, "payload": {"a": 1}}]


def test_add_host_info_wraps_like_0_14() -> None:
    wrapped = utils.add_host_info({"x": 1})
    assert wrapped == {"hostname": HOST, "pid": PID, "payload": {"x": 1}}
    assert BroadcastResponse[Any](**wrapped) == BroadcastResponse[Any](hostname=HOST, pid=PID, payload={"x": 1})
    assert utils.add_host_info(None)["payload"] is None


async def test_local_broadcaster() -> None:
    broadcaster = local.LocalBroadcaster()
    await broadcaster.init()
    calls: list[dict[str, Any]] = []

    async def echo(**params: Any) -> dict[str, Any]:
        calls.append(params)
        return {"got": params}

    async def broken() -> None:
        raise ValueError("nope")

    assert await broadcaster.broadcast("echo", {}, True, 1) == []  # nobody subscribed
    await broadcaster.subscribe("echo", echo)
    await broadcaster.subscribe("broken", broken)
    assert await broadcaster.broadcast("echo", {"a": 1}, False, 1) is None
    assert calls == [{"a": 1}]  # without answers, the call already ran
    assert await broadcaster.broadcast("echo", {"b": 2}, True, 1) == [
        {"hostname": HOST, "pid": PID, "payload": {"got": {"b": 2}}}
    ]
    # Documented difference: a raising callback gives 0.14's Redis error payload, it does not propagate.
    assert await broadcaster.broadcast("broken", {}, True, 1) == [
        {"hostname": HOST, "pid": PID, "payload": {"status": 500, "message": "nope"}}
    ]
    assert set(broadcaster.get_subscribers()) == {"echo", "broken"}
    await broadcaster.unsubscribe("echo")
    assert await broadcaster.broadcast("echo", {}, True, 1) == []
    assert set(broadcaster.get_subscribers()) == {"broken"}
    await broadcaster.close()


async def test_redis_broadcaster_between_two_instances(redis_server: RedisServer, master: aioredis.Redis) -> None:
    """Two adapters as two replicas on one Redis, with 0.14's constructor and a custom prefix."""
    receiver = broadcast_redis.RedisBroadcaster("myapp_", master, master)
    caller = broadcast_redis.RedisBroadcaster("myapp_", master, master)
    await receiver.init()
    await caller.init()
    try:

        async def echo(**params: Any) -> dict[str, Any]:
            return {"echo": params}

        async def broken() -> None:
            raise RuntimeError("broken handler")

        await receiver.subscribe("echo", echo)
        await receiver.subscribe("broken", broken)
        assert redis_server.command("PUBSUB", "NUMSUB", "myapp_echo") == [b"myapp_echo", 1]
        answers = await caller.broadcast("echo", {"a": 1}, True, 5)
        assert answers == [{"hostname": HOST, "pid": PID, "payload": {"echo": {"a": 1}}}]
        # What c2casgiutils.broadcast.broadcast made of 0.14's raw answers still works.
        assert BroadcastResponse[Any](**answers[0]).payload == {"echo": {"a": 1}}
        assert await caller.broadcast("broken", {}, True, 5) == [
            {"hostname": HOST, "pid": PID, "payload": {"status": 500, "message": "broken handler"}}
        ]
        assert await caller.broadcast("echo", {"a": 2}, False, 5) is None
        await receiver.unsubscribe("echo")
        begin = time.monotonic()
        assert await caller.broadcast("echo", {}, True, 5) == []
        assert time.monotonic() - begin < 2  # nobody listens: no wait
    finally:
        await receiver.close()
        await caller.close()
    assert redis_server.command("ZCARD", "myapp_c2c_registry:broken") == 0  # close() left the registry


async def test_redis_broadcaster_copies_local_subscriptions(master: aioredis.Redis) -> None:
    previous = local.LocalBroadcaster()

    async def early() -> str:
        return "early"

    await previous.subscribe("early", early)
    broadcaster = broadcast_redis.RedisBroadcaster("broadcast_api_", master, master)
    await broadcaster.init()
    try:
        await broadcaster.copy_local_subscriptions(previous)
        assert await broadcaster.broadcast("early", {}, True, 5) == [{"hostname": HOST, "pid": PID, "payload": "early"}]
    finally:
        await broadcaster.close()


async def test_redis_adapter_and_the_process_broadcaster_share_the_wire(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, master: aioredis.Redis
) -> None:
    """The adapter is a replica like any other: `c2casgiutils.broadcast.broadcast` reaches it, and back."""
    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    reload_settings(c2c_broadcast.Settings)
    await c2casgiutils.broadcast.startup()
    adapter = broadcast_redis.RedisBroadcaster("broadcast_api_", master, master)
    await adapter.init()
    try:

        async def from_adapter() -> str:
            return "adapter"

        async def from_process() -> str:
            return "process"

        await adapter.subscribe("a", from_adapter)
        await c2casgiutils.broadcast.subscribe("p", from_process)
        answers = await c2casgiutils.broadcast.broadcast("a", expect_answers=True, timeout=5)
        assert answers == [BroadcastResponse[Any](hostname=HOST, pid=PID, payload="adapter")]
        assert await adapter.broadcast("p", {}, True, 5) == [{"hostname": HOST, "pid": PID, "payload": "process"}]
    finally:
        await adapter.close()


async def test_redis_adapter_with_redis_down_does_not_fail_init() -> None:
    """Documented difference: 0.14's init raised when Redis was down; ours waits, then `broadcast` raises."""
    port = _free_port()
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    broadcaster = broadcast_redis.RedisBroadcaster("broadcast_api_", client, client)
    try:
        begin = time.monotonic()
        await broadcaster.init()
        assert time.monotonic() - begin < 5
        with pytest.raises(c2c_broadcast.BroadcastUnavailableError):
            await broadcaster.broadcast("echo", {}, True, 0.5)
    finally:
        await broadcaster.close()
        await client.aclose()


def _is_running(worker: broadcast_redis.AsyncPubSubWorker) -> bool:
    return worker.running


def _free_port() -> int:
    from c2c_testing import free_port

    return free_port()


async def test_async_pubsub_worker(master: aioredis.Redis) -> None:
    pubsub = master.pubsub()
    received: list[str] = []
    got = asyncio.Event()

    async def handler(message: dict[str, Any]) -> None:
        received.append(message["data"])
        got.set()

    await pubsub.subscribe(**{"worker_channel": handler})
    worker = broadcast_redis.AsyncPubSubWorker(pubsub, name="test-worker")
    await worker.start()
    await worker.start()  # once
    await master.publish("worker_channel", "hello")
    async with asyncio.timeout(5):
        await got.wait()
    assert received == ["hello"]
    assert worker.running
    await worker.run()  # already running: returns at once
    assert _is_running(worker)
    begin = time.monotonic()
    await worker.stop()  # 0.14's never returned
    assert time.monotonic() - begin < 5
    assert not _is_running(worker)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "test-worker"]


async def test_async_pubsub_worker_run_in_the_foreground(master: aioredis.Redis) -> None:
    """`run()` awaited directly ends once the pub/sub is subscribed to nothing."""
    pubsub = master.pubsub()
    await pubsub.subscribe(**{"fg_channel": lambda message: None})
    worker = broadcast_redis.AsyncPubSubWorker(pubsub)
    run = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)
    await pubsub.unsubscribe()
    async with asyncio.timeout(5):
        await run
    assert not _is_running(worker)
    await worker.stop()


async def test_async_pubsub_worker_rides_out_a_redis_restart(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis going away is logged once and the worker keeps reading; Redis coming back is logged too."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    pubsub = client.pubsub()
    received: list[str] = []
    await pubsub.subscribe(**{"restart_channel": lambda message: received.append(message["data"])})
    worker = broadcast_redis.AsyncPubSubWorker(pubsub, name="restart-worker")
    caplog.set_level("INFO", logger="c2casgiutils")
    await worker.start()
    try:
        redis_server.stop()
        async with asyncio.timeout(10):
            while "Redis connection problem" not in caplog.text:  # noqa: ASYNC110 - a log, not an event
                await asyncio.sleep(0.1)
        assert caplog.text.count("Redis connection problem") == 1, "logged once per outage"
        assert worker.running, "the worker survives the outage"
        redis_server.start()
        await pubsub.subscribe(**{"restart_channel": lambda message: received.append(message["data"])})
        async with asyncio.timeout(10):
            while "Redis is back" not in caplog.text:  # noqa: ASYNC110 - a log, not an event
                await asyncio.sleep(0.1)
    finally:
        await worker.stop()
        await client.aclose()
    assert not worker.running


async def test_async_pubsub_worker_survives_a_handler_error(
    master: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that raises is logged with its traceback; the next message is still read."""
    pubsub = master.pubsub()
    received: list[str] = []

    def handler(message: dict[str, Any]) -> None:
        if message["data"] == "boom":
            raise RuntimeError("handler failed")
        received.append(message["data"])

    await pubsub.subscribe(**{"error_channel": handler})
    worker = broadcast_redis.AsyncPubSubWorker(pubsub, name="error-worker")
    await worker.start()
    try:
        await master.publish("error_channel", "boom")
        await master.publish("error_channel", "after")
        async with asyncio.timeout(10):
            while received != ["after"]:  # noqa: ASYNC110 - a snapshot, not an event
                await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    assert "Unexpected error while reading the Redis pub/sub error-worker" in caplog.text
    assert "handler failed" in caplog.text


async def test_async_pubsub_worker_stop_is_bounded_when_redis_is_gone(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """`stop()` with Redis stopped: unsubscribing fails, is logged, and the task is cancelled anyway."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=1)
    pubsub = client.pubsub()
    await pubsub.subscribe(**{"gone_channel": lambda message: None})
    worker = broadcast_redis.AsyncPubSubWorker(pubsub, name="gone-worker")
    await worker.start()
    redis_server.stop()
    begin = time.monotonic()
    try:
        await worker.stop()
    finally:
        await client.aclose()
    assert time.monotonic() - begin < broadcast_redis.STOP_TIMEOUT + 5
    assert "Stopping the Redis subscription worker gone-worker" in caplog.text
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "gone-worker"]
