"""The logging tool re-applies the stored overrides a replica missed (Redis restart, failover)."""

from __future__ import annotations

import logging
import os

import pytest

from c2c_testing import RedisServer
from c2casgiutils import config
from c2casgiutils.tools.logging_ import LoggingTool

PREFIX = "c2c_logging_level_"


@pytest.fixture
def redis_settings(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> RedisServer:
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    config.reload()
    return redis_server


async def test_sync_applies_missed_changes(redis_settings: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from c2c_config.redis import reset_factory

    tool = LoggingTool()
    logger = logging.getLogger("c2c_sync_test")
    logger.setLevel(logging.WARNING)
    try:
        # A change stored while this replica was not listening.
        redis_settings.command("SET", PREFIX + "c2c_sync_test", "DEBUG")
        redis_settings.command("SET", PREFIX + "c2c_sync_bad", "LOUD")  # skipped, does not stop the others
        assert await tool.sync() == 1
        assert logger.level == logging.DEBUG
        assert await tool.sync() == 0  # already in line: nothing to do
        # The override deleted elsewhere: the level the logger had before comes back.
        redis_settings.command("DEL", PREFIX + "c2c_sync_test")
        assert await tool.sync() == 1
        assert logger.level == logging.WARNING
    finally:
        await tool.shutdown()
        await reset_factory()
        monkeypatch.delenv("C2C__REDIS__URL")
        config.reload()
