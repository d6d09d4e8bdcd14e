"""The Redis broadcaster in one process against a real redis-server: outages, 0.14 receivers, addressing."""

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
from c2c_broadcast import BroadcastResponse, BroadcastUnavailableError, ErrorAnswer, MissingAnswer, Settings
from c2c_config import reload_settings
from c2c_testing import RedisServer, free_port

try:
    import redis.asyncio as aioredis

    from c2c_broadcast.redis import RedisBroadcaster
except ModuleNotFoundError:
    aioredis = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(aioredis is None, reason="needs the redis extra: c2c-broadcast[redis]")

HOST = socket.gethostname()
PID = os.getpid()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def _wait_healthy(seconds: float = 20) -> None:
    async with asyncio.timeout(seconds):
        while not c2c_broadcast.status().healthy:  # noqa: ASYNC110 - a snapshot, not an event
            await asyncio.sleep(0.05)


async def test_round_trip_and_status(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> None:
    await start_on_redis(monkeypatch, redis_server.url)

    async def echo(**params: Any) -> Any:
        return params

    await c2c_broadcast.subscribe("echo", echo)
    answers = await c2c_broadcast.broadcast("echo", {"a": [1, "b"]}, expect_answers=True, timeout=10)
    assert answers == [BroadcastResponse[Any](hostname=HOST, pid=PID, payload={"a": [1, "b"]})]
    status = c2c_broadcast.status()
    assert (status.kind, status.state, status.healthy) == ("redis", "connected", True)
    assert status.channels == ("echo",)
    assert status.redis == redis_server.url
    assert status.counters["answers_received"] == 1
    assert "redis broadcaster connected" in status.describe()
    # The registry holds this replica, with a TTL.
    members = redis_server.command("ZRANGE", "broadcast_api_c2c_registry:echo", "0", "-1")
    assert isinstance(members, list) and len(members) == 1
    assert json.loads(members[0])["p"] == PID  # type: ignore[arg-type]
    assert isinstance(redis_server.command("PTTL", "broadcast_api_c2c_registry:echo"), int)
    await c2c_broadcast.unsubscribe("echo")
    assert redis_server.command("ZCARD", "broadcast_api_c2c_registry:echo") == 0
    assert await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10) == []


async def test_without_answers_and_concurrent_handlers(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    """A slow handler does not block the listener: a second message is handled meanwhile."""
    await start_on_redis(monkeypatch, redis_server.url)
    release = asyncio.Event()
    events: list[str] = []

    async def slow() -> str:
        events.append("slow started")
        await release.wait()
        return "slow"

    async def fast() -> str:
        events.append("fast")
        release.set()
        return "fast"

    await c2c_broadcast.subscribe("slow", slow)
    await c2c_broadcast.subscribe("fast", fast)
    slow_call = asyncio.create_task(c2c_broadcast.broadcast("slow", expect_answers=True, timeout=10))
    async with asyncio.timeout(10):
        while not events:  # noqa: ASYNC110 - wait until the slow handler runs (and blocks)
            await asyncio.sleep(0.02)
    fast_answers = await c2c_broadcast.broadcast("fast", expect_answers=True, timeout=10)
    assert [a.payload for a in fast_answers if isinstance(a, BroadcastResponse)] == ["fast"]
    slow_answers = await slow_call
    assert [a.payload for a in slow_answers if isinstance(a, BroadcastResponse)] == ["slow"]
    assert events == ["slow started", "fast"]
    assert await c2c_broadcast.broadcast("fast") is None  # type: ignore[func-returns-value]


async def test_startup_with_redis_down_retries_in_background(
    monkeypatch: pytest.MonkeyPatch, redis_server_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    begin = time.monotonic()
    await start_on_redis(monkeypatch, url)
    assert time.monotonic() - begin < 10  # connect_timeout is 1 s: startup did not hang
    assert "is unreachable at startup" in caplog.text
    status = c2c_broadcast.status()
    assert (status.kind, status.healthy) == ("redis", False)
    assert status.state == "connecting"
    assert status.last_error is not None and "ConnectionError" in status.last_error

    async def echo() -> str:
        return "here"

    await c2c_broadcast.subscribe("echo", echo)  # accepted while down
    with pytest.raises(BroadcastUnavailableError):
        await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=0.5)
    with pytest.raises(BroadcastUnavailableError):
        await c2c_broadcast.broadcast("echo")
    server = redis_server_factory(port=port)
    await _wait_healthy()
    answers = await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10)
    assert [a.payload for a in answers if isinstance(a, BroadcastResponse)] == ["here"]
    assert server.command("ZCARD", "broadcast_api_c2c_registry:echo") == 1


