"""Issue 14 items 9 and 11 against real servers: the state the replicas share through Redis.

Wrong-secret budgets and ended sessions are kept in a real redis-server and used by two uvicorn
replicas (subprocesses); Redis stopped: each falls back to the process's own state, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
import types
from typing import Any

import httpx
import pytest

from c2c_testing import RedisServer

# The Redis client is optional (`c2c-config[redis]`): without it there is nothing shared to test.
pytest.importorskip("redis")

COOKIE = "c2c-jwt-auth"
PROXY = "10.0.0.1"
WRONG = {"X-API-Key": "guess"}


async def _known_device(make_client: Any, h: types.ModuleType) -> httpx.AsyncClient:
    admin: httpx.AsyncClient = make_client(PROXY)
    assert (await admin.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    assert (await admin.post("/c2c/auth/logout")).status_code == 200
    return admin


def _device_id(client: httpx.AsyncClient) -> str:
    return str(client.cookies["c2c-auth-device"]).split(".")[1]


async def test_unknown_devices_budget_is_shared_by_replicas(
    redis_server: RedisServer, replica_factory: Any, h: types.ModuleType
) -> None:
    first, second = replica_factory(2, C2C__AUTH__SECRET=h.SHARED_SECRET, C2C__REDIS__URL=redis_server.url)
    async with httpx.AsyncClient(timeout=10) as admin, httpx.AsyncClient(timeout=10) as attacker:
        # The admin's browser logs in on one replica: its device cookie is known to every replica.
        assert (await admin.get(f"{first}/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
        await admin.post(f"{first}/c2c/auth/logout")
        assert COOKIE not in admin.cookies
        # Five wrong secrets on each replica: ten in all, the budget of the unknown devices.
        for base in (first, second) * 5:
            assert (await attacker.get(f"{base}/c2c/auth/login", headers=WRONG)).status_code == 401
        for base in (first, second):
            blocked = await attacker.get(f"{base}/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
            assert blocked.status_code == 429, base
        assert int(redis_server.command("GET", "c2c-auth:secret-failures:unknown-devices")) == 10  # type: ignore[arg-type]
        for base in (second, first):
            allowed = await admin.get(f"{base}/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
            assert allowed.status_code == 200, base


async def test_redis_down_falls_back_to_the_process_budget(
    secret_mode: Any, redis_server: RedisServer, make_client: Any, h: types.ModuleType
) -> None:
    secret_mode.set(C2C__REDIS__URL=redis_server.url, C2C__REDIS__TIMEOUT="1")
    admin = await _known_device(make_client, h)
    redis_server.stop()
    attacker = make_client(PROXY)
    for _ in range(10):
        assert (await attacker.get("/c2c/auth/login", headers=WRONG)).status_code == 401
    assert (await attacker.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 429
    assert (await admin.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200


@pytest.mark.parametrize("junk", [b"abc", b"\xff", b"1e3"])
async def test_junk_in_the_budget_key_falls_back_to_the_process_budget(
    secret_mode: Any, redis_server: RedisServer, make_client: Any, h: types.ModuleType, junk: bytes
) -> None:
    """A budget count someone else wrote into Redis (not a number, not UTF-8): counted here, never a 500."""
    secret_mode.set(C2C__REDIS__URL=redis_server.url)
    redis_server.command("SET", "c2c-auth:secret-failures:unknown-devices", junk)
    client = make_client(PROXY)
    assert (await client.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    assert (await client.get("/c2c/auth/login", headers=WRONG)).status_code == 401


async def test_a_budget_count_without_expiry_gets_one(
    secret_mode: Any, redis_server: RedisServer, make_client: Any, h: types.ModuleType
) -> None:
    """A spent count written without expiry (by hand, or by another tool) blocks one window, not forever."""
    secret_mode.set(C2C__REDIS__URL=redis_server.url)
    key = "c2c-auth:secret-failures:unknown-devices"
    redis_server.command("SET", key, b"1000")
    blocked = await make_client(PROXY).get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
    assert blocked.status_code == 429
    ttl = redis_server.command("PTTL", key)
    assert isinstance(ttl, int) and 0 < ttl <= 60_000  # C2C__AUTH__SECRET_FAILURE_WINDOW (1 minute)


@pytest.mark.parametrize("known", [False, True])
async def test_concurrent_wrong_secrets_cannot_overrun_a_budget(
    secret_mode: Any, redis_server: RedisServer, make_client: Any, h: types.ModuleType, known: bool
) -> None:
    """100 wrong secrets at once, on a pool large enough for all of them: at most the budget's 10
    are compared (each is counted in Redis before its comparison, in one step), the rest get 429."""
    secret_mode.set(C2C__REDIS__URL=redis_server.url, C2C__REDIS__MAX_CONNECTIONS="200")
    client = await _known_device(make_client, h) if known else make_client(PROXY)
    answers = await asyncio.gather(*(client.get("/c2c/auth/login", headers=WRONG) for _ in range(100)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * 10 + [429] * 90
    key = "c2c-auth:secret-failures:" + (f"device:{_device_id(client)}" if known else "unknown-devices")
    assert int(redis_server.command("GET", key)) == 10  # type: ignore[arg-type]
    right = await client.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
    assert right.status_code == 429


async def test_parallel_right_secrets_are_never_refused(
    secret_mode: Any, redis_server: RedisServer, make_client: Any, h: types.ModuleType
) -> None:
    """An API client sending the right `X-API-Key` on 40 requests at once (no cookies: an unknown
    device), after a few wrong secrets: every one is answered, none counted."""
    secret_mode.set(C2C__REDIS__URL=redis_server.url, C2C__REDIS__MAX_CONNECTIONS="100")
    client = make_client(PROXY)
    for _ in range(3):
        assert (await client.get("/c2c/auth/login", headers=WRONG)).status_code == 401
    right = {"X-API-Key": h.SHARED_SECRET, "Cookie": ""}
    answers = await asyncio.gather(*(client.get("/c2c/auth/status", headers=right) for _ in range(40)))
    assert [answer.status_code for answer in answers] == [200] * 40
    assert all(answer.json()["is_logged_in"] for answer in answers)
    assert int(redis_server.command("GET", "c2c-auth:secret-failures:unknown-devices")) == 3  # type: ignore[arg-type]


async def test_logout_on_one_replica_ends_the_session_on_every_replica(
    redis_server: RedisServer, replica_factory: Any, h: types.ModuleType
) -> None:
    first, second = replica_factory(2, C2C__AUTH__SECRET=h.SHARED_SECRET, C2C__REDIS__URL=redis_server.url)
    async with httpx.AsyncClient(timeout=10) as browser, httpx.AsyncClient(timeout=10) as thief:
        assert (await browser.get(f"{first}/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
        stolen = browser.cookies[COOKIE]
        thief.cookies.set(COOKIE, stolen)
        assert (await thief.get(f"{second}/c2c/ro")).status_code == 200
        assert (await browser.post(f"{first}/c2c/auth/logout")).status_code == 200
        # The other replica refuses the logged-out session at once (old code: valid for its 7 days).
        refused = await thief.get(f"{second}/c2c/ro")
        assert refused.status_code == 403
        thief.cookies.set(COOKIE, stolen)
        assert (await thief.get(f"{first}/c2c/ro")).status_code == 403
    keys = redis_server.command("KEYS", "c2c-auth:ended-session:*")
    assert isinstance(keys, list)
    assert len(keys) == 1
    ttl = redis_server.command("PTTL", keys[0])  # type: ignore[arg-type]
    assert isinstance(ttl, int)
    assert 7 * 86400 * 1000 - 60_000 < ttl <= 7 * 86400 * 1000 + 1000  # the session's remaining life


async def test_an_outage_warns_once_a_minute_not_per_request(
    secret_mode: Any, redis_server: RedisServer, make_client: Any, h: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    """Every request of a logged-in browser falls back to this process while Redis is down: one WARNING."""
    from c2c_auth import _shared

    secret_mode.set(C2C__REDIS__URL=redis_server.url, C2C__REDIS__TIMEOUT="0.5")
    browser = make_client()
    assert (await browser.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    redis_server.stop()
    _shared._warned_at.clear()
    caplog.set_level(logging.DEBUG, logger="c2c_auth")
    for _ in range(4):
        assert (await browser.get("/c2c/ro")).status_code == 200
    fallback = [r for r in caplog.records if "ended sessions checked in this process only" in r.getMessage()]
    assert [r.levelno for r in fallback] == [logging.WARNING] + [logging.DEBUG] * (len(fallback) - 1)
    assert len(fallback) >= 4


async def test_redis_down_sessions_and_logout_fall_back_to_the_process(
    secret_mode: Any, redis_server: RedisServer, make_client: Any, h: types.ModuleType
) -> None:
    secret_mode.set(C2C__REDIS__URL=redis_server.url, C2C__REDIS__TIMEOUT="1")
    browser = make_client()
    assert (await browser.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    stolen = browser.cookies[COOKIE]
    redis_server.stop()
    # The revocation check cannot reach Redis: the process's list answers (logged), never a 500.
    assert (await browser.get("/c2c/ro")).status_code == 200
    assert (await browser.post("/c2c/auth/logout")).status_code == 200
    thief = make_client("198.51.100.7")
    thief.cookies.set(COOKIE, stolen, domain="app.example", path="/c2c/")
    assert (await thief.get("/c2c/ro")).status_code == 403
    # Redis back: the logout made while it was down is known to this process still.
    redis_server.start()
    thief.cookies.set(COOKIE, stolen, domain="app.example", path="/c2c/")
    assert (await thief.get("/c2c/ro")).status_code == 403


async def test_a_frozen_redis_costs_one_request_its_timeout_not_every_request(
    secret_mode: Any, redis_server: RedisServer, make_client: Any, h: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped with SIGSTOP (connections open, no answer): the first check waits
    `C2C__REDIS__TIMEOUT` and falls back; for `SKIP_AFTER_FAILURE` seconds the next ones fall back
    without asking; then Redis is asked again."""
    from c2c_auth import _shared

    secret_mode.set(C2C__REDIS__URL=redis_server.url, C2C__REDIS__TIMEOUT="1")
    browser = make_client()
    assert (await browser.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    assert (await browser.get("/c2c/ro")).status_code == 200  # the connection to Redis is open
    caplog.set_level(logging.DEBUG, logger="c2c_auth")
    with redis_server.frozen():
        begin = time.monotonic()
        assert (await browser.get("/c2c/ro")).status_code == 200
        first = time.monotonic() - begin
        begin = time.monotonic()
        for _ in range(5):
            assert (await browser.get("/c2c/ro")).status_code == 200
        following = time.monotonic() - begin
    fallback = "ended sessions checked in this process only"
    messages = [r.getMessage() for r in caplog.records if fallback in r.getMessage()]
    assert len(messages) == 6
    assert "TimeoutError" in messages[0]
    assert all("not asked: it failed less than 2 s ago" in message for message in messages[1:])
    assert first >= 0.9  # it did wait for Redis
    assert following < first  # five requests together waited less than the first one alone
    # Once the time is up, Redis is asked again: it answers, nothing falls back.
    await asyncio.sleep(_shared.SKIP_AFTER_FAILURE + 0.1)
    caplog.clear()
    assert (await browser.get("/c2c/ro")).status_code == 200
    assert not [r for r in caplog.records if "in this process only" in r.getMessage()]


async def test_a_logout_redis_refused_reaches_the_other_replicas_once_it_answers(
    redis_server: RedisServer, replica_factory: Any, h: types.ModuleType
) -> None:
    """Redis out of memory (writes refused, reads answered) during a logout: the session ends on the
    replica that served it at once, and on the others as soon as Redis takes writes again, with no
    further request to that replica (its background retry writes it; the stolen cookie stayed valid
    elsewhere until the replica happened to use Redis, possibly never)."""
    first, second = replica_factory(2, C2C__AUTH__SECRET=h.SHARED_SECRET, C2C__REDIS__URL=redis_server.url)
    async with httpx.AsyncClient(timeout=10) as browser, httpx.AsyncClient(timeout=10) as thief:
        assert (await browser.get(f"{first}/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
        stolen = browser.cookies[COOKIE]
        redis_server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        redis_server.command("CONFIG", "SET", "maxmemory", "1")  # every write refused: OOM
        try:
            assert (await browser.post(f"{first}/c2c/auth/logout")).status_code == 200
            thief.cookies.set(COOKIE, stolen)
            assert (await thief.get(f"{first}/c2c/ro")).status_code == 403  # this replica knows
            thief.cookies.set(COOKIE, stolen)
            assert (await thief.get(f"{second}/c2c/ro")).status_code == 200  # the other cannot yet
        finally:
            redis_server.command("CONFIG", "SET", "maxmemory", "0")
        # No request reaches the first replica any more: its retry writes the logout it missed.
        keys: object = []
        deadline = time.monotonic() + 5
        while not keys and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            keys = redis_server.command("KEYS", "c2c-auth:ended-session:*")
        assert isinstance(keys, list)
        assert len(keys) == 1
        thief.cookies.set(COOKIE, stolen)
        assert (await thief.get(f"{second}/c2c/ro")).status_code == 403


async def test_a_flush_cancelled_while_redis_is_frozen_keeps_its_logouts(
    secret_mode: Any, redis_server: RedisServer
) -> None:
    """`shutdown()` stops the retry task while it waits for a frozen Redis: the logouts it was writing
    stay pending (counted in the shutdown's ERROR, written by the next attempt), never dropped."""
    from c2c_auth import _shared

    secret_mode.set(C2C__REDIS__URL=redis_server.url, C2C__REDIS__TIMEOUT="5")
    client = _shared.redis_client()
    assert client is not None
    await client.ping()  # the connection is open before Redis freezes
    _shared.reset_redis_state()
    _shared._pend("session-being-written", time.time() + 600)
    with redis_server.frozen():
        flush = asyncio.create_task(_shared._flush_pending(client))
        await asyncio.sleep(0.3)  # waiting for Redis's answer
        flush.cancel()
        with pytest.raises(asyncio.CancelledError):
            await flush
        assert list(_shared._pending_logouts) == ["session-being-written"]
    from c2c_config import redis as c2c_redis

    c2c_redis.reset_unreachable()
    _shared._next_flush = 0.0
    await _shared._flush_pending(client)  # Redis answers: written, no longer pending
    assert not _shared._pending_logouts
    assert redis_server.command("EXISTS", "c2c-auth:ended-session:session-being-written") == 1
