"""c2casgiutils 0.14's broadcaster interface, kept for code that types or subclasses it.

The broadcaster that `c2casgiutils.broadcast`'s functions use is c2c-broadcast's
(`c2c_broadcast.BaseBroadcaster`, one per event loop); this interface is what 0.14's
`LocalBroadcaster` and `RedisBroadcaster` adapters (`c2casgiutils.broadcast.local`,
`c2casgiutils.broadcast.redis`) implement.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from c2casgiutils.broadcast.utils import to_014_answers

if TYPE_CHECKING:
    import c2c_broadcast

__all__ = ["BaseBroadcaster"]


class BaseBroadcaster:
    """What a c2casgiutils 0.14 broadcaster offers: `init`, `subscribe`, `unsubscribe`, `broadcast`.

    As in 0.14 this is a plain class (the abstract methods are markers, not enforced), and
    `broadcast` returns 0.14's raw answers: a list of `{"hostname", "pid", "payload"}` dicts, with
    `None` for a missing answer (`c2casgiutils.broadcast.broadcast` turns them into
    `BroadcastResponse` / `MissingAnswer`), or `None` without `expect_answers`.

    Difference from 0.14: an instance is never the broadcaster of `c2casgiutils.broadcast`'s
    functions (0.14 had no public way to install one either); those use c2c-broadcast's own.
    """

    async def init(self) -> None:
        """Start the broadcaster (connections, listeners); nothing to do by default."""

    @abstractmethod
    async def subscribe(self, channel: str, callback: Callable[..., Awaitable[Any]]) -> None:
        """Call `callback(**params)` for every broadcast on `channel`."""

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Stop handling `channel`."""

    @abstractmethod
    async def broadcast(
        self,
        channel: str,
        params: Mapping[str, Any],
        expect_answers: bool,
        timeout: float,  # noqa: ASYNC109 - c2casgiutils 0.14's signature
    ) -> list[Any] | None:
        """Send a call to every subscriber of `channel`; with `expect_answers`, the raw answers."""


class _OverOurs(BaseBroadcaster):
    """The part of 0.14's adapters that only delegates to one of c2c-broadcast's broadcasters (`_impl`)."""

    _impl: c2c_broadcast.BaseBroadcaster

    async def subscribe(self, channel: str, callback: Callable[..., Awaitable[Any]]) -> None:
        """Call `callback(**params)` for every broadcast on `channel` (replaces a previous callback)."""
        await self._impl.subscribe(channel, callback)

    async def unsubscribe(self, channel: str) -> None:
        """Stop handling `channel` (nothing happens when it was not subscribed)."""
        await self._impl.unsubscribe(channel)

    async def broadcast(
        self,
        channel: str,
        params: Mapping[str, Any],
        expect_answers: bool,
        timeout: float,  # noqa: ASYNC109 - c2casgiutils 0.14's signature
    ) -> list[Any] | None:
        """Send a call on `channel` (starting the broadcaster if needed); with `expect_answers`, 0.14's raw answers."""
        await self._impl.start()
        return to_014_answers(await self._impl.broadcast(channel, params, expect_answers, timeout))

    async def close(self) -> None:
        """Stop what the broadcaster runs (not in 0.14); bounded, never raises."""
        await self._impl.close()
