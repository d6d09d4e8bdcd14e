"""State shared by the replicas when Redis is configured: the wrong-secret budgets and the ended sessions.

Redis is reached through `c2c_config.redis.get_factory()` (one client set per event loop), every
call bounded by `C2C__REDIS__TIMEOUT`. Every operation touches one key (a Lua script with one key,
a pipeline on one key, `SET`, `EXISTS`), so it works as it is on a Redis Cluster
(`C2C__REDIS__CLUSTER`): no multi-key command, no cross-slot transaction. Without Redis (not
configured, or the `redis` package not installed) the state lives in the process. When Redis
fails (down, slow, refused; on a cluster: no node reachable, a slot whose master failed and is not
replaced yet), each use falls back to the process's own state and logs a warning: the budgets then
count per process, the ended-session list holds the logouts seen by this process. Never a 500.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from c2c_auth._github import TTLCache
from c2c_auth._modes import current_settings
from c2c_auth._settings import Settings
from c2c_config import LoopLocal, describe_error, get_settings, raise_if_cancelled

LOG = logging.getLogger("c2c_auth")

# A wrong secret counted against a budget, atomically: INCR (+ PEXPIRE: the window starts at the
# first failure), undone at once when the budget was already spent. Returns {counted (1/0), ms left}.
# Counting and checking in one step keeps concurrent wrong guesses (every replica, every pooled
# connection) from all finding the budget unspent: at most the budget's number get a 401.
_TAKE_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
if count > tonumber(ARGV[2]) then
    redis.call('DECR', KEYS[1])
    return {0, ttl}
end
return {1, ttl}
"""


class RedisUnavailable(Exception):
    """Redis is configured but did not answer in time or failed."""


_WARN_EVERY = 60.0
_warned_at: dict[str, float] = {}


def warn_unavailable(message: str, error: RedisUnavailable) -> None:
    """Log `message % error` at WARNING at most once a minute per message, else at DEBUG.

    During an outage every request falls back to this process: one line per request would flood
    the log (and Sentry); the first one of each kind says what happens, the others are DEBUG.
    """
    now = time.monotonic()
    if now - _warned_at.get(message, -_WARN_EVERY) >= _WARN_EVERY:
        _warned_at[message] = now
        LOG.warning(message + " (the same for a minute at DEBUG)", error)
    else:
        LOG.debug(message, error)


REDIS_NOT_INSTALLED_MESSAGE = (
    "Redis is configured (C2C__REDIS__URL or C2C__REDIS__SENTINELS) but the Redis client is not installed: "
    "install c2c-auth[redis]; until then logouts and wrong-secret budgets stay in each process (a session "
    "logged out on one replica stays valid on the others)"
)
_missing_redis_logged = False


def redis_client() -> Any | None:
    """The running loop's Redis master client, or None without Redis (not configured, or not installed:
    an ERROR says so once, `startup()` refuses to start)."""
    global _missing_redis_logged
    settings = get_settings(Settings).redis
    if not settings.configured:
        return None
    try:
        from c2c_config import redis as c2c_redis  # the `redis` package is optional
    except ModuleNotFoundError:
        if not _missing_redis_logged:
            _missing_redis_logged = True
            LOG.error(REDIS_NOT_INSTALLED_MESSAGE)
        return None
    return c2c_redis.get_factory(settings).master()


def require_redis_client() -> None:
    """Raise `ModuleNotFoundError` (`REDIS_NOT_INSTALLED_MESSAGE`) when Redis is configured and the
    `redis` package is missing, as c2c-broadcast does."""
    if not get_settings(Settings).redis.configured:
        return
    try:
        from c2c_config import redis as c2c_redis  # noqa: F401 (only whether it imports)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(REDIS_NOT_INSTALLED_MESSAGE, name=error.name) from None


SKIP_AFTER_FAILURE = 2.0
"""Seconds during which Redis is not asked again after it timed out or could not be reached (the window
is `c2c_config.redis`'s, shared with the other callers on the request path)."""


