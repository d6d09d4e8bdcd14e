"""The Redis check against a real redis-server (and a real Sentinel setup)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from c2c_config import CoreSettings, RedisSettings, reload_settings
from c2c_health import FACTORY, Factory, Redis, router
from c2c_testing import RedisSentinel, RedisServer

try:
    from c2c_config.redis import RedisFactory, get_factory, reset_factory

    HAVE_REDIS = True
except ModuleNotFoundError:
    HAVE_REDIS = False

pytestmark = pytest.mark.skipif(not HAVE_REDIS, reason="needs the redis extra: c2c-health[redis]")

MakeFactory = Callable[..., Factory]


@pytest.fixture
async def redis_factory(redis_server: RedisServer) -> AsyncIterator[Any]:
    factory = RedisFactory(RedisSettings(url=redis_server.url, options={"socket_timeout": 2}))
    yield factory
    await factory.aclose()


async def test_redis_up_down_and_healed(
    make_factory: MakeFactory, redis_server: RedisServer, redis_factory: Any
) -> None:
    factory = make_factory(timeout=2)
    factory.add(Redis(tags=["readiness"], factory=redis_factory))

    (outcome,) = (await factory.run()).outcomes
    assert (outcome.status_code, outcome.payload) == (200, {})

    redis_server.stop()
    start = time.monotonic()
    (outcome,) = (await factory.run()).outcomes
    assert time.monotonic() - start < 10
    assert outcome.status_code == 500
    # Detailed payload names the failure; the public one does not give the address.
    assert outcome.payload["error"].startswith("ConnectionError: ")
    assert f"127.0.0.1:{redis_server.port}" in outcome.payload["error"]
    assert outcome.public_payload == {"error": "Redis is not reachable"}
    assert str(redis_server.port) not in str(outcome.public_payload)

    redis_server.start()
    (outcome,) = (await factory.run()).outcomes
    assert (outcome.status_code, outcome.payload) == (200, {})


async def test_redis_black_holed_times_out_then_heals(make_factory: MakeFactory, redis_server: RedisServer) -> None:
    # A paused server accepts connections but never answers: the check gives up within 90 % of its
    # timeout, so that its report says what did not answer (not only that the check timed out).
    redis_factory = RedisFactory(RedisSettings(url=redis_server.url))
    try:
        factory = make_factory(timeout=0.3)
        factory.add(Redis(factory=redis_factory))
        assert (await factory.run()).outcomes[0].status_code == 200  # a pooled connection exists
        redis_server.command("CLIENT", "PAUSE", "1500", "ALL")
        start = time.monotonic()
        (outcome,) = (await factory.run()).outcomes
        assert time.monotonic() - start < 2.5
        assert outcome.status_code == 500
        assert outcome.payload["error"].startswith("TimeoutError: no answer within 0.2"), outcome.payload
        await asyncio.sleep(1.5)
        # The connection cancelled mid-command is not reused in a broken state.
        (outcome,) = (await factory.run()).outcomes
        assert (outcome.status_code, outcome.payload) == (200, {})
    finally:
        await redis_factory.aclose()


@pytest.fixture
async def redis_from_the_environment(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """`C2C__REDIS__URL` set to the test's Redis, the process-wide factory and settings read again."""
    from c2c_config.redis import reset_unreachable

    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    await reset_factory()
    reload_settings(CoreSettings)
    yield
    await reset_factory()
    monkeypatch.delenv("C2C__REDIS__URL")
    reload_settings(CoreSettings)
    reset_unreachable()


async def test_redis_from_the_environment(make_factory: MakeFactory, redis_from_the_environment: None) -> None:
    factory = make_factory()
    factory.add(Redis())
    (outcome,) = (await factory.run()).outcomes
    assert outcome.status_code == 200
    assert get_factory().mode == "url"


async def test_a_request_that_already_waited_for_redis_does_not_wait_again(
    make_factory: MakeFactory, redis_from_the_environment: None
) -> None:
    """An authenticated probe: the access check waited for a frozen Redis, the Redis check must not
    wait as long again (the request took twice `C2C__REDIS__TIMEOUT`). Redis answers here: only the
    request's memory of the failure can fail the check."""
    from c2c_config.redis import note_unreachable, request_scope

    factory = make_factory()
    factory.add(Redis())
    with request_scope():
        note_unreachable("TimeoutError: no answer within 5 s")
        (outcome,) = (await factory.run()).outcomes
    assert outcome.status_code == 500
    assert outcome.payload == {"error": "not asked: it already failed in this request"}
    with request_scope():  # the next request asks Redis again
        (outcome,) = (await factory.run()).outcomes
    assert outcome.status_code == 200


@pytest.mark.parametrize("path", ["/c2c/health_checks", "/c2c/readyz"])
async def test_the_access_check_runs_before_the_checks(
    make_factory: MakeFactory, make_app: Any, redis_from_the_environment: None, path: str
) -> None:
    """An authenticated probe against a frozen Redis waited twice: the checks, then the access check
    that asks Redis too (c2c-auth). The access check comes first, and the checks know what it met."""
    import httpx

    from c2c_config.redis import note_unreachable

    async def authorize(request: Any) -> bool:
        note_unreachable("TimeoutError: no answer within 5 s")  # what c2c-auth notes on a frozen Redis
        return True

    factory = make_factory()
    factory.add(Redis(tags=["readiness"]))
    transport = httpx.ASGITransport(app=make_app(factory, authorize=authorize))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answer = await client.get(path)
    assert answer.status_code >= 500
    assert "not asked: it already failed in this request" in answer.text  # details: authorised


