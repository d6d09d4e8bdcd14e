"""The broadcaster's limits against a real redis-server: the answer queue, the message size, the pool."""

# mypy: disallow-untyped-calls=False
# (redis-py leaves pub/sub methods unannotated)

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _broadcast_helpers import start_on_redis

import c2c_broadcast
from c2c_broadcast import (
    BroadcastResponse,
    BroadcastSettings,
    ErrorAnswer,
    MessageTooLargeError,
    MissingAnswer,
)
from c2c_testing import RedisServer, RedisServerFactory

try:
    import redis.asyncio as aioredis
except ModuleNotFoundError:
    aioredis = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(aioredis is None, reason="needs the redis extra: c2c-broadcast[redis]")

HOST = socket.gethostname()
PID = os.getpid()
# Redis' pub/sub output-buffer limits, small: a subscriber that receives more than 256 kB unread
# (one message is enough) is disconnected by Redis at once.
SMALL_PUBSUB_BUFFER = ("--client-output-buffer-limit", "pubsub 256kb 128kb 60")


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def test_settings_defaults_and_bounds() -> None:
    settings = BroadcastSettings()
    assert settings.answer_queue_size == 1000
    assert settings.answer_publishers == 4
    # Well under Redis' pub/sub limits (32 MB hard, 8 MB soft): 8 maximal messages fit in the soft one.
    assert settings.max_message_size * 8 <= 8 * 1024 * 1024
    for field, value in (("answer_queue_size", 0), ("answer_publishers", 0), ("answer_publishers", 101)):
        with pytest.raises(ValueError, match=field):
            BroadcastSettings.model_validate({field: value})


async def _wait_for_pending(count: int) -> None:
    async with asyncio.timeout(10):
        while c2c_broadcast.status().pending_handlers < count:  # noqa: ASYNC110 - a snapshot, not an event
            await asyncio.sleep(0.02)


