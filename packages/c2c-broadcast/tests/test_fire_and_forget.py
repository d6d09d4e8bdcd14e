"""Calls without answers: one connection leased from the pool for a burst, given back when idle or broken.

Against a real redis-server. The lease (`_calls.PublishLease`) is what makes a fire-and-forget call
cost one PUBLISH and nothing more; these tests pin what it must keep: every call delivered (alone,
concurrent, signed, addressed), a connection never reused after an error or a cancelled read (its
reply would answer the next call), and no connection kept by an idle or closed broadcaster.
"""

# mypy: disallow-untyped-calls=False
# (redis-py leaves pub/sub methods unannotated)

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2c_broadcast import BroadcastUnavailableError
from c2c_broadcast._settings import BroadcastSettings
from c2c_broadcast._wire import DroppedMessage, dumps
from c2c_broadcast._wire._message import load
from c2c_testing import RedisServer

try:
    import redis.asyncio as aioredis

    from c2c_broadcast.redis import RedisBroadcaster
except ModuleNotFoundError:
    aioredis = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(aioredis is None, reason="needs the redis extra: c2c-broadcast[redis]")

PREFIX = "fire_"


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client on a bounded blocking pool with timeouts, as the factory's."""
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_server.url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5, max_connections=10
    )
    redis_client = aioredis.Redis.from_pool(pool)
    yield redis_client
    await redis_client.aclose()


@pytest.fixture
async def caller(client: aioredis.Redis) -> AsyncIterator[RedisBroadcaster]:
    """A started broadcaster (no handler) that only calls; its lease given back after 0.3 s idle."""
    settings = BroadcastSettings(connect_timeout=timedelta(seconds=0.5))
    broadcaster = RedisBroadcaster(client=client, prefix=PREFIX, settings=settings)
    broadcaster._calls.lease.idle = 0.3
    await broadcaster.start()
    yield broadcaster
    await broadcaster.close()


class Listener:
    """A raw subscriber that keeps what arrives on a wire channel."""

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        self.pubsub = client.pubsub()
        self.channel = channel
        self.received: list[dict[str, Any]] = []

    async def __aenter__(self) -> Listener:
        await self.pubsub.subscribe(self.channel)
        async with asyncio.timeout(5):
            while (await self.pubsub.get_message(timeout=1)) is None:
                pass
        return self

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(10):
            while len(self.received) < count:
                message = await self.pubsub.get_message(timeout=1)
                if message is not None and message["type"] == "message":
                    self.received.append(json.loads(message["data"]))
        return self.received

    async def __aexit__(self, *_: object) -> None:
        await self.pubsub.aclose()


def _soon() -> float:
    """A publication deadline 30 s ahead."""
    return asyncio.get_running_loop().time() + 30


def _held(broadcaster: RedisBroadcaster) -> bool:
    return broadcaster._calls.lease.held


def _in_use(client: aioredis.Redis) -> int:
    return len(client.connection_pool._in_use_connections)


async def test_a_burst_uses_one_leased_connection_given_back_when_idle(
    caller: RedisBroadcaster, client: aioredis.Redis, redis_server: RedisServer
) -> None:
    subscribers = _in_use(client)  # the broadcaster's two pub/sub connections
    async with Listener(client, f"{PREFIX}echo") as listener:
        for n in range(50):
            assert await caller.broadcast("echo", {"n": n}, False, 10) is None
        received = await listener.wait_for(50)
    assert [message["params"]["n"] for message in received] == list(range(50))
    assert _held(caller)
    assert _in_use(client) == subscribers + 1  # kept between the calls, not taken and given back each time
    listing = redis_server.command("CLIENT", "LIST")
    assert isinstance(listing, bytes)
    publishers = [line for line in listing.split(b"\n") if b"cmd=publish" in line]
    assert len(publishers) == 1
    async with asyncio.timeout(5):
        while _held(caller):  # noqa: ASYNC110 - given back by a timer
            await asyncio.sleep(0.05)
    assert _in_use(client) == subscribers  # an idle caller holds no connection


async def test_a_killed_leased_connection_is_replaced(
    caller: RedisBroadcaster, client: aioredis.Redis, redis_server: RedisServer
) -> None:
    async with Listener(client, f"{PREFIX}echo") as listener:
        await caller.broadcast("echo", {"n": 0}, False, 10)
        first = caller._calls.lease._connection
        redis_server.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no")  # every client but pub/sub
        await caller.broadcast("echo", {"n": 1}, False, 10)  # sent again through the client, then a new lease
        await caller.broadcast("echo", {"n": 2}, False, 10)
        received = await listener.wait_for(3)
    assert [message["params"]["n"] for message in received] == [0, 1, 2]
    assert caller._calls.lease._connection is not first


async def _calls_until_refused(caller: RedisBroadcaster, timeout: float) -> int:  # noqa: ASYNC109
    """Calls without answers, 50 ms apart, until one raises BroadcastUnavailableError: how many passed."""
    for sent in range(100):
        try:
            await caller.broadcast("nobody", {}, False, timeout)
        except BroadcastUnavailableError:
            return sent
        await asyncio.sleep(0.05)
    raise AssertionError("100 calls passed: the failure was never reported")


