"""The Redis check on a real Redis Cluster (issue 18, item 1): every master pinged and reported."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from c2c_config import RedisSettings
from c2c_health import Factory, Redis
from c2c_testing import RedisCluster, RedisServer

try:
    from c2c_config.redis import CLUSTER_MIN_REDIS_PY, RedisFactory, redis_py_version

    CLUSTER_CAPABLE = redis_py_version() >= CLUSTER_MIN_REDIS_PY
except ModuleNotFoundError:  # the isolated run without the redis extra
    CLUSTER_CAPABLE = False

# The redis-py floor run (redis-py < 8, which the factory refuses in cluster mode) and the isolated
# run without the extra; every other run executes these tests.
pytestmark = pytest.mark.skipif(
    not CLUSTER_CAPABLE, reason="Redis Cluster mode needs the redis extra and redis-py >= 8"
)

MakeFactory = Callable[..., Factory]


def _address(node: RedisServer) -> str:
    return f"{node.host}:{node.port}"


@pytest.fixture
async def cluster_factory(redis_cluster: RedisCluster) -> AsyncIterator[RedisFactory]:
    factory = RedisFactory(RedisSettings(url=redis_cluster.url, cluster=True, timeout=datetime.timedelta(seconds=0.3)))
    yield factory
    await factory.aclose()


def _masters(outcome: Any) -> dict[str, bool]:
    return {entry["address"]: entry["ok"] for entry in outcome.payload["masters"]}


async def test_every_master_is_pinged_and_reported(
    make_factory: MakeFactory, redis_cluster: RedisCluster, cluster_factory: RedisFactory
) -> None:
    factory = make_factory(timeout=3)
    factory.add(Redis(factory=cluster_factory))
    (outcome,) = (await factory.run()).outcomes
    assert outcome.status_code == 200, outcome.payload
    assert _masters(outcome) == {_address(node): True for node in redis_cluster.masters()}
    assert len(outcome.payload["masters"]) == 3
    assert outcome.public_payload == {"masters": 3}  # no address for anonymous callers


async def test_a_frozen_master_fails_the_check_within_the_timeout(
    make_factory: MakeFactory, redis_cluster: RedisCluster, cluster_factory: RedisFactory
) -> None:
    factory = make_factory(timeout=3)
    factory.add(Redis(factory=cluster_factory))
    assert (await factory.run()).outcomes[0].status_code == 200
    frozen = redis_cluster.masters()[1]
    with frozen.frozen():  # back before the cluster's node timeout (1 s): no failover
        started = time.monotonic()
        (outcome,) = (await factory.run()).outcomes
        elapsed = time.monotonic() - started
    assert elapsed < 2.5  # generous: each ping is bounded by 0.3 s, the check by 3 s
    assert outcome.status_code == 500
    masters = _masters(outcome)
    assert masters.pop(_address(frozen)) is False
    assert set(masters.values()) == {True}  # the others answered, and are reported so
    (failed,) = [entry for entry in outcome.payload["masters"] if not entry["ok"]]
    assert failed["error"] == "TimeoutError: no answer within 0.3 s"
    assert outcome.public_payload == {"error": "1 of 3 Redis Cluster masters are not reachable"}
    assert str(frozen.port) not in str(outcome.public_payload)

    # Thawed: healthy again.
    for _ in range(50):
        (outcome,) = (await factory.run()).outcomes
        if outcome.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert outcome.status_code == 200, outcome.payload


async def test_a_killed_master_fails_until_its_replica_took_over(
    make_factory: MakeFactory, make_app: Callable[..., Any], redis_cluster: RedisCluster, cluster_factory: RedisFactory
) -> None:
    factory = make_factory(timeout=3)
    factory.add(Redis(tags=["readiness"], factory=cluster_factory))
    app = make_app(factory)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/c2c/readyz")).status_code == 200
        victim = redis_cluster.masters()[0]
        victim.stop()  # checked at once: no replica promoted yet
        response = await client.get("/c2c/readyz")
        assert response.status_code >= 500
        (outcome,) = (await factory.run()).outcomes
        assert outcome.status_code == 500
        assert _masters(outcome)[_address(victim)] is False
        assert outcome.payload["error"] == "1 of 3 Redis Cluster masters are not reachable"

        await asyncio.to_thread(redis_cluster.wait_healthy, 30)  # a replica was promoted
        for _ in range(100):
            (outcome,) = (await factory.run()).outcomes
            if outcome.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert outcome.status_code == 200, outcome.payload
        masters = _masters(outcome)
        assert _address(victim) not in masters
        assert masters == {_address(node): True for node in redis_cluster.masters()}
        assert (await client.get("/c2c/readyz")).status_code == 200


async def test_the_whole_cluster_down(
    make_factory: MakeFactory, redis_cluster: RedisCluster, cluster_factory: RedisFactory
) -> None:
    factory = make_factory(timeout=3)
    factory.add(Redis(factory=cluster_factory))
    redis_cluster.stop()
    started = time.monotonic()
    (outcome,) = (await factory.run()).outcomes
    assert time.monotonic() - started < 3.5
    assert outcome.status_code == 500
    assert outcome.public_payload == {"error": "Redis Cluster is not reachable"}
