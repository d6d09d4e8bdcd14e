"""One Redis pub/sub connection kept alive: connect, subscribe, read, and on any error start over.

A `Subscriber` runs in a task (`run()`), one step at a time:

1. **connect**: a fresh pub/sub from the owner's client, subscribed to its channels and patterns
   (bounded by `connect_timeout`: against a frozen server the handshake would wait forever);
2. **read loop**: read messages, probing an idle connection with PING and giving it up when no
   PONG comes;
3. **handle one message**: a call goes to `on_message`; a subscription confirmation marks the
   channel subscribed, and once all are, the connection is *ready* (after subscribing the channels
   added meanwhile);
4. **back-off**: on any error, forget the connection, tell the owner (it logs once per outage),
   wait with capped exponential back-off and jitter, and start over; a parser out of step
   (`Resync`) starts over at once, without an outage.

The owner (the Redis broadcaster) gives the client, the settings and the bookkeeping
(`SubscriberOwner`).
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
from redis.exceptions import RedisError

from c2c_broadcast._base import LOG
from c2c_broadcast._settings import BroadcastSettings

# What a Redis command or connection raises when Redis is down, unreachable or too slow.
ErrorTypes = (RedisError, OSError, asyncio.TimeoutError)
# The first pause between two connection attempts (then doubled, up to `reconnect_max_delay`).
MIN_DELAY = 0.05


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

    def pubsub_client(self) -> aioredis.Redis:
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


class _Liveness:
    """PING an idle connection, and give it up when no PONG comes."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last_seen = time.monotonic()
        self.ping_sent: float | None = None

    def seen(self, now: float) -> None:
        """Something (a message, a confirmation, a PONG) came: the connection is alive."""
        self.last_seen = now
        self.ping_sent = None

    async def idle(self, pubsub: aioredis.client.PubSub, now: float) -> None:
        """Nothing came: PING after `interval`, fail when the PING has no answer after twice that."""
        if self.ping_sent is not None and now - self.ping_sent > self.interval * 2:
            raise ConnectionError(f"no answer to PING for {now - self.ping_sent:.0f} s")
        if self.ping_sent is None and now - self.last_seen > self.interval:
            await pubsub.ping()
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
        self._delay = MIN_DELAY

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
            pubsub = self.owner.pubsub_client().pubsub()
            self.pubsub = pubsub
            try:
                await self._read_loop(pubsub, await self._connect(pubsub))
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
            if channels:
                await pubsub.subscribe(*channels)
            if self._patterns:
                await pubsub.psubscribe(*self._patterns)
        return subscriptions

    async def _read_loop(self, pubsub: aioredis.client.PubSub, subscriptions: _Subscriptions) -> NoReturn:
        """Read until the connection fails; an idle connection is probed with PING."""
        ping_interval = min(self.owner.settings.heartbeat_interval.total_seconds(), 5.0)
        liveness = _Liveness(ping_interval)
        while True:
            message = await self._next_message(pubsub, ping_interval / 2)
            now = time.monotonic()
            if message is None:
                await liveness.idle(pubsub, now)
                continue
            liveness.seen(now)
            await self._handle(pubsub, message, subscriptions)

    async def _next_message(self, pubsub: aioredis.client.PubSub, timeout: float) -> dict[str, Any] | None:  # noqa: ASYNC109
        try:
            message: dict[str, Any] | None = await pubsub.get_message(timeout=timeout)
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
        if kind in ("message", "pmessage"):
            try:
                await self._on_message(text(message["channel"]), message["data"])
            except Exception:  # a bug must not kill the listener
                LOG.exception("Broadcast: unexpected error while handling a message on %s", self.name)
        elif kind in ("subscribe", "psubscribe"):
            await self._subscribed(pubsub, text(message["channel"]), subscriptions)
        elif kind == "unsubscribe":
            channel = text(message["channel"])
            self.confirmed.discard(channel)
            self._confirm_events.pop(channel, None)

    async def _subscribed(self, pubsub: aioredis.client.PubSub, channel: str, subscriptions: _Subscriptions) -> None:
        """Redis confirmed `channel`; once every requested one is, the connection is ready."""
        self.confirmed.add(channel)
        if channel in self._confirm_events:
            self._confirm_events[channel].set()
        subscriptions.pending.discard(channel)
        if subscriptions.pending or self.connected.is_set():
            return
        # Channels subscribed meanwhile: their `subscribe()` left them to us.
        missing = set(self._channels()) - subscriptions.requested
        if missing:
            subscriptions.requested |= missing
            subscriptions.pending |= missing
            await pubsub.subscribe(*missing)
        else:
            self._ready()

    async def _disconnect(self, pubsub: aioredis.client.PubSub) -> None:
        """Forget the connection and what it confirmed; close it (bounded, best effort)."""
        self.pubsub = None
        self.connected.clear()
        self.confirmed.clear()
        for event in self._confirm_events.values():
            event.clear()
        self.first_attempt.set()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call,unused-ignore]

    async def _back_off(self) -> None:
        """Wait before the next attempt: capped exponential back-off, with jitter."""
        max_delay = max(self.owner.settings.reconnect_max_delay.total_seconds(), MIN_DELAY)
        await asyncio.sleep(self._delay * (0.5 + random.random()))  # jitter
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
        self.last_error = f"{type(error).__name__}: {error}"
        self.owner.connection_lost(self, error)
