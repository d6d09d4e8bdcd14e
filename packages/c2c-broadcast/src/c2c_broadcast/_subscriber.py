"""One Redis pub/sub connection kept alive: connect, subscribe, read, and on any error start over.

A `Subscriber` runs in a task (`run()`), one step at a time:

1. **connect**: a fresh pub/sub from the owner's client, subscribed to its channels and patterns
   (bounded by `connect_timeout`: against a frozen server the handshake would wait forever);
2. **read loop**: read messages, probing an idle connection with PING every `ping_interval`
   (`min(heartbeat_interval, 5 s)`) and giving it up when no PONG comes within the PONG wait
   (`C2C__REDIS__TIMEOUT`, at least 1 s, at most twice the PING interval): a frozen server is
   noticed within about the PING interval plus the PONG wait;
3. **handle one message**: a call goes to `on_message`; a subscription confirmation marks the
   channel subscribed, and once all are, the connection is *ready* (after subscribing the channels
   added meanwhile);
4. **back-off**: on any error, forget the connection, tell the owner (it logs once per outage),
   wait with capped exponential back-off and jitter, and start over; a parser out of step
   (`Resync`) starts over at once, without an outage.

The owner (the Redis broadcaster) gives the client, the settings and the bookkeeping
(`SubscriberOwner`).

On a Redis Cluster (`sharded`) the connection is redis-py's `ClusterPubSub`, one socket per node
owning a subscribed channel: channels are shard channels (SSUBSCRIBE, confirmed by `ssubscribe`,
messages `smessage`), there are no patterns, each node's socket is read by a task of its own
(`_ShardReaders`: `get_sharded_message` polls the nodes in turn, each for a share of the timeout,
which delays a message on one node by the others' shares), every node's connection is PINGed every
interval (traffic on one node says nothing of the others), and a
`sunsubscribe` nobody asked for (Redis moved the slot away: a failover) is a lost connection: the
subscriber starts over, after refreshing the client's view of the cluster, and subscribes every
channel again on the nodes that own them now.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from c2c_broadcast._base import LOG
from c2c_broadcast._settings import BroadcastSettings
from c2c_broadcast._status import RateLimitedLog
from c2c_config import describe_error, raise_if_cancelled

# What a Redis command or connection raises when Redis is down, unreachable or too slow (on a
# cluster also a slot no node serves, during a failover).
ErrorTypes = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)
# The first pause between two connection attempts (then doubled, up to `reconnect_max_delay`).
MIN_DELAY = 0.05
# The shortest wait for a PONG, whatever C2C__REDIS__TIMEOUT says: the reply also waits for this
# process's event loop (busy handlers), and giving up a healthy connection costs calls.
MIN_PONG_WAIT = 1.0


def pong_wait(ping_interval: float, redis_timeout: float) -> float:
    """How long a PING may stay unanswered: `redis_timeout` (at least `MIN_PONG_WAIT`, at most 2 PING intervals)."""
    return min(2 * ping_interval, max(redis_timeout, MIN_PONG_WAIT))


def text(value: str | bytes) -> str:
    """A channel name as text, whether the client decodes responses or not."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class Resync(Exception):
    """The connection is healthy but unusable (parser out of step): replace it without an outage log."""


class SubscriberOwner(Protocol):
    """What a subscriber needs from the broadcaster that owns it."""

    settings: BroadcastSettings

    @property
    def closed(self) -> bool:
        """Whether the broadcaster is closed: a subscriber then never reconnects."""
        ...

    @property
    def cluster(self) -> bool:
        """Whether Redis is a cluster (sharded pub/sub)."""
        ...

    @property
    def redis_timeout(self) -> float:
        """How long Redis may take to answer a command (`C2C__REDIS__TIMEOUT`), in seconds: the PONG wait."""
        ...

    def pubsub_client(self) -> aioredis.Redis | RedisCluster:
        """The client whose pub/sub connections the subscriber uses."""
        ...

    def dropped(self, reason: str, where: str, detail: str) -> None:
        """Count and log a refused message."""
        ...

    def count_reconnection(self) -> None:
        """The subscriber connected again after a loss."""
        ...

    def connection_lost(self, subscriber: Subscriber, error: BaseException) -> None:
        """The subscriber's connection failed (`subscriber.attempts` counts the failures in a row)."""
        ...