async def test_redis_not_configured_is_healthy(make_factory: MakeFactory) -> None:
    factory = make_factory()
    factory.add(Redis(factory=RedisFactory(RedisSettings())))
    (outcome,) = (await factory.run()).outcomes
    assert (outcome.status_code, outcome.payload) == (200, {"message": "Redis is not configured"})


async def test_redis_sentinel_master_and_replica(make_factory: MakeFactory, redis_sentinel: RedisSentinel) -> None:
    settings = RedisSettings(sentinels=redis_sentinel.sentinels_str, servicename=redis_sentinel.service_name)
    redis_factory = RedisFactory(settings)
    try:
        factory = make_factory(timeout=3)
        factory.add(Redis(factory=redis_factory))
        (outcome,) = (await factory.run()).outcomes
        assert (outcome.status_code, outcome.payload) == (200, {})
        assert redis_factory.replica() is not redis_factory.master()

        # Master gone, before Sentinel's down-after delay: the master ping fails, the replica answers.
        redis_sentinel.master.stop()
        (outcome,) = (await factory.run()).outcomes
        assert outcome.status_code == 500
        assert set(outcome.payload) == {"master_error"}
        assert outcome.public_payload == {"master_error": "Redis master is not reachable"}
    finally:
        await redis_factory.aclose()


async def test_a_frozen_sentinel_master_is_named_within_the_redis_timeout(
    make_factory: MakeFactory, redis_sentinel: RedisSentinel
) -> None:
    """The master frozen (SIGSTOP: connections open, no answer): one bound for the whole ping, so the
    report names the master after about `C2C__REDIS__TIMEOUT`, not after the client's retries (each a
    socket timeout), which took twice that and more."""
    settings = RedisSettings(
        sentinels=redis_sentinel.sentinels_str,
        servicename=redis_sentinel.service_name,
        timeout=datetime.timedelta(seconds=1),
    )
    redis_factory = RedisFactory(settings)
    try:
        factory = make_factory(timeout=5)
        factory.add(Redis(factory=redis_factory))
        (outcome,) = (await factory.run()).outcomes
        assert outcome.status_code == 200
        with redis_sentinel.master.frozen():
            start = time.monotonic()
            (outcome,) = (await factory.run()).outcomes
            elapsed = time.monotonic() - start
        assert outcome.status_code == 500
        assert set(outcome.payload) == {"master_error"}, outcome.payload
        assert outcome.payload["master_error"] == "TimeoutError: no answer within 1 s"
        assert elapsed < 1.9  # one bound of 1 s (the retries alone would take 2 s or more)
    finally:
        await redis_factory.aclose()


class _TwoServers:
    """Quacks like a RedisFactory in Sentinel mode: master and replica are different servers."""

    def __init__(self, master_url: str, replica_url: str) -> None:
        from redis.asyncio import Redis as Client

        self._master = Client.from_url(master_url)
        self._replica = Client.from_url(replica_url)

    def master(self) -> Any:
        return self._master

    def replica(self) -> Any:
        return self._replica

    async def aclose(self) -> None:
        await self._master.aclose()
        await self._replica.aclose()


async def test_replica_down_reported_separately(
    make_factory: MakeFactory, redis_server_factory: Callable[..., RedisServer]
) -> None:
    master, replica = redis_server_factory(), redis_server_factory()
    servers = _TwoServers(master.url, replica.url)
    try:
        factory = make_factory(timeout=3)
        factory.add(Redis(factory=servers))  # type: ignore[arg-type]
        (outcome,) = (await factory.run()).outcomes
        assert (outcome.status_code, outcome.payload) == (200, {})
        replica.stop()
        (outcome,) = (await factory.run()).outcomes
        assert outcome.status_code == 500
        assert set(outcome.payload) == {"slave_error"}
        assert f":{replica.port}" in outcome.payload["slave_error"]
        assert outcome.public_payload == {"slave_error": "Redis replica is not reachable"}
        master.stop()
        (outcome,) = (await factory.run()).outcomes
        assert set(outcome.payload) == {"master_error", "slave_error"}
    finally:
        await servers.aclose()


def test_lifespan_registering_redis_in_many_test_clients(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The 0.14 pattern: `FACTORY.add(Redis(...))` in the lifespan, a TestClient (an event loop) per test."""
    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    reload_settings(CoreSettings)
    saved = dict(FACTORY._entries)
    FACTORY.clear()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        FACTORY.add(Redis(tags=["liveness", "redis", "all"]))
        yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(router, prefix="/c2c")
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(4):
                with TestClient(app) as client:
                    response = client.get("/c2c/health_checks?tags=redis")
                    assert response.status_code == 200, response.json()
                    assert [e["name"] for e in response.json()["entities"]] == ["Redis"]
        assert list(FACTORY.registered) == ["Redis"]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    finally:
        FACTORY.clear()
        FACTORY._entries.update(saved)
        asyncio.run(reset_factory())
        monkeypatch.delenv("C2C__REDIS__URL")
        reload_settings(CoreSettings)
