"""The Redis broadcaster: pub/sub for calls and answers, a registry of live replicas kept by heartbeats.

`RedisBroadcaster` is the composition of one concern per module:

- `_subscriber.Subscriber`: a pub/sub connection kept alive (connect, subscribe, read, PING an idle
  connection, reconnect with capped exponential back-off). Two of them: the *listener* subscribes
  to `<prefix><channel>` for every subscribed channel; the *answers* subscriber subscribes once to
  a pattern private to this process, `<prefix>c2c_answer_<random>_*`, under which every call
  answers on a fresh channel (collecting answers costs no extra round trip);
- `_incoming.IncomingCalls`: what the listener receives becomes a handler task (back-pressure,
  addressing) and, when asked, an answer;
- `_calls.Calls`: publishing a call and collecting its answers (the publishing script, and when
  the wait ends);
- `_answers.AnswerPublisher`: the answers this replica sends wait in a bounded queue, published by
  a fixed number of tasks (beyond the queue they are dropped and counted);
- `_registry.Registry`: this replica's entries in the registry of live replicas, and the
  heartbeat that keeps them;
- `_wire`: the messages themselves (0.14-compatible JSON, extensions, signing).

This module keeps the life cycle (start, drain, close), the state and its logs (`degraded` when
publishing or the heartbeat keeps failing behind connected pub/sub connections:
`_status.CommandHealth`, with a publishing probe), and the subscriptions. All connections come from
c2c-config's `RedisFactory` (or a given client), so they follow a Sentinel failover: commands
(PUBLISH, heartbeats) go through the master client's bounded pool (`C2C__REDIS__MAX_CONNECTIONS`),
the two pub/sub connections come from the factory's `subscriber()` client, outside that pool (a
given client carries both).

On a Redis Cluster (`C2C__REDIS__CLUSTER=true`, or a given `RedisCluster` client) the names carry
a hash tag per broadcast channel (`_wire`: "On a Redis Cluster"), the subscribers use sharded
pub/sub, and the answers subscriber subscribes to this process's fixed answer channel of a
broadcast channel at the first call on it (kept afterwards); the answers are routed to their call
by request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from c2c_broadcast._base import LOG, BaseBroadcaster, BroadcastUnavailableError, Handler, Result
from c2c_broadcast._settings import BroadcastSettings
from c2c_broadcast._status import (
    MESSAGES_DROPPED,
    RECONNECTIONS,
    BroadcasterStatus,
    CommandHealth,
    Metrics,
    RateLimitedLog,
    State,
    explained,
)
from c2c_broadcast._wire import (
    EVERYONE,
    Targets,
    answer_pattern,
    cluster_answer_channel,
    cluster_answer_namespace,
    cluster_control_channel,
    dumps,
    new_answer_prefix,
    new_control_channel,
    request_channel,
    tagged_channel,
)
from c2c_config import describe_error, format_duration, raise_if_cancelled

try:
    from redis.asyncio.cluster import RedisCluster

    from c2c_config.redis import CLUSTER_MIN_REDIS_PY, RedisClient, RedisFactory, redis_py_version
except ModuleNotFoundError as _error:  # exercised by the "not installed" test
    raise ModuleNotFoundError(
        "the Redis broadcaster needs the Redis client: install c2c-broadcast[redis]", name=_error.name
    ) from None

# After the Redis client: these modules need it.
from c2c_broadcast._answers import AnswerPublisher
from c2c_broadcast._calls import Calls
from c2c_broadcast._incoming import CLOSE_GRACE, IncomingCalls
from c2c_broadcast._registry import Registry, member, registry_key
from c2c_broadcast._subscriber import ErrorTypes, Subscriber

# `close()`: its steps share this budget (within `c2c_config.CLOSE_TIMEOUT`, 5 s, when the loop's end
# closes the broadcaster): stop receiving (1 s at most), leave the registry (1 s), the running calls'
# grace (`CLOSE_GRACE` from the start, overlapping both), cutting them (`CUT_WAIT`), their last
# answers (`FLUSH_TIMEOUT`), then the tasks' end: what is left of the budget, between these two.
CLOSE_BUDGET = 4.5
STOP_WAIT = 2.5
STOP_WAIT_MIN = 0.5


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
        client: RedisClient | None = None,
    ) -> None:
        """Prepare a broadcaster (no I/O) on `factory`'s master client, or on `client`.

        `prefix` defaults to the Redis settings' broadcast prefix. The client is taken from the
        factory in the event loop that starts the broadcaster (the factory's clients are per loop);
        a given `client` must belong to that loop, and stays its owner's to close. On a Redis
        Cluster (the factory's cluster mode, or a `RedisCluster` client) redis-py 8.0 or later is
        needed (`RuntimeError` otherwise).
        """
        super().__init__(settings, metrics)
        if factory is None and client is None:
            raise TypeError("RedisBroadcaster needs a RedisFactory or a client")
        self._factory = factory
        self._client: RedisClient | None = client
        self._pubsub_client: RedisClient | None = client
        self._cluster = factory.cluster if factory is not None else isinstance(client, RedisCluster)
        if self._cluster and redis_py_version() < CLUSTER_MIN_REDIS_PY:
            raise RuntimeError("the broadcaster on a Redis Cluster needs redis-py 8.0 or later (sharded pub/sub)")
        if prefix is None:
            if factory is None:
                raise TypeError("RedisBroadcaster needs a prefix when built on a client")
            prefix = factory.settings.broadcast_prefix
        self.prefix = prefix
        self.secret = self.settings.secret.get_secret_value().encode() if self.settings.secret else None
        # Also valid on receipt, never used to sign: a rotation of the secret in progress.
        self.accepted_secrets = tuple(secret.get_secret_value().encode() for secret in self.settings.accepted_secrets)
        self.answer_prefix = new_answer_prefix(self.prefix)
        self._process_token = secrets.token_hex(16)
        # On a cluster: broadcast channel -> this process's answer channel for it (subscribed at the first call).
        self._answer_channels: dict[str, str] = {}
        self.log = RateLimitedLog(LOG)
        # Commands that fail while the pub/sub connections look fine (a permission taken away, a
        # full or frozen Redis): `status()` says `degraded` (not healthy) while one of them is failing.
        self.publishing = CommandHealth("publishing", self.log)
        self.heartbeat_health = CommandHealth("heartbeat", self.log)
        self._probe_now = asyncio.Event()
        self._state: State = "connecting"
        self._since = time.time()
        self._reconnections = 0
        self.last_error: str | None = None
        self._background: list[asyncio.Task[None]] = []
        self._closing = False
        self._draining = False
        self.registry = Registry(
            self.prefix,
            member(self.hostname, self.pid, self.replica_id),
            self.settings,
            self.client,
            self.log,
            self.registry_key,
            self._cluster,
            self._heartbeat_failed,
            self.heartbeat_health.succeeded,
        )
        self._slots_refresh: asyncio.Task[None] | None = None
        self._calls = Calls(self)
        self._incoming = IncomingCalls(self)
        self.answers = AnswerPublisher(self)
        self._listener = Subscriber(
            self,
            "listener",
            self._wire_channels,
            # Always subscribed to something, so the connection exists before any handler does.
            [cluster_control_channel(self.prefix) if self._cluster else new_control_channel(self.prefix)],
            [],
            self._incoming.on_request,
            self._became_ready,
        )
        self._answers = Subscriber(
            self,
            "answers",
            lambda: list(self._answer_channels.values()),
            [],
            [] if self._cluster else [answer_pattern(self.answer_prefix)],
            self._calls.on_answer,
            self._became_ready,
        )

    # -- names ---------------------------------------------------------------------------

    @property
    def cluster(self) -> bool:
        """Whether Redis is a cluster (sharded pub/sub, hash-tagged names)."""
        return self._cluster

    def wire_channel(self, channel: str) -> str:
        """The Redis channel of a broadcast channel: prefix + name (as c2casgiutils 0.14).

        On a cluster `{prefix + name}`, and `ValueError` when the name has `{` or `}`.
        """
        return tagged_channel(self.prefix, channel) if self._cluster else request_channel(self.prefix, channel)

    def channel_of(self, wire: str) -> str | None:
        """The broadcast channel of a Redis channel (None when it is not one of this prefix)."""
        if self._cluster:
            head = "{" + self.prefix
            return wire[len(head) : -1] if wire.startswith(head) and wire.endswith("}") else None
        return wire.removeprefix(self.prefix) if wire.startswith(self.prefix) else None

    def answer_namespace(self, wire: str) -> str:
        """What a request's answer channel must start with (a forged one could point anywhere)."""
        return cluster_answer_namespace(wire) if self._cluster else self.prefix

    def cluster_answer_channel(self, channel: str) -> str:
        """On a cluster: this process's fixed answer channel of `channel` (same hash slot as its calls)."""
        return cluster_answer_channel(self.wire_channel(channel), self._process_token)

    async def ensure_answer_channel(self, channel: str, timeout: float) -> str:  # noqa: ASYNC109
        """On a cluster: subscribe (once, confirmed) to this process's answer channel of `channel`.

        Kept subscribed afterwards, and subscribed again after a reconnection. Raises
        `BroadcastUnavailableError` when the subscription is not confirmed within `timeout`.
        """
        answer_channel = self._answer_channels.get(channel)
        first = answer_channel is None
        if answer_channel is None:
            answer_channel = self._answer_channels[channel] = self.cluster_answer_channel(channel)
        try:
            async with asyncio.timeout(timeout):  # the SSUBSCRIBE too: a node may accept and never answer
                if first and self._answers.connected.is_set():
                    with contextlib.suppress(*ErrorTypes):
                        await self._answers.subscribe(answer_channel)
                await self._answers.confirmation(answer_channel).wait()
        except TimeoutError:
            raise BroadcastUnavailableError(
                f"cannot collect answers: no subscription to {answer_channel} on Redis ({self.describe()}) "
                f"({self.last_error or 'not confirmed in time'})"
            ) from None
        return answer_channel

    def registry_key(self, channel: str) -> str:
        """The sorted set of the replicas listening to `channel` (`{prefix + name}:registry` on a cluster)."""
        if self._cluster:
            return f"{self.wire_channel(channel)}:registry"
        return registry_key(self.prefix, channel)

    def _wire_channels(self) -> list[str]:
        return [self.wire_channel(channel) for channel in self._handlers]

    def bind(self) -> None:
        """Take the running event loop's master and pub/sub clients from the factory (once; no I/O)."""
        if self._client is None:
            assert self._factory is not None
            client, pubsub_client = self._factory.master(), self._factory.subscriber()
            if client is None or pubsub_client is None:
                raise RuntimeError("Redis is not configured")
            self._client, self._pubsub_client = client, pubsub_client

    def client(self) -> RedisClient:
        """The master client this broadcaster uses (taken from the factory by `bind()`)."""
        self.bind()
        assert self._client is not None
        return self._client

    def pubsub_client(self) -> RedisClient:
        """The client whose pub/sub connections the listeners use (the factory's `subscriber()`)."""
        self.bind()
        assert self._pubsub_client is not None
        return self._pubsub_client

    def describe(self) -> str:
        """Where Redis is, for a log line (never a password)."""
        if self._factory is not None:
            return self._factory.describe()
        if isinstance(self._client, RedisCluster):
            return "a given Redis Cluster client"
        kwargs = self._client.connection_pool.connection_kwargs if self._client is not None else {}
        if "host" in kwargs:
            return f"redis://{kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
        return "a given Redis client"

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closing

    @property
    def answers_subscriber(self) -> Subscriber:
        """The pub/sub connection that receives the answers to this broadcaster's calls."""
        return self._answers

    def handler(self, channel: str) -> Handler | None:
        """The callback subscribed on `channel`, if any."""
        return self._handlers.get(channel)

    def count(self, name: str, amount: int = 1, **labels: str) -> None:
        """Count in the metrics (for the components)."""
        self._count(name, amount, **labels)

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the listeners and the heartbeat; wait for Redis at most `connect_timeout`, never fail.

        Idempotent; a closed broadcaster does not start again.
        """
        if self._background or self._closing:
            return
        client = self.client()
        self._calls.bind(client)
        self.registry.bind(client)
        self._background = [
            asyncio.create_task(self._listener.run(), name="c2c-broadcast listener"),
            asyncio.create_task(self._answers.run(), name="c2c-broadcast answers"),
            asyncio.create_task(
                self.registry.heartbeat(lambda: self._closing, self._heartbeat_channels), name="c2c-broadcast heartbeat"
            ),
            *self.answers.start(),
            asyncio.create_task(self._probe_publishing(), name="c2c-broadcast publishing probe"),
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
            LOG.info(
                "Broadcast through Redis (%s) as replica %s, %s",
                self.describe(),
                self.replica_id,
                "messages signed"
                if self.secret is not None
                else "messages not signed (C2C__BROADCAST__SECRET unset: whoever can publish on this Redis can"
                " call the handlers of every replica)",
            )
        else:
            LOG.warning(
                "Broadcast: Redis (%s) is unreachable at startup (%s); retrying in the background",
                self.describe(),
                self._listener.last_error or self._answers.last_error or "no answer yet",
            )

    async def drain(self) -> None:
        """Leave the registry of live replicas and stop the heartbeats; keep answering (see `BaseBroadcaster`).

        Called when the server starts a graceful shutdown (SIGTERM): the calls made from then on
        stop waiting for this replica at once instead of until its registry entry expires
        (`replica_ttl`), while the calls it still receives are answered until its connections
        close. The calls already in flight are answered, or cut with an error answer, by `close()`.
        """
        if self._draining or self._closing:
            return
        self._draining = True
        if self._handlers and self._listener.ever_connected:
            try:
                async with asyncio.timeout(1):
                    await self._unregister(list(self._handlers))
            except Exception as error:  # bounded and best effort: the entry expires anyway
                LOG.warning(
                    "Broadcast: draining, replica %s could not leave the registry (%s); its entry expires within %s",
                    self.replica_id,
                    describe_error(explained(error, 1)),
                    format_duration(self.settings.replica_ttl),
                )
                return
        LOG.info("Broadcast: draining, replica %s left the registry", self.replica_id)

    async def close(self) -> None:
        """Stop receiving, unregister, finish or cut the running calls, stop the other listeners and heartbeat.

        The handlers still running get a grace (`_incoming.CLOSE_GRACE`, 2 s from the start of the
        close) to finish and be answered; the callers of those cut after it get an error answer
        (`IncomingCalls.stop`). Bounded (about 4.5 s at worst, within `c2c_config.CLOSE_TIMEOUT`
        when the event loop's end closes it), never raises.
        """
        if self._closing:
            return
        self._closing = True
        started = time.monotonic()
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
        if self._background:
            # The calls in flight: answered if they finish within the grace, else an error answer.
            try:
                await self._incoming.stop(started + CLOSE_GRACE)
            except Exception:  # a close never raises; the tasks are cancelled below anyway
                LOG.exception("Broadcast: unexpected error while stopping the running calls")
        tasks = [*self._background, *self._incoming.tasks]
        if self._slots_refresh is not None:
            tasks.append(self._slots_refresh)
        for task in tasks:
            task.cancel()
        self._calls.wake_all()
        tasks += self._calls.lease.releasing  # the last calls' replies read, the connection back in the pool
        if tasks:
            # What is left of the close's budget, at least `STOP_WAIT_MIN`.
            wait = min(STOP_WAIT, max(STOP_WAIT_MIN, started + CLOSE_BUDGET - time.monotonic()))
            _, pending = await asyncio.wait(tasks, timeout=wait)
            if pending:
                LOG.error("Broadcast: %d task(s) did not stop within %g s", len(pending), round(wait, 1))
        self._background = []
        self._set_state("stopped")

    # -- state ---------------------------------------------------------------------------

    def _set_state(self, state: State) -> None:
        if state != self._state:
            self._state = state
            self._since = time.time()

    def _became_ready(self) -> None:
        self.registry.wake.set()  # (re-)register now: a restarted Redis lost the registry
        self._probe_now.set()  # and check at once whether publishing works (again)
        # Redis answers again: the other connection need not wait out its back-off (up to
        # `reconnect_max_delay`) before it tries again.
        for subscriber in (self._listener, self._answers):
            if not subscriber.connected.is_set():
                subscriber.wake()
        if self._listener.connected.is_set() and self._answers.connected.is_set():
            if self._state == "reconnecting":
                LOG.info("Broadcast: Redis is back (%s)", self.describe())  # the outage was the WARNING
            self._set_state("connected")

    @property
    def redis_timeout(self) -> float:
        """`C2C__REDIS__TIMEOUT` in seconds: how long Redis may take to answer one command.

        With a given client: its `socket_timeout`, else `connect_timeout`.
        """
        if self._factory is not None:
            return self._factory.settings.timeout.total_seconds()
        client: Any = self._client
        kwargs = getattr(client, "connection_kwargs", None) or getattr(
            getattr(client, "connection_pool", None), "connection_kwargs", {}
        )
        timeout = kwargs.get("socket_timeout")
        return float(timeout) if timeout else self.settings.connect_timeout.total_seconds()

    def publish_failed(self, error: BaseException, where: str) -> None:
        """A call, answers or the probe (`where`, for the log) could not be published: count it, log it."""
        self.publishing.failed(error, where)
        self.last_error = f"publishing: {self.publishing.last_error}"

    def publish_succeeded(self) -> None:
        """Something was published: publishing works."""
        self.publishing.succeeded()

    def _heartbeat_failed(self, error: BaseException) -> None:
        self.command_failed(error)
        self.heartbeat_health.failed(error)
        self.last_error = f"heartbeat: {self.heartbeat_health.last_error}"

    def probe_channel(self) -> str:
        """Where the publishing probe publishes (an empty message): a channel nobody subscribes to."""
        return "{" + self.prefix + "c2c_probe}" if self._cluster else f"{self.prefix}c2c_probe"

    async def _probe_publishing(self) -> None:
        """After a failed publication, PUBLISH an empty message every heartbeat interval until one succeeds.

        So that a failure is confirmed (or forgotten) without waiting for the next call, and a
        degraded broadcaster becomes healthy again when publishing works, even if nobody calls
        (a health check that fails may well stop the calls). Also at once when a pub/sub
        connection (re)connects. Bounded by `connect_timeout`, as the answers are.
        """
        interval = self.settings.heartbeat_interval.total_seconds()
        while not self._closing:
            raise_if_cancelled()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._probe_now.wait()
            self._probe_now.clear()
            if not self.publishing.failures or not self._listener.connected.is_set():
                continue
            client = self.client()
            try:
                async with asyncio.timeout(self.settings.connect_timeout.total_seconds()):
                    if isinstance(client, RedisCluster):
                        await client.spublish(self.probe_channel(), "")
                    else:
                        await client.publish(self.probe_channel(), "")
            except ErrorTypes as error:
                self.command_failed(error)
                self.publish_failed(explained(error, self.settings.connect_timeout.total_seconds()), "the probe")
            else:
                self.publish_succeeded()

    def command_failed(self, error: BaseException) -> None:
        """A command failed or timed out: on a cluster, refresh the command client's view of the slots.

        In the background, one refresh at a time, bounded by `connect_timeout`. redis-py refreshes
        it itself after an error it sees, but a command cancelled by this package's own (shorter)
        bound, e.g. against a frozen master, would otherwise keep going to the old owner of a slot.
        """
        client = self._client
        if not isinstance(client, RedisCluster) or self._closing:
            return
        if self._slots_refresh is None or self._slots_refresh.done():
            self._slots_refresh = asyncio.create_task(self._refresh_slots(client), name="c2c-broadcast slots refresh")

    async def _refresh_slots(self, client: RedisCluster) -> None:
        try:
            async with asyncio.timeout(self.settings.connect_timeout.total_seconds()):
                await client.nodes_manager.initialize()
        except (*ErrorTypes, RuntimeError) as error:
            LOG.debug("Broadcast: could not refresh the cluster's slots: %s", error)

    def count_reconnection(self) -> None:
        """Called by a listener that connected again after a loss."""
        self._reconnections += 1
        self._count(RECONNECTIONS)

    def connection_lost(self, subscriber: Subscriber, error: BaseException) -> None:
        """Called by a listener whose connection failed; logs once per outage."""
        self.last_error = f"{subscriber.name}: {describe_error(error)}"
        if self._closing:
            return
        if self._state == "connected":
            LOG.warning(
                "Broadcast: lost the Redis connection (%s); reconnecting in the background", describe_error(error)
            )
            self._set_state("reconnecting")
        elif self._state == "connecting" and subscriber.attempts == 1:
            LOG.debug("Broadcast: Redis connection failed: %s", error)

    def dropped(self, reason: str, where: str, detail: str) -> None:
        """Count and log (rate limited) a refused message."""
        self._count(MESSAGES_DROPPED, reason=reason)
        self.log.warning(f"{where}:{reason}", "Broadcast: dropped a message on %s (%s: %s)", where, reason, detail)

    def _failing(self) -> list[CommandHealth]:
        """The kinds of command failing now (the heartbeat only counts while there is something to refresh)."""
        failing = [self.publishing] if self.publishing.failing else []
        if self.heartbeat_health.failing and self._handlers:
            failing.append(self.heartbeat_health)
        return failing

    def status(self) -> BroadcasterStatus:
        """A snapshot: `healthy` while both pub/sub connections are subscribed and no kind of command keeps failing.

        `degraded` (not healthy): connected, but publishing or the heartbeat failed twice in a row
        and has not succeeded since (`CommandHealth`); `last_error` says which, with Redis's error.
        """
        connected = self._listener.connected.is_set() and self._answers.connected.is_set() and not self._closing
        state, since, last_error = self._state, self._since, self.last_error
        failing = self._failing() if connected and state == "connected" else []
        if failing:
            state = "degraded"
            since = max(self._since, *(health.since or 0.0 for health in failing))
            last_error = "; ".join(f"{health.what}: {health.last_error}" for health in failing)
        return BroadcasterStatus(
            kind="redis",
            state=state,
            healthy=connected and not failing,
            since=since,
            replica_id=self.replica_id,
            channels=tuple(sorted(self._handlers)),
            redis=self.describe(),
            last_error=last_error,
            reconnections=self._reconnections,
            pending_handlers=len(self._incoming.tasks),
            counters=self.memory_metrics.snapshot(),
            answers_waiting=self.answers.waiting,
            answers_dropped=self.answers.dropped,
        )

    # -- registry ------------------------------------------------------------------------

    async def _register(self, channels: list[str]) -> None:
        try:
            await self.registry.register(channels)
        except ErrorTypes as error:
            self._heartbeat_failed(error)
            raise
        self.heartbeat_health.succeeded()

    async def _unregister(self, channels: list[str]) -> None:
        await self.registry.unregister(channels)

    def _heartbeat_channels(self) -> list[str] | None:
        """The channels to refresh now: those the listener confirmed; None while draining or disconnected."""
        if self._draining or not self._listener.connected.is_set():
            return None
        confirmed = self._listener.confirmed
        return [name for name in self._handlers if self.wire_channel(name) in confirmed]

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe(self, channel: str, callback: Handler) -> None:
        """Handle `channel`; returns once subscribed and registered, or after `connect_timeout` if Redis is down."""
        wire = self.wire_channel(channel)  # on a cluster: ValueError for a name that is not one hash tag
        if channel in self._handlers:
            LOG.info("Broadcast channel %r: the new callback replaces the previous one", channel)
            self._handlers[channel] = callback
            return
        self._handlers[channel] = callback
        if self._listener.pubsub is None or not self._listener.connected.is_set():
            return  # the listener subscribes it once connected (it checks for late channels then)
        try:
            async with asyncio.timeout(self.settings.connect_timeout.total_seconds()):
                await self._listener.subscribe(wire)
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
        try:
            async with asyncio.timeout(self.settings.connect_timeout.total_seconds()):
                await self._unregister([channel])
                if self._listener.connected.is_set():
                    await self._listener.unsubscribe(wire)
        except ErrorTypes as error:
            LOG.warning("Broadcast: unsubscribing from %r failed (%s); the connection will drop it", channel, error)

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
        return await self._calls.broadcast(channel, params, expect_answers, timeout, targets)


__all__ = ["RedisBroadcaster", "dumps"]
