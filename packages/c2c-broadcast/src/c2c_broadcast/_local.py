"""The in-process broadcaster: the embedded default when no Redis is configured."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from c2c_broadcast._base import LOG, REPLICA_STOPPED, BaseBroadcaster, Handler, Result, to_wire_params
from c2c_broadcast._status import ANSWERS_MISSING, BROADCASTS_SENT, BroadcasterStatus
from c2c_broadcast._wire import EVERYONE, Targets
from c2c_broadcast.types import BroadcastResponse, ErrorAnswer, MissingAnswer


class LocalBroadcaster(BaseBroadcaster):
    """Broadcast to this process only, with the same semantics as the Redis broadcaster.

    Params and payloads make the same JSON round trip; a handler that raises gives an
    `ErrorAnswer` (and is logged), it does not propagate; a handler slower than the timeout gives
    a `MissingAnswer` and goes on running (it is cancelled by `close()`; a caller still waiting for
    it then gets an `ErrorAnswer` whose `error_type` is `ReplicaStoppedError`). Without answers the
    call is awaited, so its effect is visible when `broadcast()` returns.
    """

    kind: ClassVar[Literal["local", "redis"]] = "local"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """See `BaseBroadcaster`."""
        super().__init__(*args, **kwargs)
        self._since = time.time()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    async def subscribe(self, channel: str, callback: Handler) -> None:
        """Call `callback` for broadcasts on `channel` in this process."""
        if channel in self._handlers:
            LOG.info("Broadcast channel %r: the new callback replaces the previous one", channel)
        self._handlers[channel] = callback

    async def unsubscribe(self, channel: str) -> None:
        """Forget the callback of `channel`."""
        self._handlers.pop(channel, None)

    async def broadcast(
        self,
        channel: str,
        params: Mapping[str, Any] | None,
        expect_answers: bool,
        timeout: float,  # noqa: ASYNC109
        targets: Targets = EVERYONE,
    ) -> list[Result] | None:
        """Call this process's callback of `channel`, if any and if addressed."""
        wire_params = to_wire_params(params)
        self._count(BROADCASTS_SENT)
        handler = self._handlers.get(channel)
        if handler is None or (self.hostname, self.pid) not in targets:
            return [] if expect_answers else None
        if not expect_answers:
            await self.run_handler(channel, handler, wire_params, payload=False)
            return None
        task = asyncio.create_task(self.run_handler(channel, handler, wire_params), name=f"c2c-broadcast {channel}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        done, _ = await asyncio.wait({task}, timeout=max(timeout, 0))
        if not done:
            self._count(ANSWERS_MISSING)
            return [MissingAnswer(hostname=self.hostname, pid=self.pid)]
        if task.cancelled():  # close() cut it: an answer saying so, as the Redis broadcaster's callers get
            message = f"the broadcaster stopped before the handler on {channel!r} finished"
            return [ErrorAnswer(hostname=self.hostname, pid=self.pid, error_type=REPLICA_STOPPED, message=message)]
        payload, error = task.result()
        if error is not None:
            return [ErrorAnswer(hostname=self.hostname, pid=self.pid, error_type=error[0], message=error[1])]
        return [BroadcastResponse(hostname=self.hostname, pid=self.pid, payload=payload)]

    async def close(self) -> None:
        """Cancel handlers still running after a timeout."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait(tasks, timeout=2)

    def status(self) -> BroadcasterStatus:
        """Always healthy while open."""
        return BroadcasterStatus(
            kind="local",
            state="stopped" if self._closed else "local",
            healthy=not self._closed,
            since=self._since,
            replica_id=self.replica_id,
            channels=tuple(sorted(self._handlers)),
            pending_handlers=len(self._tasks),
            counters=self.memory_metrics.snapshot(),
        )
