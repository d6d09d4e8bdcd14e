"""LoopLocal: one value per event loop, closed on that loop when it ends; Redis clients follow it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading

import pytest

from c2c_config import LoopLocal, RedisSettings, raise_if_cancelled, running_loop
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


# -- raise_if_cancelled ---------------------------------------------------------------------------


def test_raise_if_cancelled_is_a_no_op_outside_a_loop_and_in_a_running_task() -> None:
    raise_if_cancelled()  # no loop: nothing to check

    async def main() -> str:
        raise_if_cancelled()
        await asyncio.sleep(0)
        raise_if_cancelled()
        return "done"

    assert asyncio.run(main()) == "done"


def test_a_cancellation_lost_by_wait_for_still_stops_the_loop() -> None:
    """The real race: the cancellation arrives as the awaited operation completes.

    Python 3.11's `wait_for` returns the result then (the task goes on, `cancelling()` still 1);
    3.12's raises. Either way a loop that calls `raise_if_cancelled()` at each turn ends cancelled.
    """

    async def main() -> tuple[list[int], bool]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[int]] = [loop.create_future() for _ in range(3)]
        turns: list[int] = []

        async def background() -> None:
            for future in futures:
                raise_if_cancelled()
                turns.append(await asyncio.wait_for(future, 10))

        task = asyncio.create_task(background())
        await asyncio.sleep(0)  # the task waits on the first future
        futures[0].set_result(1)
        task.cancel()  # in the same turn of the loop: the completed wait and the cancellation race
        await asyncio.wait([task], timeout=5)
        return turns, task.cancelled()

    turns, cancelled = asyncio.run(main())
    assert cancelled
    # 3.11: wait_for returned 1 and lost the cancellation, the next turn's check raised.
    assert turns == ([1] if sys.version_info < (3, 12) else [])


def test_a_cancellation_swallowed_without_uncancel_is_still_pending() -> None:
    async def main() -> bool:
        gate = asyncio.Event()

        async def background() -> None:
            with contextlib.suppress(asyncio.CancelledError):  # what a library that loses it does
                await gate.wait()
            while True:
                raise_if_cancelled()
                await asyncio.sleep(0.01)

        task = asyncio.create_task(background())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait([task], timeout=5)
        return task.cancelled()

    assert asyncio.run(main())


def test_a_cancellation_that_timeout_withdrew_is_not_pending() -> None:
    async def main() -> str:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(5)
        raise_if_cancelled()  # the timeout's own cancellation was withdrawn: nothing pending
        return "goes on"

    assert asyncio.run(main()) == "goes on"
