"""What `status()` and the logs say when Redis half-works: publishing refused, heartbeat refused, a frozen server.

Against a real redis-server: the permissions are taken away live with `ACL SETUSER` (the listener
stays connected and subscribed), the server is frozen with SIGSTOP.
"""

# mypy: disallow-untyped-calls=False

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from _broadcast_helpers import start_on_redis

import c2c_broadcast
from c2c_broadcast import BroadcastResponse, BroadcastUnavailableError, MissingAnswer
from c2c_testing import RedisServer

try:
    import redis.asyncio as aioredis
except ModuleNotFoundError:
    aioredis = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(aioredis is None, reason="needs the redis extra: c2c-broadcast[redis]")

HOST = socket.gethostname()
PID = os.getpid()


async def _start(monkeypatch: pytest.MonkeyPatch, url: str, **extra: str) -> None:
    await start_on_redis(monkeypatch, url, **extra)
    assert c2c_broadcast.status().healthy


async def _until(condition: Callable[[], bool], seconds: float = 20) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - polling a snapshot
            await asyncio.sleep(0.05)


def _records(caplog: pytest.LogCaptureFixture, text: str, level: int) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == level and record.name.startswith("c2c_broadcast") and text in record.getMessage()
    ]


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.WARNING and record.name.startswith("c2c_broadcast") and text in record.getMessage()
    ]


def _payloads(answers: list[BroadcastResponse[Any] | MissingAnswer]) -> list[Any]:
    return [answer.payload if isinstance(answer, BroadcastResponse) else answer for answer in answers]


def _refused(text: str) -> bool:
    """Redis's own words for a command the ACL forbids (in a script, or directly)."""
    return "can't run this command" in text or "no permissions" in text


async def _echo() -> str:
    return "ok"


async def test_publishing_refused_makes_the_status_unhealthy_until_it_works_again(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """`ACL SETUSER default -@pubsub`: the listener stays subscribed, every call fails; status says so, logs once."""
    caplog.set_level(logging.INFO, "c2c_broadcast")
    await _start(monkeypatch, redis_server.url)
    await c2c_broadcast.subscribe("echo", _echo)
    assert _payloads(await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=5)) == ["ok"]

    redis_server.command("ACL", "SETUSER", "default", "-@pubsub")
    try:
        for _ in range(5):
            with pytest.raises(BroadcastUnavailableError):
                await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=2)
        with pytest.raises(BroadcastUnavailableError):
            await c2c_broadcast.broadcast("echo")  # without answers too
        status = c2c_broadcast.status()
        assert not status.healthy, status
        assert status.state == "degraded", status
        assert status.last_error is not None and "publish" in status.last_error, status
        assert _refused(status.last_error), status
        assert "degraded" in status.describe()
        # The listener's connection still works: the heartbeats succeed meanwhile, and change nothing.
        await asyncio.sleep(1.5)
        assert c2c_broadcast.status().state == "degraded"
        # Logged at WARNING with Redis's error text, rate limited: not one line per call.
        failures = _warnings(caplog, "publishing")
        assert failures, caplog.text
        assert all(_refused(line) for line in failures), failures
        assert len(failures) <= 3, failures
    finally:
        redis_server.command("ACL", "SETUSER", "default", "+@all")

    # No call is needed to notice the recovery: the broadcaster probes publishing meanwhile.
    await _until(lambda: c2c_broadcast.status().healthy, 10)
    assert c2c_broadcast.status().state == "connected"
    assert _records(caplog, "publishing works again", logging.INFO), caplog.text
    assert _payloads(await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=5)) == ["ok"]


