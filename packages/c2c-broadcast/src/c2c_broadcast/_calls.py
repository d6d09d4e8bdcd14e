"""The call side: publish a request, collect the answers, decide when to stop waiting.

A call without answers is one PUBLISH, on a connection leased from the client's pool for a burst of
such calls, its reply read behind it (`PublishLease`). A call with answers gets a fresh answer channel under the
process's answers pattern (`<prefix>c2c_answer_<random>_*`, read by the *answers* subscriber), then
one Lua script (`PUBLISH_SCRIPT`: one round trip, atomic, in Redis's clock) reads the channel's
registry, counts its exact-channel subscribers and publishes. A `Collector` is woken by each answer
and says when the wait ends (see its docstring); the replicas that did not answer become
`MissingAnswer`s. The request carries the caller's context (`_context.capture_context`, captured
in the caller's task) in its `context` field.

On a Redis Cluster the answer channel is this process's fixed one for the broadcast channel
(`{<prefix><channel>}:answers:<process random>`, subscribed at the first call on it), the answers
are routed to their call by the request id they carry (`c2c.id`), and the script
(`CLUSTER_PUBLISH_SCRIPT`) counts the shard-channel subscribers (PUBSUB SHARDNUMSUB) and SPUBLISHes:
its key (the registry) and the channel share the hash tag, so it runs on the one shard that owns them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import inspect
import secrets
import time
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from c2c_broadcast._base import (
    LOG,
    BroadcastUnavailableError,
    MessageTooLargeError,
    Result,
    answer_to_result,
    to_wire_params,
)
from c2c_broadcast._context import capture_context
from c2c_broadcast._registry import MAX_MEMBER_LENGTH, MAX_REPLICAS, max_entry_life_ms, parse_members
from c2c_broadcast._settings import BroadcastSettings
from c2c_broadcast._status import ANSWERS_MISSING, ANSWERS_RECEIVED, BROADCASTS_SENT
from c2c_broadcast._subscriber import ErrorTypes
from c2c_broadcast._wire import (
    CONTEXT_FIELD,
    EVERYONE,
    Answer,
    DroppedMessage,
    Targets,
    answer_request_id,
    decode_answer,
    encode_request,
    new_answer_channel,
)
from c2c_broadcast.types import MissingAnswer
from c2c_config import describe_error, raise_if_cancelled
from c2c_config import redis as c2c_redis
from c2c_config.redis import RedisClient

if TYPE_CHECKING:
    from c2c_broadcast._redis import RedisBroadcaster

# The live entries of the registry (KEYS[1]) as the publishing scripts read them: not expired, at
# most `MAX_REPLICAS` of them (ARGV[4]), none further in the future than `MAX_ENTRY_LIFE_MS` (ARGV[3]: no
# heartbeat writes that; an entry made by hand, `+inf`, would never expire), none longer than
# `MAX_MEMBER_LENGTH` (ARGV[5]: such an entry, written by hand, is removed instead of sent to every
# caller), and printable ASCII only (`member()` writes ASCII JSON; bytes that are not UTF-8 would
# fail the reply's decoding). The registry belongs to the broadcaster: a key of another type (written
# by hand, it would fail every call with WRONGTYPE) is deleted first, and `repaired` says so.
LIVE_MEMBERS = """
local members = {}
local repaired = 0
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'zset' and kind ~= 'none' then
  redis.call('DEL', KEYS[1])
  repaired = 1
