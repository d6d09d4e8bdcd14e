"""Redis failures as production meets them (the Redis-failure audit), on real redis-server processes.

- A Redis that stays down is probed by the kubelet, load balancers and monitors every few seconds:
  the failing check must not log one WARNING per probe (one per `FAILURE_LOG_INTERVAL`, the runs in
  between at DEBUG and counted, one INFO line when it recovers).
- On a Redis Cluster whose first known node is frozen while a topology refresh is pending, the
  Redis check must still name the master that does not answer, within the check's own timeout
  (the refresh and the pings share one deadline), rather than time out or call the whole cluster
  unreachable.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import c2c_health._core
from c2c_config import RedisSettings
from c2c_health import Factory, Redis
from c2c_testing import RedisServer

try:
    from c2c_config.redis import CLUSTER_MIN_REDIS_PY, RedisFactory, redis_py_version

    HAVE_REDIS = True
    CLUSTER_CAPABLE = redis_py_version() >= CLUSTER_MIN_REDIS_PY
except ModuleNotFoundError:  # the isolated run without the redis extra
    HAVE_REDIS = CLUSTER_CAPABLE = False

pytestmark = pytest.mark.skipif(not HAVE_REDIS, reason="needs the redis extra: c2c-health[redis]")

MakeFactory = Callable[..., Factory]


@pytest.fixture
async def stopped_redis(redis_server: RedisServer) -> AsyncIterator[RedisFactory]:
    """A Redis client factory whose server has stopped (the port is closed)."""
    factory = RedisFactory(RedisSettings(url=redis_server.url, timeout=datetime.timedelta(seconds=1)))
    client = factory.master()
    assert client is not None
    assert await client.ping()
    redis_server.stop()
    yield factory
    await factory.aclose()


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= level and record.name == "c2c_health"]


async def test_a_redis_down_is_not_one_warning_per_probe(
    make_factory: MakeFactory, stopped_redis: RedisFactory, caplog: pytest.LogCaptureFixture
) -> None:
    checks = make_factory(timeout=5)
    checks.add(Redis(tags=["readiness"], factory=stopped_redis))
    with caplog.at_level(logging.DEBUG, logger="c2c_health"):
        for _ in range(10):  # ten probes, a few seconds of a kubelet and a load balancer
            (outcome,) = (await checks.run()).outcomes
            assert outcome.status_code == 500
    warnings = _lines(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("Health check 'Redis' is failing with status 500: {'error': \"ConnectionError")
    # The other nine are still there for whoever turns DEBUG on.
    debug = [record for record in caplog.records if record.levelno == logging.DEBUG and "is failing" in record.message]
    assert len(debug) == 9


async def test_a_redis_down_is_logged_again_after_the_interval_and_its_recovery_once(
    make_factory: MakeFactory,
    redis_server_factory: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = redis_server_factory()
    redis = RedisFactory(RedisSettings(url=server.url, timeout=datetime.timedelta(seconds=1)))
    checks = make_factory(timeout=5)
    checks.add(Redis(factory=redis))
    try:
        assert (await checks.run()).outcomes[0].status_code == 200
        server.stop()
        monkeypatch.setattr(c2c_health._core, "FAILURE_LOG_INTERVAL", 0.5)
        with caplog.at_level(logging.INFO, logger="c2c_health"):
            for _ in range(3):
                assert (await checks.run()).outcomes[0].status_code == 500
            await asyncio.sleep(0.6)
            assert (await checks.run()).outcomes[0].status_code == 500  # the interval is over: logged again
            first, second = _lines(caplog, logging.WARNING)
            assert "failing run(s)" not in first
            assert second.endswith("(and 2 failing run(s) since the last such line, logged at DEBUG)")
            caplog.clear()
            server.start()
            assert (await checks.run()).outcomes[0].status_code == 200
            assert (await checks.run()).outcomes[0].status_code == 200
        assert _lines(caplog, logging.INFO) == ["Health check 'Redis' is healthy again (0 failing run(s) not logged)"]
    finally:
        await redis.aclose()


@pytest.mark.skipif(not CLUSTER_CAPABLE, reason="Redis Cluster mode needs the redis extra and redis-py >= 8")
@pytest.mark.parametrize("check_timeout", [1.0, 0.8])
async def test_a_frozen_master_is_named_with_the_default_timeouts(
    make_factory: MakeFactory, redis_cluster_factory: Callable[..., Any], check_timeout: float
) -> None:
    """C2C__HEALTH_CHECKS__TIMEOUT equal to C2C__REDIS__TIMEOUT (both 5 s by default), or shorter, no own timeout.

    The check must answer within its timeout and name the frozen master, not be cut as a whole
    ("timeout", no master named) because its pings were bounded by C2C__REDIS__TIMEOUT alone.
    """
    # A long node timeout: no failover while the node is frozen, the topology stays as it was.
    cluster = redis_cluster_factory(node_timeout_ms=60_000)
    frozen = cluster.masters()[1]
    redis = RedisFactory(RedisSettings(url=cluster.url, cluster=True, timeout=datetime.timedelta(seconds=1)))
    checks = make_factory(timeout=check_timeout)
    checks.add(Redis(factory=redis))
    try:
        assert (await checks.run()).outcomes[0].status_code == 200
        with frozen.frozen():
            started = time.monotonic()
            (outcome,) = (await checks.run()).outcomes
            elapsed = time.monotonic() - started
        assert elapsed < check_timeout, (elapsed, outcome.payload)
        assert outcome.status_code == 500
        assert outcome.payload.get("error") == "1 of 3 Redis Cluster masters are not reachable", outcome.payload
        masters = {entry["address"]: entry["ok"] for entry in outcome.payload["masters"]}
        assert masters.pop(f"{frozen.host}:{frozen.port}") is False
        assert set(masters.values()) == {True}
        (failed,) = [entry for entry in outcome.payload["masters"] if not entry["ok"]]
        assert failed["error"] == f"TimeoutError: no answer within {round(check_timeout * 0.9, 2):g} s"
    finally:
        await redis.aclose()
