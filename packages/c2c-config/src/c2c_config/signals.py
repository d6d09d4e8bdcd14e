"""Run named hooks when the server is asked to stop (SIGTERM), before its own graceful shutdown.

Under uvicorn (and hypercorn, gunicorn's workers) a SIGTERM makes the server stop accepting, wait
for the requests in flight, run the lifespan shutdown, then restore the signal's original
disposition and raise it again, which ends the process before `asyncio.run` could cancel the
remaining tasks. Whatever must happen *as soon as* the stop is asked (leave a registry of live
replicas, turn the readiness probe to 503) cannot wait for the lifespan shutdown.

`on_sigterm(name, callback, delay=...)` chains one Python handler in front of the server's own:
on SIGTERM it schedules every registered hook on the event loop it was registered from, then
calls the server's handler after the longest hook `delay` (at once when every delay is 0), so the
service keeps serving meanwhile. A second SIGTERM during the delay, or after it, goes to the
server's handler at once (the hooks do not run twice). Registering the same name again replaces
the hook (a new event loop in the same process takes over); `cancel_sigterm(name)` removes one,
`restore()` removes all and puts the server's handler back.

Only in the main thread, and only when the server has installed a Python handler of its own: with
the default disposition a SIGTERM ends the process at once and nothing could run. Under granian
(2.8) the main process gets SIGTERM in Rust and closes the listening socket at once, then stops its
workers: the hooks registered in a worker run, but its server stops without waiting for the Python
handler, so no delay applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import inspect
import logging
import math
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

LOG = logging.getLogger("c2c_config.signals")

Hook = Callable[[], Awaitable[Any] | None]
"""A hook: a function without arguments, or a coroutine function (run as a task on its loop)."""

_Handler = Callable[[int, FrameType | None], Any]

__all__ = ["Hook", "cancel_sigterm", "hooks", "on_sigterm", "restore"]


@dataclasses.dataclass
class _Entry:
    callback: Hook
    loop: asyncio.AbstractEventLoop
    delay: float


class _Chain:
    """The handler installed in front of the server's one: one per process, holding the named hooks."""

    def __init__(self, previous: _Handler) -> None:
        self.previous = previous
        self.entries: dict[str, _Entry] = {}
        self.pending: asyncio.TimerHandle | None = None
        self.fired = False  # the server's handler was called: later signals go straight to it
        self.tasks: set[asyncio.Task[Any]] = set()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.pending is not None or self.fired:  # a second SIGTERM: no (more) delay, no hooks again
            if self.pending is not None:
                self.pending.cancel()
            self._stop(signum, frame)
            return
        delayed: tuple[float, asyncio.AbstractEventLoop] | None = None
        for name, entry in list(self.entries.items()):
            if entry.loop.is_closed():
                continue
            with contextlib.suppress(RuntimeError):  # closed in between
                entry.loop.call_soon_threadsafe(self._run, name, entry)
                if entry.delay > 0 and (delayed is None or entry.delay > delayed[0]):
                    delayed = (entry.delay, entry.loop)
        if delayed is None:
            self._stop(signum, frame)
            return
        delay, loop = delayed
        LOG.info("SIGTERM: the server stops in %g s", delay)
        try:
            self.pending = loop.call_later(delay, self._stop, signum, frame)
        except RuntimeError:  # the loop closed in between: stop now
            self._stop(signum, frame)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.pending = None
        self.fired = True
        self.previous(signum, frame)

    def _run(self, name: str, entry: _Entry) -> None:
        try:
            returned = entry.callback()
        except Exception:
            LOG.exception("The SIGTERM hook %r failed", name)
            return
        if inspect.isawaitable(returned):
            task = entry.loop.create_task(_await(returned, name), name=f"SIGTERM hook {name}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


async def _await(awaitable: Awaitable[Any], name: str) -> None:
    try:
        await awaitable
    except Exception:
        LOG.exception("The SIGTERM hook %r failed", name)


def _seconds(delay: float | datetime.timedelta) -> float:
    seconds = delay.total_seconds() if isinstance(delay, datetime.timedelta) else float(delay)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"the SIGTERM hook delay must be a finite number of seconds >= 0, got {delay!r}")
    return seconds


def _installed() -> _Chain | None:
    current = signal.getsignal(signal.SIGTERM)
    return current if isinstance(current, _Chain) else None


def on_sigterm(name: str, callback: Hook, *, delay: float | datetime.timedelta = 0) -> bool:
    """Run `callback` on the running event loop when the process gets SIGTERM; True when installed.

    Args:
        name: identifies the hook; registering a name again replaces its hook (callback, loop, delay).
        callback: a function without arguments or a coroutine function; its errors are logged.
        delay: seconds (or a `timedelta`) to wait after the signal before the server's own handler
            runs; the longest delay of all hooks applies. 0: the server's handler runs at once.

    Call it from a coroutine (the application's lifespan) in the main thread. Returns False, and
    installs nothing, outside the main thread, outside a running loop, or when the current SIGTERM
    disposition is not a Python handler (default, ignored, or a server that handles it natively).

    Raises:
        ValueError: `delay` is negative or not finite.
    """
    seconds = _seconds(delay)
    if threading.current_thread() is not threading.main_thread():
        return False  # signal handlers belong to the main thread (a TestClient runs its app elsewhere)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    chain = _installed()
    if chain is None:
        current = signal.getsignal(signal.SIGTERM)
        if not callable(current):
            return False  # SIG_DFL, SIG_IGN or a handler outside Python: nothing to chain to
        chain = _Chain(current)
        try:
            signal.signal(signal.SIGTERM, chain)
        except ValueError:  # not the main interpreter
            return False
    chain.entries[name] = _Entry(callback, loop, seconds)
    chain.fired = False  # a lifespan starting (again): the next SIGTERM runs the hooks
    LOG.debug("SIGTERM hook %r installed (delay %g s)", name, seconds)
    return True


def hooks() -> dict[str, float]:
    """The installed hooks: their delay in seconds, by name (empty when the chained handler is not installed)."""
    chain = _installed()
    return {} if chain is None else {name: entry.delay for name, entry in chain.entries.items()}


def cancel_sigterm(name: str) -> None:
    """Remove the hook `name` (nothing when absent); the server's handler is put back when none is left."""
    chain = _installed()
    if chain is None:
        return
    chain.entries.pop(name, None)
    if not chain.entries:
        restore()


def restore() -> None:
    """Remove every hook and put the server's own handler back, when ours is still the one installed."""
    if threading.current_thread() is not threading.main_thread():
        return
    chain = _installed()
    if chain is not None:
        chain.entries.clear()
        signal.signal(signal.SIGTERM, chain.previous)