@dataclasses.dataclass
class _Subscriptions:
    """What one connection asked for, and what Redis has not confirmed yet."""

    requested: set[str]
    pending: set[str]


def node_pubsubs(pubsub: aioredis.client.PubSub) -> list[aioredis.client.PubSub]:
    """The per-node connections of a `ClusterPubSub` (one per node owning a subscribed shard channel)."""
    mapping: dict[str, Any] = getattr(pubsub, "node_pubsub_mapping", {})
    return [node for node in mapping.values() if getattr(node, "connection", None) is not None]


# How many messages the shard readers hold for the read loop; beyond, they stop reading (Redis
# buffers), as the single connection does when the handlers are saturated.
SHARD_QUEUE_SIZE = 256


class _ShardReaders:
    """One task per node connection of a `ClusterPubSub`, feeding one bounded queue (messages, or an error).

    PONGs are counted at once (`pongs`), not queued: a backlog of calls must not make a live node
    look dead.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue(SHARD_QUEUE_SIZE)
        """Full: the readers wait for the read loop (back-pressure), a PONG may wait behind it."""
        self.pongs = 0
        self._tasks: dict[int, tuple[aioredis.client.PubSub, asyncio.Task[None]]] = {}

    def sync(self, pubsub: aioredis.client.PubSub) -> None:
        """Start a reader for every node connection that has none yet."""
        for node in node_pubsubs(pubsub):
            if id(node) not in self._tasks:
                task = asyncio.create_task(self._read(node), name="c2c-broadcast shard reader")
                self._tasks[id(node)] = (node, task)

    async def _read(self, node: aioredis.client.PubSub) -> None:
        try:
            while True:
                raise_if_cancelled()
                message = await node.get_message(timeout=None)
                if message is None:
                    continue
                if message.get("type") == "pong":
                    self.pongs += 1
                    continue
                await self.queue.put(message)  # full: stop reading, Redis buffers (back-pressure)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the subscriber starts over
            await self.queue.put(error)

    async def next(self, timeout: float) -> dict[str, Any] | None:  # noqa: ASYNC109
        """The next message of any node, None after `timeout`; raises what ended a reader."""
        try:
            async with asyncio.timeout(timeout):
                item = await self.queue.get()
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def stop(self) -> None:
        """Cancel the readers (bounded)."""
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1)
        self.queue = asyncio.Queue(SHARD_QUEUE_SIZE)


class _Liveness:
    """PING an idle connection every `interval`, and give it up when no PONG comes within `pong_wait`.

    Sharded (`pongs` given: the shard readers' PONG count): PING every node's connection every
    `interval`, whatever the traffic (traffic on one node says nothing of the others), and wait
    for as many PONGs; while `busy()` (the readers wait for room in their queue: this process's own
    back-pressure, a PONG may be unread behind it) the wait starts over.
    """

    def __init__(
        self,
        interval: float,
        pong_wait: float,
        pongs: Callable[[], int] | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.interval = interval
        self.pong_wait = pong_wait
        self.pongs = pongs
        self.busy = busy
        self.last_seen = time.monotonic()
        self.ping_sent: float | None = None
        self.expected_pongs = 0

    def wait(self, now: float) -> float:
        """How long the read loop may wait for a message before `idle()` is due (PING to send, PONG overdue)."""
        due = self.ping_sent + self.pong_wait if self.ping_sent is not None else self.last_seen + self.interval
        return min(max(due - now, 0.01), self.interval / 2)

    def seen(self, now: float) -> None:
        """Something (a message, a confirmation, a PONG) came: the connection is alive (not sharded)."""
        if self.pongs is None:
            self.last_seen = now
            self.ping_sent = None

    async def idle(self, pubsub: aioredis.client.PubSub, now: float) -> None:
        """PING after `interval` (idle only, unless sharded), fail when no answer comes within `pong_wait`."""
        if self.pongs is not None and self.ping_sent is not None and self.pongs() >= self.expected_pongs:
            self.ping_sent = None
            self.last_seen = now
        if self.ping_sent is not None and self.busy is not None and self.busy():
            self.ping_sent = now
        if self.ping_sent is not None and now - self.ping_sent >= self.pong_wait:
            raise ConnectionError(f"no answer to PING for {now - self.ping_sent:.1f} s")
        if self.ping_sent is None and now - self.last_seen >= self.interval:
            if self.pongs is None:
                await pubsub.ping()
            else:
                nodes = node_pubsubs(pubsub)
                self.expected_pongs = self.pongs() + len(nodes)
                async with asyncio.timeout(self.interval):
                    for node in nodes:
                        await node.ping()
                if not nodes:
                    self.last_seen = now
                    return
            self.ping_sent = now


class Subscriber:
    """One pub/sub connection kept alive: connect, subscribe, read, and on any error start over."""

    def __init__(
        self,
        owner: SubscriberOwner,
        name: str,
        channels: Callable[[], list[str]],
        fixed_channels: list[str],
        patterns: list[str],
        on_message: Callable[[str, str | bytes], Awaitable[None]],
        on_ready: Callable[[], None],
    ) -> None:
        """`channels()` are read at each connection, `fixed_channels` and `patterns` always subscribed."""
        self.owner = owner
        self.name = name
        self._channels = channels
        self._fixed_channels = fixed_channels
        self._patterns = patterns
        self._on_message = on_message
        self._on_ready = on_ready
        self.pubsub: aioredis.client.PubSub | None = None
        self.connected = asyncio.Event()
        self.first_attempt = asyncio.Event()
        self.confirmed: set[str] = set()
        self._confirm_events: dict[str, asyncio.Event] = {}
        self.attempts = 0
        self.ever_connected = False
        self.last_error: str | None = None
        # What a message makes go wrong comes from whoever can publish: logged at most every 10 s.
        self._message_errors = RateLimitedLog(LOG)
        self._delay = MIN_DELAY
        self._wake = asyncio.Event()
        self._leaving: set[str] = set()
        self._readers = _ShardReaders()

    @property
    def sharded(self) -> bool:
        """Whether the channels are shard channels (a Redis Cluster)."""
        return self.owner.cluster

    async def subscribe(self, *channels: str) -> None:
        """Subscribe the current connection to more channels (confirmed later: see `confirmation()`)."""
        pubsub = self.pubsub
        if pubsub is None:
            raise ConnectionError(f"the {self.name} connection is down")
        self._leaving.difference_update(channels)
        if self.sharded:
            await pubsub.ssubscribe(*channels)
            self._readers.sync(pubsub)
        else:
            await pubsub.subscribe(*channels)

    async def unsubscribe(self, *channels: str) -> None:
        """Unsubscribe the current connection from channels (no-op without a connection)."""
        pubsub = self.pubsub
        if pubsub is None:
            return
        self._leaving.update(channels)
        if self.sharded:
            await pubsub.sunsubscribe(*channels)
        else:
            await pubsub.unsubscribe(*channels)

    def confirmation(self, channel: str) -> asyncio.Event:
        """An event set once `channel` is confirmed subscribed on the current connection."""
        event = self._confirm_events.get(channel)
        if event is None:
            event = self._confirm_events[channel] = asyncio.Event()
            if channel in self.confirmed:
                event.set()
        return event

    async def run(self) -> None:
        """Keep a connection until the owner is closed (or the task cancelled)."""
        # `closed` as well as the cancellation: Python 3.11's wait_for can swallow a cancellation
        # that arrives as its awaitable completes, and a closed broadcaster must never reconnect.
        while not self._stopped():
            client = self.owner.pubsub_client()
            if self.sharded and self.attempts and isinstance(client, RedisCluster):
                await self._refresh_topology(client)
            pubsub = client.pubsub()
            self.pubsub = pubsub
            try:
                subscriptions = await self._connect(pubsub)
                # Nothing to subscribe (the answers on a cluster, before any call): ready at once.
                async with asyncio.timeout(self.owner.settings.connect_timeout.total_seconds()):
                    await self._ready_unless_missing(pubsub, subscriptions)
                await self._read_loop(pubsub, subscriptions)
            except asyncio.CancelledError:
                raise
            except Resync:
                self._delay = 0.0
            except (*ErrorTypes, RuntimeError) as error:
                self._lost(error)
            except Exception as error:  # unexpected: log it, and keep the listener alive
                LOG.exception("Broadcast: unexpected error in the %s connection", self.name)
                self._lost(error)
            finally:
                await self._disconnect(pubsub)
            if self._stopped():
                return
            await self._back_off()

    # -- the steps -------------------------------------------------------------------------

    async def _connect(self, pubsub: aioredis.client.PubSub) -> _Subscriptions:
        """Subscribe the new connection to every channel and pattern (bounded)."""
        channels = [*self._fixed_channels, *self._channels()]
        subscriptions = _Subscriptions(requested=set(channels), pending={*channels, *self._patterns})
        # Bounded: against a frozen server the connection handshake would wait forever.
        async with asyncio.timeout(self.owner.settings.connect_timeout.total_seconds()):
            if channels and self.sharded:
                await pubsub.ssubscribe(*channels)
                self._readers.sync(pubsub)
            elif channels:
                await pubsub.subscribe(*channels)
            if self._patterns:
                await pubsub.psubscribe(*self._patterns)
        return subscriptions

    async def _read_loop(self, pubsub: aioredis.client.PubSub, subscriptions: _Subscriptions) -> NoReturn:
        """Read until the connection fails; an idle connection is probed with PING."""
        ping_interval = min(self.owner.settings.heartbeat_interval.total_seconds(), 5.0)
        liveness = _Liveness(
            ping_interval,
            pong_wait(ping_interval, self.owner.redis_timeout),
            (lambda: self._readers.pongs) if self.sharded else None,
            (lambda: self._readers.queue.full()) if self.sharded else None,
        )
        while True:
            # A cancellation that redis-py lost (Python 3.11's wait_for, when writing a PING or a
            # SUBSCRIBE) would leave this loop reading a quiet connection after close().
            raise_if_cancelled()
            message = await self._next_message(pubsub, liveness.wait(time.monotonic()))
            now = time.monotonic()
            if message is None or self.sharded:
                await liveness.idle(pubsub, now)
            if message is None:
                continue
            liveness.seen(now)
            await self._handle(pubsub, message, subscriptions)

    async def _next_message(self, pubsub: aioredis.client.PubSub, timeout: float) -> dict[str, Any] | None:  # noqa: ASYNC109
        try:
            message: dict[str, Any] | None
            if self.sharded:
                self._readers.sync(pubsub)  # redis-py may have added a node connection meanwhile
                message = await self._readers.next(timeout)
            else:
                message = await pubsub.get_message(timeout=timeout)
        except UnicodeDecodeError:
            # decode_responses=True and someone published bytes that are not UTF-8: redis-py's
            # parser is left mid-frame and would fail forever. Start a fresh connection.
            self.owner.dropped("malformed", self.name, "not UTF-8; reconnecting")
            raise Resync from None
        return message

    async def _handle(
        self, pubsub: aioredis.client.PubSub, message: dict[str, Any], subscriptions: _Subscriptions
    ) -> None:
        """Handle one message: a call, a subscription confirmation or an unsubscription."""
        kind = message["type"]
        if kind in ("message", "pmessage", "smessage"):
            try:
                await self._on_message(text(message["channel"]), message["data"])
            except Exception:  # a bug must not kill the listener
                self._message_errors.exception(
                    "message", "Broadcast: unexpected error while handling a message on %s", self.name
                )
        elif kind in ("subscribe", "psubscribe", "ssubscribe"):
            await self._subscribed(pubsub, text(message["channel"]), subscriptions)
        elif kind in ("unsubscribe", "sunsubscribe"):
            channel = text(message["channel"])
            if kind == "sunsubscribe" and channel not in self._leaving:
                # Redis (or the client's own re-routing) moved a wanted channel: start over.
                raise ConnectionError(f"Redis dropped the subscription to {channel} (its slot moved)")
            self._leaving.discard(channel)
            self.confirmed.discard(channel)
            self._confirm_events.pop(channel, None)

    async def _subscribed(self, pubsub: aioredis.client.PubSub, channel: str, subscriptions: _Subscriptions) -> None:
        """Redis confirmed `channel`; once every requested one is, the connection is ready."""
        self.confirmed.add(channel)
        if channel in self._confirm_events:
            self._confirm_events[channel].set()
        subscriptions.pending.discard(channel)
        await self._ready_unless_missing(pubsub, subscriptions)

    async def _ready_unless_missing(self, pubsub: aioredis.client.PubSub, subscriptions: _Subscriptions) -> None:
        """Once nothing is pending: subscribe the channels added meanwhile, or else the connection is ready."""
        if subscriptions.pending or self.connected.is_set():
            return
        # Channels subscribed meanwhile: their `subscribe()` left them to us.
        missing = set(self._channels()) - subscriptions.requested
        if missing:
            subscriptions.requested |= missing
            subscriptions.pending |= missing
            if self.sharded:
                await pubsub.ssubscribe(*missing)
                self._readers.sync(pubsub)
            else:
                await pubsub.subscribe(*missing)
        else:
            self._ready()

    async def _refresh_topology(self, client: RedisCluster) -> None:
        """After a loss on a cluster: ask the nodes who owns which slot now (bounded, best effort)."""
        try:
            async with asyncio.timeout(self.owner.settings.connect_timeout.total_seconds()):
                await client.nodes_manager.initialize()
        except (*ErrorTypes, RuntimeError) as error:
            LOG.debug("Broadcast: could not refresh the cluster's slots: %s", error)

    async def _disconnect(self, pubsub: aioredis.client.PubSub) -> None:
        """Forget the connection and what it confirmed; close it (bounded, best effort)."""
        self.pubsub = None
        self.connected.clear()
        self.confirmed.clear()
        self._leaving.clear()
        await self._readers.stop()
        for event in self._confirm_events.values():
            event.clear()
        self.first_attempt.set()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call,unused-ignore]

    def wake(self) -> None:
        """Try again now if waiting between two attempts: another connection to Redis just succeeded."""
        self._wake.set()

    async def _back_off(self) -> None:
        """Wait before the next attempt: capped exponential back-off, with jitter; `wake()` ends it."""
        max_delay = max(self.owner.settings.reconnect_max_delay.total_seconds(), MIN_DELAY)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._delay * (0.5 + random.random())):  # jitter
                await self._wake.wait()
        self._wake.clear()
        self._delay = min(max(self._delay * 2, MIN_DELAY), max_delay)

    # -- bookkeeping -----------------------------------------------------------------------

    def _stopped(self) -> bool:
        return self.owner.closed

    def _ready(self) -> None:
        if self.ever_connected and not self.connected.is_set():
            self.owner.count_reconnection()
        self.ever_connected = True
        self.connected.set()
        self.first_attempt.set()
        self.attempts = 0
        self._delay = MIN_DELAY
        self._on_ready()

    def _lost(self, error: BaseException) -> None:
        self.attempts += 1
        self.last_error = describe_error(error)
        self.owner.connection_lost(self, error)
