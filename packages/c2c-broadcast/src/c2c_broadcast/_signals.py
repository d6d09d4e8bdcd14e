"""Leave the registry of live replicas as soon as the server is asked to stop (SIGTERM).

A replica that stops gracefully must stop being expected by callers at once. The obvious moment,
the end of its event loop, never comes under uvicorn: after a SIGTERM it runs the lifespan shutdown,
then restores the signal's original disposition and raises the signal again, which ends the process
before `asyncio.run` cancels the remaining tasks. An application whose lifespan calls only
`startup()` (c2casgiutils 0.14's README) would stay in the registry until its entry expires
(`C2C__BROADCAST__REPLICA_TTL`), and every call made meanwhile would wait its full timeout for it.

So `startup()` chains a SIGTERM handler in front of the server's own one: it schedules
`drain()` of the running loop's broadcaster on that loop, then calls the server's handler, which
starts the graceful shutdown as before. Only in the main thread, and only when the server has
installed a Python handler of its own (uvicorn, hypercorn, gunicorn's workers): with the default
disposition a SIGTERM ends the process at once, and nothing could run anyway. A server that
handles signals outside Python (granian) keeps today's behaviour: the entry expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

LOG = logging.getLogger("c2c_broadcast")

_Handler = Callable[[int, FrameType | None], Any]


class _DrainOnSigterm:
    """The chained handler; one per process, pointing at the loop of the latest `startup()`."""

    def __init__(self, previous: _Handler, loop: asyncio.AbstractEventLoop, drain: Callable[[], Any]) -> None:
        self.previous = previous
        self.loop = loop
        self.drain = drain

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed in between
                self.loop.call_soon_threadsafe(self._start_drain)
        self.previous(signum, frame)

    def _start_drain(self) -> None:
        task = self.loop.create_task(self.drain(), name="c2c-broadcast drain")
        _DRAINS.add(task)
        task.add_done_callback(_DRAINS.discard)


_DRAINS: set[asyncio.Task[None]] = set()


def drain_on_sigterm(drain: Callable[[], Any]) -> bool:
    """Chain `drain` (a coroutine function) in front of the server's SIGTERM handler; True when installed."""
    if threading.current_thread() is not threading.main_thread():
        return False  # signal handlers belong to the main thread (a TestClient runs elsewhere)
    try:
        loop = asyncio.get_running_loop()
        current = signal.getsignal(signal.SIGTERM)
    except (RuntimeError, ValueError):
        return False
    if isinstance(current, _DrainOnSigterm):
        current.loop = loop  # a new loop in the same process: drain that one's broadcaster
        current.drain = drain
        return True
    if not callable(current):
        return False  # SIG_DFL, SIG_IGN or a handler outside Python: nothing to chain to
    try:
        signal.signal(signal.SIGTERM, _DrainOnSigterm(current, loop, drain))
    except ValueError:  # not the main interpreter
        return False
    LOG.debug("Broadcast: the replica leaves the registry on SIGTERM")
    return True


def restore_sigterm() -> None:
    """Put the server's own handler back (at `shutdown()`), when ours is still the one installed."""
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if isinstance(current, _DrainOnSigterm):
        signal.signal(signal.SIGTERM, current.previous)
