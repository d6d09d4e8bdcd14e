"""The Redis broadcaster: pub/sub for calls and answers, a registry of live replicas kept by heartbeats.

Connections (all from c2c-config's `RedisFactory` master client, so they follow a Sentinel failover):

- the *listener* pub/sub subscribes to `<prefix><channel>` for every subscribed channel and hands
  each message to a task (a slow handler never blocks it);
- the *answers* pub/sub subscribes once to a pattern private to this process,
  `<prefix>c2c_answer_<random>_*`; every call uses a fresh answer channel under it, so collecting
  answers costs no extra round trip and wakes the caller as soon as the last answer arrives;
- commands (PUBLISH, heartbeats) go through the client's pool.

Both pub/sub connections reconnect with capped exponential back-off, resubscribe, and re-register
the replica; idle connections are probed with PING, so a silently dropped one is noticed.

The registry: one sorted set per channel, `<prefix>c2c_registry:<channel>`, member = the replica,
score = expiry time in Redis's clock (ms), refreshed every `heartbeat_interval` and removed on a
clean shutdown. A call reads it and publishes in one script, then waits for every registered,
addressed replica, or for as many as PUBLISH reached when fewer (a killed replica), whichever is
less: a monitoring `SUBSCRIBE` or a pattern subscriber no longer makes the caller wait for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Literal

from c2c_broadcast._base import (
    LOG,
    BaseBroadcaster,
    BroadcastUnavailableError,
    Handler,
    Result,
    answer_to_result,
    to_wire_params,
)
from c2c_broadcast._settings import BroadcastSettings
from c2c_broadcast._status import (
    ANSWERS_MISSING,
    ANSWERS_RECEIVED,
    ANSWERS_SENT,
    BROADCASTS_SENT,
    MESSAGES_DROPPED,
    MESSAGES_RECEIVED,
    RECONNECTIONS,
    BroadcasterStatus,
    Metrics,
    RateLimitedLog,
    State,
)
from c2c_broadcast._wire import (
    EVERYONE,
    Answer,
    DroppedMessage,
    ReplayGuard,
    Request,
    Targets,
    decode_answer,
    decode_request,
    dumps,
    encode_answer,
    encode_request,
)
from c2c_broadcast.types import MissingAnswer

try:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from c2c_config.redis import RedisFactory
except ModuleNotFoundError as _error:  # exercised by the "not installed" test
    raise ModuleNotFoundError(
        "the Redis broadcaster needs the Redis client: install c2c-broadcast[redis]", name=_error.name
    ) from None

# Read the live replicas of a channel, count its exact-channel subscribers (PUBSUB NUMSUB: not the
# pattern subscribers, which PUBLISH counts) and publish, in one round trip, atomically, in Redis's clock.
_PUBLISH_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
local subscribers = redis.call('PUBSUB', 'NUMSUB', ARGV[1])[2]
local receivers = redis.call('PUBLISH', ARGV[1], ARGV[2])
return {receivers, members, subscribers}
"""
# Refresh this replica in the registry of every channel it listens to; forget expired replicas.
_HEARTBEAT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZADD', key, now + ttl, ARGV[1])
  redis.call('PEXPIRE', key, ttl * 2)
