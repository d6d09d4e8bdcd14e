"""The logging tool (and a broadcast request) against a real redis-server that someone else writes to, or that freezes.

- A stored value of any size costs a read no more than a valid level (`MAX_VALUE_LENGTH`).
- The synchronisation creates a bounded number of loggers for stored overrides (`MAX_CREATED_LOGGERS`);
  the others apply once the application creates its logger.
- A read cut by `MAX_KEYS` or `MAX_OVERRIDES` is reported: `degraded`, with the reason.
- An unsigned broadcast change with an out-of-range duration is refused (an error answer).
- A frozen Redis costs `GET /c2c/replicas` one `C2C__REDIS__TIMEOUT` (the authentication's), not a
  second wait in the broadcast.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _c2c_all_env import clear_c2c_variables

import c2c_broadcast
from c2c_broadcast import BroadcastResponse, ErrorAnswer
from c2c_config.redis import SKIP_AFTER_FAILURE
from c2c_testing import RedisServer
from c2casgiutils import config, monitoring
from c2casgiutils.tools import _overrides as overrides_module
from c2casgiutils.tools import logging_ as logging_tool

pytestmark = pytest.mark.usefixtures("fresh_logging_tool")

SECRET = "hostile-test-secret"
KEY = {"X-API-Key": SECRET}
PREFIX = "c2c_logging_level_"


@pytest.fixture
async def tool(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[logging_tool.LoggingTool]:
    """A tool reading the real Redis (no broadcaster started)."""
    from c2c_config.redis import reset_factory

    clear_c2c_variables(monkeypatch)
    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    config.reload()
    created = logging_tool._TOOL = logging_tool.LoggingTool()  # the one `LoggingSyncCheck` asks
    yield created
    await created.shutdown()
    await reset_factory()
    clear_c2c_variables(monkeypatch)
    config.reload()


def _output_bytes(server: RedisServer) -> int:
    info = server.command("INFO", "stats")
    text = info.decode() if isinstance(info, bytes) else str(info)
    (line,) = [line for line in text.splitlines() if line.startswith("total_net_output_bytes:")]
    return int(line.split(":", 1)[1])


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.WARNING and record.name == logging_tool.LOG.name
    ]


def _forget_loggers(prefix: str) -> None:
    """Remove the test's loggers (Python never does): they would leak into the next tests."""
    manager = logging.Logger.manager
    for name in [name for name in manager.loggerDict if name.startswith(prefix)]:
        del manager.loggerDict[name]


_STORE_SCRIPT = """
for i = 1, tonumber(ARGV[1]) do redis.call('SET', KEYS[1] .. i, ARGV[2]) end
return 1
"""
_DELETE_SCRIPT = """
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', key) end
return 1
"""


