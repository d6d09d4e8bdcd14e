"""Publishing answers: a bounded queue and a fixed number of publishing tasks.

A handler task that finished hands its encoded answer to `AnswerPublisher.submit` and ends. The
answer waits in a queue of at most `C2C__BROADCAST__ANSWER_QUEUE_SIZE` answers; when the queue is
full the handler task waits up to `QUEUE_WAIT` for room (still counted in `max_pending_handlers`,
so the listener slows down and Redis buffers the burst), then the answer is **dropped**: counted
(`answers_dropped`, and `status().answers_dropped`) and logged (a WARNING at most every 10 s, with
the number suppressed). `C2C__BROADCAST__ANSWER_PUBLISHERS`
tasks take answers from the queue and PUBLISH them, up to `BATCH` at a time in one pipeline (one
round trip), each round trip bounded by `connect_timeout`.

So a flood of calls that want answers (forged or not) costs at most `answer_publishers` Redis
connections for the answers, instead of one per call being answered at the same time, and at most
`answer_queue_size` answers in memory; the callers of the dropped answers see a `MissingAnswer`.

At close, `flush()` publishes what is still queued (with the error answers of the calls the close
cut) in one step bounded in time, and waits for the batches being published, before the
publishing tasks are cancelled.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, NamedTuple

from c2c_broadcast._status import ANSWERS_DROPPED, ANSWERS_SENT, explained
from c2c_broadcast._subscriber import ErrorTypes
from c2c_config import raise_if_cancelled

if TYPE_CHECKING:
    from c2c_broadcast._redis import RedisBroadcaster


# Most answers one publishing task sends in one round trip (a pipeline).
BATCH = 100
# How long an answer waits for room in a full queue before it is dropped.
QUEUE_WAIT = 1.0


class _Answer(NamedTuple):
    channel: str
    """The broadcast channel (for the logs)."""
    answer_channel: str
    message: str


class AnswerPublisher:
    """The answers waiting to be published, and the tasks that publish them."""

    def __init__(self, owner: RedisBroadcaster) -> None:
        """Answers for `owner` (its settings, client, counters and rate-limited log); no task before `start()`."""
        self.owner = owner
        self._queue: asyncio.Queue[_Answer] = asyncio.Queue(maxsize=owner.settings.answer_queue_size)
        self.dropped = 0
        self._publishing = 0

    @property
    def waiting(self) -> int:
        """How many answers are not published yet: in the queue, or being published."""
        return self._queue.qsize() + self._publishing

    def start(self) -> list[asyncio.Task[None]]:
        """Start the publishing tasks (the owner cancels them on close)."""
        return [
            asyncio.create_task(self._publish_forever(), name=f"c2c-broadcast answer publisher {index}")
            for index in range(self.owner.settings.answer_publishers)
        ]

    async def submit(self, channel: str, answer_channel: str, message: str) -> bool:
        """Queue an answer, waiting at most `QUEUE_WAIT` for room; False when it was dropped (counted and logged)."""
        answer = _Answer(channel, answer_channel, message)
        try:
            self._queue.put_nowait(answer)
            return True
        except asyncio.QueueFull:
            pass
        try:
            # Back-pressure: the handler task stays pending meanwhile, and `max_pending_handlers`
            # stops the listener, so a burst waits in Redis instead of being dropped at once.
            async with asyncio.timeout(QUEUE_WAIT):
                await self._queue.put(answer)
            return True
        except TimeoutError:
            pass
        self.dropped += 1
        self.owner.count(ANSWERS_DROPPED)
        self.owner.log.warning(
            "answer-queue",
            "Broadcast: dropped the answer for %r: %d answers already wait to be published "
            "(C2C__BROADCAST__ANSWER_QUEUE_SIZE) since %g s; %d dropped so far",
            channel,
            self._queue.qsize(),
            QUEUE_WAIT,
            self.dropped,
        )
        return False

    async def _publish_forever(self) -> None:
        while True:
            raise_if_cancelled()  # one lost in redis-py (Python 3.11's wait_for) would wait for the next answer
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._publishing += len(batch)
            try:
                await self._publish(batch)
            finally:
                self._publishing -= len(batch)
                for _ in batch:
                    self._queue.task_done()

    async def flush(self, extra: list[tuple[str, str, str]], timeout: float) -> BaseException | None:  # noqa: ASYNC109
        """At close: publish the queued answers and `extra` (channel, answer channel, message) at once.

        Also waits for the batches the publishing tasks are sending. Everything within `timeout`
        (a frozen Redis must not hold the close). Returns the error when not everything was
        published in time (not logged: the caller says it), else None.
        """
        batch = [_Answer(*answer) for answer in extra]
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
            self._queue.task_done()
        try:
            async with asyncio.timeout(timeout):
                for start in range(0, len(batch), BATCH):
                    await self._send(batch[start : start + BATCH])
                    self.owner.count(ANSWERS_SENT, len(batch[start : start + BATCH]))
                await self._queue.join()  # the batches the publishing tasks are sending
        except Exception as failure:  # Redis's errors, the bound: said by the caller; a close never raises
            return explained(failure, timeout)
        return None

    async def _send(self, batch: list[_Answer]) -> None:
        """PUBLISH the answers in one round trip (a pipeline, not a transaction); on a cluster SPUBLISH."""
        owner = self.owner
        async with owner.client().pipeline(transaction=False) as pipe:
            for answer in batch:
                if owner.cluster:
                    pipe.spublish(answer.answer_channel, answer.message)
                else:
                    pipe.publish(answer.answer_channel, answer.message)
            await pipe.execute()

    async def _publish(self, batch: list[_Answer]) -> None:
        """PUBLISH the answers in one round trip (a pipeline, not a transaction), bounded by `connect_timeout`.

        On a Redis Cluster: SPUBLISH (the answer channel is in the slot of the call's channel).
        """
        owner = self.owner
        try:
            async with asyncio.timeout(owner.settings.connect_timeout.total_seconds()):
                await self._send(batch)
        except ErrorTypes as failure:
            owner.command_failed(failure)
            # Logged (rate limited, with Redis's error) and counted for `status()` by the owner.
            error = explained(failure, owner.settings.connect_timeout.total_seconds())
            owner.publish_failed(error, f"{len(batch)} answer(s) for {batch[0].channel!r}, ...")
        else:
            owner.count(ANSWERS_SENT, len(batch))
            owner.publish_succeeded()
