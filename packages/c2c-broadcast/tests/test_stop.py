"""A replica that stops while it runs calls: a grace to finish them, then an error answer for each one cut.

Real redis-server; the replica is a `RedisBroadcaster` of its own in this process, the caller the
module-level broadcaster (same hostname and pid, another replica id: only the replica subscribes).
"""

# mypy: disallow-untyped-calls=False
# (redis-py leaves pub/sub methods unannotated)

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _broadcast_helpers import start_on_redis

import c2c_broadcast
from c2c_broadcast import BroadcastResponse, ErrorAnswer, MissingAnswer
from c2c_testing import RedisServer

try:
    import redis.asyncio as aioredis

    from c2c_broadcast import BroadcastSettings
    from c2c_broadcast._incoming import CLOSE_GRACE
    from c2c_broadcast.redis import RedisBroadcaster
except ModuleNotFoundError:
    aioredis = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(aioredis is None, reason="needs the redis extra: c2c-broadcast[redis]")

HOST = socket.gethostname()
PID = os.getpid()
CALL_TIMEOUT = 20.0
"""The callers' timeout: an answer that comes well before it is not a `MissingAnswer` after it."""


@pytest.fixture
async def replica(redis_server: RedisServer) -> AsyncIterator[RedisBroadcaster]:
    """A second broadcaster in this process, on its own client: the replica that stops."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    broadcaster = RedisBroadcaster(client=client, prefix="broadcast_api_")
    await broadcaster.start()
    yield broadcaster
    await broadcaster.close()
    await client.aclose()


async def _until_running(replica: RedisBroadcaster, count: int) -> None:
    async with asyncio.timeout(10):
        while replica.status().pending_handlers < count:  # noqa: ASYNC110 - a snapshot, not an event
            await asyncio.sleep(0.02)


def _cut_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if "running call(s) finished" in record.getMessage()]


async def test_close_answers_the_calls_that_finish_within_the_grace_and_cuts_the_others(
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    replica: RedisBroadcaster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The finding: close() cancelled the running handlers silently, and their callers waited their whole timeout."""
    await start_on_redis(monkeypatch, redis_server.url)
    caplog.set_level(logging.INFO, logger="c2c_broadcast")

    async def quick() -> str:
        await asyncio.sleep(CLOSE_GRACE / 2)
        return "quick done"

    async def stuck() -> str:
        await asyncio.sleep(60)
        return "never"

    await replica.subscribe("stop_quick", quick)
    await replica.subscribe("stop_stuck", stuck)
    quick_call = asyncio.create_task(c2c_broadcast.broadcast("stop_quick", expect_answers=True, timeout=CALL_TIMEOUT))
    stuck_call = asyncio.create_task(c2c_broadcast.broadcast("stop_stuck", expect_answers=True, timeout=CALL_TIMEOUT))
    await c2c_broadcast.broadcast("stop_stuck")  # no answer wanted: cut too, but nobody to tell
    await _until_running(replica, 3)

    begin = time.monotonic()
    await replica.close()
    closed_after = time.monotonic() - begin
    async with asyncio.timeout(5):  # both callers are done by now, or within a few ms
        quick_answers, stuck_answers = await asyncio.gather(quick_call, stuck_call)
    answered_after = time.monotonic() - begin

    # Finished within the grace: its answer was sent before the replica closed.
    assert quick_answers == [BroadcastResponse[Any](hostname=HOST, pid=PID, payload="quick done")]
    # Still running after the grace: an error answer at once, not a MissingAnswer after 20 s.
    assert len(stuck_answers) == 1
    (answer,) = stuck_answers
    assert isinstance(answer, ErrorAnswer), stuck_answers
    assert (answer.hostname, answer.pid, answer.error_type) == (HOST, PID, "ReplicaStoppedError")
    assert answer.message == f"replica {replica.replica_id} stopped before its handler on 'stop_stuck' finished"
    assert CLOSE_GRACE - 0.2 < closed_after < 4.5
    assert answered_after < CALL_TIMEOUT / 4
    lines = _cut_lines(caplog)
    assert [record.levelno for record in lines] == [logging.WARNING]
    message = lines[0].getMessage()
    assert f"replica {replica.replica_id} stopped before 2 running call(s) finished (2 on 'stop_stuck';" in message
    assert "1 caller(s) got an error answer (ReplicaStoppedError)" in message
    assert replica.status().pending_handlers == 0
    assert replica.status().state == "stopped"


