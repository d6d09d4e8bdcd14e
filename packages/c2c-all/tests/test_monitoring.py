"""The broadcaster watched through a health check and Prometheus, against a real redis-server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

import c2c_broadcast
from c2c_testing import RedisServer
from c2casgiutils import config, monitoring


@pytest.fixture
async def clean() -> AsyncIterator[None]:
    yield
    await c2c_broadcast.shutdown()


async def _until(predicate: Callable[[], bool]) -> None:
    """Poll a status snapshot (the broadcaster offers no event to wait on), bounded to 20 s."""
    async with asyncio.timeout(20):
        while not predicate():  # noqa: ASYNC110 - a snapshot, not an event
            await asyncio.sleep(0.1)


async def test_local_broadcaster_is_healthy(clean: None) -> None:
    await c2c_broadcast.startup()
    result = await monitoring.BroadcastCheck().check()
    assert result.status_code == 200
    assert result.payload["kind"] == "local"


async def test_startup_reports_the_broadcaster_to_prometheus(monkeypatch: pytest.MonkeyPatch) -> None:
    """`c2casgiutils.startup()` installs the broadcast metrics in the default registry (as documented)."""
    import c2casgiutils

    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("C2C__PROMETHEUS__PREFIX", "c2cstartup_")
    config.reload()
    try:
        await c2casgiutils.startup()

        async def echo() -> str:
            return "ok"

        await c2c_broadcast.subscribe("monitoring_startup_echo", echo)
        assert await c2c_broadcast.broadcast("monitoring_startup_echo", expect_answers=True, timeout=5)
        text = generate_latest(REGISTRY).decode()
        assert 'c2cstartup_broadcast_healthy{kind="local"} 1.0' in text
        assert "# TYPE c2cstartup_broadcast_events_total counter" in text  # the local broadcaster counts nothing
    finally:
        await c2casgiutils.shutdown()
        monkeypatch.undo()
        config.reload()


async def test_broadcast_state_in_multiprocess_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With `PROMETHEUS_MULTIPROC_DIR` the served registry reads the workers' files, not the default
    registry: `<prefix>broadcast_healthy` (the serving worker's state, read at scrape time) is added to it,
    even when the registry was built (`start_server`) before `startup()` installed the gauge."""
    import c2casgiutils
    from c2casgiutils import prometheus

    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("C2C__PROMETHEUS__PREFIX", "c2cmultiprocess_")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config.reload()
    served = prometheus.registry()
    assert served is not REGISTRY
    try:
        await c2casgiutils.startup()
        assert 'c2cmultiprocess_broadcast_healthy{kind="local"} 1.0' in generate_latest(served).decode()
        assert 'c2cmultiprocess_broadcast_healthy{kind="local"} 1.0' in generate_latest(prometheus.registry()).decode()
    finally:
        await c2casgiutils.shutdown()
        monkeypatch.undo()
        config.reload()


async def test_redis_outage_and_metrics(
    clean: None, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    monkeypatch.setenv("C2C__BROADCAST__RECONNECT_MAX_DELAY", "1")
    config.reload()
    registry = CollectorRegistry()
    metrics = monitoring.install_metrics("c2ctest_", registry)
    assert monitoring.install_metrics("c2ctest_", registry) is metrics  # registered once
    try:
        await c2c_broadcast.startup(metrics=metrics)
        check = monitoring.BroadcastCheck(tags=["readiness"])
        await _until(lambda: c2c_broadcast.status().healthy)
        assert (await check.check()).status_code == 200

        async def echo() -> str:
            return "ok"

        await c2c_broadcast.subscribe("monitoring_echo", echo)
        answers = await c2c_broadcast.broadcast("monitoring_echo", expect_answers=True, timeout=5)
        assert [a.payload for a in answers if isinstance(a, c2c_broadcast.BroadcastResponse)] == ["ok"]
        text = generate_latest(registry).decode()
        assert 'c2ctest_broadcast_healthy{kind="redis"} 1.0' in text
        assert 'c2ctest_broadcast_events_total{event="broadcasts_sent",reason=""}' in text

        redis_server.stop()
        await _until(lambda: not c2c_broadcast.status().healthy)
        down = await check.check()
        assert down.status_code == 503
        assert down.public_payload == {"state": c2c_broadcast.status().state}
        assert 'c2ctest_broadcast_healthy{kind="redis"} 0.0' in generate_latest(registry).decode()

        redis_server.start()
        await _until(lambda: c2c_broadcast.status().healthy)
        assert (await check.check()).status_code == 200
    finally:
        await c2c_broadcast.shutdown()
        from c2c_config.redis import reset_factory

        await reset_factory()
        monkeypatch.delenv("C2C__REDIS__URL")
        config.reload()