async def test_shutdown_with_redis_gone_does_not_hang(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    await start_on_redis(monkeypatch, redis_server.url)

    async def echo() -> None:
        return None

    await c2c_broadcast.subscribe("echo", echo)
    redis_server.stop()
    begin = time.monotonic()
    await asyncio.wait_for(c2c_broadcast.shutdown(), timeout=15)
    assert time.monotonic() - begin < 10


async def test_shutdown_stops_connections_whose_cancellation_redis_py_lost(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """On Python 3.11 redis-py can lose a cancellation (its `wait_for` when writing a PING or a SUBSCRIBE).

    The listener then went on reading its quiet connection, and close() gave up on it after 2.5 s
    (seen in CI: a leftover task). The race is rare, so each read here loses its cancellation
    (fault injection on the real client and server), which is what the task sees after the race.
    """
    original = aioredis.client.PubSub.get_message

    async def get_message_losing_cancellations(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        except asyncio.CancelledError:
            return None  # lost: the task goes on, its cancellation still pending

    monkeypatch.setattr(aioredis.client.PubSub, "get_message", get_message_losing_cancellations)
    await start_on_redis(monkeypatch, redis_server.url)

    async def echo() -> str:
        return "x"

    await c2c_broadcast.subscribe("echo", echo)
    answers = await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=5)
    assert [getattr(answer, "payload", answer) for answer in answers] == ["x"]
    begin = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="c2c_broadcast"):
        await c2c_broadcast.shutdown()
    assert time.monotonic() - begin < 4.5
    assert "did not stop" not in caplog.text
    assert [task for task in asyncio.all_tasks() if task.get_name().startswith("c2c-broadcast")] == []


async def test_pending_broadcast_ends_at_shutdown(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> None:
    await start_on_redis(monkeypatch, redis_server.url)

    async def slow() -> None:
        await asyncio.sleep(60)

    await c2c_broadcast.subscribe("slow", slow)
    call = asyncio.create_task(c2c_broadcast.broadcast("slow", expect_answers=True, timeout=60))
    await asyncio.sleep(0.3)
    begin = time.monotonic()
    await c2c_broadcast.shutdown()
    answers = await asyncio.wait_for(call, timeout=10)
    assert time.monotonic() - begin < 10
    # The handler is cut after the close's grace: its error answer, if this process's own answers
    # connection read it before it closed, else the missing answer of a woken call.
    assert len(answers) == 1 and isinstance(answers[0], MissingAnswer), answers
    assert (answers[0].hostname, answers[0].pid) == (HOST, PID)
    assert type(answers[0]) is MissingAnswer or getattr(answers[0], "error_type", None) == "ReplicaStoppedError"


async def test_new_sender_and_014_receiver(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    """A hand-written 0.14 receiver (no registry): the PUBLISH count decides, as in 0.14."""
    await start_on_redis(monkeypatch, redis_server.url)
    pubsub = raw.pubsub()
    await pubsub.subscribe("broadcast_api_legacy")
    seen: list[dict[str, Any]] = []

    async def legacy_receiver() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is None:
                continue
            data = json.loads(message["data"])
            seen.append(data)
            if data.get("answer_channel"):
                answer = {"hostname": "old-host", "pid": 14, "payload": {"got": data["params"]}}
                await raw.publish(data["answer_channel"], json.dumps(answer))

    task = asyncio.create_task(legacy_receiver())
    try:
        begin = time.monotonic()
        answers = await c2c_broadcast.broadcast("legacy", {"x": 1}, expect_answers=True, timeout=10)
        assert answers == [BroadcastResponse[Any](hostname="old-host", pid=14, payload={"got": {"x": 1}})]
        assert time.monotonic() - begin < 5
        assert seen[0]["params"] == {"x": 1}
        assert seen[0]["answer_channel"].startswith("broadcast_api_")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()


async def test_mixed_registered_and_014_receivers_with_legacy_wait(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    """During a migration, `legacy_wait` also collects the answers of unregistered 0.14 receivers."""
    await start_on_redis(monkeypatch, redis_server.url, C2C__BROADCAST__LEGACY_WAIT="5")

    async def echo() -> str:
        return "new"

    await c2c_broadcast.subscribe("mixed", echo)
    pubsub = raw.pubsub()
    await pubsub.subscribe("broadcast_api_mixed")

    async def legacy_receiver() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                data = json.loads(message["data"])
                await asyncio.sleep(0.3)  # answers after the registered replica
                await raw.publish(data["answer_channel"], json.dumps({"hostname": "old", "pid": 1, "payload": "old"}))

    task = asyncio.create_task(legacy_receiver())
    try:
        begin = time.monotonic()
        answers = await c2c_broadcast.broadcast("mixed", expect_answers=True, timeout=10)
        assert sorted(a.payload for a in answers if isinstance(a, BroadcastResponse)) == ["new", "old"]
        assert time.monotonic() - begin < 4  # stopped when the PUBLISH count was reached, not at legacy_wait
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()


async def test_a_silent_014_receiver_costs_legacy_wait_and_a_missing_answer(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    """An unregistered exact-channel subscriber that never answers: bounded by `legacy_wait`, reported anonymously."""
    await start_on_redis(monkeypatch, redis_server.url, C2C__BROADCAST__LEGACY_WAIT="0.5")

    async def echo() -> str:
        return "new"

    await c2c_broadcast.subscribe("mixed", echo)
    pubsub = raw.pubsub()
    await pubsub.subscribe("broadcast_api_mixed")  # never reads: a 0.14 replica that hangs
    patterns = raw.pubsub()
    await patterns.psubscribe("*")  # not counted at all
    try:
        begin = time.monotonic()
        answers = await c2c_broadcast.broadcast("mixed", expect_answers=True, timeout=10)
        elapsed = time.monotonic() - begin
        assert answers == [BroadcastResponse[Any](hostname=HOST, pid=PID, payload="new"), MissingAnswer()]
        assert 0.45 < elapsed < 3
        assert c2c_broadcast.status().counters["answers_missing"] == 1
        # A call addressed to this replica does not wait for unregistered subscribers.
        begin = time.monotonic()
        answers = await c2c_broadcast.broadcast("mixed", expect_answers=True, timeout=10, pids=PID)
        assert answers == [BroadcastResponse[Any](hostname=HOST, pid=PID, payload="new")]
        assert time.monotonic() - begin < 0.4
    finally:
        await pubsub.aclose()
        await patterns.aclose()


async def test_after_an_outage_the_second_connection_follows_the_first(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    """Redis back after an outage long enough for both pub/sub connections to reach their longest
    back-off: the first one to reconnect wakes the other, which used to wait out its own (random)
    pause, up to `reconnect_max_delay` x 1.5, before the broadcaster was healthy again."""
    await start_on_redis(monkeypatch, redis_server.url, C2C__BROADCAST__RECONNECT_MAX_DELAY="1.5")
    broadcaster: Any = c2c_broadcast.get_broadcaster()
    connections = (broadcaster._listener.connected, broadcaster._answers.connected)
    await _wait_healthy()
    gaps = []
    for _ in range(3):
        redis_server.stop()
        await asyncio.sleep(3)  # both back-offs at their longest (0.75 to 2.25 s with the jitter)
        assert not any(connected.is_set() for connected in connections)
        redis_server.start()
        first_at = None
        async with asyncio.timeout(20):
            while not all(connected.is_set() for connected in connections):
                if first_at is None and any(connected.is_set() for connected in connections):
                    first_at = time.monotonic()
                await asyncio.sleep(0.01)
        both_at = time.monotonic()
        gaps.append(both_at - (first_at or both_at))
    assert max(gaps) < 0.5, gaps  # without the wake, each gap is anything from 0 to 1.5 s
    assert c2c_broadcast.status().healthy


async def test_close_stops_receiving_before_leaving_the_registry(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    """Else a call made during a clean shutdown would count the replica as an unregistered subscriber and wait."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    replica = RedisBroadcaster(client=client, prefix="broadcast_api_")
    await replica.start()

    async def echo() -> str:
        return "x"

    await replica.subscribe("echo", echo)
    assert redis_server.command("PUBSUB", "NUMSUB", "broadcast_api_echo") == [b"broadcast_api_echo", 1]
    assert redis_server.command("ZCARD", "broadcast_api_c2c_registry:echo") == 1
    seen: list[Any] = []
    unregister = replica._unregister

    async def spy(channels: list[str]) -> None:
        seen.append(redis_server.command("PUBSUB", "NUMSUB", "broadcast_api_echo"))
        await unregister(channels)

    monkeypatch.setattr(replica, "_unregister", spy)
    await replica.close()
    await client.aclose()
    assert seen == [[b"broadcast_api_echo", 0]]  # no longer a subscriber when it left the registry
    assert redis_server.command("ZCARD", "broadcast_api_c2c_registry:echo") == 0
    assert replica.closed and replica.status().state == "stopped"
    await replica.start()  # a closed broadcaster does not start again
    assert replica.status().state == "stopped"


async def test_addressing_on_redis(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> None:
    await start_on_redis(monkeypatch, redis_server.url)
    calls: list[int] = []

    async def echo() -> int:
        calls.append(1)
        return PID

    await c2c_broadcast.subscribe("echo", echo)
    begin = time.monotonic()
    assert await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10, pids=PID + 1) == []
    assert await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10, hostnames="elsewhere") == []
    assert time.monotonic() - begin < 5  # nobody addressed is registered: no wait
    answers = await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10, pids=[PID], hostnames=[HOST])
    assert [a.payload for a in answers if isinstance(a, BroadcastResponse)] == [PID]
    await asyncio.sleep(0.2)
    assert calls == [1]  # the unaddressed calls did not run here


async def test_forged_answers_are_ignored_when_signing(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    """Anyone who sees the answer channel can publish on it; with a secret, only signed answers count."""
    await start_on_redis(monkeypatch, redis_server.url, C2C__BROADCAST__SECRET="secret")
    pubsub = raw.pubsub()
    await pubsub.psubscribe("broadcast_api_*")

    async def echo() -> str:
        await asyncio.sleep(0.5)  # the forged answer arrives first
        return "genuine"

    async def forger() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None and message["channel"] == b"broadcast_api_echo":
                data = json.loads(message["data"])
                await raw.publish(data["answer_channel"], json.dumps({"hostname": "x", "pid": 1, "payload": "forged"}))

    await c2c_broadcast.subscribe("echo", echo)
    task = asyncio.create_task(forger())
    try:
        answers = await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=3)
        assert [a.payload for a in answers if isinstance(a, BroadcastResponse)] == ["genuine"]
        assert c2c_broadcast.status().counters["messages_dropped{reason=unsigned}"] == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()


async def test_a_request_captured_before_a_restart_is_not_replayed_after_it(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    """Someone who reads Redis captures a signed call and publishes it again within the signature's
    60 s, after the replica restarted: the new process, which never saw it, refuses it as expired."""
    await start_on_redis(monkeypatch, redis_server.url, C2C__BROADCAST__SECRET="secret")
    ran: list[Any] = []

    async def level(**params: Any) -> str:
        ran.append(params)
        return "set"

    capture = raw.pubsub()
    await capture.subscribe("broadcast_api_level")
    await c2c_broadcast.subscribe("level", level)
    answers = await c2c_broadcast.broadcast("level", {"name": "app", "level": "DEBUG"}, expect_answers=True, timeout=5)
    assert [answer.payload for answer in answers if isinstance(answer, BroadcastResponse)] == ["set"]
    captured = None
    async with asyncio.timeout(5):
        while captured is None:
            message = await capture.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                captured = message["data"]
    await capture.aclose()
    # Before the restart, the guard's memory refuses the replay.
    assert await raw.publish("broadcast_api_level", captured) == 1
    await asyncio.sleep(0.3)
    assert len(ran) == 1
    assert c2c_broadcast.status().counters["messages_dropped{reason=replayed}"] == 1

    await c2c_broadcast.shutdown()
    await asyncio.sleep(1.2)  # more than START_TOLERANCE after the capture: a restart takes longer
    await start_on_redis(monkeypatch, redis_server.url, C2C__BROADCAST__SECRET="secret")
    await c2c_broadcast.subscribe("level", level)
    assert await raw.publish("broadcast_api_level", captured) == 1
    await asyncio.sleep(0.3)
    assert len(ran) == 1  # not run again
    assert c2c_broadcast.status().counters["messages_dropped{reason=expired}"] == 1
    # A call signed now still runs.
    answers = await c2c_broadcast.broadcast("level", {"name": "app"}, expect_answers=True, timeout=5)
    assert [answer.payload for answer in answers if isinstance(answer, BroadcastResponse)] == ["set"]
    assert len(ran) == 2


async def test_subscriptions_before_startup_move_to_redis(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "c2c_broadcast")

    async def early() -> str:
        return "early"

    await c2c_broadcast.subscribe("early", early)  # on the automatic local broadcaster
    await start_on_redis(monkeypatch, redis_server.url)
    assert isinstance(c2c_broadcast.get_broadcaster(), RedisBroadcaster)
    assert "switching from the local broadcaster to Redis" in caplog.text
    answers = await c2c_broadcast.broadcast("early", expect_answers=True, timeout=10)
    assert [a.payload for a in answers if isinstance(a, BroadcastResponse)] == ["early"]
    await c2c_broadcast.startup()  # again: nothing changes
    assert list(c2c_broadcast.get_broadcaster().get_subscribers()) == ["early"]


async def test_error_answer_and_oversized_answer(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> None:
    await start_on_redis(monkeypatch, redis_server.url, C2C__BROADCAST__MAX_MESSAGE_SIZE="1000")

    async def big() -> str:
        return "x" * 5000

    async def broken() -> None:
        raise KeyError("missing")

    async def not_json() -> float:
        return float("nan")

    await c2c_broadcast.subscribe("big", big)
    await c2c_broadcast.subscribe("broken", broken)
    await c2c_broadcast.subscribe("nan", not_json)
    (answer,) = await c2c_broadcast.broadcast("nan", expect_answers=True, timeout=10)
    assert isinstance(answer, ErrorAnswer) and answer.error_type == "TypeError"
    (answer,) = await c2c_broadcast.broadcast("big", expect_answers=True, timeout=10)
    assert isinstance(answer, ErrorAnswer) and answer.error_type == "MessageTooLargeError"
    (answer,) = await c2c_broadcast.broadcast("broken", expect_answers=True, timeout=10)
    assert answer == ErrorAnswer(hostname=HOST, pid=PID, error_type="KeyError", message="'missing'")
    with pytest.raises(ValueError, match="MAX_MESSAGE_SIZE"):
        await c2c_broadcast.broadcast("big", {"x": "y" * 5000})


async def test_overloaded_replica_drops_with_a_log_line(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    await start_on_redis(monkeypatch, redis_server.url, C2C__BROADCAST__MAX_PENDING_HANDLERS="1")
    release = asyncio.Event()

    async def blocked() -> str:
        await release.wait()
        return "done"

    await c2c_broadcast.subscribe("blocked", blocked)
    first = asyncio.create_task(c2c_broadcast.broadcast("blocked", expect_answers=True, timeout=10))
    async with asyncio.timeout(10):
        while c2c_broadcast.status().pending_handlers < 1:  # noqa: ASYNC110 - a snapshot, not an event
            await asyncio.sleep(0.02)
    second = await c2c_broadcast.broadcast("blocked", expect_answers=True, timeout=0.5)
    assert second == [MissingAnswer(hostname=HOST, pid=PID)]
    async with asyncio.timeout(10):  # dropped after waiting OVERLOAD_WAIT (1 s) for a free slot
        while "messages_dropped{reason=overloaded}" not in c2c_broadcast.status().counters:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert c2c_broadcast.status().counters["messages_dropped{reason=overloaded}"] == 1
    assert "(overloaded: 1 handlers still running after 1 s)" in caplog.text
    release.set()
    assert [a.payload for a in await first if isinstance(a, BroadcastResponse)] == ["done"]


async def test_default_timeout_is_read_at_use_time(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> None:
    await start_on_redis(monkeypatch, redis_server.url)

    async def slow() -> None:
        await asyncio.sleep(30)

    await c2c_broadcast.subscribe("slow", slow)
    monkeypatch.setenv("C2C__BROADCAST__DEFAULT_TIMEOUT", "0.3")
    reload_settings(Settings)
    begin = time.monotonic()
    assert await c2c_broadcast.broadcast("slow", expect_answers=True) == [MissingAnswer(hostname=HOST, pid=PID)]
    assert time.monotonic() - begin < 5  # 0.3 s after the reload, not the 10 s read at startup


async def test_zero_timeout_still_publishes(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> None:
    """`timeout` bounds the wait for answers, not the publication (which gets `connect_timeout`)."""
    await start_on_redis(monkeypatch, redis_server.url)
    calls: list[int] = []

    async def echo() -> str:
        calls.append(1)
        return "x"

    await c2c_broadcast.subscribe("echo", echo)
    answers = await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=0)
    assert len(answers) == 1  # one replica registered: its answer, or a MissingAnswer naming it
    assert answers[0].hostname == HOST
    async with asyncio.timeout(10):
        while not calls:  # noqa: ASYNC110 - the handler runs in another task
            await asyncio.sleep(0.02)


async def test_frozen_redis_is_noticed_and_left(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that stops answering without closing connections (SIGSTOP): PING finds out, then recovery."""
    caplog.set_level(logging.INFO, logger="c2c_broadcast")
    await start_on_redis(monkeypatch, redis_server.url)
    assert c2c_broadcast.status().healthy
    with redis_server.frozen():
        async with asyncio.timeout(20):
            while c2c_broadcast.status().healthy:  # noqa: ASYNC110 - a snapshot, not an event
                await asyncio.sleep(0.05)
        assert "no answer to PING" in (c2c_broadcast.status().last_error or "")
        assert c2c_broadcast.status().state == "reconnecting"
        # Reconnection attempts against the frozen server time out (connect_timeout 1 s) instead of hanging.
        async with asyncio.timeout(20):
            while "TimeoutError" not in (c2c_broadcast.status().last_error or ""):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    await _wait_healthy()
    back = [record for record in caplog.records if "Redis is back" in record.getMessage()]
    assert [record.levelno for record in back] == [logging.INFO]  # the outage was the WARNING

    async def echo() -> str:
        return "ok"

    await c2c_broadcast.subscribe("echo", echo)
    answers = await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=10)
    assert [a.payload for a in answers if isinstance(a, BroadcastResponse)] == ["ok"]


async def test_a_burst_larger_than_the_handler_limit_is_not_dropped(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    """Back-pressure: with quick handlers, 2000 buffered messages and a limit of 10 lose nothing."""
    await start_on_redis(monkeypatch, redis_server.url, C2C__BROADCAST__MAX_PENDING_HANDLERS="10")
    received: list[int] = []
    all_received = asyncio.Event()

    async def count(*, n: int) -> None:
        await asyncio.sleep(0)
        received.append(n)
        if len(received) == 2000:
            all_received.set()

    await c2c_broadcast.subscribe("count", count)
    async with raw.pipeline(transaction=False) as pipe:
        for n in range(2000):
            pipe.publish("broadcast_api_count", json.dumps({"params": {"n": n}}))
        await pipe.execute()
    async with asyncio.timeout(30):
        await all_received.wait()
    assert sorted(received) == list(range(2000))
    assert not any(key.startswith("messages_dropped") for key in c2c_broadcast.status().counters)


async def test_registry_entries_written_by_hand_cost_nothing(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    """Someone with write access to Redis adds registry entries: not UTF-8, never expiring, a ghost.

    A call answers at once with the live replica's answer, never an error (bytes that are not UTF-8
    used to fail the publishing script's reply: 500s until removed by hand), and the next heartbeat
    removes the entries that would never expire.
    """
    await start_on_redis(monkeypatch, redis_server.url)

    async def echo(**params: Any) -> Any:
        return params

    await c2c_broadcast.subscribe("echo", echo)
    key = "broadcast_api_c2c_registry:echo"
    ghost = json.dumps({"h": "ghost-host", "p": 4242, "r": "ghost:4242:abc"})
    forged: dict[bytes, float] = {
        b"\xff": float("inf"),
        ghost.encode(): float("inf"),
        "caf\u00e9".encode(): float("inf"),
    }
    await raw.zadd(key, forged)
    soon = int(time.time() * 1000) + 60_000
    await raw.zadd(key, {b"\xfe\xff": soon})  # expires in time, but is not ASCII: skipped
    started = time.monotonic()
    answers = await c2c_broadcast.broadcast("echo", {"x": 1}, expect_answers=True, timeout=5)
    assert answers == [BroadcastResponse[Any](hostname=HOST, pid=PID, payload={"x": 1})]
    assert time.monotonic() - started < 2
    async with asyncio.timeout(10):
        while await raw.zcard(key) != 2:  # noqa: ASYNC110 - Redis's state; this replica and the short-lived junk entry
            await asyncio.sleep(0.1)
    assert await raw.zscore(key, ghost) is None


def test_a_replayed_answer_is_counted_once() -> None:
    from c2c_broadcast._calls import Collector as _Collector

    collector = _Collector("request")
    assert collector.add(_answer("a", 1))
    assert not collector.add(_answer("a", 2))
    assert collector.add(_answer(None, 3)) and collector.add(_answer(None, 4))  # 0.14 answers carry no replica id
    assert [answer.pid for answer in collector.answers] == [1, 3, 4]


def _answer(replica: str | None, n: int = 0) -> Any:
    from c2c_broadcast._wire import Answer

    return Answer(hostname="h", pid=n, payload=n, replica=replica)


@pytest.mark.parametrize(
    ("registered", "subscribers", "everyone", "answers", "primary_done", "all_done", "anonymous"),
    [
        # every registered replica answered: done
        (["a", "b"], 2, True, ["a", "b"], True, True, 0),
        (["a", "b"], 2, True, ["a"], False, False, 0),
        # an exact-channel monitor (SUBSCRIBE) is counted: the bounded extra wait, then one MissingAnswer()
        (["a", "b"], 3, True, ["a", "b"], True, False, 1),
        # a killed replica is still registered but no longer subscribed (pattern subscribers, such as a
        # monitoring PSUBSCRIBE *, are never in NUMSUB's count: test_monitoring_subscribers_do_not_delay_answers)
        (["a", "b", "c"], 2, True, ["a", "c"], True, True, 0),
        # a second answer of one replica (a replayed answer) is not counted
        (["a", "b"], 2, True, ["a", "a"], False, False, 0),
        # answers of unregistered (0.14) replicas count towards NUMSUB's subscribers
        (["a"], 3, True, [None, "a"], True, False, 1),
        (["a"], 3, True, [None, "a", None], True, True, 0),
        (["a"], 3, True, [None, None], False, False, 0),
        # nobody registered (only 0.14 replicas): NUMSUB's count decides, as PUBLISH's did in 0.14
        ([], 2, True, [None], True, False, 1),
        ([], 2, True, [None, None], True, True, 0),
        ([], 0, True, [], True, True, 0),
        # a call to a subset: 0.14 replicas ignore addressing, nothing is waited for them
        ([], 3, False, [], True, True, 0),
        (["a"], 3, False, ["a"], True, True, 0),
    ],
)
def test_when_a_call_stops_waiting(
    registered: list[str],
    subscribers: int,
    everyone: bool,
    answers: list[str | None],
    primary_done: bool,
    all_done: bool,
    anonymous: int,
) -> None:
    from c2c_broadcast._calls import Collector as _Collector

    collector = _Collector("request")
    for index, replica in enumerate(answers):
        collector.add(_answer(replica, index))
    assert not collector.primary_done.is_set()  # nothing is decided before PUBLISH returned
    collector.expect({name: ("h", i) for i, name in enumerate(registered)}, subscribers, everyone)
    assert collector.legacy == (not registered and everyone)
    assert collector.primary_done.is_set() == primary_done
    assert collector.all_done.is_set() == all_done
    assert collector.unanswered_unregistered() == anonymous


async def test_draining_on_a_frozen_redis_says_the_entry_was_not_removed(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The drain's one bounded try fails: one WARNING that says how long it waited and when the entry
    expires, and no line claiming the replica left the registry."""
    caplog.set_level(logging.INFO, logger="c2c_broadcast")
    await start_on_redis(monkeypatch, redis_server.url)
    await c2c_broadcast.subscribe("drain_frozen", lambda: "ok")
    with redis_server.frozen():
        await c2c_broadcast.drain()
    lines = [record.getMessage() for record in caplog.records if "draining" in record.getMessage()]
    assert len(lines) == 1, lines
    assert "could not leave the registry (TimeoutError: no answer within 1 s)" in lines[0]
    assert "its entry expires within PT5S" in lines[0]


async def test_calls_wanting_answers_fail_at_once_while_redis_is_known_down(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    """Redis down and retried in vain: a call no longer waits `connect_timeout` (here 30 s) for the
    answers subscription; it fails long before. Once Redis is back, calls are answered again."""
    await start_on_redis(monkeypatch, redis_server.url, C2C__BROADCAST__CONNECT_TIMEOUT="30")
    await c2c_broadcast.subscribe("known_down_echo", lambda: "ok")
    redis_server.stop()
    async with asyncio.timeout(20):
        while c2c_broadcast.status().healthy:  # noqa: ASYNC110 - a snapshot, not an event
            await asyncio.sleep(0.05)
    broadcaster = c2c_broadcast.get_broadcaster()
    assert isinstance(broadcaster, RedisBroadcaster)
    subscriber = broadcaster.answers_subscriber
    async with asyncio.timeout(20):
        while subscriber.attempts < 2:  # noqa: ASYNC110 - a snapshot, not an event
            await asyncio.sleep(0.05)
    async with asyncio.timeout(10):  # a third of connect_timeout: it did not wait for the subscription
        with pytest.raises(c2c_broadcast.BroadcastUnavailableError, match="cannot collect answers"):
            await c2c_broadcast.broadcast("known_down_echo", expect_answers=True, timeout=30)
    redis_server.start()
    await _wait_healthy()
    result = await c2c_broadcast.broadcast("known_down_echo", expect_answers=True, timeout=10)
    assert [answer.payload for answer in result if isinstance(answer, BroadcastResponse)] == ["ok"]
