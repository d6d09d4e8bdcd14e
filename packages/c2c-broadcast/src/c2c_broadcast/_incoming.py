"""The receiving side: a request from the *listener* subscriber becomes a handler task and an answer.

A request is decoded (size, JSON, signature, replay, an answer channel under the prefix, or on a
Redis Cluster under the channel's own `{<prefix><channel>}:answers:`: `_wire.decode_request`),
skipped when it is
addressed to other replicas, and handed to a task, so that a slow handler never blocks the
listener. The handler runs inside the context managers of the context carriers, given what the
caller captured (the request's `context` field, `_context`). At most `max_pending_handlers` tasks
run at once; beyond that the listener stops reading (back-pressure: Redis buffers a burst) for at
most `OVERLOAD_WAIT`, then drops the message. When the
caller wants an answer, the handler's result (or error) is encoded and published on its answer
channel by the broadcaster's `AnswerPublisher` (`_answers`: a bounded queue, a fixed number of
publishing tasks). An answer over `max_message_size` is replaced by an error answer
(`MessageTooLargeError`).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from c2c_broadcast._base import LOG, Handler, MessageTooLargeError
from c2c_broadcast._context import applied_context
from c2c_broadcast._status import MESSAGES_RECEIVED
from c2c_broadcast._wire import CONTEXT_FIELD, DroppedMessage, ReplayGuard, Request, decode_request, encode_answer

if TYPE_CHECKING:
    from c2c_broadcast._redis import RedisBroadcaster
    from c2c_broadcast._settings import BroadcastSettings

# When `max_pending_handlers` are running, the listener stops reading for at most this long (Redis
# buffers meanwhile) before it drops a message.
OVERLOAD_WAIT = 1.0


class IncomingCalls:
    """The requests this replica receives, and the handler tasks running for them."""

    def __init__(self, owner: RedisBroadcaster) -> None:
        """Requests for `owner`'s handlers (its settings, identity, secret and client)."""
        self.owner = owner
        self.tasks: set[asyncio.Task[Any]] = set()
        self._slot_freed = asyncio.Event()
        # Its memory starts now: a signed request older than that is refused (an earlier process of
        # this replica may have run it), so one captured before a restart cannot be replayed after it.
        self._replay_guard = ReplayGuard(started=time.time())

    @property
    def settings(self) -> BroadcastSettings:
        return self.owner.settings

    async def on_request(self, wire: str, data: str | bytes) -> None:
        """A message on a handler channel: decode it, and run its handler in a task."""
        owner = self.owner
        channel = owner.channel_of(wire)
        handler = owner.handler(channel) if channel is not None else None
        if handler is None or channel is None:
            return  # unsubscribed meanwhile
        owner.count(MESSAGES_RECEIVED)
        request = self._decode(wire, data)
        if request is None or (owner.hostname, owner.pid) not in request.targets:
            return
        if len(self.tasks) >= self.settings.max_pending_handlers and not await self._free_slot():
            owner.dropped("overloaded", wire, f"{len(self.tasks)} handlers still running after {OVERLOAD_WAIT:g} s")
            return
        task = asyncio.create_task(
            self._handle(channel, handler, request.params, request), name=f"c2c-broadcast {wire}"
        )
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _decode(self, wire: str, data: str | bytes) -> Request | None:
        """The request, or None when it is refused (counted and logged)."""
        try:
            return decode_request(
                data,
                wire,
                prefix=self.owner.answer_namespace(wire),
                max_size=self.settings.max_message_size,
                now=time.time(),
                secret=self.owner.secret,
                max_age=self.settings.signature_max_age.total_seconds(),
                replay_guard=self._replay_guard,
            )
        except DroppedMessage as refused:
            self.owner.dropped(refused.reason, wire, refused.detail)
            return None

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        self._slot_freed.set()

    async def _free_slot(self) -> bool:
        """Back-pressure: wait (bounded) until a handler finishes; False if none does in time."""
        try:
            async with asyncio.timeout(OVERLOAD_WAIT):
                while len(self.tasks) >= self.settings.max_pending_handlers:
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
        except TimeoutError:
            return False
        return True

    async def _handle(self, channel: str, handler: Handler, params: dict[str, Any], request: Request) -> None:
        try:
            await self._handle_and_answer(channel, handler, params, request)
        except Exception:  # the task's exception would otherwise be lost
            LOG.exception("Broadcast: unexpected error while handling %r", channel)

    async def _handle_and_answer(
        self, channel: str, handler: Handler, params: dict[str, Any], request: Request
    ) -> None:
        wanted = request.answer_channel is not None
        # The caller's context (`add_context_carrier`) around the handler, in this task only.
        with applied_context(request.extensions.get(CONTEXT_FIELD)):
            payload, error = await self.owner.run_handler(channel, handler, params, payload=wanted, round_trip=False)
        if request.answer_channel is None:
            return
        answer = self._encode_answer(channel, request.answer_channel, request.request_id, payload, error)
        await self.owner.answers.submit(channel, request.answer_channel, answer)

    def _encode_answer(
        self, channel: str, answer_channel: str, request_id: str | None, payload: Any, error: tuple[str, str] | None
    ) -> str:
        owner = self.owner

        def encode(payload: Any, error: tuple[str, str] | None) -> str:
            return encode_answer(
                answer_channel,
                hostname=owner.hostname,
                pid=owner.pid,
                payload=payload,
                replica=owner.replica_id,
                request_id=request_id,
                now=time.time(),
                error=error,
                secret=owner.secret,
            )

        try:
            answer = encode(payload, error)
        except ValueError as not_json:  # NaN or infinity in the result
            answer = encode(None, owner.not_json(channel, not_json))
        max_size = self.settings.max_message_size
        if len(answer) > max_size // 4 and (size := len(answer.encode())) > max_size:
            too_large = MessageTooLargeError(f"the answer of {owner.replica_id} on {channel!r}", size, max_size)
            owner.log.warning("answer-size", "Broadcast: %s; sending an error answer instead", too_large)
            answer = encode(None, (type(too_large).__name__, str(too_large)))
        return answer
