"""Broadcast to every replica: the public surface of c2c-broadcast, plus c2casgiutils 0.14's modules.

The functions and classes here are c2c-broadcast's (re-exported). The submodules `interface`,
`local`, `redis` and `utils` hold c2casgiutils 0.14's broadcaster classes as thin adapters over
ours; as in 0.14 they are reachable as attributes after `import c2casgiutils.broadcast` (loaded on
first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from c2c_broadcast import (
    BaseBroadcaster,
    BroadcasterStatus,
    BroadcastResponse,
    BroadcastSettings,
    BroadcastUnavailableError,
    ErrorAnswer,
    InMemoryMetrics,
    LocalBroadcaster,
    MessageTooLargeError,
    Metrics,
    MissingAnswer,
    Settings,
    add_context_carrier,
    broadcast,
    cleanup,
    context_carriers,
    decorate,
    drain,
    get_broadcaster,
    remove_context_carrier,
    shutdown,
    startup,
    status,
    subscribe,
    unsubscribe,
)
from c2casgiutils.broadcast import types

if TYPE_CHECKING:
    from c2casgiutils import config, redis_utils  # noqa: F401 - attributes, as in 0.14
    from c2casgiutils.broadcast import interface, local, redis, utils  # noqa: F401 - attributes, as in 0.14

_SUBMODULES = frozenset({"interface", "local", "redis", "utils"})
# Siblings 0.14 imported at the top of this module (`config`, `redis_utils`): tests patch through them.
_SIBLINGS = frozenset({"config", "redis_utils"})

__all__ = [
    "BaseBroadcaster",
    "BroadcastResponse",
    "BroadcastSettings",
    "BroadcastUnavailableError",
    "BroadcasterStatus",
    "ErrorAnswer",
    "InMemoryMetrics",
    "LocalBroadcaster",
    "MessageTooLargeError",
    "Metrics",
    "MissingAnswer",
    "Settings",
    "add_context_carrier",
    "broadcast",
    "cleanup",
    "context_carriers",
    "decorate",
    "drain",
    "get_broadcaster",
    "remove_context_carrier",
    "shutdown",
    "startup",
    "status",
    "subscribe",
    "types",
    "unsubscribe",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _SIBLINGS:
        return importlib.import_module(f"c2casgiutils.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
