"""The factory's bounds against a real redis-server: pool size, waiting for a connection, timeouts, pub/sub."""

# mypy: disallow-untyped-calls=False
# (redis-py leaves execute_command and the pub/sub methods unannotated)

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

import pytest
import redis.exceptions
from redis.asyncio import BlockingConnectionPool, Redis

from c2c_config import RedisSettings
from c2c_config.redis import RedisFactory
from c2c_testing import RedisSentinel, RedisServer

pytestmark = pytest.mark.redis


def _connected_clients(server: RedisServer) -> int:
    info = server.command("INFO", "clients")
    assert isinstance(info, bytes)
    return int(info.decode().split("connected_clients:")[1].split()[0])


def _seconds(value: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=value)


async def _hold(client: Redis, seconds: float) -> Any:
    """A command that keeps its connection busy for `seconds` (BLPOP on a key nobody pushes)."""
    return await client.execute_command("BLPOP", "c2c-test:never", seconds)


async def test_pool_is_bounded_and_waits(redis_server: RedisServer, factories: list[RedisFactory]) -> None:
    """20 concurrent commands on a pool of 3: all succeed (they wait), at most 3 connections are opened."""
    factory = RedisFactory(RedisSettings(url=redis_server.url, max_connections=3, timeout=_seconds(5)))
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    assert isinstance(master.connection_pool, BlockingConnectionPool)
    before = _connected_clients(redis_server)
    holders = [asyncio.create_task(_hold(master, 0.2)) for _ in range(20)]
    peak = 0
    while not all(task.done() for task in holders):
        peak = max(peak, _connected_clients(redis_server) - before)
        await asyncio.sleep(0.05)
    assert [await task for task in holders] == [None] * 20  # none failed: they waited for a connection
    assert 1 <= peak <= 3
    assert _connected_clients(redis_server) - before <= 3


async def test_waiting_for_a_connection_is_bounded_by_the_timeout(
    redis_server: RedisServer, factories: list[RedisFactory]
) -> None:
    # socket_timeout from the options (longer than the hold), so that only the pool wait is bounded here.
    settings = RedisSettings(
        url=redis_server.url, max_connections=1, timeout=_seconds(0.3), options={"socket_timeout": 10.0}
    )
    factory = RedisFactory(settings)
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    holder = asyncio.create_task(_hold(master, 2))
    await asyncio.sleep(0.2)  # the holder has the only connection
    begin = time.monotonic()
    with pytest.raises(redis.exceptions.ConnectionError, match="No connection available"):
        await master.ping()
    assert time.monotonic() - begin < 1.5  # 0.3 s limit; "does not wait for the holder (2 s)"
    assert await holder is None


async def test_timeout_bounds_a_command_on_a_frozen_server(
    redis_server: RedisServer, factories: list[RedisFactory]
) -> None:
    factory = RedisFactory(RedisSettings(url=redis_server.url, timeout=_seconds(0.5)))
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    assert await master.ping()
    begin = time.monotonic()
    with redis_server.frozen(), pytest.raises((redis.exceptions.TimeoutError, TimeoutError)):
        # The outer bound only keeps a regression from hanging the test: the client must fail first.
        async with asyncio.timeout(8):
            await master.ping()
    assert time.monotonic() - begin < 4  # 0.5 s limit, generous bound
    assert await master.ping()  # the pool replaced the connection


async def test_connect_is_bounded_by_the_timeout(redis_server: RedisServer, factories: list[RedisFactory]) -> None:
    """A server that accepts TCP but never answers (frozen before the client connects)."""
    factory = RedisFactory(RedisSettings(url=redis_server.url, timeout=_seconds(0.5)))
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    begin = time.monotonic()
    with redis_server.frozen(), pytest.raises((redis.exceptions.RedisError, TimeoutError)):
        async with asyncio.timeout(8):
            await master.ping()
    assert time.monotonic() - begin < 4