async def test_full_answer_queue_drops_counts_and_logs(
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    raw: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """50 answers ready at once, Redis refusing writes for a while, a queue of 5 and one publisher.

    The publisher takes what the queue holds (5) and waits for Redis, 5 more wait in the queue, the
    other 40 wait `QUEUE_WAIT` (1 s) for room and are dropped: counted, and logged once (rate limited).
    """
    await start_on_redis(
        monkeypatch,
        redis_server.url,
        C2C__BROADCAST__ANSWER_QUEUE_SIZE="5",
        C2C__BROADCAST__ANSWER_PUBLISHERS="1",
        C2C__BROADCAST__CONNECT_TIMEOUT="2",  # a publish outlasts the 1.5 s pause below: no answer lost
    )
    gate = asyncio.Event()

    async def gated(**params: Any) -> Any:
        await gate.wait()
        return params

    await c2c_broadcast.subscribe("gated", gated)
    answers = raw.pubsub()
    await answers.subscribe("broadcast_api_c2c_answer_flood")
    assert (await answers.get_message(timeout=2))["type"] == "subscribe"  # type: ignore[index,unused-ignore]
    try:
        # Forged calls (no secret configured) from a raw connection, each wanting an answer.
        for index in range(50):
            message = {"params": {"i": index}, "answer_channel": "broadcast_api_c2c_answer_flood"}
            await raw.publish("broadcast_api_gated", json.dumps(message))
        await _wait_for_pending(50)
        caplog.set_level(logging.WARNING, logger="c2c_broadcast")
        await raw.execute_command("CLIENT", "PAUSE", "1500", "WRITE")  # PUBLISH waits meanwhile
        gate.set()
        received: list[Any] = []
        async with asyncio.timeout(10):
            while c2c_broadcast.status().pending_handlers or c2c_broadcast.status().answers_waiting:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        while (message := await answers.get_message(ignore_subscribe_messages=True, timeout=0.5)) is not None:
            received.append(json.loads(message["data"]))
    finally:
        await answers.aclose()
    status = c2c_broadcast.status()
    assert status.answers_dropped >= 35  # 40 in this scheduling; at most queue + batch are kept
    assert status.counters["answers_dropped"] == status.answers_dropped
    assert status.counters["answers_sent"] + status.answers_dropped == 50
    assert len(received) == status.counters["answers_sent"]
    lines = [record for record in caplog.records if "ANSWER_QUEUE_SIZE" in record.getMessage()]
    assert len(lines) == 1  # rate limited: one line for the whole burst
    assert lines[0].levelno == logging.WARNING
    # The broadcaster still works, and a legitimate call is answered.
    await c2c_broadcast.subscribe("echo", lambda **params: params)
    assert await c2c_broadcast.broadcast("echo", {"x": 1}, expect_answers=True, timeout=10) == [
        BroadcastResponse[Any](hostname=HOST, pid=PID, payload={"x": 1})
    ]


async def test_answers_use_at_most_the_publishers_connections(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    """300 answers at once: published through `answer_publishers` connections, not one per answer."""
    await start_on_redis(monkeypatch, redis_server.url, C2C__BROADCAST__ANSWER_PUBLISHERS="2")
    gate = asyncio.Event()

    async def gated(**params: Any) -> Any:
        await gate.wait()
        return params

    await c2c_broadcast.subscribe("gated", gated)
    for index in range(300):
        message = {"params": {"i": index}, "answer_channel": "broadcast_api_c2c_answer_flood"}
        await raw.publish("broadcast_api_gated", json.dumps(message))
    await _wait_for_pending(300)
    before = await raw.client_list()
    gate.set()
    peak = 0
    async with asyncio.timeout(10):
        while c2c_broadcast.status().pending_handlers or c2c_broadcast.status().answers_waiting:
            peak = max(peak, len(await raw.client_list()))
            await asyncio.sleep(0)
    status = c2c_broadcast.status()
    assert status.counters["answers_sent"] == 300 and status.answers_dropped == 0
    # 2 publishers (+ the heartbeat's connection, which may have been idle before).
    assert peak - len(before) <= 3, (peak, len(before))


async def test_too_large_call_is_refused_before_redis(
    monkeypatch: pytest.MonkeyPatch, redis_server_factory: RedisServerFactory
) -> None:
    """A call over max_message_size raises MessageTooLargeError; Redis never sees it, so no subscriber is cut."""
    server = redis_server_factory(args=SMALL_PUBSUB_BUFFER)
    await start_on_redis(monkeypatch, server.url, C2C__BROADCAST__MAX_MESSAGE_SIZE="100000")
    await c2c_broadcast.subscribe("echo", lambda **params: "ok")
    client = aioredis.Redis.from_url(server.url)
    monitor = client.pubsub()
    try:
        await monitor.subscribe("broadcast_api_echo")  # another subscriber of the channel
        assert (await monitor.get_message(timeout=2))["type"] == "subscribe"  # type: ignore[index,unused-ignore]
        for expect_answers in (False, True):
            with pytest.raises(MessageTooLargeError, match="MAX_MESSAGE_SIZE") as refused:
                await c2c_broadcast.broadcast("echo", {"big": "x" * 300_000}, expect_answers=expect_answers)
            assert isinstance(refused.value, ValueError)
            assert refused.value.max_size == 100_000 and refused.value.size > 300_000
        assert await monitor.get_message(timeout=0.5) is None  # nothing was published
        # Every subscriber is still connected: the monitor, and this replica's listener.
        assert (await client.pubsub_numsub("broadcast_api_echo"))[0][1] == 2
        status = c2c_broadcast.status()
        assert status.healthy and status.reconnections == 0
        answers = await c2c_broadcast.broadcast("echo", {"small": 1}, expect_answers=True, timeout=10)
        assert [a.payload for a in answers if isinstance(a, BroadcastResponse)] == ["ok"]
    finally:
        await monitor.aclose()
        await client.aclose()


async def test_too_large_answer_is_an_error_answer(
    monkeypatch: pytest.MonkeyPatch, redis_server_factory: RedisServerFactory
) -> None:
    server = redis_server_factory(args=SMALL_PUBSUB_BUFFER)
    await start_on_redis(monkeypatch, server.url, C2C__BROADCAST__MAX_MESSAGE_SIZE="100000")
    await c2c_broadcast.subscribe("big", lambda: "y" * 300_000)
    (answer,) = await c2c_broadcast.broadcast("big", expect_answers=True, timeout=10)
    assert isinstance(answer, ErrorAnswer) and isinstance(answer, MissingAnswer)
    assert (answer.hostname, answer.pid, answer.error_type) == (HOST, PID, "MessageTooLargeError")
    assert "over C2C__BROADCAST__MAX_MESSAGE_SIZE (100000 bytes)" in answer.message
    # The answers subscription was not cut by Redis (it would have been, for a 300 kB answer).
    status = c2c_broadcast.status()
    assert status.healthy and status.reconnections == 0


async def test_what_the_limit_prevents(redis_server_factory: RedisServerFactory) -> None:
    """Without the check: one message over the pub/sub buffer limit disconnects every subscriber."""
    server = redis_server_factory(args=SMALL_PUBSUB_BUFFER)
    client = aioredis.Redis.from_url(server.url)
    subscribers = [client.pubsub() for _ in range(3)]
    try:
        for pubsub in subscribers:
            await pubsub.subscribe("broadcast_api_echo")
            assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"  # type: ignore[index,unused-ignore]
        assert await client.publish("broadcast_api_echo", "z" * 300_000) == 3
        async with asyncio.timeout(10):
            while (await client.pubsub_numsub("broadcast_api_echo"))[0][1] != 0:  # noqa: ASYNC110 - polling Redis
                await asyncio.sleep(0.05)
    finally:
        for pubsub in subscribers:
            await pubsub.aclose()
        await client.aclose()
