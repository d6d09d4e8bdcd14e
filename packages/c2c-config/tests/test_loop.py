"""LoopLocal: one value per event loop, closed on that loop when it ends; Redis clients follow it."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest

from c2c_config import LoopLocal, RedisSettings, running_loop
from c2c_config.redis import RedisFactory
from c2c_testing import RedisServer


class _Resource:
    def __init__(self, log: list[str], number: int) -> None:
        self.log = log
        self.number = number
        self.loop = running_loop()
        self.closed = False

    async def aclose(self) -> None:
        assert running_loop() is self.loop, "closed from another loop"
        assert self.loop is not None and not self.loop.is_closed()
        self.closed = True
        self.log.append(f"closed {self.number}")


def _local(log: list[str]) -> LoopLocal[_Resource]:
    counter = iter(range(1, 1000))
    return LoopLocal(lambda: _Resource(log, next(counter)), _Resource.aclose, name="resource")


def test_each_loop_gets_its_own_value_closed_when_the_loop_ends() -> None:
    log: list[str] = []
    local = _local(log)
    seen: list[_Resource] = []

    async def use() -> None:
        first = local.get()
        assert local.get() is first  # one value per loop
        assert local.peek() is first
        seen.append(first)

    for _ in range(10):
        asyncio.run(use())
    assert [resource.number for resource in seen] == list(range(1, 11))
    assert all(resource.closed for resource in seen)
    assert log == [f"closed {number}" for number in range(1, 11)]


def test_aclose_closes_now_and_the_next_get_creates_a_new_value() -> None:
    log: list[str] = []
    local = _local(log)

    async def use() -> None:
        first = local.get()
        await local.aclose()
        assert first.closed
        assert local.peek() is None
        second = local.get()
        assert second is not first
        await local.aclose()
        await local.aclose()  # nothing left: no error

    asyncio.run(use())
    assert log == ["closed 1", "closed 2"]


def test_values_close_newest_first() -> None:
    log: list[str] = []
    outer, inner = _local(log), _local(log)

    async def use() -> None:
        outer.get().log = log
        inner.get().number = 99

    asyncio.run(use())
    assert log == ["closed 99", "closed 1"]


def test_concurrent_loops_in_threads_do_not_share() -> None:
    log: list[str] = []
    local = _local(log)
    values: list[_Resource] = []
    lock = threading.Lock()

    def run() -> None:
        async def use() -> None:
            value = local.get()
            await asyncio.sleep(0.01)
            assert local.get() is value
            with lock:
                values.append(value)

        asyncio.run(use())

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(value) for value in values}) == 4
    assert all(value.closed for value in values)


def test_outside_a_loop_one_shared_value() -> None:
    log: list[str] = []
    local = _local(log)
    value = local.get()
    assert local.get() is value
    assert local.peek() is value
    assert local.forget() is value
    assert local.peek() is None


def test_a_failing_close_is_logged_and_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    good = _local(log)

    async def fail(_value: object) -> None:
        raise OSError("connection reset")

    bad: LoopLocal[object] = LoopLocal(object, fail, name="bad thing")

    async def use() -> None:
        good.get()
        bad.get()

    with caplog.at_level(logging.WARNING, logger="c2c_config.loop"):
        asyncio.run(use())
    assert log == ["closed 1"]
    assert "closing the bad thing failed: OSError: connection reset" in caplog.text


def test_ended_loops_are_forgotten() -> None:
    from c2c_config import _loop

    local = _local([])

    async def use() -> None:
        local.get()

    for _ in range(3):
        asyncio.run(use())  # the runner cancels the guardian, which forgets its loop
    assert not any(loop.is_closed() for loop in _loop._STATES)

    # A loop closed without cancelling its tasks is forgotten when the next loop starts using values.
    bare = asyncio.new_event_loop()
    bare.run_until_complete(use())
    assert bare in _loop._STATES
    bare.close()
    asyncio.run(use())
    assert bare not in _loop._STATES


def test_redis_clients_per_loop_ten_runs_no_warning(redis_server: RedisServer) -> None:
    factory = RedisFactory(RedisSettings(url=redis_server.url))
    clients = []

    async def use(number: int) -> None:
        master = factory.master()
        assert master is not None
        assert factory.master() is master
        assert factory.replica() is master
        await master.set("key", str(number))
        assert await master.get("key") == str(number)
        clients.append(master)

    for number in range(10):
        asyncio.run(use(number))  # never closed explicitly: the loop's end closes them
    assert len({id(client) for client in clients}) == 10
    gc.collect()  # an unclosed connection would warn here (filterwarnings=error)
    assert redis_server.command("GET", "key") == b"9"


def test_redis_factory_aclose_only_touches_the_running_loop(redis_server: RedisServer) -> None:
    factory = RedisFactory(RedisSettings(url=redis_server.url))

    async def use() -> None:
        master = factory.master()
        assert master is not None
        assert await master.ping()
        await factory.aclose()
        again = factory.master()
        assert again is not master
        assert again is not None
        assert await again.ping()

    asyncio.run(use())
    asyncio.run(use())
