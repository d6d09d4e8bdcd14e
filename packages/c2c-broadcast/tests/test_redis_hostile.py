"""The Redis broadcaster against a real redis-server that someone else writes to, or that freezes.

- A registry entry of any size written by hand: the calls skip it, the heartbeat removes it.
- A registry key of another type (`SET <registry key> junk`): the broadcaster owns it, deletes it
  and says so, so that calls and the heartbeat recover by themselves.
- A frozen Redis costs a request (a context) one wait, not one per call it makes.
"""

# mypy: disallow-untyped-calls=False

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import Any

import pytest
from _broadcast_helpers import start_on_redis

import c2c_broadcast
from c2c_broadcast import BroadcastResponse, BroadcastUnavailableError
from c2c_testing import RedisServer

try:  # the Redis client is optional (`c2c-broadcast[redis]`): without it there is no Redis to write to
    from c2c_broadcast._calls import PUBLISH_SCRIPT
    from c2c_broadcast._registry import MAX_REPLICAS
    from c2c_config import redis as c2c_redis
except ModuleNotFoundError:
    PUBLISH_SCRIPT = ""

pytestmark = pytest.mark.skipif(not PUBLISH_SCRIPT, reason="needs the redis extra: c2c-broadcast[redis]")

REGISTRY = "broadcast_api_c2c_registry:echo"
LIMIT = 1024  # `_registry.MAX_MEMBER_LENGTH`


def _redis_now_ms(server: RedisServer) -> int:
    reply = server.command("TIME")
    assert isinstance(reply, list)
    seconds, micros = (int(_text(part)) for part in reply)
    return seconds * 1000 + micros // 1000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _echo(**params: Any) -> Any:
    return params