async def test_a_frozen_redis_is_reported_and_the_connection_never_reused(
    caller: RedisBroadcaster, client: aioredis.Redis, redis_server: RedisServer
) -> None:
    """Calls are written without waiting for their replies, until none came for `stall` seconds: then a
    call waits for them, gives up at its deadline (BroadcastUnavailableError) and the connection, its
    replies unread, is closed; after the recovery every call arrives, in order."""
    lease = caller._calls.lease
    lease.stall = 0.2
    async with Listener(client, f"{PREFIX}echo") as listener:
        await lease.publish(client, f"{PREFIX}echo", json.dumps({"n": 0}), _soon())
        first = lease._connection
        with redis_server.frozen():
            begin = time.monotonic()
            sent = await _calls_until_refused(caller, timeout=0)  # each bounded by connect_timeout (0.5 s)
        assert 1 <= sent <= 10  # buffered for about `stall` seconds, no longer
        assert time.monotonic() - begin < 4
        assert not lease.held
        for n in (1, 2, 3):
            await lease.publish(client, f"{PREFIX}echo", json.dumps({"n": n}), _soon())
        assert lease._connection is not first
        received = await listener.wait_for(4)
    assert received == [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]


async def test_replies_are_read_behind_and_an_error_reply_stops_the_lease(
    caller: RedisBroadcaster, client: aioredis.Redis, redis_server: RedisServer
) -> None:
    """A burst returns before its replies are read (at most `window` unread); an error reply (here:
    the connection's user loses the right to PUBLISH) ends the lease, and the next call reports it."""
    lease = caller._calls.lease
    lease.window = 5
    async with Listener(client, f"{PREFIX}echo") as listener:
        for n in range(40):
            await lease.publish(client, f"{PREFIX}echo", json.dumps({"n": n}), _soon())
            assert lease._leased is not None
            assert lease._leased.pending <= 5
        received = await listener.wait_for(40)
    assert [message["n"] for message in received] == list(range(40))
    # The connection's user loses the right to publish: the reply to the next PUBLISH is an error.
    redis_server.command("ACL", "SETUSER", "default", "-publish")
    try:
        assert await _calls_until_refused(caller, timeout=10) <= 1  # the next call, or the one after it
    finally:
        redis_server.command("ACL", "SETUSER", "default", "+publish")
    await caller.broadcast("nobody", {}, False, 10)
    assert lease.held


async def test_concurrent_calls_all_arrive(caller: RedisBroadcaster, client: aioredis.Redis) -> None:
    """Calls made while the leased connection is busy go through the client's pool."""
    async with Listener(client, f"{PREFIX}echo") as listener:
        await asyncio.gather(*(caller.broadcast("echo", {"n": n}, False, 10) for n in range(200)))
        received = await listener.wait_for(200)
    assert sorted(message["params"]["n"] for message in received) == list(range(200))


async def test_close_gives_the_connection_back(caller: RedisBroadcaster, client: aioredis.Redis) -> None:
    subscribers = _in_use(client)
    await caller.broadcast("nobody", {}, False, 10)
    assert _held(caller)
    await caller.close()
    assert not _held(caller)
    async with asyncio.timeout(5):
        while _in_use(client) >= subscribers:  # noqa: ASYNC110 - given back in a task
            await asyncio.sleep(0.02)
    with pytest.raises(BroadcastUnavailableError):
        await caller.broadcast("nobody", {}, False, 10)


async def test_signed_and_addressed_calls_without_answers(client: aioredis.Redis) -> None:
    """Through the lease a signed call stays signed, and a replica with the secret runs each one once."""
    settings = BroadcastSettings(secret="fire-secret")  # type: ignore[arg-type]
    replica = RedisBroadcaster(client=client, prefix=PREFIX, settings=settings)
    caller = RedisBroadcaster(client=client, prefix=PREFIX, settings=settings)
    calls: list[int] = []

    async def echo(n: int) -> None:
        calls.append(n)

    await replica.start()
    await caller.start()
    try:
        await replica.subscribe("echo", echo)
        async with Listener(client, f"{PREFIX}echo") as listener:
            for n in range(20):
                await caller.broadcast("echo", {"n": n}, False, 10)
            await caller.broadcast("echo", {"n": 99}, False, 10, targets=_targets(pids=[replica.pid + 1]))
            received = await listener.wait_for(21)
        assert all(isinstance(message["c2c"]["sig"], str) for message in received)
        assert received[-1]["c2c"]["targets"] == {"pids": [replica.pid + 1]}
        async with asyncio.timeout(10):
            while len(calls) < 20:  # noqa: ASYNC110 - the handlers run in tasks
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert sorted(calls) == list(range(20))  # the addressed call was not for this replica
    finally:
        await caller.close()
        await replica.close()


def _targets(pids: list[int]) -> Any:
    from c2c_broadcast._wire import make_targets

    return make_targets(None, pids)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_dumps_is_the_strict_compact_json(value: Any) -> None:
    """The cached encoder writes what `json.dumps` with the wire's options writes."""
    assert dumps(value) == json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@given(st.text(), st.integers(min_value=0, max_value=64))
def test_load_refuses_exactly_what_is_larger_than_the_limit(text: str, max_size: int) -> None:
    """The size is counted in UTF-8 bytes, also when the byte count is skipped for short strings."""
    data = dumps(text)
    size = len(data.encode("utf-8", "surrogatepass"))
    if size > max_size:
        with pytest.raises(DroppedMessage, match="oversized"):
            load(data, max_size)
    else:
        assert load(data, max_size) == text


async def test_the_lease_works_under_instrumentation_that_wraps_execute_command(
    caller: RedisBroadcaster, client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sentry's Redis integration (or any tracer) replaces `Redis.execute_command` for the whole process."""
    original = aioredis.Redis.execute_command
    wrapped: list[object] = []

    async def traced(self: aioredis.Redis, *args: Any, **options: Any) -> Any:
        wrapped.append(args[0])
        return await original(self, *args, **options)

    monkeypatch.setattr(aioredis.Redis, "execute_command", traced)
    async with Listener(client, f"{PREFIX}echo") as listener:
        for n in range(5):
            await caller.broadcast("echo", {"n": n}, False, 10)
        assert _held(caller)
        received = await listener.wait_for(5)
    assert [message["params"]["n"] for message in received] == list(range(5))
