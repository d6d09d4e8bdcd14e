"""c2c_config.signals: named SIGTERM hooks chained in front of the server's own handler.

The "server" here is a Python handler installed by the test, as uvicorn installs its own; the
signal is real (`signal.raise_signal`), delivered to the main thread that runs the event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from c2c_config import signals


class Server:
    """Stands for the server's handler: records when it was called, relative to the hooks."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.events.append(f"server {signum}")


@pytest.fixture
def server() -> Iterator[Server]:
    original = signal.getsignal(signal.SIGTERM)
    handler = Server()
    signal.signal(signal.SIGTERM, handler)
    try:
        yield handler
    finally:
        signals.restore()
        signal.signal(signal.SIGTERM, original)


async def _settle(seconds: float = 0.05) -> None:
    await asyncio.sleep(seconds)


def test_hooks_run_on_their_loop_then_the_server_handler(server: Server) -> None:
    async def main() -> None:
        async def drain() -> None:
            server.events.append("async hook")

        assert signals.on_sigterm("a", drain)
        assert signals.on_sigterm("b", lambda: server.events.append("sync hook"))
        assert signals.hooks() == {"a": 0.0, "b": 0.0}
        signal.raise_signal(signal.SIGTERM)
        # No delay: the server's handler ran at once, the hooks on the next iterations of the loop.
        assert server.events == [f"server {signal.SIGTERM}"]
        await _settle()
        assert sorted(server.events[1:]) == ["async hook", "sync hook"]

    asyncio.run(main())


def test_the_server_handler_waits_for_the_longest_delay(server: Server) -> None:
    async def main() -> None:
        assert signals.on_sigterm("short", lambda: server.events.append("short"), delay=0.05)
        assert signals.on_sigterm("long", lambda: server.events.append("long"), delay=datetime.timedelta(seconds=0.3))
        signal.raise_signal(signal.SIGTERM)
        assert server.events == []  # still serving
        await _settle(0.1)
        assert sorted(server.events) == ["long", "short"]
        for _ in range(100):
            if len(server.events) == 3:
                break
            await _settle(0.05)
        assert server.events[2] == f"server {signal.SIGTERM}"

    asyncio.run(main())


def test_a_second_sigterm_during_the_delay_stops_at_once(server: Server) -> None:
    async def main() -> None:
        assert signals.on_sigterm("slow", lambda: None, delay=60)
        signal.raise_signal(signal.SIGTERM)
        assert server.events == []
        signal.raise_signal(signal.SIGTERM)
        assert server.events == [f"server {signal.SIGTERM}"]

    asyncio.run(main())


def test_after_the_delay_a_signal_goes_straight_to_the_server(server: Server) -> None:
    async def main() -> None:
        assert signals.on_sigterm("hook", lambda: server.events.append("hook"), delay=0.05)
        signal.raise_signal(signal.SIGTERM)
        for _ in range(100):
            if len(server.events) == 2:
                break
            await _settle(0.05)
        assert server.events == ["hook", f"server {signal.SIGTERM}"]
        signal.raise_signal(signal.SIGTERM)  # the server waits for its requests: no new delay, no hooks
        assert server.events == ["hook", f"server {signal.SIGTERM}", f"server {signal.SIGTERM}"]
        await _settle()
        assert server.events.count("hook") == 1
        # A lifespan that registers again (a new start in the same process) gets its hooks back.
        assert signals.on_sigterm("hook", lambda: server.events.append("again"))
        signal.raise_signal(signal.SIGTERM)
        await _settle()
        assert "again" in server.events

    asyncio.run(main())


def test_a_name_registered_again_replaces_its_hook_on_the_new_loop(server: Server) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def register(label: str) -> None:
        assert signals.on_sigterm("same", lambda: server.events.append(label))
        loops.append(asyncio.get_running_loop())

    asyncio.run(register("first"))  # that loop is closed now

    async def main() -> None:
        await register("second")
        signal.raise_signal(signal.SIGTERM)
        await _settle()

    asyncio.run(main())
    assert signals.hooks() == {"same": 0.0}
    assert server.events == [f"server {signal.SIGTERM}", "second"]


def test_failing_hooks_are_logged_and_do_not_stop_the_others(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("sync boom")

    async def broken_async() -> None:
        raise RuntimeError("async boom")

    async def main() -> None:
        signals.on_sigterm("broken", broken)
        signals.on_sigterm("broken-async", broken_async)
        signals.on_sigterm("fine", lambda: server.events.append("fine"))
        signal.raise_signal(signal.SIGTERM)
        await _settle()

    asyncio.run(main())
    assert "fine" in server.events
    assert "sync boom" in caplog.text
    assert "async boom" in caplog.text


def test_a_hook_of_a_closed_loop_is_skipped(server: Server) -> None:
    async def register() -> None:
        signals.on_sigterm("gone", lambda: server.events.append("gone"), delay=60)

    asyncio.run(register())
    signal.raise_signal(signal.SIGTERM)  # no loop to wait on: the server's handler runs at once
    assert server.events == [f"server {signal.SIGTERM}"]


def test_cancel_and_restore_put_the_server_handler_back(server: Server) -> None:
    async def main() -> None:
        signals.on_sigterm("a", lambda: None)
        signals.on_sigterm("b", lambda: None)
        signals.cancel_sigterm("a")
        assert signals.hooks() == {"b": 0.0}
        assert signal.getsignal(signal.SIGTERM) is not server
        signals.cancel_sigterm("b")
        assert signal.getsignal(signal.SIGTERM) is server
        signals.cancel_sigterm("b")  # nothing installed: nothing happens
        signals.on_sigterm("c", lambda: None)
        signals.restore()
        assert signal.getsignal(signal.SIGTERM) is server
        assert signals.hooks() == {}

    asyncio.run(main())


def test_nothing_is_installed_without_a_python_handler_of_the_server() -> None:
    original = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:

        async def main() -> bool:
            return signals.on_sigterm("x", lambda: None)

        assert not asyncio.run(main())
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, original)


def test_nothing_is_installed_outside_a_loop_or_the_main_thread(server: Server) -> None:
    assert not signals.on_sigterm("x", lambda: None)  # no running loop
    results: list[bool] = []

    def in_thread() -> None:
        async def main() -> None:
            results.append(signals.on_sigterm("x", lambda: None))
            signals.restore()  # not the main thread: nothing happens

        asyncio.run(main())

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(10)
    assert results == [False]
    assert signal.getsignal(signal.SIGTERM) is server


@pytest.mark.parametrize("delay", [-1, float("nan"), float("inf"), datetime.timedelta(seconds=-1)])
def test_a_bad_delay_is_refused(delay: float | datetime.timedelta) -> None:
    with pytest.raises(ValueError, match="delay"):
        signals.on_sigterm("x", lambda: None, delay=delay)
