"""Values that belong to one event loop: the rule every stateful part of the toolkit follows.

A Redis client, an HTTP client pool, a lock, a background task or a future is bound to the event
loop that created it. A process can run several loops one after the other (a test suite's
`with TestClient(app):` per test, `asyncio.run` per command), and 0.14-style applications never
call a shutdown hook. So nothing bound to a loop is kept in a plain module global:

- `LoopLocal(create, close)` gives each running loop its own value, created on first use in that
  loop, and forgets it with the loop (a weak reference: a later loop never sees it).
- When the loop ends the way `asyncio.run`, uvicorn, granian's asyncio loop and Starlette's
  `TestClient` end it (remaining tasks cancelled, then the loop closed), the values of that loop
  are closed *on that loop*, while it still runs: one small guardian task per loop waits forever and
  closes them from its cancellation. Nothing is ever closed from another loop (a connection of a
  closed loop cannot be closed cleanly; it would raise or warn).
- `aclose()` closes the running loop's value at once (what an explicit `shutdown()` calls).

Outside a running loop `get()` keeps one value apart from every loop; it is closed only by
`aclose()` called outside a loop, or never (synchronous callers that do not use the value in a
loop do not need a close).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

LOG = logging.getLogger("c2c_config.loop")

CLOSE_TIMEOUT = 5.0
"""Seconds each value's close may take when its loop ends (a frozen server must not hang the exit)."""

__all__ = ["CLOSE_TIMEOUT", "LoopLocal", "raise_if_cancelled", "running_loop"]


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop of this thread, or None outside one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def raise_if_cancelled() -> None:
    """Raise `asyncio.CancelledError` if the current task was asked to stop but is still running.

    A cancellation can be lost on its way to the task: on Python 3.11, `asyncio.wait_for` (which
    redis-py uses to write every command) returns the result instead of raising when the
    cancellation arrives as the awaited operation completes; the task then goes on, with
    `Task.cancelling()` still counting the request. A background loop that calls this at each turn
    stops at its next turn, instead of waiting for another cancellation (forever, for a loop that
    reads a quiet connection). A cancellation that `asyncio.timeout` turned into its `TimeoutError`
    is not pending any more (the timeout withdrew it). No-op outside a task.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop
        return
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class _LoopState:
    """What one loop holds: its values in creation order and the guardian task that closes them."""

    def __init__(self) -> None:
        self.values: dict[int, tuple[LoopLocal[object], object]] = {}
        self.guardian: asyncio.Task[None] | None = None


_STATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()


async def _guard(loop: asyncio.AbstractEventLoop, state: _LoopState) -> None:
    """Wait until the loop's end cancels this task, then close the loop's values on it."""
    try:
        await asyncio.Event().wait()
    finally:
        # The state (and its guardian, which references the loop) must not outlive the loop.
        if _STATES.get(loop) is state:
            del _STATES[loop]
        # Newest first: a value created later may depend on an earlier one.
        entries = list(state.values.values())[::-1]
        state.values.clear()
        for owner, value in entries:
            await owner._close_value(value)


def _state_of(loop: asyncio.AbstractEventLoop) -> _LoopState:
    state = _STATES.get(loop)
    if state is None:
        # A loop closed without cancelling its tasks (a bare `loop.close()`) never ran its guardian:
        # forget what it held (nothing can be closed on a closed loop) so that it can be freed.
        for closed in [other for other in _STATES if other.is_closed()]:
            del _STATES[closed]
        state = _STATES[loop] = _LoopState()
    if state.guardian is None or state.guardian.done():
        state.guardian = loop.create_task(_guard(loop, state), name="c2c-config loop-local guardian")
    return state


class LoopLocal(Generic[T]):
    """One value of type T per running event loop, created on demand and closed with its loop.

    ```python
    clients: LoopLocal[httpx.AsyncClient] = LoopLocal(httpx.AsyncClient, lambda c: c.aclose(), name="github")
    client = clients.get()  # this loop's client
    await clients.aclose()  # in shutdown(): close it now (else the loop's end closes it)
    ```
    """

    def __init__(
        self,
        create: Callable[[], T],
        close: Callable[[T], Awaitable[object]] | None = None,
        *,
        name: str = "value",
    ) -> None:
        self._create = create
        self._close = close
        self.name = name
        self._outside: T | None = None
        self._has_outside = False

    def get(self) -> T:
        """The running loop's value (created on the first call in that loop); outside a loop, one shared value."""
        loop = running_loop()
        if loop is None:
            if not self._has_outside:
                self._outside = self._create()
                self._has_outside = True
            return self._outside  # type: ignore[return-value]
        state = _state_of(loop)
        entry = state.values.get(id(self))
        if entry is None:
            value = self._create()
            state.values[id(self)] = (self, value)  # type: ignore[assignment]
            return value
        return entry[1]  # type: ignore[return-value]

    def peek(self) -> T | None:
        """The running loop's value if it was created, else None (never creates one)."""
        loop = running_loop()
        if loop is None:
            return self._outside if self._has_outside else None
        state = _STATES.get(loop)
        entry = state.values.get(id(self)) if state is not None else None
        return entry[1] if entry is not None else None  # type: ignore[return-value]

    def forget(self) -> T | None:
        """Drop the running loop's value without closing it and return it (None if there was none)."""
        loop = running_loop()
        if loop is None:
            value, self._outside, self._has_outside = self._outside, None, False
            return value
        state = _STATES.get(loop)
        entry = state.values.pop(id(self), None) if state is not None else None
        return entry[1] if entry is not None else None  # type: ignore[return-value]

    async def aclose(self) -> None:
        """Close the running loop's value now and forget it; the next `get()` creates a new one."""
        value = self.forget()
        if value is not None:
            await self._close_value(value)

    async def _close_value(self, value: object) -> None:
        if self._close is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._close(value)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            # The loop is ending while this close runs: nothing more can be done on it.
            LOG.debug("closing the %s was cancelled", self.name)
        except Exception as error:  # a close must never stop the others, nor the loop's end
            LOG.warning("closing the %s failed: %s: %s", self.name, type(error).__name__, error)

    def __repr__(self) -> str:
        return f"LoopLocal({self.name!r})"