async def _until(predicate: Any, seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 - polls Redis, not an event
            await asyncio.sleep(0.05)


@pytest.fixture
async def echoing(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> RedisServer:
    """The test's Redis, on which this process's broadcaster answers `echo`; its warnings captured."""
    caplog.set_level(logging.WARNING, logger="c2c_broadcast")
    await start_on_redis(monkeypatch, redis_server.url)
    await c2c_broadcast.subscribe("echo", _echo)
    return redis_server


async def test_an_oversize_registry_entry_is_skipped_and_removed(
    echoing: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server = echoing
    huge = "x" * 2_000_000
    long_json = '{"h": "' + "h" * 1500 + '", "p": 1, "r": "r"}'

    # The heartbeat (every 0.5 s) removes entries longer than any replica writes.
    redis_server.command("ZADD", REGISTRY, str(_redis_now_ms(redis_server) + 60_000), huge)
    redis_server.command("ZADD", REGISTRY, str(_redis_now_ms(redis_server) + 60_000), long_json)
    await _until(lambda: redis_server.command("ZCARD", REGISTRY) == 1)
    entries = redis_server.command("ZRANGE", REGISTRY, "0", "-1")
    assert isinstance(entries, list)
    [ours] = entries
    assert len(_text(ours)) < 200
    # Logged once the heartbeat's script has returned: maybe just after Redis shows the removal.
    await _until(lambda: any("longer than" in record.getMessage() for record in caplog.records))

    # The publishing script skips them (not sent to the caller) and removes them too.
    redis_server.command("ZADD", REGISTRY, str(_redis_now_ms(redis_server) + 60_000), huge)
    reply = redis_server.command(
        "EVAL", PUBLISH_SCRIPT, "1", REGISTRY, "nobody_listens", "{}", "86400000", str(MAX_REPLICAS), str(LIMIT)
    )
    assert isinstance(reply, list)
    members = reply[0]
    assert isinstance(members, list)
    assert [_text(member) for member in members] == [_text(ours)]
    assert redis_server.command("ZSCORE", REGISTRY, huge) is None

    answers = await c2c_broadcast.broadcast("echo", {"a": 1}, expect_answers=True, timeout=10)
    assert [answer.payload for answer in answers if isinstance(answer, BroadcastResponse)] == [{"a": 1}]


async def test_a_registry_key_of_another_type_is_repaired_by_a_call(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="c2c_broadcast")
    # A long heartbeat: the call itself must repair the key.
    await start_on_redis(
        monkeypatch, redis_server.url, C2C__BROADCAST__HEARTBEAT_INTERVAL="60", C2C__BROADCAST__REPLICA_TTL="300"
    )
    await c2c_broadcast.subscribe("echo", _echo)
    redis_server.command("SET", REGISTRY, "junk")
    answers = await c2c_broadcast.broadcast("echo", {"a": 1}, expect_answers=True, timeout=3)
    # The registry was lost with the junk: the answer comes (this replica is subscribed), not a 503.
    assert [answer.payload for answer in answers if isinstance(answer, BroadcastResponse)] == [{"a": 1}]
    assert _text(redis_server.command("TYPE", REGISTRY)) in ("none", "zset")
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(REGISTRY in message and "another type" in message for message in warnings), warnings


async def test_a_registry_key_of_another_type_is_repaired_by_the_heartbeat(
    echoing: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server = echoing
    redis_server.command("SET", REGISTRY, "junk")
    # Within a heartbeat or two (0.5 s): a sorted set again, this replica in it.
    await _until(lambda: _text(redis_server.command("TYPE", REGISTRY)) == "zset", 5)
    assert redis_server.command("ZCARD", REGISTRY) == 1
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(REGISTRY in message and "another type" in message for message in warnings), warnings
    assert not any("WRONGTYPE" in message for message in warnings), warnings
    answers = await c2c_broadcast.broadcast("echo", {"a": 2}, expect_answers=True, timeout=10)
    assert [answer.payload for answer in answers if isinstance(answer, BroadcastResponse)] == [{"a": 2}]


async def test_a_frozen_redis_costs_a_request_one_wait(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    """SIGSTOP: the first call of a request waits (and fails), the next ones of that request fail at once."""
    await start_on_redis(monkeypatch, redis_server.url)
    await c2c_broadcast.subscribe("echo", _echo)

    async def request() -> tuple[list[float], list[str]]:
        """Two calls in one request (its own context, as a server gives each request)."""
        durations, errors = [], []
        with c2c_redis.request_scope():
            for _ in range(2):
                started = time.monotonic()
                with pytest.raises(BroadcastUnavailableError) as raised:
                    await c2c_broadcast.broadcast("echo", {}, expect_answers=True, timeout=1)
                durations.append(time.monotonic() - started)
                errors.append(str(raised.value))
        return durations, errors

    # Connected for longer than the skip window: a (re)connection within it would say Redis may be back.
    await asyncio.sleep(c2c_redis.SKIP_AFTER_FAILURE + 0.1)
    try:
        with redis_server.frozen():
            context = contextvars.copy_context()
            durations, errors = await asyncio.get_running_loop().create_task(request(), context=context)
            # The auth-like case: a request whose earlier Redis call failed does not ask again either.
            with c2c_redis.request_scope():
                c2c_redis.note_unreachable("TimeoutError: no answer within 5 s")
                started = time.monotonic()
                with pytest.raises(BroadcastUnavailableError, match="not asked again"):
                    await c2c_broadcast.broadcast("echo", {}, expect_answers=False, timeout=1)
                assert time.monotonic() - started < 0.5  # asking would wait the 1 s connect timeout
    finally:
        c2c_redis.reset_unreachable()
    assert durations[0] >= 0.9, durations  # the first call waited (connect_timeout 1 s)
    assert durations[1] < 0.5, durations  # the second did not (waiting is >= 0.9 s; margin for a loaded CI)
    assert "not asked again, it failed earlier in this request" in errors[1], errors
    # Another request, once Redis answers again, is not refused.
    with c2c_redis.request_scope():
        answers = await c2c_broadcast.broadcast("echo", {"b": 1}, expect_answers=True, timeout=10)
    assert [answer.payload for answer in answers if isinstance(answer, BroadcastResponse)] == [{"b": 1}]
