"""c2casgiutils 0.14's `LocalBroadcaster()`: a thin adapter over c2c-broadcast's local broadcaster."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import c2c_broadcast
from c2c_config import get_settings
from c2casgiutils.broadcast import interface
from c2casgiutils.broadcast import utils as utils  # an attribute of this module in 0.14

__all__ = ["LocalBroadcaster"]


class LocalBroadcaster(interface._OverOurs):
    """Broadcast within this process only, with c2casgiutils 0.14's constructor and methods.

    Runs on `c2c_broadcast.LocalBroadcaster` (settings from the environment). `broadcast` returns
    0.14's raw answers (`[{"hostname", "pid", "payload"}]`, `[]` when nobody subscribed, `None`
    without `expect_answers`).

    Differences from 0.14 (for the migration guide):

    - a callback that raises does not propagate: its answer is the payload 0.14's *Redis*
      broadcaster sent on errors, `{"status": 500, "message": ...}` (and it is logged), so the two
      implementations behave alike;
    - `timeout` is honoured: a callback slower than it gives a missing answer (`None`) and goes on
      running (0.14 ignored the timeout and waited);
    - params and payloads make a JSON round trip, as through Redis (0.14 passed objects as they were);
    - `unsubscribe` of a channel that is not subscribed does nothing (0.14 raised `KeyError`);
    - `get_subscribers()` returns a copy (0.14 returned its own mapping);
    - sync callbacks are accepted too; `close()` is new (cancels callbacks still running).
    """

    _impl: c2c_broadcast.LocalBroadcaster

    def __init__(self) -> None:
        """A local broadcaster with the `broadcast` settings of the environment."""
        self._impl = c2c_broadcast.LocalBroadcaster(get_settings(c2c_broadcast.Settings).broadcast)

    def get_subscribers(self) -> Mapping[str, Callable[..., Awaitable[Any]]]:
        """The subscribed channels and their callbacks (a copy)."""
        return self._impl.get_subscribers()
