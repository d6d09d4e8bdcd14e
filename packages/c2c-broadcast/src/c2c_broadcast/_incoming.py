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

When the replica stops (`stop()`, from the broadcaster's `close()`), the handlers still running get
a grace (`CLOSE_GRACE` from the start of the close) to finish, and their answers are sent; those
still running then are cancelled, and so are handlers the event loop's end cancelled: each caller
that wants an answer from one of them gets an error answer (`REPLICA_STOPPED`, in the usual error
format: 0.14 callers see `{"status": 500, "message": ...}`) at once, instead of a missing answer
after its whole timeout. One WARNING says how many calls were cut.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, NamedTuple

from c2c_broadcast._base import LOG, REPLICA_STOPPED, Handler, MessageTooLargeError
from c2c_broadcast._context import applied_context
from c2c_broadcast._status import MESSAGES_RECEIVED
from c2c_broadcast._wire import CONTEXT_FIELD, DroppedMessage, ReplayGuard, Request, decode_request, encode_answer
from c2c_config import describe_error

if TYPE_CHECKING:
    from c2c_broadcast._redis import RedisBroadcaster
    from c2c_broadcast._settings import BroadcastSettings

# When `max_pending_handlers` are running, the listener stops reading for at most this long (Redis
# buffers meanwhile) before it drops a message.
OVERLOAD_WAIT = 1.0

CLOSE_GRACE = 2.0
"""At close, how long (from the start of the close) the handlers still running may take to finish and be answered."""
CUT_WAIT = 0.5
"""How long the handlers cancelled after the grace get to end (a cancelled coroutine ends at its next `await`)."""
FLUSH_TIMEOUT = 1.0
"""At close, how long the last answers (the queue, the error answers of the cut calls) may take to be published."""


class _Running(NamedTuple):
    """What a handler task answers, should it be cut."""

    channel: str
    answer_channel: str | None
    request_id: str | None


class IncomingCalls:
    """The requests this replica receives, and the handler tasks running for them."""

    def __init__(self, owner: RedisBroadcaster) -> None:
        """Requests for `owner`'s handlers (its settings, identity, secret and client)."""
        self.owner = owner
        self.tasks: dict[asyncio.Task[Any], _Running] = {}
        # The handler tasks that ended cancelled (at close, or by the event loop's end): their callers
        # get an error answer at close. At most `max_pending_handlers` (cancellations happen only then).
        self._cancelled: list[_Running] = []
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
        self.tasks[task] = _Running(channel, request.answer_channel, request.request_id)
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
                accepted=self.owner.accepted_secrets,
                max_age=self.settings.signature_max_age.total_seconds(),
                replay_guard=self._replay_guard,
            )
        except DroppedMessage as refused:
            self.owner.dropped(refused.reason, wire, refused.detail)
            return None

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        running = self.tasks.pop(task, None)
        if running is not None and task.cancelled() and len(self._cancelled) < self.settings.max_pending_handlers:
            self._cancelled.append(running)
        self._slot_freed.set()

    async def stop(self, grace_end: float) -> None:
        """At close, once the listener stopped: the handlers still running may finish until `grace_end`.

        `grace_end` is a `time.monotonic()` time. Then the others are cancelled, and the answers
        that wait (those of the handlers that finished, and an error answer, `REPLICA_STOPPED`, for
        each call cut that wants one: cancelled now, or earlier by the event loop's end) are
        published at once, within `FLUSH_TIMEOUT`. One WARNING says how many calls were cut and
        whether their callers were told. Never raises.
        """
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=max(0.0, grace_end - time.monotonic()))
        late = list(self.tasks)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=CUT_WAIT)
        # Cut: ended cancelled (now, or by the loop's end), or still running (its cancellation ignored).
        cut, self._cancelled = [*self._cancelled, *self.tasks.values()], []
        owner = self.owner
        stopped: list[tuple[str, str, str]] = []
        for running in cut:
            if running.answer_channel is not None:
                error = (
                    REPLICA_STOPPED,
                    f"replica {owner.replica_id} stopped before its handler on {running.channel!r} finished",
                )
                answer = self._encode_answer(running.channel, running.answer_channel, running.request_id, None, error)
                stopped.append((running.channel, running.answer_channel, answer))
        failure = await owner.answers.flush(stopped, FLUSH_TIMEOUT)
        if not cut:
            if failure is not None:
                LOG.warning("Broadcast: stopping, the last answers could not be sent (%s)", describe_error(failure))
            return
        channels = Counter(running.channel for running in cut).most_common()
        where = ", ".join(f"{count} on {channel!r}" for channel, count in channels[:5])
        told = (
            f"{len(stopped)} caller(s) got an error answer ({REPLICA_STOPPED})"
            if failure is None
            else f"the error answers to {len(stopped)} caller(s) could not be sent ({describe_error(failure)}): "
            "they see a missing answer"
        )
        LOG.warning(
            "Broadcast: replica %s stopped before %d running call(s) finished (%s%s; grace at close: %g s); %s",
            owner.replica_id,
            len(cut),
            where,
            ", ..." if len(channels) > 5 else "",
            CLOSE_GRACE,
            told,
        )

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