async def test_an_oversize_value_is_ignored_without_being_downloaded(
    tool: logging_tool.LoggingTool, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # 10 MB written in Redis itself (not sent by the test), a level padded with spaces, a valid override.
    redis_server.command("EVAL", "redis.call('SET', KEYS[1], string.rep('x', 10000000))", "1", PREFIX + "hostile_big")
    redis_server.command("SET", PREFIX + "hostile_padded", "DEBUG" + " " * 100)
    redis_server.command("SET", PREFIX + "hostile_ok", "ERROR")
    before = _output_bytes(redis_server)
    with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
        assert await tool.overrides() == [("hostile_ok", "ERROR", None)]
    sent = _output_bytes(redis_server) - before
    assert sent < 100_000, sent  # the 10 MB value stayed in Redis
    assert tool.sync_status().ignored == 2
    warnings = _warnings(caplog)
    for key in ("hostile_big", "hostile_padded"):
        assert any(key in message and "bytes long" in message for message in warnings), (key, warnings)


async def test_the_sync_creates_a_bounded_number_of_loggers(
    tool: logging_tool.LoggingTool, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging_tool, "MAX_CREATED_LOGGERS", 5, raising=False)
    names = f"hostile_new_{secrets.token_hex(4)}_"
    redis_server.command("EVAL", _STORE_SCRIPT, "1", PREFIX + names, "20", "DEBUG")
    try:
        for _ in range(3):  # every round would create others
            await tool.sync()
        created = [name for name, value in logging.Logger.manager.loggerDict.items() if name.startswith(names)]
        assert len(created) <= 5, created
        assert all(logging.getLogger(name).level == logging.DEBUG for name in created)
        # A logger the application creates later gets its stored level at the next synchronisation.
        later = next(f"{names}{index}" for index in range(1, 21) if f"{names}{index}" not in created)
        logger = logging.getLogger(later)
        assert logger.level == logging.NOTSET
        await tool.sync()
        assert logger.level == logging.DEBUG
        # A deleted override is restored on it too.
        redis_server.command("DEL", PREFIX + later)
        await tool.sync()
        assert logger.level == logging.NOTSET
    finally:
        _forget_loggers(names)


async def test_a_read_cut_by_max_keys_is_reported(
    tool: logging_tool.LoggingTool, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overrides_module, "MAX_KEYS", 100)
    redis_server.command("EVAL", _STORE_SCRIPT, "1", PREFIX + "hostile_junk_", "300", "LOUD")
    get = monitoring.LoggingSyncCheck()
    assert await tool._try_sync()  # a round of the synchronisation: the read succeeded
    status = tool.sync_status()
    assert status.state == "degraded", status
    assert status.last_error is not None and "only 100 were read" in status.last_error, status
    result = await get.check()
    assert result.status_code == 503, result
    assert "only 100 were read" in str(result.payload), result.payload
    redis_server.command("EVAL", _DELETE_SCRIPT, "0", PREFIX + "hostile_junk_*")
    assert await tool._try_sync()
    assert tool.sync_status().state == "in_sync", tool.sync_status()
    assert (await get.check()).status_code == 200


async def test_a_read_cut_by_max_overrides_is_reported(
    tool: logging_tool.LoggingTool, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overrides_module, "MAX_OVERRIDES", 10)
    monkeypatch.setattr(logging_tool, "MAX_CREATED_LOGGERS", 0, raising=False)  # no logger made for them
    names = f"hostile_many_{secrets.token_hex(4)}_"
    redis_server.command("EVAL", _STORE_SCRIPT, "1", PREFIX + names, "30", "DEBUG")
    try:
        assert await tool._try_sync()
        status = tool.sync_status()
        assert status.state == "degraded", status
        assert status.last_error is not None and "only 10 applied" in status.last_error, status
    finally:
        _forget_loggers(names)


async def test_an_unsigned_broadcast_duration_out_of_range_is_refused(
    redis_client: httpx.AsyncClient,
) -> None:
    logger = logging.getLogger("hostile_duration")
    try:
        for duration in (-5, 0, 0.5, 1e308, 7 * 86400 + 1, "-1"):
            answers = await c2c_broadcast.broadcast(
                logging_tool.CHANNEL,
                {"name": "hostile_duration", "level": "DEBUG", "duration": duration},
                expect_answers=True,
                timeout=5,
            )
            assert len(answers) == 1, answers
            assert isinstance(answers[0], ErrorAnswer), (duration, answers)
            assert "duration" in answers[0].message, answers
            assert logger.level == logging.NOTSET, duration
        for duration in (math.nan, math.inf, -math.inf):  # not JSON: sent by hand, refused by the handler
            with pytest.raises(ValueError, match="duration"):
                await logging_tool.get_tool().handle(name="hostile_duration", level="DEBUG", duration=duration)
        answers = await c2c_broadcast.broadcast(
            logging_tool.CHANNEL,
            {"name": "hostile_duration", "level": "DEBUG", "duration": 60},
            expect_answers=True,
            timeout=5,
        )
        assert [type(answer) for answer in answers] == [BroadcastResponse], answers
        assert logger.level == logging.DEBUG
    finally:
        logging_tool.get_tool().apply("hostile_duration", None)


async def test_unsigned_broadcasts_create_a_bounded_number_of_loggers(
    redis_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone who can publish on Redis (no broadcast secret) sends level changes for made-up loggers:
    Python never frees a logger, so the handler creates at most `MAX_CREATED_LOGGERS` (the sync's
    budget, shared); beyond, an error answer, and a restore never creates one."""
    monkeypatch.setattr(logging_tool, "MAX_CREATED_LOGGERS", 5)
    names = f"hostile_handler_{secrets.token_hex(4)}_"
    existing = logging.getLogger(f"{names}existing")  # the application's own logger: always settable

    async def send(name: str, level: str | None) -> Any:
        (answer,) = await c2c_broadcast.broadcast(
            logging_tool.CHANNEL, {"name": name, "level": level}, expect_answers=True, timeout=5
        )
        return answer

    try:
        answers = [await send(f"{names}{index}", "DEBUG") for index in range(12)]
        created = [name for name in logging.Logger.manager.loggerDict if name.startswith(names)]
        assert len(created) == 1 + 5, created
        assert [isinstance(answer, BroadcastResponse) for answer in answers] == [True] * 5 + [False] * 7
        assert all(isinstance(answer, ErrorAnswer) for answer in answers[5:])
        assert "loggers were created for overrides already" in answers[5].message, answers[5]
        assert isinstance(await send(f"{names}existing", "ERROR"), BroadcastResponse)
        assert existing.level == logging.ERROR
        # Restoring a logger the process does not have creates nothing.
        assert isinstance(await send(f"{names}never_seen", None), BroadcastResponse)
        assert f"{names}never_seen" not in logging.Logger.manager.loggerDict
    finally:
        for name in [name for name in logging.Logger.manager.loggerDict if name.startswith(names)]:
            logging_tool.get_tool().apply(name, None)
        _forget_loggers(names)


async def test_changes_from_redis_leave_a_trace(
    redis_client: httpx.AsyncClient, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A level change published straight on Redis (no broadcast secret: indistinguishable from a replica's)
    and an override written straight into Redis are applied, as in 0.14, but each leaves an INFO line
    naming the logger, the level and where the change came from."""
    name = f"hostile_traced_{secrets.token_hex(4)}"
    logger = logging.getLogger(name)
    channel = config.settings.redis.broadcast_prefix + logging_tool.CHANNEL
    caplog.set_level(logging.INFO, logger=logging_tool.LOG.name)
    try:
        assert redis_server.command("PUBLISH", channel, json.dumps({"params": {"name": name, "level": "DEBUG"}})) == 1
        for _ in range(100):
            if logger.level == logging.DEBUG:
                break
            await asyncio.sleep(0.05)
        assert logger.level == logging.DEBUG
        redis_server.command("SET", PREFIX + name, "CRITICAL")
        await logging_tool.get_tool().sync()
        assert logger.level == logging.CRITICAL
        lines = [record.getMessage() for record in caplog.records if name in record.getMessage()]
        assert f"Logger {name} set to DEBUG by a broadcast (unsigned: C2C__BROADCAST__SECRET unset)" in lines, lines
        assert f"Logger {name} set to CRITICAL by a stored override (unsigned: C2C__BROADCAST__SECRET unset)" in lines
    finally:
        redis_server.command("DEL", PREFIX + name)
        logging_tool.get_tool().apply(name, None)
        _forget_loggers(name)


async def test_replicas_with_redis_frozen_wait_once(
    c2c_client_factory: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The authentication's Redis call waits `C2C__REDIS__TIMEOUT` (1 s); the broadcast does not wait again."""
    env = {
        "C2C__AUTH__SECRET": SECRET,
        "C2C__REDIS__URL": redis_server.url,
        "C2C__REDIS__TIMEOUT": "1",
        "C2C__TOOLS__VERSIONS_FILE": str(tmp_path / "versions.json"),
    }
    async with c2c_client_factory(env) as client:
        assert (await client.get("/c2c/replicas", headers=KEY)).status_code == 200
        # Connected for longer than the skip window (a recent (re)connection says Redis may be back).
        await asyncio.sleep(SKIP_AFTER_FAILURE + 0.1)
        with redis_server.frozen():
            started = time.monotonic()
            response = await asyncio.wait_for(client.get("/c2c/replicas?timeout=3", headers=KEY), 20)
            elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    # 1 s (the authentication's wait), not 1 s and then as long again in the broadcast (>= 2 s).
    assert 0.9 < elapsed < 1.9, elapsed