async def test_the_error_answer_is_signed_when_signing_is_on(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    """With a secret the caller drops unsigned answers: the error answer carries the signature and the call's id."""
    secret = "stop-secret"
    await start_on_redis(monkeypatch, redis_server.url, C2C__BROADCAST__SECRET=secret)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    signed = RedisBroadcaster(client=client, prefix="broadcast_api_", settings=BroadcastSettings(secret=secret))  # type: ignore[arg-type]
    try:
        await signed.start()

        async def stuck() -> None:
            await asyncio.sleep(60)

        await signed.subscribe("stop_signed", stuck)
        call = asyncio.create_task(c2c_broadcast.broadcast("stop_signed", expect_answers=True, timeout=CALL_TIMEOUT))
        await _until_running(signed, 1)
        await signed.close()
        async with asyncio.timeout(5):
            (answer,) = await call
    finally:
        await signed.close()
        await client.aclose()
    assert isinstance(answer, ErrorAnswer) and answer.error_type == "ReplicaStoppedError", answer
    assert not [name for name in c2c_broadcast.status().counters if name.startswith("messages_dropped")]


async def test_a_0_14_caller_reads_the_cut_call_as_its_error_payload(
    redis_server: RedisServer, replica: RedisBroadcaster
) -> None:
    """The error answer is in the usual error format: 0.14 reads `payload` = `{"status": 500, "message": ...}`."""
    raw = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    pubsub = raw.pubsub()
    try:

        async def stuck() -> None:
            await asyncio.sleep(60)

        await replica.subscribe("stop_legacy", stuck)
        await pubsub.subscribe("broadcast_api_legacy_answers")
        # What c2casgiutils 0.14 publishes: params and an answer channel, nothing else.
        await raw.publish(
            "broadcast_api_stop_legacy", '{"params": {}, "answer_channel": "broadcast_api_legacy_answers"}'
        )
        await _until_running(replica, 1)
        await replica.close()
        message = None
        async with asyncio.timeout(5):
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        answer = json.loads(message["data"])
        assert (answer["hostname"], answer["pid"]) == (HOST, PID)
        text = f"replica {replica.replica_id} stopped before its handler on 'stop_legacy' finished"
        assert answer["payload"] == {"status": 500, "message": text}
        assert answer["c2c"]["error"] == {"type": "ReplicaStoppedError", "message": text}
    finally:
        await pubsub.aclose()
        await raw.aclose()


async def test_handlers_the_event_loops_end_cancelled_get_an_error_answer(
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    replica: RedisBroadcaster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When a loop ends (`asyncio.run`), every task is cancelled, handlers included, before the close runs."""
    await start_on_redis(monkeypatch, redis_server.url)

    async def stuck() -> None:
        await asyncio.sleep(60)

    await replica.subscribe("stop_loop_end", stuck)
    call = asyncio.create_task(c2c_broadcast.broadcast("stop_loop_end", expect_answers=True, timeout=CALL_TIMEOUT))
    await _until_running(replica, 1)
    handlers = [task for task in asyncio.all_tasks() if task.get_name() == "c2c-broadcast broadcast_api_stop_loop_end"]
    assert len(handlers) == 1
    handlers[0].cancel()  # what the loop's end does
    await asyncio.sleep(0.1)
    begin = time.monotonic()
    await replica.close()
    assert time.monotonic() - begin < CLOSE_GRACE  # nothing was still running: no grace to wait for
    async with asyncio.timeout(5):
        (answer,) = await call
    assert isinstance(answer, ErrorAnswer)
    assert answer.error_type == "ReplicaStoppedError"
    assert len(_cut_lines(caplog)) == 1


async def test_close_with_redis_frozen_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    replica: RedisBroadcaster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGSTOP: leaving the registry, the grace and the error answers are each bounded; the WARNING says so."""
    await start_on_redis(monkeypatch, redis_server.url)

    async def stuck() -> None:
        await asyncio.sleep(60)

    await replica.subscribe("stop_frozen", stuck)
    call = asyncio.create_task(c2c_broadcast.broadcast("stop_frozen", expect_answers=True, timeout=6))
    await _until_running(replica, 1)
    with redis_server.frozen():
        begin = time.monotonic()
        async with asyncio.timeout(10):
            await replica.close()
        elapsed = time.monotonic() - begin
    assert elapsed < 5, elapsed  # the budget of a close is 4.5 s
    assert replica.status().state == "stopped"
    lines = _cut_lines(caplog)
    assert len(lines) == 1, [record.getMessage() for record in caplog.records]
    assert "the error answers to 1 caller(s) could not be sent (TimeoutError: no answer within 1 s)" in (
        lines[0].getMessage()
    )
    assert "did not stop" not in caplog.text
    # Resumed, Redis may still deliver the error answer the close wrote: either way not a payload.
    async with asyncio.timeout(10):
        (answer,) = await call
    assert isinstance(answer, MissingAnswer)