end
return now
"""
# When `max_pending_handlers` are running, the listener stops reading for at most this long (Redis
# buffers meanwhile) before it drops a message.
OVERLOAD_WAIT = 1.0
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")

ErrorTypes = (RedisError, OSError, asyncio.TimeoutError)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class _Resync(Exception):
    """The connection is healthy but unusable (parser out of step): replace it without an outage log."""


class _Collector:
    """The answers of one call, and when to stop waiting for them.

    - `primary_done`: every registered (addressed) replica answered, or as many of them as PUBLISH
      reached when fewer (a killed replica stays registered until its entry expires).
    - `all_done`: that, and as many answers as the channel had exact-channel subscribers
      (`subscribers`, from PUBSUB NUMSUB): the unregistered ones are c2casgiutils 0.14 replicas
      (or a monitoring `SUBSCRIBE`). Pattern subscribers are never counted.
    - `legacy`: nobody registered and everyone addressed (only 0.14 replicas listen): the
      subscriber count is all there is, as in 0.14.
    """

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.answers: list[Answer] = []
        self.registered: dict[str, tuple[str, int]] | None = None
        self.receivers = 0
        self.subscribers = 0
        self.legacy = False
        self.primary_done = asyncio.Event()
        self.all_done = asyncio.Event()

    def add(self, answer: Answer) -> None:
        self.answers.append(answer)
        self._check()

    def expect(self, registered: dict[str, tuple[str, int]], receivers: int, subscribers: int, everyone: bool) -> None:
        """What the publication found: registered replicas, PUBLISH's count, NUMSUB's count (all addressed?)."""
        self.registered = registered
        self.receivers = receivers
        # Unregistered (0.14) replicas ignore addressing: a call to a subset does not wait for them.
        self.subscribers = subscribers if everyone else 0
        self.legacy = not registered and everyone
        self._check()

    def unanswered_unregistered(self) -> int:
        """How many exact-channel subscribers neither answered nor are named by a registry entry."""
        assert self.registered is not None
        named = len(self.registered) - len(self.answered_registered())
        return max(0, self.subscribers - len(self.answers) - named)

    def answered_registered(self) -> set[str]:
        assert self.registered is not None
        return {a.replica for a in self.answers if a.replica is not None and a.replica in self.registered}

    def _check(self) -> None:
        if self.registered is None:
            return  # PUBLISH has not returned yet
        # A killed replica stays registered until its entry expires, but PUBLISH no longer counts it.
        if len(self.answered_registered()) >= min(len(self.registered), self.receivers):
            self.primary_done.set()
        if self.primary_done.is_set() and len(self.answers) >= self.subscribers:
            self.all_done.set()


class _Subscriber:
    """One pub/sub connection kept alive: connect, subscribe, read, and on any error start over."""

    def __init__(
        self,
        owner: RedisBroadcaster,
        name: str,
        channels: Callable[[], list[str]],
        fixed_channels: list[str],
        patterns: list[str],
        on_message: Callable[[str, str | bytes], Awaitable[None]],
        on_ready: Callable[[], None],
    ) -> None:
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

    def confirmation(self, channel: str) -> asyncio.Event:
        """An event set once `channel` is confirmed subscribed on the current connection."""
        event = self._confirm_events.get(channel)
        if event is None:
            event = self._confirm_events[channel] = asyncio.Event()
            if channel in self.confirmed:
                event.set()
        return event

    async def run(self) -> None:
        delay = 0.05
        settings = self.owner.settings
        max_delay = max(settings.reconnect_max_delay.total_seconds(), 0.05)
        ping_interval = min(settings.heartbeat_interval.total_seconds(), 5.0)
        # `closed` as well as the cancellation: Python 3.11's wait_for can swallow a cancellation
        # that arrives as its awaitable completes, and a closed broadcaster must never reconnect.
        while not self._stopped():
            client = self.owner.client()
            pubsub = client.pubsub()
            self.pubsub = pubsub
            try:
                channels = [*self._fixed_channels, *self._channels()]
                requested = set(channels)
                pending = {*channels, *self._patterns}
                # Bounded: against a frozen server the connection handshake would wait forever.
                async with asyncio.timeout(settings.connect_timeout.total_seconds()):
                    if channels:
                        await pubsub.subscribe(*channels)
                    if self._patterns:
                        await pubsub.psubscribe(*self._patterns)
                last_seen = time.monotonic()
                ping_sent: float | None = None
                while True:
                    try:
                        message = await pubsub.get_message(timeout=ping_interval / 2)
                    except UnicodeDecodeError:
                        # decode_responses=True and someone published bytes that are not UTF-8: redis-py's
                        # parser is left mid-frame and would fail forever. Start a fresh connection.
                        self.owner.dropped("malformed", self.name, "not UTF-8; reconnecting")
                        raise _Resync from None
                    now = time.monotonic()
                    if message is None:
                        if ping_sent is not None and now - ping_sent > ping_interval * 2:
                            raise ConnectionError(f"no answer to PING for {now - ping_sent:.0f} s")
                        if ping_sent is None and now - last_seen > ping_interval:
                            await pubsub.ping()
                            ping_sent = now
                        continue
                    last_seen = now
                    ping_sent = None
                    kind = message["type"]
                    if kind in ("message", "pmessage"):
                        try:
                            await self._on_message(_text(message["channel"]), message["data"])
                        except Exception:  # a bug must not kill the listener
                            LOG.exception("Broadcast: unexpected error while handling a message on %s", self.name)
                    elif kind in ("subscribe", "psubscribe"):
                        channel = _text(message["channel"])
                        self.confirmed.add(channel)
                        if channel in self._confirm_events:
                            self._confirm_events[channel].set()
                        pending.discard(channel)
                        if not pending and not self.connected.is_set():
                            # Channels subscribed meanwhile: their `subscribe()` left them to us.
                            missing = set(self._channels()) - requested
                            if missing:
                                requested |= missing
                                pending |= missing
                                await pubsub.subscribe(*missing)
                            else:
                                self._ready()
                                delay = 0.05
                    elif kind == "unsubscribe":
                        channel = _text(message["channel"])
                        self.confirmed.discard(channel)
                        self._confirm_events.pop(channel, None)
            except asyncio.CancelledError:
                raise
            except _Resync:
                delay = 0.0
            except (*ErrorTypes, RuntimeError) as error:
                self._lost(error)
            except Exception as error:  # unexpected: log it, and keep the listener alive
                LOG.exception("Broadcast: unexpected error in the %s connection", self.name)
                self._lost(error)
            finally:
                self.pubsub = None
                self.connected.clear()
                self.confirmed.clear()
                for event in self._confirm_events.values():
                    event.clear()
                self.first_attempt.set()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call,unused-ignore]
            if self._stopped():
                return
            await asyncio.sleep(delay * (0.5 + random.random()))  # jitter
            delay = min(max(delay * 2, 0.05), max_delay)

    def _stopped(self) -> bool:
        return self.owner.closed

    def _ready(self) -> None:
        if self.ever_connected and not self.connected.is_set():
            self.owner.count_reconnection()
        self.ever_connected = True
        self.connected.set()
        self.first_attempt.set()
        self.attempts = 0
        self._on_ready()

    def _lost(self, error: BaseException) -> None:
        self.attempts += 1
        self.last_error = f"{type(error).__name__}: {error}"
        self.owner.connection_lost(self, error)


class RedisBroadcaster(BaseBroadcaster):
    """Broadcast through Redis pub/sub to every replica of the service (see the module docstring)."""

    kind: ClassVar[Literal["local", "redis"]] = "redis"

    def __init__(
        self,
        factory: RedisFactory | None = None,
        settings: BroadcastSettings | None = None,
        *,
        prefix: str | None = None,
        metrics: Metrics | None = None,
        client: aioredis.Redis | None = None,
    ) -> None:
        """Prepare a broadcaster (no I/O) on `factory`'s master client, or on `client`.

        `prefix` defaults to the Redis settings' broadcast prefix. The client is taken from the
        factory in the event loop that starts the broadcaster (the factory's clients are per loop);
        a given `client` must belong to that loop, and stays its owner's to close.
        """
        super().__init__(settings, metrics)
        if factory is None and client is None:
            raise TypeError("RedisBroadcaster needs a RedisFactory or a client")
        self._factory = factory
        self._client: aioredis.Redis | None = client
        if prefix is None:
            if factory is None:
                raise TypeError("RedisBroadcaster needs a prefix when built on a client")
            prefix = factory.settings.broadcast_prefix
        self.prefix = prefix
        self._secret = self.settings.secret.get_secret_value().encode() if self.settings.secret else None
        self.answer_prefix = f"{self.prefix}c2c_answer_{secrets.token_hex(16)}_"
        self._collectors: dict[str, _Collector] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._replay_guard = ReplayGuard()
        self._log = RateLimitedLog(LOG)
        self._state: State = "connecting"
        self._since = time.time()
        self._reconnections = 0
        self._last_error: str | None = None
        self._heartbeat_now = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._closing = False
        self._draining = False
        self._listener = _Subscriber(
            self,
            "listener",
            self._wire_channels,
            # Always subscribed to something, so the connection exists before any handler does.
            [f"{self.prefix}c2c_control_{secrets.token_hex(16)}"],
            [],
            self._on_request,
            self._became_ready,
        )
        self._answers = _Subscriber(
            self,
            "answers",
            list,
            [],
            [_GLOB_SPECIAL.sub(r"\\\1", self.answer_prefix) + "*"],
            self._on_answer,
            self._became_ready,
        )
        self._publish_script: Any = None
        self._heartbeat_script: Any = None

    # -- names ---------------------------------------------------------------------------

    def wire_channel(self, channel: str) -> str:
        """The Redis channel of a broadcast channel: prefix + name (as c2casgiutils 0.14)."""
        return self.prefix + channel

    def registry_key(self, channel: str) -> str:
        """The sorted set of the replicas listening to `channel`."""
        return f"{self.prefix}c2c_registry:{channel}"

    def _wire_channels(self) -> list[str]:
        return [self.wire_channel(channel) for channel in self._handlers]

    def bind(self) -> None:
        """Take the running event loop's master client from the factory (once; no I/O)."""
        if self._client is None:
            assert self._factory is not None
            client = self._factory.master()
            if client is None:
                raise RuntimeError("Redis is not configured")
            self._client = client

    def client(self) -> aioredis.Redis:
        """The master client this broadcaster uses (taken from the factory by `bind()`)."""
        self.bind()
        assert self._client is not None
        return self._client

    def describe(self) -> str:
        """Where Redis is, for a log line (never a password)."""
        if self._factory is not None:
            return self._factory.describe()
        kwargs = self._client.connection_pool.connection_kwargs if self._client is not None else {}
        if "host" in kwargs:
            return f"redis://{kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
        return "a given Redis client"

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closing

    @property
    def _member(self) -> str:
        return json.dumps({"h": self.hostname, "p": self.pid, "r": self.replica_id}, sort_keys=True)

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the listeners and the heartbeat; wait for Redis at most `connect_timeout`, never fail.

        Idempotent; a closed broadcaster does not start again.
        """
        if self._background or self._closing:
            return
        client = self.client()
        self._publish_script = client.register_script(_PUBLISH_SCRIPT)
        self._heartbeat_script = client.register_script(_HEARTBEAT_SCRIPT)
        self._background = [
            asyncio.create_task(self._listener.run(), name="c2c-broadcast listener"),
            asyncio.create_task(self._answers.run(), name="c2c-broadcast answers"),
            asyncio.create_task(self._heartbeat_loop(), name="c2c-broadcast heartbeat"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.connect_timeout.total_seconds()):
                await self._listener.first_attempt.wait()
                await self._answers.first_attempt.wait()
        if self._listener.connected.is_set() and self._handlers:
            # Adopted subscriptions: registered before startup returns, so a call right after counts them.
            with contextlib.suppress(*ErrorTypes):
                async with asyncio.timeout(self.settings.connect_timeout.total_seconds()):
                    await self._register(list(self._handlers))
        if self._listener.connected.is_set() and self._answers.connected.is_set():
            LOG.info("Broadcast through Redis (%s) as replica %s", self.describe(), self.replica_id)
        else:
            LOG.warning(
                "Broadcast: Redis (%s) is unreachable at startup (%s); retrying in the background",
                self.describe(),
                self._listener.last_error or self._answers.last_error or "no answer yet",
            )

    async def drain(self) -> None:
        """Leave the registry of live replicas and stop the heartbeats; keep answering (see `BaseBroadcaster`).

        Called when the server starts a graceful shutdown (SIGTERM): callers stop waiting for this
        replica at once instead of until its registry entry expires (`replica_ttl`), while the calls
        it still receives are answered until its connections close.
        """
        if self._draining or self._closing:
            return
        self._draining = True
        if self._handlers and self._listener.ever_connected:
            try:
                async with asyncio.timeout(1):
                    await self._unregister(list(self._handlers))
            except Exception as error:  # bounded and best effort: the entry expires anyway
                LOG.warning("Broadcast: could not leave the registry: %s: %s", type(error).__name__, error)
        LOG.info("Broadcast: draining, replica %s left the registry", self.replica_id)

    async def close(self) -> None:
        """Stop receiving, unregister, stop the other listeners, heartbeat and running handlers.

        Bounded (about 4.5 s at worst, within `c2c_config.CLOSE_TIMEOUT` when the event loop's end
        closes it), never raises.
        """
        if self._closing:
            return
        self._closing = True
        # First stop receiving: closing the listener's connection makes Redis stop counting this
        # replica as a subscriber of its channels, so that a call made meanwhile does not wait
        # for it as for an unregistered (0.14) replica.
        listener = self._background[0] if self._background else None
        if listener is not None:
            listener.cancel()
            await asyncio.wait([listener], timeout=1)
        # Even when the listener was already cancelled (the event loop is ending): leave the registry.
        if self._handlers and self._listener.ever_connected:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await self._unregister(list(self._handlers))
        tasks = [*self._background, *self._tasks]
        for task in tasks:
            task.cancel()
        for collector in self._collectors.values():
            collector.primary_done.set()
            collector.all_done.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2.5)
            if pending:
                LOG.error("Broadcast: %d task(s) did not stop within 2.5 s", len(pending))
        self._background = []
        self._set_state("stopped")

    # -- state ---------------------------------------------------------------------------

    def _set_state(self, state: State) -> None:
        if state != self._state:
            self._state = state
            self._since = time.time()

    def _became_ready(self) -> None:
        self._heartbeat_now.set()  # (re-)register now: a restarted Redis lost the registry
        if self._listener.connected.is_set() and self._answers.connected.is_set():
            if self._state == "reconnecting":
                LOG.warning("Broadcast: Redis is back (%s)", self.describe())
            self._set_state("connected")

    def count_reconnection(self) -> None:
        """Called by a listener that connected again after a loss."""
        self._reconnections += 1
        self._count(RECONNECTIONS)

    def connection_lost(self, subscriber: _Subscriber, error: BaseException) -> None:
        """Called by a listener whose connection failed; logs once per outage."""
        self._last_error = f"{subscriber.name}: {type(error).__name__}: {error}"
        if self._closing:
            return
        if self._state == "connected":
            LOG.warning(
                "Broadcast: lost the Redis connection (%s: %s); reconnecting in the background",
                type(error).__name__,
                error,
            )
            self._set_state("reconnecting")
        elif self._state == "connecting" and subscriber.attempts == 1:
            LOG.debug("Broadcast: Redis connection failed: %s", error)

    def dropped(self, reason: str, where: str, detail: str) -> None:
        """Count and log (rate limited) a refused message."""
        self._count(MESSAGES_DROPPED, reason=reason)
        self._log.warning(f"{where}:{reason}", "Broadcast: dropped a message on %s (%s: %s)", where, reason, detail)

    def status(self) -> BroadcasterStatus:
        """A snapshot: `healthy` while both pub/sub connections are subscribed."""
        healthy = self._listener.connected.is_set() and self._answers.connected.is_set() and not self._closing
        return BroadcasterStatus(
            kind="redis",
            state=self._state,
            healthy=healthy,
            since=self._since,
            replica_id=self.replica_id,
            channels=tuple(sorted(self._handlers)),
            redis=self.describe(),
            last_error=self._last_error,
            reconnections=self._reconnections,
            pending_handlers=len(self._tasks),
            counters=self.memory_metrics.snapshot(),
        )

    # -- registry ------------------------------------------------------------------------

    async def _register(self, channels: list[str]) -> None:
        keys = [self.registry_key(channel) for channel in channels]
        if keys:
            ttl_ms = int(self.settings.replica_ttl.total_seconds() * 1000)
            await self._heartbeat_script(keys=keys, args=[self._member, ttl_ms])

    async def _unregister(self, channels: list[str]) -> None:
        client = self.client()
        async with client.pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.zrem(self.registry_key(channel), self._member)
            await pipe.execute()

    async def _heartbeat_loop(self) -> None:
        interval = self.settings.heartbeat_interval.total_seconds()
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._heartbeat_now.wait()
            self._heartbeat_now.clear()
            if self._draining or not self._listener.connected.is_set():
                continue
            confirmed = self._listener.confirmed
            channels = [name for name in self._handlers if self.wire_channel(name) in confirmed]
            try:
                async with asyncio.timeout(interval):
                    await self._register(channels)
            except ErrorTypes as error:
                self._log.warning("heartbeat", "Broadcast: heartbeat failed: %s: %s", type(error).__name__, error)

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe(self, channel: str, callback: Handler) -> None:
        """Handle `channel`; returns once subscribed and registered, or after `connect_timeout` if Redis is down."""
        if channel in self._handlers:
            LOG.info("Broadcast channel %r: the new callback replaces the previous one", channel)
            self._handlers[channel] = callback
            return
        self._handlers[channel] = callback
        wire = self.wire_channel(channel)
        pubsub = self._listener.pubsub
        if pubsub is None or not self._listener.connected.is_set():
            return  # the listener subscribes it once connected (it checks for late channels then)
        try:
            async with asyncio.timeout(self.settings.connect_timeout.total_seconds()):
                await pubsub.subscribe(wire)
                await self._listener.confirmation(wire).wait()
                await self._register([channel])
        except ErrorTypes as error:
            LOG.warning(
                "Broadcast: subscribing to %r is delayed until Redis is back (%s)", channel, type(error).__name__
            )

    async def unsubscribe(self, channel: str) -> None:
        """Stop handling `channel` and leave its registry."""
        if self._handlers.pop(channel, None) is None:
            return
        wire = self.wire_channel(channel)
        pubsub = self._listener.pubsub
        try:
            async with asyncio.timeout(self.settings.connect_timeout.total_seconds()):
                await self._unregister([channel])
                if pubsub is not None and self._listener.connected.is_set():
                    await pubsub.unsubscribe(wire)
        except ErrorTypes as error:
            LOG.warning("Broadcast: unsubscribing from %r failed (%s); the connection will drop it", channel, error)

    # -- receiving -----------------------------------------------------------------------

    async def _on_request(self, wire: str, data: str | bytes) -> None:
        channel = wire.removeprefix(self.prefix)
        handler = self._handlers.get(channel)
        if handler is None or not wire.startswith(self.prefix):
            return  # unsubscribed meanwhile
        self._count(MESSAGES_RECEIVED)
        try:
            request = decode_request(
                data,
                wire,
                prefix=self.prefix,
                max_size=self.settings.max_message_size,
                now=time.time(),
                secret=self._secret,
                max_age=self.settings.signature_max_age.total_seconds(),
                replay_guard=self._replay_guard,
            )
        except DroppedMessage as refused:
            self.dropped(refused.reason, wire, refused.detail)
            return
        if (self.hostname, self.pid) not in request.targets:
            return
        if len(self._tasks) >= self.settings.max_pending_handlers and not await self._free_slot():
            self.dropped("overloaded", wire, f"{len(self._tasks)} handlers still running after {OVERLOAD_WAIT:g} s")
            return
        task = asyncio.create_task(
            self._handle(channel, handler, request.params, request), name=f"c2c-broadcast {wire}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()

    async def _free_slot(self) -> bool:
        """Back-pressure: wait (bounded) until a handler finishes; False if none does in time."""
        try:
            async with asyncio.timeout(OVERLOAD_WAIT):
                while len(self._tasks) >= self.settings.max_pending_handlers:
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
        payload, error = await self.run_handler(channel, handler, params, payload=wanted, round_trip=False)
        if request.answer_channel is None:
            return
        answer = self._encode_answer(channel, request.answer_channel, request.request_id, payload, error)
        try:
            async with asyncio.timeout(self.settings.connect_timeout.total_seconds()):
                await self.client().publish(request.answer_channel, answer)
            self._count(ANSWERS_SENT)
        except ErrorTypes as failure:
            self._log.warning(
                "answer",
                "Broadcast: could not send the answer for %r: %s: %s",
                channel,
                type(failure).__name__,
                failure,
            )

    def _encode_answer(
        self, channel: str, answer_channel: str, request_id: str | None, payload: Any, error: tuple[str, str] | None
    ) -> str:
        def encode(payload: Any, error: tuple[str, str] | None) -> str:
            return encode_answer(
                answer_channel,
                hostname=self.hostname,
                pid=self.pid,
                payload=payload,
                replica=self.replica_id,
                request_id=request_id,
                now=time.time(),
                error=error,
                secret=self._secret,
            )

        try:
            answer = encode(payload, error)
        except ValueError as not_json:  # NaN or infinity in the result
            answer = encode(None, self.not_json(channel, not_json))
        if len(answer.encode()) > self.settings.max_message_size:
            LOG.error("Broadcast: the answer on %s is larger than max_message_size; sending an error", answer_channel)
            answer = encode(None, ("AnswerTooLarge", f"the answer exceeds {self.settings.max_message_size} bytes"))
        return answer

    async def _on_answer(self, answer_channel: str, data: str | bytes) -> None:
        collector = self._collectors.get(answer_channel)
        if collector is None:
            LOG.debug("Broadcast: late answer on %s ignored", answer_channel)
            return
        try:
            answer = decode_answer(
                data,
                answer_channel,
                max_size=self.settings.max_message_size,
                now=time.time(),
                secret=self._secret,
                max_age=self.settings.signature_max_age.total_seconds(),
                request_id=collector.request_id,
            )
        except DroppedMessage as refused:
            # One log key for every answer channel: they are unique per call, the limiter must stay bounded.
            self.dropped(refused.reason, "answers", refused.detail)
            return
        self._count(ANSWERS_RECEIVED)
        collector.add(answer)

    # -- sending -------------------------------------------------------------------------

    async def broadcast(
        self,
        channel: str,
        params: Mapping[str, Any] | None,
        expect_answers: bool,
        timeout: float,  # noqa: ASYNC109
        targets: Targets = EVERYONE,
    ) -> list[Result] | None:
        """Publish a call; with `expect_answers` wait until every live addressed replica answered or `timeout`."""
        if self._closing:
            raise BroadcastUnavailableError("the broadcaster is closed")
        wire_params = to_wire_params(params, round_trip=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0)
        request_id = secrets.token_hex(16)
        wire = self.wire_channel(channel)
        answer_channel = self.answer_prefix + secrets.token_hex(16) if expect_answers else None
        try:
            message = self._encode_request(wire, wire_params, answer_channel, request_id, targets)
        except ValueError as error:  # NaN, infinity
            raise TypeError(f"broadcast params must be JSON serialisable: {error}") from None
        if (
            len(message) > self.settings.max_message_size // 4
            and len(message.encode()) > self.settings.max_message_size
        ):
            raise ValueError(f"the broadcast message exceeds max_message_size ({self.settings.max_message_size} bytes)")
        if not expect_answers:
            publish_deadline = max(deadline, loop.time() + self.settings.connect_timeout.total_seconds())
            await self._run_bounded(self.client().publish(wire, message), publish_deadline, loop)
            self._count(BROADCASTS_SENT)
            return None
        return await self._collect(channel, wire, message, answer_channel, request_id, targets, timeout, deadline, loop)

    def _encode_request(
        self, wire: str, wire_params: dict[str, Any], answer_channel: str | None, request_id: str, targets: Targets
    ) -> str:
        return encode_request(
            wire,
            wire_params,
            answer_channel=answer_channel,
            request_id=request_id,
            hostname=self.hostname,
            pid=self.pid,
            now=time.time(),
            targets=targets,
            secret=self._secret,
        )

    async def _collect(
        self,
        channel: str,
        wire: str,
        message: str,
        answer_channel: str | None,
        request_id: str,
        targets: Targets,
        timeout: float,  # noqa: ASYNC109
        deadline: float,
        loop: asyncio.AbstractEventLoop,
    ) -> list[Result]:
        assert answer_channel is not None
        if not self._answers.connected.is_set():
            # Answers would be lost: wait (bounded) for the answers listener.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.settings.connect_timeout.total_seconds(), timeout)):
                    await self._answers.connected.wait()
            if not self._answers.connected.is_set():
                raise BroadcastUnavailableError(
                    f"cannot collect answers: Redis ({self.describe()}) is unreachable ({self._last_error})"
                )
        collector = _Collector(request_id)
        self._collectors[answer_channel] = collector
        try:
            # Publishing gets at least connect_timeout; the answers get what is left of `timeout`.
            receivers, members, subscribers = await self._run_bounded(
                self._publish_script(keys=[self.registry_key(channel)], args=[wire, message]),
                max(deadline, loop.time() + self.settings.connect_timeout.total_seconds()),
                loop,
            )
            self._count(BROADCASTS_SENT)
            registered = self._parse_members(members, targets)
            collector.expect(registered, int(receivers), int(subscribers), targets.everyone)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    # Only 0.14 replicas listen: their count is all there is, wait for it (0.14's rule).
                    await (collector.all_done if collector.legacy else collector.primary_done).wait()
            legacy_wait = self.settings.legacy_wait.total_seconds()
            if not collector.all_done.is_set() and legacy_wait > 0:
                # Every registered replica answered; unregistered subscribers (0.14 replicas) get a
                # bounded extra wait, so that a monitoring SUBSCRIBE costs at most `legacy_wait`.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(min(deadline, loop.time() + legacy_wait)):
                        await collector.all_done.wait()
        finally:
            del self._collectors[answer_channel]
        return self._results(collector)

    async def _run_bounded(self, call: Awaitable[Any], deadline: float, loop: asyncio.AbstractEventLoop) -> Any:
        try:
            async with asyncio.timeout_at(deadline):
                return await call
        except ErrorTypes as error:
            raise BroadcastUnavailableError(
                f"cannot publish: Redis ({self.describe()}) is unreachable ({type(error).__name__}: {error})"
            ) from error

    def _parse_members(self, members: list[Any], targets: Targets) -> dict[str, tuple[str, int]]:
        registered: dict[str, tuple[str, int]] = {}
        for member in members:
            try:
                info = json.loads(member)
                replica, hostname, pid = info["r"], info["h"], info["p"]
            except (ValueError, TypeError, KeyError):
                continue
            valid = isinstance(replica, str) and isinstance(hostname, str) and isinstance(pid, int)
            if valid and (hostname, pid) in targets:
                registered[replica] = (hostname, pid)
        return registered

    def _results(self, collector: _Collector) -> list[Result]:
        results: list[Result] = [answer_to_result(answer) for answer in collector.answers]
        registered = collector.registered or {}
        if collector.registered is not None:
            answered = collector.answered_registered()
            for replica, (hostname, pid) in registered.items():
                if replica not in answered:
                    results.append(MissingAnswer(hostname=hostname, pid=pid))
            # Exact-channel subscribers that are not registered (0.14 replicas) and did not answer.
            results.extend(MissingAnswer() for _ in range(collector.unanswered_unregistered()))
        missing = len(results) - len(collector.answers)
        if missing:
            self._count(ANSWERS_MISSING, missing)
            LOG.warning("Broadcast: %d answer(s) missing (%d received)", missing, len(collector.answers))
        return results


__all__ = ["RedisBroadcaster", "dumps"]