def reset_redis_state() -> None:
    """Ask Redis again at the next call, even within `SKIP_AFTER_FAILURE` of a failure, and forget the
    logouts waiting to be written to it (tests: each starts as a new process would)."""
    global _next_flush
    _next_flush = 0.0
    _pending_logouts.clear()
    try:
        from c2c_config import redis as c2c_redis  # the `redis` package is optional
    except ModuleNotFoundError:
        return
    c2c_redis.reset_unreachable()


async def redis_call(client: Any, command: Callable[[Any], Any]) -> Any:
    """Run `command(client)` bounded by `C2C__REDIS__TIMEOUT`; any failure raises `RedisUnavailable`.

    After a timeout or a connection failure, the calls of the next `SKIP_AFTER_FAILURE` seconds
    raise at once, without asking Redis: a frozen Redis costs one request its timeout, not every
    request, nor one request each of its checks (the body guard and the route both check the
    session). The fallback is the same either way: this process's own state.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError  # installed: `client` exists
    from redis.exceptions import RedisClusterException, RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from c2c_config import redis as c2c_redis

    if c2c_redis.unreachable_remaining() > 0:
        raise RedisUnavailable(
            f"not asked: it failed less than {c2c_redis.SKIP_AFTER_FAILURE:g} s ago ({c2c_redis.unreachable_reason()})"
        )
    timeout = get_settings(Settings).redis.timeout.total_seconds()
    try:
        async with asyncio.timeout(timeout):
            return await command(client)
    # Not reachable, or no answer in time (a cluster with no reachable node, or no master for the
    # key's slot yet, raises `RedisClusterException`, which is no `RedisError`): skip it a while.
    except (TimeoutError, OSError, RedisConnectionError, RedisTimeoutError, RedisClusterException) as error:
        reason = describe_error(error if str(error) else TimeoutError(f"no answer within {timeout:g} s"), limit=200)
        c2c_redis.note_unreachable(reason)
        raise RedisUnavailable(reason) from error
    # Protocol, auth, out of memory: "not now", but Redis answered. A value this code did not write
    # (bytes that are not UTF-8, a count that is no number: someone with write access to Redis) is
    # a `ValueError`: the same fallback to this process, never a 500.
    except (RedisError, ValueError) as error:
        raise RedisUnavailable(describe_error(error, limit=200)) from error


def redis_key(*parts: str) -> str:
    """A Redis key under `C2C__AUTH__REDIS_PREFIX`."""
    return current_settings().redis_prefix + ":".join(parts)


# --- wrong-secret budgets -------------------------------------------------------------------------


class FailureLimiter:
    """Wrong secrets per budget over a sliding window, in this process (the fallback without Redis)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_budgets: int = 10_000) -> None:
        self.clock = clock
        self._max_budgets = max_budgets
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, budget: str, window: float) -> collections.deque[float]:
        failures = self._failures.get(budget) or collections.deque()
        horizon = self.clock() - window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures

    def blocked(self, budget: str, limit: int, window: float) -> bool:
        """Whether `budget` holds `limit` failures within the last `window` seconds."""
        with self._lock:
            return len(self._recent(budget, window)) >= limit

    def take(self, budget: str, limit: int, window: float) -> bool:
        """Count one failure against `budget` unless it holds `limit` within the last `window`
        seconds (then False, nothing counted)."""
        with self._lock:
            if len(self._recent(budget, window)) >= limit:
                return False
            self._record(budget, window)
            return True

    def fail(self, budget: str, window: float) -> None:
        """Count one failure, whatever the limit (the copy of what Redis counted, for when it fails)."""
        with self._lock:
            self._record(budget, window)

    def _record(self, budget: str, window: float) -> None:
        failures = self._recent(budget, window)
        failures.append(self.clock())
        self._failures[budget] = failures
        self._failures.move_to_end(budget)
        while len(self._failures) > self._max_budgets:
            self._failures.popitem(last=False)

    def reset(self) -> None:
        """Forget every failure."""
        with self._lock:
            self._failures.clear()


LIMITER = FailureLimiter()
"""The budgets of this process (used without Redis, and when Redis fails)."""