end
local limit = tonumber(ARGV[5])
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, now + tonumber(ARGV[3]), 'LIMIT', 0, tonumber(ARGV[4]))
for _, m in ipairs(found) do
  if string.len(m) > limit then
    redis.call('ZREM', KEYS[1], m)
  elseif not string.find(m, '[^\\032-\\126]') then
    members[#members + 1] = m
  end
end
"""

# Read the live replicas of a channel, count its exact-channel subscribers (PUBSUB NUMSUB: not the
# pattern subscribers, which PUBLISH counts) and publish, in one round trip, atomically, in Redis's clock.
PUBLISH_SCRIPT = (
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
    + LIVE_MEMBERS
    + """
local subscribers = redis.call('PUBSUB', 'NUMSUB', ARGV[1])[2]
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {members, subscribers, repaired}
"""
)

# The same on a Redis Cluster: sharded pub/sub (KEYS[1] and ARGV[1] share a hash tag, so one slot).
CLUSTER_PUBLISH_SCRIPT = (
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
    + LIVE_MEMBERS
    + """
local subscribers = redis.call('PUBSUB', 'SHARDNUMSUB', ARGV[1])[2]
redis.call('SPUBLISH', ARGV[1], ARGV[2])
return {members, subscribers, repaired}
"""
)


LEASE_IDLE = 1.0
"""Seconds without a call after which `PublishLease` gives its connection back to the pool."""

LEASE_WINDOW = 1000
"""Most PUBLISH replies `PublishLease` leaves unread before a call waits for them."""

LEASE_STALL = 1.0
"""Seconds without a PUBLISH reply (while some are due) after which a call waits for them: a frozen Redis is
reported (BroadcastUnavailableError at the call's deadline) instead of buffered."""


KNOWN_DOWN_AFTER = 2
"""Failed connection attempts in a row (the loss counts as one) after which a call wanting answers
fails at once instead of waiting `connect_timeout` for the answers subscription."""


@dataclasses.dataclass(eq=False)
class _Leased:
    """One leased connection, and the replies its reader has not read yet."""

    client: aioredis.Redis
    pool: Any
    connection: Any
    socket_timeout: float | None
    pending: int = 0
    unread: collections.deque[tuple[str, str]] = dataclasses.field(default_factory=collections.deque)
    """The (channel, message) of the PUBLISHes whose replies are due, oldest first."""
    progress: float = 0.0
    """The loop's time of the last reply read, or of the first PUBLISH sent since they were all read."""
    reader: asyncio.Task[None] | None = None
    error: BaseException | None = None
    has_pending: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    drained: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def read_replies(self) -> None:
        """Read (and drop) the replies of the PUBLISHes sent, in order; the first failure stops the lease.

        When the connection breaks, the calls whose replies never came are sent again through the
        client (as a call that fails on its connection always was): Redis may or may not have
        published them, and a lost call is worse than a repeated one.
        """
        try:
            while True:
                raise_if_cancelled()  # one lost in redis-py (Python 3.11's wait_for)
                await self.has_pending.wait()
                await self.connection.read_response()
                self.progress = asyncio.get_running_loop().time()
                self.unread.popleft()
                self.pending -= 1
                if self.pending == 0:
                    self.has_pending.clear()
                    self.drained.set()
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # a broken connection, or an error reply
            self.error = error
            if isinstance(error, RedisConnectionError | RedisTimeoutError):
                await self.send_again()
            self.drained.set()

    async def send_again(self) -> None:
        """Send the calls whose replies are due again through the client (bounded; logged when it fails)."""
        unread, self.unread = self.unread, collections.deque()
        with contextlib.suppress(*ErrorTypes):
            async with asyncio.timeout(max(self.socket_timeout or 0, 1.0)):
                for channel, message in unread:
                    await self.client.publish(channel, message)
                return
        LOG.warning("Broadcast: %d call(s) without answers lost with their Redis connection", len(unread))


class PublishLease:
    """One connection of the client's pool, kept for a burst of calls without answers, its replies read behind.

    Taking a connection from the (blocking, observed) pool and giving it back for each PUBLISH costs
    more than the PUBLISH itself, and so does waiting a round trip for a reply a call without
    answers does not use. A burst of fire-and-forget calls therefore reuses one connection: the
    first PUBLISH on it waits for its reply (the connection and the permission to publish are
    checked), the next ones return once written to the socket while a reader task reads their
    replies in order, at most `window` of them unread (then a call waits for the reader), and a call
    waits for them too when none came for `stall` seconds, so a frozen Redis is reported within
    about `stall` plus the call's deadline. A call is sent when `publish()` returns (written to the
    connection), and delivered at most once, as with pub/sub anyway.

    The connection goes back to the pool after `idle` seconds without a call (once its replies are
    read, at most 2 s; else it is closed), at once after any error on it (an error reply or a broken
    connection makes the next call go through the client, and report the error), and when the
    broadcaster closes. While leased, its `socket_timeout` is lifted (redis-py would start a task
    and a timer per command); the call's deadline bounds each write instead, and the timeout is
    put back when the connection returns to the pool. A call made while another one is writing,
    or on a client that is not a plain pooled `redis.asyncio.Redis`, goes through the client.
    """

    def __init__(self, idle: float = LEASE_IDLE, window: int = LEASE_WINDOW, stall: float = LEASE_STALL) -> None:
        """A lease given back after `idle` seconds without a call, with at most `window` unread replies."""
        self.idle = idle
        self.window = window
        self.stall = stall
        self._leased: _Leased | None = None
        self._busy = False
        self._last_use = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._releases: set[asyncio.Task[None]] = set()

    @property
    def held(self) -> bool:
        """Whether a connection is leased now."""
        return self._leased is not None

    @property
    def releasing(self) -> list[asyncio.Task[None]]:
        """The tasks giving connections back to the pool now (each bounded: about 2 s at most)."""
        return list(self._releases)

    @property
    def _connection(self) -> Any:
        """The leased connection, or None."""
        return self._leased.connection if self._leased is not None else None

    async def publish(self, client: aioredis.Redis, channel: str, message: str, deadline: float) -> None:
        """PUBLISH `message` on `channel` before `deadline` (the loop's clock): sent when this returns."""
        if self._busy or not _leasable(client):
            async with asyncio.timeout_at(deadline):
                await client.publish(channel, message)
            return
        self._busy = True
        try:
            leased = self._leased
            if leased is not None and leased.error is not None and leased.reader is not None:
                # Its reader is sending the unread calls again: this one goes after them.
                remaining = deadline - asyncio.get_running_loop().time()
                await asyncio.wait([leased.reader], timeout=max(remaining, 0))
            if leased is not None and (leased.pool is not client.connection_pool or leased.error is not None):
                self.release(disconnect=True)
                leased = None
            try:
                async with asyncio.timeout_at(deadline):
                    if leased is None:
                        leased = await self._lease(client)
                    await self._send(leased, channel, message)
            except BaseException as error:
                # A reply may be left unread, or the connection is broken: never reuse it (and when it
                # is broken, send the calls whose replies never came again, as this one).
                broken = isinstance(error, RedisConnectionError | RedisTimeoutError)
                if broken and leased is not None:
                    await _resend_unread(leased, deadline)  # the calls before this one go first
                self.release(disconnect=True)
                if broken:
                    async with asyncio.timeout_at(deadline):
                        await client.publish(channel, message)
                    return
                raise
            self._last_use = asyncio.get_running_loop().time()
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_at(self._last_use + self.idle, self._expire)
        finally:
            self._busy = False

    async def _send(self, leased: _Leased, channel: str, message: str) -> None:
        """Write the PUBLISH (after the unread replies when too many, or none came lately); the first one waits."""
        loop = asyncio.get_running_loop()
        if leased.pending >= self.window or (leased.pending and loop.time() - leased.progress > self.stall):
            await leased.drained.wait()
            if leased.error is not None:
                raise leased.error
        connection = leased.connection
        await connection.send_packed_command(connection.pack_command("PUBLISH", channel, message), False)
        if leased.reader is None:  # the first call on this connection: wait for its reply
            await connection.read_response()
            leased.reader = loop.create_task(leased.read_replies(), name="c2c-broadcast publish replies")
            return
        if leased.pending == 0:
            leased.progress = loop.time()
            leased.drained.clear()
            leased.has_pending.set()
        leased.pending += 1
        leased.unread.append((channel, message))

    async def _lease(self, client: aioredis.Redis) -> _Leased:
        pool: Any = client.connection_pool
        connection = await (pool.get_connection() if _POOL_NEEDS_NO_NAME else pool.get_connection("PUBLISH"))
        leased = self._leased = _Leased(client, pool, connection, connection.socket_timeout)
        connection.socket_timeout = None
        return leased

    def release(self, disconnect: bool = False) -> None:
        """Give the connection back to the pool (no-op without one), once its replies are read."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        leased, self._leased = self._leased, None
        if leased is None:
            return
        task = asyncio.get_running_loop().create_task(_give_back(leased, disconnect))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    def _expire(self) -> None:
        self._timer = None
        if self._leased is None:
            return
        due = self._last_use + self.idle
        if self._busy or asyncio.get_running_loop().time() < due:
            self._timer = asyncio.get_running_loop().call_at(max(due, asyncio.get_running_loop().time()), self._expire)
            return
        self.release()


# redis-py 5 requires the command's name to lease a connection; later versions deprecate it.
_POOL_NEEDS_NO_NAME = (
    inspect.signature(aioredis.ConnectionPool.get_connection).parameters["command_name"].default
    is not inspect.Parameter.empty
)


async def _resend_unread(leased: _Leased, deadline: float) -> None:
    """The connection broke: stop its reader (or let it finish sending again), then send what is unread again."""
    reader = leased.reader
    if reader is not None:
        if leased.error is None:
            reader.cancel()
        await asyncio.wait([reader], timeout=max(deadline - asyncio.get_running_loop().time(), 0))
    if leased.unread:
        await leased.send_again()


def _leasable(client: aioredis.Redis) -> bool:
    """A client on a connection pool: not a pipeline, nor a single-connection client (a cluster is no `Redis`).

    Instrumentation that wraps `Redis.execute_command` (Sentry's Redis integration does, for the
    whole process) does not see the leased connection's PUBLISHes.
    """
    return not isinstance(client, aioredis.client.Pipeline) and getattr(client, "connection", None) is None


async def _give_back(leased: _Leased, disconnect: bool) -> None:
    """Read the replies still due (at most 2 s), stop the reader, restore the timeout, return the connection."""
    if leased.reader is not None and leased.error is not None:
        await asyncio.wait([leased.reader], timeout=10)  # it is sending the unread calls again
    with contextlib.suppress(Exception):
        if not disconnect and leased.pending > 0 and leased.error is None:
            try:
                async with asyncio.timeout(2):
                    await leased.drained.wait()
            except TimeoutError:
                disconnect = True
        if leased.pending > 0 or leased.error is not None:
            disconnect = True
        if leased.reader is not None:
            leased.reader.cancel()
            await asyncio.wait([leased.reader])
        connection = leased.connection
        connection.socket_timeout = leased.socket_timeout
        if disconnect:
            await connection.disconnect(nowait=True)
        await leased.pool.release(connection)


class Collector:
    """The answers of one call, and when to stop waiting for them.

    - `primary_done`: every registered (addressed) replica answered, or as many of them as the
      channel has exact-channel subscribers when fewer (a killed replica stays registered until its
      entry expires, but no longer listens).
    - `all_done`: that, and as many answers as the channel had exact-channel subscribers
      (`subscribers`, from PUBSUB NUMSUB): the unregistered ones are c2casgiutils 0.14 replicas
      (or a monitoring `SUBSCRIBE`). Pattern subscribers are never counted.
    - `legacy`: nobody registered and everyone addressed (only 0.14 replicas listen): the
      subscriber count is all there is, as in 0.14.
    """

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.answers: list[Answer] = []
        self._answered: set[str] = set()
        self.registered: dict[str, tuple[str, int]] | None = None
        self.exact = 0
        self.subscribers = 0
        self.legacy = False
        self.primary_done = asyncio.Event()
        self.all_done = asyncio.Event()

    def add(self, answer: Answer) -> bool:
        """Count `answer`; False (not counted) for a second answer of the same replica (a replay)."""
        if answer.replica is not None:
            if answer.replica in self._answered:
                return False
            self._answered.add(answer.replica)
        self.answers.append(answer)
        self._check()
        return True

    def expect(self, registered: dict[str, tuple[str, int]], subscribers: int, everyone: bool) -> None:
        """What the publication found: registered replicas, NUMSUB's count (all addressed?)."""
        self.registered = registered
        self.exact = subscribers
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

    def wake(self) -> None:
        """Stop waiting at once (the broadcaster is closing)."""
        self.primary_done.set()
        self.all_done.set()

    def _check(self) -> None:
        if self.registered is None:
            return  # PUBLISH has not returned yet
        # A killed replica stays registered until its entry expires, but is no longer subscribed:
        # the exact-channel count (not PUBLISH's, which counts pattern subscribers such as a
        # monitoring `PSUBSCRIBE *` too) bounds the answers to wait for.
        if len(self.answered_registered()) >= min(len(self.registered), self.exact):
            self.primary_done.set()
        if self.primary_done.is_set() and len(self.answers) >= self.subscribers:
            self.all_done.set()


class Calls:
    """The calls this broadcaster makes, and the answers it is waiting for."""

    def __init__(self, owner: RedisBroadcaster) -> None:
        """Calls made by `owner` (its settings, client, identity, registry and answers subscriber)."""
        self.owner = owner
        self.collectors: dict[str, Collector] = {}
        self._script: Any = None
        self.lease = PublishLease()

    @property
    def settings(self) -> BroadcastSettings:
        return self.owner.settings

    def bind(self, client: RedisClient) -> None:
        """Register the publishing script on the running loop's client (no I/O)."""
        self._script = client.register_script(CLUSTER_PUBLISH_SCRIPT if self.owner.cluster else PUBLISH_SCRIPT)

    def wake_all(self) -> None:
        """Wake every pending caller (the broadcaster is closing)."""
        for collector in self.collectors.values():
            collector.wake()
        self.lease.release()

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
        if self.owner.closed:
            raise BroadcastUnavailableError("the broadcaster is closed")
        if c2c_redis.unreachable_here() and not self._reconnected_lately():
            # This request already waited for Redis in vain (`C2C__REDIS__TIMEOUT`, or a call of
            # its own): a request waits for a frozen Redis once, not once per call it makes.
            raise BroadcastUnavailableError(
                f"cannot publish: Redis ({self.owner.describe()}) is unavailable (not asked again, it failed"
                f" earlier in this request: {c2c_redis.unreachable_reason() or 'no answer'})"
            )
        wire_params = to_wire_params(params, round_trip=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0)
        request_id = secrets.token_hex(16)
        wire = self.owner.wire_channel(channel)
        answer_channel = self._answer_channel(channel) if expect_answers else None
        message = self._encode_request(channel, wire, wire_params, answer_channel, request_id, targets)
        if not expect_answers:
            publish_deadline = max(deadline, loop.time() + self.settings.connect_timeout.total_seconds())
            client = self.owner.client()
            if isinstance(client, RedisCluster):
                await self._run_bounded(client.spublish(wire, message), publish_deadline, channel)
            else:  # the lease bounds itself by the deadline (see PublishLease.publish)
                await self._run_bounded(self.lease.publish(client, wire, message, publish_deadline), None, channel)
            self.owner.count(BROADCASTS_SENT)
            return None
        assert answer_channel is not None
        await self._wait_for_answers_listener(timeout)
        if self.owner.cluster:
            await self.owner.ensure_answer_channel(channel, max(deadline - loop.time(), 0))
        return await self._collect(channel, wire, message, answer_channel, request_id, targets, deadline, loop)

    def _reconnected_lately(self) -> bool:
        """Whether the broadcaster (re)connected within `SKIP_AFTER_FAILURE`: Redis may be back since
        a failure the caller's context noted (at most that long ago), so a call asks it again."""
        status = self.owner.status()
        return status.state == "connected" and time.time() - status.since < c2c_redis.SKIP_AFTER_FAILURE

    def _answer_channel(self, channel: str) -> str:
        """A fresh channel under the answers pattern; on a cluster this process's fixed one for `channel`."""
        if self.owner.cluster:
            return self.owner.cluster_answer_channel(channel)
        return new_answer_channel(self.owner.answer_prefix)

    def _encode_request(
        self,
        channel: str,
        wire: str,
        wire_params: dict[str, Any],
        answer_channel: str | None,
        request_id: str,
        targets: Targets,
    ) -> str:
        """The request as sent; TypeError when not JSON (NaN, infinity), MessageTooLargeError when too large."""
        try:
            message = encode_request(
                wire,
                wire_params,
                answer_channel=answer_channel,
                request_id=request_id,
                hostname=self.owner.hostname,
                pid=self.owner.pid,
                now=time.time(),
                targets=targets,
                secret=self.owner.secret,
                extensions={CONTEXT_FIELD: capture_context()},
            )
        except ValueError as error:  # NaN, infinity
            raise TypeError(f"broadcast params must be JSON serialisable: {error}") from None
        max_size = self.settings.max_message_size
        if len(message) > max_size // 4 and (size := len(message.encode())) > max_size:
            raise MessageTooLargeError(f"the broadcast message on {channel!r}", size, max_size)
        return message

    async def _wait_for_answers_listener(self, timeout: float) -> None:  # noqa: ASYNC109
        """Answers would be lost without the answers subscription: wait (bounded) for it, or raise.

        A connection (re)starting may be up in a moment: the call waits for it, at most
        `connect_timeout` (and its own timeout). Once `KNOWN_DOWN_AFTER` attempts in a row have
        failed, Redis is known unreachable: the call fails at once instead of holding its request
        for `connect_timeout` on every call of an outage.
        """
        answers = self.owner.answers_subscriber
        if answers.connected.is_set():
            return
        if answers.attempts >= KNOWN_DOWN_AFTER:
            raise BroadcastUnavailableError(
                f"cannot collect answers: Redis ({self.owner.describe()}) is unreachable ({self.owner.last_error})"
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(self.settings.connect_timeout.total_seconds(), timeout)):
                await answers.connected.wait()
        if not answers.connected.is_set():
            c2c_redis.note_unreachable(f"the answers subscription is not connected ({self.owner.last_error})")
            raise BroadcastUnavailableError(
                f"cannot collect answers: Redis ({self.owner.describe()}) is unreachable ({self.owner.last_error})"
            )

    async def _collect(
        self,
        channel: str,
        wire: str,
        message: str,
        answer_channel: str,
        request_id: str,
        targets: Targets,
        deadline: float,
        loop: asyncio.AbstractEventLoop,
    ) -> list[Result]:
        collector = Collector(request_id)
        # Routed by answer channel, on a cluster (one answer channel for every call) by request id.
        route = request_id if self.owner.cluster else answer_channel
        self.collectors[route] = collector
        try:
            # Publishing gets at least connect_timeout; the answers get what is left of `timeout`.
            key = self.owner.registry.key(channel)
            members, subscribers, *repaired = await self._run_bounded(
                self._script(
                    keys=[key],
                    args=[wire, message, max_entry_life_ms(self.settings), MAX_REPLICAS, MAX_MEMBER_LENGTH],
                ),
                max(deadline, loop.time() + self.settings.connect_timeout.total_seconds()),
                channel,
            )
            self.owner.count(BROADCASTS_SENT)
            if repaired and repaired[0]:
                self.owner.log.warning(
                    f"wrongtype:{key}",
                    "Broadcast: the registry key %r held another type than a sorted set (written by hand?): deleted it",
                    key,
                )
            collector.expect(parse_members(members, targets), int(subscribers), targets.everyone)
            await self._wait(collector, deadline, loop)
        finally:
            del self.collectors[route]
        return self._results(channel, collector)

    async def _wait(self, collector: Collector, deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        """Until the registered replicas answered, then (bounded by `legacy_wait`) the unregistered ones."""
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

    async def _run_bounded(self, call: Awaitable[Any], deadline: float | None, channel: str) -> Any:
        """Await `call` until `deadline` (None: `call` is bounded by itself); Redis errors become unavailability.

        The outcome feeds the broadcaster's publishing health (`status()`, and the logs).
        """
        try:
            if deadline is None:
                result = await call
            else:
                async with asyncio.timeout_at(deadline):
                    result = await call
        except ErrorTypes as error:
            if isinstance(error, TimeoutError | RedisConnectionError | RedisTimeoutError | OSError):
                # Frozen or unreachable (not an error reply): the rest of this request does not wait again.
                c2c_redis.note_unreachable(describe_error(error))
            self.owner.command_failed(error)
            self.owner.publish_failed(error, f"on {channel!r}")
            raise BroadcastUnavailableError(
                f"cannot publish: Redis ({self.owner.describe()}) is unreachable ({describe_error(error)})"
            ) from error
        self.owner.publish_succeeded()
        return result

    def _results(self, channel: str, collector: Collector) -> list[Result]:
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
            self.owner.count(ANSWERS_MISSING, missing)
            # Rate limited per channel (a frozen replica misses every call): the others are counted
            # (`answers_missing`) and the next line says how many were suppressed.
            names = [f"{r.hostname}:{r.pid}" for r in results[len(collector.answers) :] if isinstance(r, MissingAnswer)]
            known = [name for name in names if not name.startswith("None:")]
            self.owner.log.warning(
                f"missing:{channel}",
                "Broadcast: %d answer(s) missing on %r (%d received; from %s)",
                missing,
                channel,
                len(collector.answers),
                ", ".join(known[:5]) + (", ..." if len(known) > 5 else "") if known else "unregistered subscribers",
            )
        return results

    # -- receiving answers ---------------------------------------------------------------

    def _collector_of(self, answer_channel: str, data: str | bytes) -> Collector | None:
        """The call an answer belongs to: by its channel, on a cluster by its request id."""
        if not self.owner.cluster:
            return self.collectors.get(answer_channel)
        try:
            request_id = answer_request_id(data, self.settings.max_message_size)
        except DroppedMessage as refused:
            self.owner.dropped(refused.reason, "answers", refused.detail)
            return None
        return self.collectors.get(request_id) if request_id is not None else None

    async def on_answer(self, answer_channel: str, data: str | bytes) -> None:
        """An answer arrived on the answers pattern: give it to its call (a late one is dropped)."""
        collector = self._collector_of(answer_channel, data)
        if collector is None:
            LOG.debug("Broadcast: late answer on %s ignored", answer_channel)
            return
        try:
            answer = decode_answer(
                data,
                answer_channel,
                max_size=self.settings.max_message_size,
                now=time.time(),
                secret=self.owner.secret,
                accepted=self.owner.accepted_secrets,
                max_age=self.settings.signature_max_age.total_seconds(),
                request_id=collector.request_id,
            )
        except DroppedMessage as refused:
            # One log key for every answer channel: they are unique per call, the limiter must stay bounded.
            self.owner.dropped(refused.reason, "answers", refused.detail)
            return
        if not collector.add(answer):
            self.owner.dropped("replayed", "answers", f"a second answer from {answer.replica}")
            return
        self.owner.count(ANSWERS_RECEIVED)