async def test_options_win_over_the_settings(redis_server: RedisServer, factories: list[RedisFactory]) -> None:
    settings = RedisSettings(
        url=redis_server.url,
        max_connections=3,
        timeout=_seconds(2),
        options={"socket_timeout": 7.0, "socket_connect_timeout": 6.0, "max_connections": 4},
    )
    factory = RedisFactory(settings)
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    pool = master.connection_pool
    assert isinstance(pool, BlockingConnectionPool)
    assert pool.max_connections == 4
    assert pool.timeout == 2
    assert pool.connection_kwargs["socket_timeout"] == 7.0
    assert pool.connection_kwargs["socket_connect_timeout"] == 6.0
    default = RedisFactory(RedisSettings(url=redis_server.url))
    factories.append(default)
    default_pool = default.master().connection_pool  # type: ignore[union-attr]
    assert default_pool.max_connections == 20
    assert default_pool.connection_kwargs["socket_timeout"] == 5.0
    assert default_pool.connection_kwargs["socket_connect_timeout"] == 5.0


async def test_single_connection_client_option(redis_server: RedisServer, factories: list[RedisFactory]) -> None:
    factory = RedisFactory(RedisSettings(url=redis_server.url, options={"single_connection_client": True}))
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    assert await master.ping()
    assert master.connection is not None  # one dedicated connection


async def test_subscriber_is_outside_the_command_pool_and_idles(
    redis_server: RedisServer, factories: list[RedisFactory]
) -> None:
    """Pub/sub connections neither count against max_connections nor die of the command timeout while idle."""
    factory = RedisFactory(RedisSettings(url=redis_server.url, max_connections=1, timeout=_seconds(0.3)))
    factories.append(factory)
    subscriber, master = factory.subscriber(), factory.master()
    assert isinstance(subscriber, Redis) and master is not None
    assert subscriber is not master
    assert subscriber.connection_pool.connection_kwargs.get("socket_timeout") is None
    pubsubs = [subscriber.pubsub() for _ in range(3)]
    try:
        for pubsub in pubsubs:
            await pubsub.subscribe("c2c-test:channel")
            assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"  # type: ignore[index,unused-ignore]
        # Three held pub/sub connections, and the one command connection is still free.
        assert await master.ping()
        # Idle longer than the command timeout (0.3 s): no error, the connection stays subscribed.
        assert await pubsubs[0].get_message(timeout=1.0) is None
        assert await master.publish("c2c-test:channel", "hello") == 3
        message = await pubsubs[0].get_message(timeout=2)
        assert message is not None and message["data"] == b"hello"  # the pub/sub client never decodes
    finally:
        for pubsub in pubsubs:
            await pubsub.aclose()


async def test_sentinel_pools_are_bounded(redis_sentinel: RedisSentinel, factories: list[RedisFactory]) -> None:
    settings = RedisSettings(
        sentinels=redis_sentinel.sentinels_str,
        servicename=redis_sentinel.service_name,
        max_connections=2,
        timeout=_seconds(5),
    )
    factory = RedisFactory(settings)
    factories.append(factory)
    master, replica, subscriber = factory.master(), factory.replica(), factory.subscriber()
    assert isinstance(master, Redis) and isinstance(replica, Redis) and isinstance(subscriber, Redis)
    for client in (master, replica):
        assert isinstance(client.connection_pool, BlockingConnectionPool)
        assert client.connection_pool.max_connections == 2
        assert client.connection_pool.connection_kwargs["socket_timeout"] == 5.0
    assert subscriber.connection_pool.connection_kwargs.get("socket_timeout") is None
    server = redis_sentinel.master
    assert await master.ping()
    before = _connected_clients(server)
    holders = [asyncio.create_task(_hold(master, 0.2)) for _ in range(8)]
    peak = 0
    while not all(task.done() for task in holders):
        peak = max(peak, _connected_clients(server) - before)
        await asyncio.sleep(0.05)
    assert [await task for task in holders] == [None] * 8
    assert peak <= 1  # the pinged connection is reused: at most one more
    pubsub = subscriber.pubsub()
    try:
        await pubsub.subscribe("c2c-test:channel")
        assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"  # type: ignore[index,unused-ignore]
        connection: Any = pubsub.connection
        assert connection.port == server.port  # the master
    finally:
        await pubsub.aclose()