async def budget_spent(budget: str, limit: int, window: float) -> float | None:
    """For a right secret: None when `budget` is not spent, else the seconds to wait (a read only:
    right secrets are never counted, so any number of them may run at once)."""
    client = redis_client()
    if client is not None:
        key = redis_key("secret-failures", budget)
        try:
            count, ttl_ms = await redis_call(client, lambda redis: _count_and_ttl(redis, key, window))
        except RedisUnavailable as error:
            warn_unavailable("Redis unavailable for the wrong-secret budget, counting in this process: %s", error)
        else:
            if count < limit:
                return None
            return max(1.0, ttl_ms / 1000) if ttl_ms > 0 else window
    return window if LIMITER.blocked(budget, limit, window) else None


async def _count_and_ttl(redis: Any, key: str, window: float) -> tuple[int, int]:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.pttl(key)
        count, ttl = await pipe.execute()
    count, ttl = int(count or 0), int(ttl)
    if count and ttl == -1:  # a count without expiry (not written by this code): it ends after one window
        ttl = max(1, int(window * 1000))
        await redis.pexpire(key, ttl)
    return count, ttl


async def budget_take(budget: str, limit: int, window: float) -> float | None:
    """For a wrong secret: count it against `budget` unless the budget is spent, in one atomic step.
    None when counted (the caller answers 401), else the seconds to wait (429, nothing counted).

    Redis when configured (shared by the replicas; this process keeps a copy of what it counted
    there, which decides while Redis fails), else this process.
    """
    client = redis_client()
    if client is not None:
        key = redis_key("secret-failures", budget)
        milliseconds = max(1, int(window * 1000))
        try:
            taken, ttl_ms = await redis_call(
                client, lambda redis: redis.eval(_TAKE_SCRIPT, 1, key, milliseconds, limit)
            )
        except RedisUnavailable as error:
            warn_unavailable("Redis unavailable for the wrong-secret budget, counting in this process: %s", error)
        else:
            if int(taken):
                LIMITER.fail(budget, window)
                return None
            ttl_ms = int(ttl_ms)
            return max(1.0, ttl_ms / 1000) if ttl_ms > 0 else window
    return None if LIMITER.take(budget, limit, window) else window


# --- ended sessions ---------------------------------------------------------------------------------

ENDED_SESSIONS = TTLCache(size=100_000)
"""Sessions ended by a logout seen by this process, by id, until their own expiry."""

MAX_PENDING_LOGOUTS = 10_000
"""The most logouts this process keeps to write to Redis once it answers again (the oldest dropped first)."""
FLUSH_INTERVAL = 1.0
"""Seconds between two attempts to write the pending logouts (Redis answers, but refuses writes: OOM)."""

_pending_logouts: collections.OrderedDict[str, float] = collections.OrderedDict()
"""Logouts Redis did not record (session id -> its expiry, Unix time): written once Redis answers."""
_next_flush = 0.0


def _pend(session_id: str, expires_at: float) -> None:
    _pending_logouts[session_id] = expires_at
    _pending_logouts.move_to_end(session_id)
    while len(_pending_logouts) > MAX_PENDING_LOGOUTS:
        _pending_logouts.popitem(last=False)


async def end_session(session_id: str, expires_at: float) -> None:
    """Refuse the session `session_id` until `expires_at` (Unix time): in this process, and in Redis.

    Redis failing: the logout waits in this process (`_pending_logouts`); a background task of the
    loop tries to write it every `FLUSH_INTERVAL` until Redis takes it (any use of Redis that
    succeeds meanwhile writes it too), so that it reaches the other replicas as soon as Redis answers.
    """
    remaining = expires_at - time.time() + 1
    if remaining <= 0:
        return
    ENDED_SESSIONS.put(("sid", session_id), True, remaining)
    client = redis_client()
    if client is None:
        return
    key = redis_key("ended-session", session_id)
    try:
        await redis_call(client, lambda redis: redis.set(key, "1", px=max(1, int(remaining * 1000))))
    except RedisUnavailable as error:
        _pend(session_id, expires_at)
        _RETRIES.get().start()
        warn_unavailable(
            "Redis unavailable: the logout ends the session in this process now, on the other replicas once"
            " Redis answers again: %s",
            error,
        )
        return
    await _flush_pending(client)


