"""c2casgiutils 0.14's Redis broadcaster and pub/sub worker, with 0.14's constructors.

`RedisBroadcaster(broadcast_prefix, master, slave)` is a thin adapter over
`c2c_broadcast.redis.RedisBroadcaster` (same wire format, so it talks to 0.14 replicas and to ours);
`AsyncPubSubWorker(pubsub, name=None)` reads a redis-py `PubSub` in a task, as 0.14's did, with a
`stop()` that works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

import c2c_broadcast
from c2c_broadcast.redis import RedisBroadcaster as _OurRedisBroadcaster
from c2c_config import describe_error, get_settings, raise_if_cancelled
from c2casgiutils.broadcast import interface, local
from c2casgiutils.broadcast import utils as utils  # an attribute of this module in 0.14

if TYPE_CHECKING:
    import redis.asyncio.client

__all__ = ["AsyncPubSubWorker", "RedisBroadcaster"]

LOG = logging.getLogger("c2casgiutils.broadcast.redis")

STOP_TIMEOUT = 5.0
"""Seconds `AsyncPubSubWorker.stop()` waits for the unsubscription and the task before cancelling it."""


class AsyncPubSubWorker:
    """Read a redis-py asyncio `PubSub` in a background task, so that its channel handlers run.

    `run()` reads messages (handlers registered with `pubsub.subscribe(**{channel: handler})` are
    called by redis-py) while the pub/sub is subscribed to something; on a Redis error it logs once
    (`Redis connection problem`, then `Redis is back`) and retries every 0.5 s. `start()` runs it in
    a task named `name`; `stop()` unsubscribes from everything, waits for the task and closes the
    pub/sub.

    Difference from 0.14: `stop()` returns (bounded by `STOP_TIMEOUT`, then the task is cancelled);
    0.14's did not await its unsubscription and waited forever. The pub/sub is closed with
    `aclose()` (0.14 called the deprecated `close()` without awaiting it).
    """

    def __init__(self, pubsub: redis.asyncio.client.PubSub, name: str | None = None) -> None:
        """Prepare a worker for `pubsub` (nothing runs before `start()` or `run()`)."""
        self.pubsub = pubsub
        self.name = name
        self.running = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run `run()` in a background task (once)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=self.name)

    async def run(self) -> None:
        """Read messages until the pub/sub is subscribed to nothing (returns at once if already running)."""
        if self.running:
            return
        self.running = True
        healthy = True
        try:
            while self.pubsub.subscribed:
                raise_if_cancelled()  # one lost in redis-py (Python 3.11's wait_for)
                try:
                    await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                except (RedisError, OSError) as error:
                    if healthy:
                        LOG.warning("Redis connection problem (%s)", describe_error(error))
                        healthy = False
                    await asyncio.sleep(0.5)
                    continue
                except Exception:
                    LOG.warning("Unexpected error while reading the Redis pub/sub %s", self.name, exc_info=True)
                    await asyncio.sleep(0.5)
                    continue
                if not healthy:
                    LOG.info("Redis is back")
                    healthy = True
            LOG.info("Redis subscription worker %s stopped", self.name or "")
        finally:
            self.running = False

    async def stop(self) -> None:
        """Unsubscribe from everything, wait for the task (bounded) and close the pub/sub."""
        task = self._task
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await self.pubsub.unsubscribe()
                await self.pubsub.punsubscribe()
                if task is not None:
                    await asyncio.shield(task)
        except (TimeoutError, RedisError, OSError) as error:
            LOG.warning("Stopping the Redis subscription worker %s: %s", self.name or "", type(error).__name__)
        finally:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._task = None
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()


class RedisBroadcaster(interface._OverOurs):
    """Broadcast through Redis with c2casgiutils 0.14's constructor, over c2c-broadcast's Redis broadcaster.

    `master` carries everything (pub/sub and commands) and must belong to the event loop that uses
    the broadcaster; it stays the caller's to close. `slave` is kept (`_slave`) and not used, as in
    0.14. `init()` starts the listeners; `broadcast` returns 0.14's raw answers (`{"hostname",
    "pid", "payload"}` dicts, `None` for a missing one; a handler error is 0.14's
    `{"status": 500, "message": ...}` payload).

    Differences from 0.14 (for the migration guide):

    - `init()` does not fail when Redis is down: it waits `C2C__BROADCAST__CONNECT_TIMEOUT` and
      keeps connecting in the background; `broadcast` then raises
      `c2c_broadcast.BroadcastUnavailableError` instead of a redis-py error. `broadcast` before
      `init()` starts it (0.14 failed an assertion when answers were expected);
    - how many answers are awaited and for how long follows c2c-broadcast (registry of live
      replicas, exact-channel subscribers, early stop; pattern subscribers are not counted), not
      the PUBLISH count with 100 ms polling;
    - answers come on a pattern subscription of their own (`<prefix>c2c_answer_...`), and the
      listener is subscribed to `<prefix>c2c_control_<random>` instead of `<prefix>c2c_dummy`;
    - settings other than the prefix (timeouts, signing, size limits) come from the environment
      (`C2C__BROADCAST__*`);
    - `close()` is new: it leaves the registry, stops the listeners and the running handlers (0.14
      had no way to stop).
    """

    def __init__(
        self,
        broadcast_prefix: str,
        master: redis.asyncio.client.Redis,
        slave: redis.asyncio.client.Redis,
    ) -> None:
        """A broadcaster on `master` with channels `broadcast_prefix + channel` (no I/O before `init()`)."""
        self._broadcast_prefix = broadcast_prefix
        self._master = master
        self._slave = slave
        self._impl = _OurRedisBroadcaster(
            settings=get_settings(c2c_broadcast.Settings).broadcast, client=master, prefix=broadcast_prefix
        )

    async def init(self) -> None:
        """Start the listeners; waits for Redis at most `C2C__BROADCAST__CONNECT_TIMEOUT`, never fails."""
        await self._impl.start()

    async def copy_local_subscriptions(self, prev_broadcaster: local.LocalBroadcaster) -> None:
        """Subscribe here every callback of a local broadcaster."""
        for channel, callback in prev_broadcaster.get_subscribers().items():
            await self.subscribe(channel, callback)
