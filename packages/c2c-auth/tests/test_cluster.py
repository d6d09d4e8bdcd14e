"""Issue 18 item 1: the state the replicas share through Redis, on a real Redis Cluster.

Two uvicorn replicas with `C2C__REDIS__CLUSTER=true` share the wrong-secret budget and the ended
sessions (each operation touches one key: no cross-slot command); the budget survives a failover of
the master holding it; the whole cluster down falls back to the process's state, never a 500.
"""

from __future__ import annotations

import asyncio
import time
import types
from typing import Any

import httpx
import pytest

from c2c_testing import RedisCluster

pytest.importorskip("redis")

from c2c_config.redis import CLUSTER_MIN_REDIS_PY, redis_py_version  # after the importorskip: needs redis

# Only a run on a redis-py older than 8 (refused in cluster mode) skips these tests.
pytestmark = pytest.mark.skipif(redis_py_version() < CLUSTER_MIN_REDIS_PY, reason="cluster mode needs redis-py >= 8")

COOKIE = "c2c-jwt-auth"
PROXY = "10.0.0.1"
WRONG = {"X-API-Key": "guess"}
BUDGET_KEY = "c2c-auth:secret-failures:unknown-devices"


def _cluster_settings(cluster: RedisCluster) -> dict[str, str]:
    return {"C2C__REDIS__URL": cluster.url, "C2C__REDIS__CLUSTER": "true", "C2C__REDIS__TIMEOUT": "1"}


async def test_the_budget_is_shared_on_a_cluster_and_survives_a_failover(
    redis_cluster: RedisCluster, replica_factory: Any, h: types.ModuleType
) -> None:
    first, second = replica_factory(2, C2C__AUTH__SECRET=h.SHARED_SECRET, **_cluster_settings(redis_cluster))
    async with httpx.AsyncClient(timeout=10) as admin, httpx.AsyncClient(timeout=10) as attacker:
        assert (await admin.get(f"{first}/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
        await admin.post(f"{first}/c2c/auth/logout")
        for base in (first, second) * 5:
            assert (await attacker.get(f"{base}/c2c/auth/login", headers=WRONG)).status_code == 401
        for base in (first, second):
            blocked = await attacker.get(f"{base}/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
            assert blocked.status_code == 429, base
        owner = redis_cluster.master_for_key(BUDGET_KEY)
        assert owner.command("GET", BUDGET_KEY) == b"10"
        assert owner.command("WAIT", "1", "5000") == 1  # replicated

        # The master holding the budget fails; its replica takes over with the count.
        killer = asyncio.create_task(asyncio.to_thread(redis_cluster.kill_master, owner))
        statuses = set()
        while not killer.done():  # meanwhile: answers (Redis, or the process's fallback), never a 500
            for base in (first, second):
                response = await admin.get(f"{base}/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
                statuses.add(response.status_code)
            await asyncio.sleep(0.05)
        await killer
        assert statuses == {200}
        for base in (second, first):
            # Until a replica's client has read the new topology (redis-py refreshes it at most once
            # a second after an error), a call may still fail and the process's own budget answer
            # (5 failures here: allowed). Then the shared budget, kept by the promoted replica, is back.
            deadline = time.monotonic() + 10
            while True:
                async with httpx.AsyncClient(timeout=10) as probe:  # no cookie from an earlier answer
                    blocked = await probe.get(f"{base}/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
                assert blocked.status_code in (200, 429), (base, blocked.text)  # never a 500
                if blocked.status_code == 429 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert blocked.status_code == 429, (base, blocked.text)
            allowed = await admin.get(f"{base}/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
            assert allowed.status_code == 200, base
        assert redis_cluster.master_for_key(BUDGET_KEY).command("GET", BUDGET_KEY) == b"10"


async def test_logout_on_one_replica_ends_the_session_everywhere_on_a_cluster(
    redis_cluster: RedisCluster, replica_factory: Any, h: types.ModuleType
) -> None:
    first, second = replica_factory(2, C2C__AUTH__SECRET=h.SHARED_SECRET, **_cluster_settings(redis_cluster))
    async with httpx.AsyncClient(timeout=10) as browser, httpx.AsyncClient(timeout=10) as thief:
        assert (await browser.get(f"{first}/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
        stolen = browser.cookies[COOKIE]
        thief.cookies.set(COOKIE, stolen)
        assert (await thief.get(f"{second}/c2c/ro")).status_code == 200
        assert (await browser.post(f"{first}/c2c/auth/logout")).status_code == 200
        assert (await thief.get(f"{second}/c2c/ro")).status_code == 403
    keys = [key for node in redis_cluster.masters() for key in node.command("KEYS", "c2c-auth:ended-session:*")]  # type: ignore[union-attr]
    assert len(keys) == 1


async def test_the_whole_cluster_down_falls_back_to_the_process(
    secret_mode: Any, redis_cluster: RedisCluster, make_client: Any, h: types.ModuleType
) -> None:
    secret_mode.set(**_cluster_settings(redis_cluster))
    redis_cluster.stop()
    browser = make_client()
    attacker = make_client(PROXY)
    assert (await browser.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    assert (await browser.get("/c2c/ro")).status_code == 200
    assert (await browser.post("/c2c/auth/logout")).status_code == 200
    for _ in range(10):
        assert (await attacker.get("/c2c/auth/login", headers=WRONG)).status_code == 401
    assert (await attacker.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 429