async def session_ended(session_id: str) -> bool:
    """Whether a logout ended `session_id`: this process's list, then Redis (one EXISTS) when configured.

    Redis failing: the answer of this process's list (logged). Redis answering: the logouts it
    missed are written first (`end_session`).
    """
    if ENDED_SESSIONS.get(("sid", session_id), 1.0) is not None:
        return True
    client = redis_client()
    if client is None:
        return False
    key = redis_key("ended-session", session_id)
    try:
        found = await redis_call(client, lambda redis: redis.exists(key))
    except RedisUnavailable as error:
        warn_unavailable("Redis unavailable: ended sessions checked in this process only: %s", error)
        return False
    await _flush_pending(client)
    return bool(found)


async def flush_before_exit() -> None:
    """At shutdown: write the logouts Redis missed (one last try, bounded by `C2C__REDIS__TIMEOUT`);
    say in one ERROR how many are lost with the process when Redis still does not take them."""
    global _next_flush
    await stop_retrying()
    if not _pending_logouts:
        return
    client = redis_client()
    if client is not None:
        from c2c_config import redis as c2c_redis  # installed: `client` exists

        c2c_redis.reset_unreachable()  # one last try, whatever failed just before
        _next_flush = 0.0
        await _flush_pending(client)
    if _pending_logouts:
        LOG.error(
            "Stopping with %d logout(s) Redis did not record: those sessions stay valid on the other replicas"
            " until they expire",
            len(_pending_logouts),
        )


async def _flush_pending(client: Any) -> None:
    """Write the logouts Redis missed, at most once every `FLUSH_INTERVAL`; kept when it fails again."""
    global _next_flush
    if not _pending_logouts or time.monotonic() < _next_flush:
        return
    _next_flush = time.monotonic() + FLUSH_INTERVAL
    now = time.time()
    for session_id in [session_id for session_id, expires_at in _pending_logouts.items() if expires_at <= now]:
        del _pending_logouts[session_id]  # expired anyway: nothing to end
    pending = list(_pending_logouts.items())
    if not pending:
        return
    # They stay pending until Redis took them: a failure, or a cancellation (the retry task stopped
    # by `shutdown()` while it waits for Redis), leaves them for the next attempt and for the count.
    try:
        await redis_call(client, lambda redis: _write_ended(redis, pending, now))
    except RedisUnavailable as error:
        warn_unavailable("Redis unavailable: the logouts it missed are still to be written: %s", error)
        return
    for session_id, expires_at in pending:
        if _pending_logouts.get(session_id) == expires_at:  # not made again meanwhile
            del _pending_logouts[session_id]
    LOG.info("Wrote to Redis %d logout(s) made while it was unavailable: ended on every replica now", len(pending))


class _PendingRetry:
    """One loop's task that writes the pending logouts once Redis answers again (closed with the loop)."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task unless it runs: in a context of its own (no request's state: its id, its
        memory of a Redis failure)."""
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(
                _retry_pending(), name="c2c-auth pending logouts", context=contextvars.Context()
            )

    async def aclose(self) -> None:
        """Stop the task (`shutdown()` then makes one last attempt)."""
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


_RETRIES: LoopLocal[_PendingRetry] = LoopLocal(_PendingRetry, lambda retry: retry.aclose(), name="pending logouts")


async def _retry_pending() -> None:
    """Until no logout waits: try to write them every `FLUSH_INTERVAL` (a failure keeps them, logged)."""
    while _pending_logouts:
        await asyncio.sleep(FLUSH_INTERVAL)
        raise_if_cancelled()
        client = redis_client()
        if client is None:  # Redis no longer configured (a settings reload): nothing can take them
            return
        await _flush_pending(client)


async def stop_retrying() -> None:
    """Stop this loop's retry task, if any (`shutdown()`)."""
    await _RETRIES.aclose()


async def _write_ended(redis: Any, pending: list[tuple[str, float]], now: float) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for session_id, expires_at in pending:
            pipe.set(redis_key("ended-session", session_id), "1", px=max(1, int((expires_at - now + 1) * 1000)))
        await pipe.execute()