async def test_one_failed_call_is_not_enough(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> None:
    """A single failure is a blip: still healthy; the probe that follows it succeeds and forgets it."""
    await _start(monkeypatch, redis_server.url)
    await c2c_broadcast.subscribe("echo", _echo)
    for _ in range(2):
        redis_server.command("ACL", "SETUSER", "default", "-@pubsub")
        try:
            with pytest.raises(BroadcastUnavailableError):
                await c2c_broadcast.broadcast("echo", expect_answers=True, timeout=2)
            assert c2c_broadcast.status().healthy
        finally:
            redis_server.command("ACL", "SETUSER", "default", "+@all")
        await asyncio.sleep(1.5)  # a probe ran (heartbeat interval 0.5 s) and succeeded
        assert c2c_broadcast.status().healthy


async def test_heartbeat_refused_makes_the_status_unhealthy(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The registry cannot be written (`-zadd`), no call is made: the heartbeat alone makes it unhealthy."""
    caplog.set_level(logging.INFO, "c2c_broadcast")
    await _start(monkeypatch, redis_server.url)
    await c2c_broadcast.subscribe("echo", _echo)
    redis_server.command("ACL", "SETUSER", "default", "-zadd")
    try:
        await _until(lambda: not c2c_broadcast.status().healthy, 10)
        status = c2c_broadcast.status()
        assert status.state == "degraded", status
        assert status.last_error is not None and status.last_error.startswith("heartbeat: "), status
        failures = _warnings(caplog, "heartbeat failed")
        assert failures and all(_refused(line) for line in failures), failures
        assert _warnings(caplog, "not healthy"), caplog.text
    finally:
        redis_server.command("ACL", "SETUSER", "default", "+@all")
    await _until(lambda: c2c_broadcast.status().healthy, 10)
    assert c2c_broadcast.status().state == "connected"
    assert _records(caplog, "heartbeat works again", logging.INFO), caplog.text


async def test_a_frozen_redis_is_noticed_within_the_documented_bound(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    """SIGSTOP: the listener gives the connection up within PING interval + PONG wait (README, *Robustness*).

    Heartbeat interval 4 s (PING interval 4 s), C2C__REDIS__TIMEOUT 1 s: the PONG wait is 1 s, so
    the bound is 5 s; checked loosely (× 1.5 + 1 s = 8.5 s). Before the fix: no PONG for 2 × the
    PING interval (8 s) after a PING sent 1 to 1.5 intervals after the freeze (12 to 16 s).
    """
    await _start(
        monkeypatch,
        redis_server.url,
        C2C__BROADCAST__HEARTBEAT_INTERVAL="4",
        C2C__REDIS__TIMEOUT="1",
    )
    await asyncio.sleep(0.3)  # connected and idle, as in production
    documented = 4 + 1
    with redis_server.frozen():
        frozen = time.monotonic()
        await _until(lambda: c2c_broadcast.status().state == "reconnecting", 30)
        detected = time.monotonic() - frozen
        assert "no answer to PING" in (c2c_broadcast.status().last_error or "")
    assert detected <= documented * 1.5 + 1, detected
    await _until(lambda: c2c_broadcast.status().healthy, 20)


async def test_a_burst_of_calls_with_missing_answers_logs_one_line(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """20 calls each missing an answer (a registry entry nobody answers for): one WARNING, 20 counted."""
    await _start(monkeypatch, redis_server.url)
    ghost = json.dumps({"h": "ghost", "p": 1, "r": "ghost:1:000000000000"}, sort_keys=True)
    expiry = int(time.time() * 1000) + 60_000
    redis_server.command("ZADD", "broadcast_api_c2c_registry:ghost", str(expiry), ghost)
    caplog.clear()
    for _ in range(20):
        answers = await c2c_broadcast.broadcast("ghost", expect_answers=True, timeout=2)
        assert answers == [MissingAnswer(hostname="ghost", pid=1)]
    lines = _warnings(caplog, "answer(s) missing")
    assert len(lines) == 1, lines
    assert "'ghost'" in lines[0] and "ghost:1" in lines[0], lines
    assert c2c_broadcast.status().counters["answers_missing"] == 20
    # Another channel has a line of its own.
    redis_server.command("ZADD", "broadcast_api_c2c_registry:other", str(expiry), ghost)
    await c2c_broadcast.broadcast("other", expect_answers=True, timeout=2)
    assert len(_warnings(caplog, "answer(s) missing")) == 2
