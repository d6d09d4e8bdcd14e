"""The Redis client factory against a real redis-server and a real Sentinel deployment."""

# mypy: disallow-untyped-calls=False
# (redis-py leaves execute_command unannotated)

from __future__ import annotations

import contextvars
import logging
from typing import Any

import pytest
from redis.asyncio import Redis

from c2c_config import CoreSettings, RedisSettings
from c2c_config._sections import url_database
from c2c_config.redis import RedisFactory, get_factory, reset_factory
from c2c_testing import RedisSentinel, RedisServer

pytestmark = pytest.mark.redis  # every test here talks to a real redis-server

PASSWORD = "p4ss-w0rd-never-logged"


async def test_not_configured() -> None:
    factory = RedisFactory(RedisSettings())
    assert not factory.configured
    assert factory.mode == "none"
    assert factory.master() is None
    assert factory.replica() is None
    assert factory.sentinel() is None
    assert factory.describe() == "not configured"
    await factory.aclose()


async def test_url_mode(redis_server: RedisServer, factories: list[RedisFactory]) -> None:
    factory = RedisFactory(RedisSettings(url=redis_server.url, options={"socket_timeout": 2.0}))
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    assert factory.replica() is master  # one server in URL mode
    await master.set("key", "value")
    assert await master.get("key") == "value"  # decoded to str by default
    assert redis_server.command("GET", "key") == b"value"


async def test_url_mode_db_from_settings(redis_server: RedisServer, factories: list[RedisFactory]) -> None:
    """`C2C__REDIS__DB` applies in URL mode when the URL names no database (the reference ignored it)."""
    url = f"redis://{redis_server.host}:{redis_server.port}"
    factory = RedisFactory(RedisSettings(url=url, db=3))
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    await master.set("where", "db3")
    redis_server.command("SELECT", "3")
    assert redis_server.command("SELECT", "3") == "OK"
    client_info = await master.client_info()
    assert client_info["db"] == 3
    # A database in the URL wins over the setting.
    other = RedisFactory(RedisSettings(url=f"{url}/5", db=3))
    factories.append(other)
    assert other.master() is not None
    assert (await other.master().client_info())["db"] == 5  # type: ignore[union-attr]


URLS_AND_DATABASES = [
    ("unix:///tmp/redis.sock", 2),  # the path is the socket: the setting applies (it was ignored)
    ("unix:///tmp/redis.sock?db=4", 4),
    ("redis://h:6379/?mydb=1", 2),  # not a `db=` parameter (it was taken for one)
    ("redis://h:6379/5", 5),
    ("rediss://h:6379?db=6", 6),
    ("redis://h:6379/7?db=8", 8),  # redis-py: the parameter wins over the path
    ("redis://h:6379/", 2),
    ("redis://h:6379/?db=", 2),
]


@pytest.mark.parametrize(("url", "database"), URLS_AND_DATABASES)
async def test_the_url_s_database_else_the_setting(url: str, database: int, factories: list[RedisFactory]) -> None:
    factory = RedisFactory(RedisSettings(url=url, db=2))
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    assert master.connection_pool.connection_kwargs["db"] == database


@pytest.mark.parametrize(("url", "database"), URLS_AND_DATABASES)
def test_url_database_reads_as_redis_py(url: str, database: int) -> None:
    """One reading of a URL's database, redis-py's: the factory and the cluster check share it."""
    from redis.connection import parse_url

    named = url_database(url)
    assert parse_url(url).get("db") == (None if named is None else int(named))
    assert (named is None) == (database == 2)


