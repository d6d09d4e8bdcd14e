"""A failing Redis ping is one log line, not a redis-py traceback (issue 15, item 4).

Real redis-server, stopped: the factory logs the failing check once, as a WARNING without
traceback that names the error; the traceback stays available at DEBUG.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from c2c_config import RedisSettings
from c2c_health import Factory, Redis
from c2c_testing import RedisServer

try:
    from c2c_config.redis import RedisFactory

    HAVE_REDIS = True
except ModuleNotFoundError:
    HAVE_REDIS = False

pytestmark = pytest.mark.skipif(not HAVE_REDIS, reason="needs the redis extra: c2c-health[redis]")

MakeFactory = Callable[..., Factory]


@pytest.fixture
async def stopped_redis(redis_server: RedisServer) -> AsyncIterator[tuple[Any, int]]:
    """A Redis client factory whose server has stopped (the port is closed), and that port."""
    factory = RedisFactory(RedisSettings(url=redis_server.url, options={"socket_timeout": 2}))
    await _ping(factory)
    redis_server.stop()
    yield factory, redis_server.port
    await factory.aclose()


async def _ping(factory: Any) -> None:
    client = factory.master()
    assert client is not None
    assert await client.ping()


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= level]


async def test_failing_ping_logs_one_line(
    make_factory: MakeFactory, stopped_redis: tuple[Any, int], caplog: pytest.LogCaptureFixture
) -> None:
    redis_factory, port = stopped_redis
    factory = make_factory(timeout=5)
    factory.add(Redis(tags=["readiness"], factory=redis_factory))
    with caplog.at_level(logging.DEBUG):
        (outcome,) = (await factory.run()).outcomes
    assert outcome.status_code == 500

    shown = _records(caplog, logging.INFO)
    assert len(shown) == 1, caplog.text
    (line,) = shown
    assert line.levelno == logging.WARNING
    assert line.exc_info is None  # no traceback at WARNING
    assert "\n" not in line.getMessage()
    assert "ConnectionError" in line.getMessage()
    assert f"127.0.0.1:{port}" in line.getMessage()  # what failed, where

    # The detail is there for whoever turns DEBUG on.
    detailed = [record for record in caplog.records if record.levelno == logging.DEBUG and record.exc_info]
    assert any("Redis health check: ping failed: ConnectionError" in record.getMessage() for record in detailed)


async def test_failing_ping_of_master_and_replica_logs_one_line(
    make_factory: MakeFactory, redis_server_factory: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Master and replica both down (two pings fail): still one line for the check."""
    master, replica = redis_server_factory(), redis_server_factory()
    factory = RedisFactory(RedisSettings(url=master.url, options={"socket_timeout": 2}))
    replica_factory = RedisFactory(RedisSettings(url=replica.url, options={"socket_timeout": 2}))

    class TwoServers:
        def master(self) -> Any:
            return factory.master()

        def replica(self) -> Any:
            return replica_factory.master()

    try:
        # Clients created (and their INFO line logged) before the servers stop.
        await _ping(factory)
        await _ping(replica_factory)
        master.stop()
        replica.stop()
        checks = make_factory(timeout=5)
        checks.add(Redis(tags=["readiness"], factory=TwoServers()))  # type: ignore[arg-type]
        with caplog.at_level(logging.DEBUG):
            (outcome,) = (await checks.run()).outcomes
        assert outcome.status_code == 500
        assert set(outcome.payload) == {"master_error", "slave_error"}
        shown = _records(caplog, logging.INFO)
        assert len(shown) == 1, caplog.text
        assert shown[0].exc_info is None
    finally:
        await factory.aclose()
        await replica_factory.aclose()
