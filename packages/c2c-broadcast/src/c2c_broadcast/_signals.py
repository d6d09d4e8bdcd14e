"""Leave the registry of live replicas as soon as the server is asked to stop (SIGTERM).

A replica that stops gracefully must stop being expected by callers at once. The obvious moment,
the end of its event loop, never comes under uvicorn: after a SIGTERM it runs the lifespan shutdown,
then restores the signal's original disposition and raises the signal again, which ends the process
before `asyncio.run` cancels the remaining tasks. An application whose lifespan calls only
`startup()` (c2casgiutils 0.14's README) would stay in the registry until its entry expires
(`C2C__BROADCAST__REPLICA_TTL`), and every call made meanwhile would wait its full timeout for it.

So `startup()` registers `drain()` of the running loop's broadcaster as a SIGTERM hook
(`c2c_config.signals`, which chains a handler in front of the server's own one and runs the hook
on that loop; the server's graceful shutdown then starts as before). Only in the main thread, and
only when the server has installed a Python handler of its own (uvicorn, hypercorn, gunicorn's
workers). Under granian (2.8) the hook runs in the worker when granian stops it, but nothing
waits for the drain task: the entry leaves the registry when the drain or the shutdown completes,
else it expires.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from c2c_config import signals

LOG = logging.getLogger("c2c_broadcast")

HOOK_NAME = "c2c_broadcast"


def drain_on_sigterm(drain: Callable[[], Awaitable[Any]]) -> bool:
    """Run `drain` (a coroutine function) on the running loop at SIGTERM, without delay; True when installed."""
    installed = signals.on_sigterm(HOOK_NAME, drain)
    if installed:
        LOG.debug("Broadcast: the replica leaves the registry on SIGTERM")
    return installed


def restore_sigterm() -> None:
    """Remove the hook (at `shutdown()`); the server's own handler is back when no other hook remains."""
    signals.cancel_sigterm(HOOK_NAME)