async def test_url_password_never_logged(
    redis_server: RedisServer, factories: list[RedisFactory], caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.command("CONFIG", "SET", "requirepass", PASSWORD)
    settings = RedisSettings(url=f"redis://:{PASSWORD}@{redis_server.host}:{redis_server.port}/0")
    caplog.set_level(logging.DEBUG)
    factory = RedisFactory(settings)
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    assert await _ping(master)
    assert "Redis clients created (url mode, redis://:***@127.0.0.1" in caplog.text
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in factory.describe()


async def test_url_query_password_never_logged(
    redis_server: RedisServer, factories: list[RedisFactory], caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py also reads the password from the query (`?password=`): it is hidden there too."""
    redis_server.command("CONFIG", "SET", "requirepass", PASSWORD)
    url = f"redis://{redis_server.host}:{redis_server.port}/0?password={PASSWORD}&socket_keepalive=true"
    settings = RedisSettings(url=url)
    caplog.set_level(logging.DEBUG)
    factory = RedisFactory(settings)
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    assert await _ping(master)  # the password reached the client
    shown = f"redis://{redis_server.host}:{redis_server.port}/0?password=***&socket_keepalive=true"
    # The line is logged; its password masked (as `***` here, or `[REDACTED]` when c2casgiutils'
    # access-log filter, installed by another test of the run, sits on a handler the root shares).
    logged = [record.getMessage() for record in caplog.records if "Redis clients created" in record.getMessage()]
    assert logged
    assert all("?password=***&" in line or "?password=[REDACTED]&" in line for line in logged), logged
    assert factory.describe() == shown
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(settings)


async def test_options_reach_the_client(redis_server: RedisServer, factories: list[RedisFactory]) -> None:
    factory = RedisFactory(
        RedisSettings(url=redis_server.url, options={"client_name": "c2c-test", "decode_responses": False})
    )
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    assert await master.client_getname() == "c2c-test"
    await master.set("raw", "value")
    assert await master.get("raw") == b"value"  # bytes: decode_responses=false was honoured


@pytest.mark.parametrize("options", [{}, {"decode_responses": True}])
async def test_the_subscriber_never_decodes(
    redis_server: RedisServer, factories: list[RedisFactory], options: dict[str, Any]
) -> None:
    """A message that is not UTF-8 reaches the reader as bytes, and the connection stays usable."""
    factory = RedisFactory(RedisSettings(url=redis_server.url, options=options))
    factories.append(factory)
    subscriber = factory.subscriber()
    assert isinstance(subscriber, Redis)
    pubsub = subscriber.pubsub()
    try:
        await pubsub.subscribe("c2c-test")
        assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"  # type: ignore[index,unused-ignore]
        for data in (b"\xff\xfe", b"fine"):
            redis_server.command("PUBLISH", "c2c-test", data)
            message: Any = await pubsub.get_message(timeout=5)
            assert (message["channel"], message["data"]) == (b"c2c-test", data)
    finally:
        await pubsub.aclose()
    master = factory.master()
    assert isinstance(master, Redis)
    await master.set("text", "value")
    assert await master.get("text") == "value"  # the command clients still decode


async def _ping(client: Redis) -> bool:
    # redis-py before 8 annotates ping() as `Awaitable[bool] | bool` (sync and async clients share stubs).
    result: Any = client.ping()
    return bool(await result)


def _connected_clients(server: RedisServer) -> int:
    info = server.command("INFO", "clients")
    assert isinstance(info, bytes)
    return int(info.decode().split("connected_clients:")[1].split()[0])


async def test_lazy_creation_and_close(redis_server: RedisServer) -> None:
    factory = RedisFactory(RedisSettings(url=redis_server.url))
    first = factory.master()
    assert isinstance(first, Redis)
    assert await _ping(first)
    clients_before = _connected_clients(redis_server)
    await factory.aclose()
    clients_after = _connected_clients(redis_server)
    assert clients_after == clients_before - 1  # the connection was really closed
    second = factory.master()
    assert isinstance(second, Redis) and second is not first  # a new client after close
    assert await _ping(second)
    await factory.aclose()


async def test_server_down_is_an_error_not_a_hang(redis_server: RedisServer) -> None:
    import redis.exceptions

    factory = RedisFactory(RedisSettings(url=redis_server.url, options={"socket_connect_timeout": 1.0}))
    master = factory.master()
    assert isinstance(master, Redis)
    redis_server.stop()
    with pytest.raises(redis.exceptions.ConnectionError):
        await _ping(master)
    redis_server.start()
    assert await _ping(master)  # the pool reconnects by itself
    await factory.aclose()


async def test_sentinel_mode(redis_sentinel: RedisSentinel, factories: list[RedisFactory]) -> None:
    settings = RedisSettings(
        sentinels=redis_sentinel.sentinels_str,
        servicename=redis_sentinel.service_name,
        db=2,
        options={"socket_timeout": 2.0},
    )
    factory = RedisFactory(settings)
    factories.append(factory)
    assert factory.mode == "sentinel"
    assert factory.sentinel() is not None
    master, replica = factory.master(), factory.replica()
    assert isinstance(master, Redis) and replica is not None and master is not replica
    await master.set("k", "v")
    assert (await master.client_info())["db"] == 2
    # The replica really is the replica server, and receives the write.
    assert (await replica.execute_command("ROLE"))[0] == "slave"
    assert (await master.execute_command("ROLE"))[0] == "master"
    await master.execute_command("WAIT", 1, 2000)
    assert await replica.get("k") == "v"


async def test_sentinel_failover_is_followed(redis_sentinel: RedisSentinel, factories: list[RedisFactory]) -> None:
    factory = RedisFactory(
        RedisSettings(sentinels=redis_sentinel.sentinels_str, servicename=redis_sentinel.service_name)
    )
    factories.append(factory)
    master = factory.master()
    assert isinstance(master, Redis)
    await master.set("before", "1")
    await master.execute_command("WAIT", 1, 2000)
    old_address = redis_sentinel.current_master()
    new_address = redis_sentinel.failover()
    assert new_address != old_address
    # The same client object now writes to the promoted server.
    for _ in range(50):
        try:
            await master.set("after", "2")
            break
        except Exception:  # connections to the demoted master fail until rediscovery
            import asyncio

            await asyncio.sleep(0.2)
    assert (await master.execute_command("ROLE"))[0] == "master"
    assert await master.get("before") == "1"
    assert await master.get("after") == "2"
    promoted = redis_sentinel.master if redis_sentinel.master.address == new_address else redis_sentinel.replica
    assert promoted.command("GET", "after") == b"2"


async def test_process_wide_factory(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> None:
    from c2c_config import get_settings, reload_settings

    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    reload_settings(CoreSettings)
    try:
        factory = get_factory()
        assert factory is get_factory()
        assert factory.settings == get_settings(CoreSettings).redis
        master = factory.master()
        assert isinstance(master, Redis)
        assert await _ping(master)
    finally:
        await reset_factory()
        monkeypatch.delenv("C2C__REDIS__URL")
        reload_settings(CoreSettings)
    assert not get_factory().configured
    await reset_factory()


def test_missing_redis_client_message() -> None:
    """Without the `redis` extra the import fails with the install hint (redis hidden in a subprocess)."""
    import subprocess
    import sys

    code = "import sys; sys.modules['redis'] = None\nimport c2c_config.redis"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "ModuleNotFoundError: c2c_config.redis needs the Redis client: install c2c-config[redis]" in result.stderr


def test_the_unreachable_window_is_shared_and_bounded() -> None:
    """One process-wide window after a failure: its reason for the next callers, closed by `reset_unreachable`."""
    from c2c_config import redis as c2c_redis

    c2c_redis.reset_unreachable()
    assert c2c_redis.unreachable_remaining() == 0.0
    assert c2c_redis.unreachable_reason() == ""
    assert not c2c_redis.unreachable_here()
    c2c_redis.note_unreachable("TimeoutError: no answer within 5 s")
    try:
        assert 0 < c2c_redis.unreachable_remaining() <= c2c_redis.SKIP_AFTER_FAILURE
        assert c2c_redis.unreachable_reason() == "TimeoutError: no answer within 5 s"
        assert c2c_redis.unreachable_here()
        # Another request (a context of its own) did not wait for Redis: only the process window holds.
        assert not contextvars.Context().run(c2c_redis.unreachable_here)
    finally:
        c2c_redis.reset_unreachable()
    assert c2c_redis.unreachable_remaining() == 0.0
    assert c2c_redis.unreachable_reason() == ""
    assert not c2c_redis.unreachable_here()


def test_request_scope_starts_empty_and_keeps_what_the_request_noted() -> None:
    """For a test client that serves requests in the caller's task (httpx's ASGITransport)."""
    from c2c_config import redis as c2c_redis

    c2c_redis.reset_unreachable()
    try:
        c2c_redis.note_unreachable("an earlier request")
        with c2c_redis.request_scope():
            assert not c2c_redis.unreachable_here()  # this request has not waited for Redis
            c2c_redis.note_unreachable("this request")
            assert c2c_redis.unreachable_here()
            with c2c_redis.request_scope():
                assert not c2c_redis.unreachable_here()
        assert c2c_redis.unreachable_here()  # the caller's own memory, as it was
        c2c_redis.reset_unreachable()
        with c2c_redis.request_scope():
            c2c_redis.note_unreachable("this request")
        assert not c2c_redis.unreachable_here()  # nothing leaked out of the request
        assert c2c_redis.unreachable_remaining() > 0  # the process window is not per request
    finally:
        c2c_redis.reset_unreachable()
