"""The logging tool: read and change logger levels on every replica, with optional automatic revert.

Endpoints (under the `/c2c` mount; `router` holds them):

- `GET /logging/level?name=` (`c2c_logging_level`, read-only access): a `LevelResponse`
  `{"name", "level", "effective_level"}`; looking a logger up never creates it.
- `POST /logging/level` (`c2c_logging_set_level`, read-write access), JSON `{"name", "level",
  "duration"?}`: validates the level (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`, `NOTSET`,
  any case) and the logger name (the root logger is `root`; a blank name is refused with 422, and
  so are the audit loggers, `PROTECTED_LOGGERS`, whose level the tool never sets: a read-write
  caller could otherwise silence the audit trail, the record of that change included),
  persists the override in Redis (key `<C2C__TOOLS__LOGGING__REDIS_PREFIX><name>`, value the level
  name, as c2casgiutils 0.14 stored it) so that replicas started later apply it, broadcasts the
  change to every replica and answers 0.14's `{"name", "level", "effective_level"}` (with
  `duration` when given, and each replica's result, `replicas`, with `?replicas=true`). With `duration`
  (seconds or any `Duration` notation, 1 second to 7 days, else 422) the level reverts by itself
  on every replica and the Redis key expires.
- `DELETE /logging/level?name=` (`c2c_logging_delete_level`, read-write access): removes the
  override everywhere; each replica restores the level the logger had before its first override.
  The answer is the level here and each replica's answer (`replicas`).
- `GET /logging/overrides` (`c2c_logging_overrides`, read-only access): an `OverridesResponse`
  `{"overrides": [{"name", "level", "expires_in"}]}`.

Without Redis the overrides live in the process (the local broadcaster reaches only it).

On a Redis Cluster (`C2C__REDIS__CLUSTER`) the key prefix carries a hash tag (`cluster_prefix`:
`{c2c_logging_level_}<name>`, the signatures `c2c_logging_signature:{c2c_logging_level_}<name>`),
so that every key of the tool is in one slot: a change is one transaction, the list one `SCAN` of
the master owning that slot. A failover of that master answers 503 until its replica took over.

Redis is never waited for without a limit: each Redis call of a request or of the startup is
bounded by `C2C__REDIS__TIMEOUT`, and a request whose Redis call times out or fails is answered
503 with a JSON `detail` (`RedisUnavailableError`). The startup never fails and never hangs
because Redis is down or frozen: it gives up reading the stored overrides after that time, and a
background synchronisation applies them once Redis answers (retrying every `RETRY_DELAY`
seconds); meanwhile `sync_status()` (and `c2casgiutils.monitoring.LoggingSyncCheck`) says
`degraded`.

With a broadcast secret (`C2C__BROADCAST__SECRET`) the stored overrides are signed: next to each
override key, `<SIGNATURE_KEY_PREFIX><prefix><name>` holds `<expiry>:<written>:<hex HMAC-SHA256>`
(times in ms since the epoch, expiry 0 for none) over the logger name, the level and both times,
with a key derived from the secret for this use only (`SIGNATURE_LABEL`), so that a pub/sub
signature is no override signature. An unsigned, tampered, moved (another name) or expired
(replayed) override is ignored with a warning naming its key, and so is one written before a newer
override or a deletion of that logger this replica saw (an old override written back, signature
intact): its level stays as it is. The override key itself keeps 0.14's format (the plain level).

Whatever is stored under the prefix, a read of the overrides (the list, the synchronisation) skips
what is no override (a key name that is not UTF-8, a key of another type, an invalid name or
level) and goes on with the others; its work is bounded: `SCAN` in batches, one `MGET` of the
values and one of the signatures per batch, at most `MAX_KEYS` keys read and `MAX_OVERRIDES`
overrides accepted. Its warnings are bounded too: each ignored key once (`MAX_NAMED_WARNINGS` named
per read, the others counted in one warning), `sync_status().ignored` counting them all.

What is bound to an event loop (the broadcast subscription, the synchronisation task, the revert
timers, the Redis clients) belongs to the running loop (`c2c_config.LoopLocal`): an application
started several times in one process (a `TestClient` per test) gets fresh ones each time, and
those of a loop are stopped on that loop when it ends, `shutdown()` called or not. The levels
themselves, the levels to restore and the revert deadlines belong to the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, BaseModel, Field, field_validator

from c2c_auth import AuthInfo, TemporarilyUnavailable, get_auth, require_read_only_access, require_read_write_access
from c2c_broadcast.types import BroadcastResponse, MissingAnswer
from c2c_config import Duration, LoopLocal, describe_error, raise_if_cancelled
from c2casgiutils import auth as auth  # `auth`, `broadcast`, `config`, `redis_utils`: attributes here in 0.14
from c2casgiutils import broadcast as broadcast
from c2casgiutils import config as config
from c2casgiutils import redis_utils as redis_utils
from c2casgiutils.tools import audit
from c2casgiutils.tools._levels import (
    LEVELS,
    MAX_NAME_LENGTH,
    PROTECTED_LOGGERS,
    LevelName,
    is_protected,
    validate_level,
    validate_logger_name,
    validate_settable_logger_name,
)
from c2casgiutils.tools._overrides import (
    CLUSTER_TAG,
    MAX_KEYS,
    MAX_NAMED_WARNINGS,
    MAX_OVERRIDES,
    MAX_VALUE_LENGTH,
    SIGNATURE_KEY_PREFIX,
    SIGNATURE_LABEL,
    OverrideStore,
    RedisUnavailableError,
    cluster_prefix,
    factory,
    key_prefix,
    redis_timeout,
    shown,
    signature_key,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

LOG = logging.getLogger(__name__)

MAX_DURATION = datetime.timedelta(days=7)
# The channel c2casgiutils 0.14 used for level changes: old and new replicas sharing a Redis during
# a migration apply each other's changes (both send `name` and `level`; `duration` only when given).
CHANNEL = "c2c_decorated_c2casgiutils.tools.logging_.__set_level"
BROADCAST_TIMEOUT = 10.0
RETRY_DELAY = 1.0
"""Seconds between two attempts of the background synchronisation while Redis cannot be read."""
MAX_CREATED_LOGGERS = 1000
"""How many loggers the synchronisation and the broadcast handler create, over the process's life,
for overrides of loggers the process does not have yet (Python never frees a logger): beyond, such
a change is refused here (the handler's error answer) and a stored override is applied at a later
synchronisation, once the application itself created the logger."""

__all__ = [
    "CLUSTER_TAG",
    "LEVELS",
    "MAX_CREATED_LOGGERS",
    "MAX_KEYS",
    "MAX_NAMED_WARNINGS",
    "MAX_NAME_LENGTH",
    "MAX_OVERRIDES",
    "MAX_VALUE_LENGTH",
    "PROTECTED_LOGGERS",
    "SIGNATURE_KEY_PREFIX",
    "SIGNATURE_LABEL",
    "BroadcastResponse",
    "LevelChange",
    "LevelChangeResponse",
    "LevelInfo",
    "LevelResponse",
    "LoggingTool",
    "MissingAnswer",
    "OverrideResponse",
    "OverridesResponse",
    "RedisUnavailableError",
    "SyncStatus",
    "c2c_logging_delete_level",
    "c2c_logging_level",
    "c2c_logging_overrides",
    "c2c_logging_set_level",
    "cluster_prefix",
    "get_tool",
    "is_protected",
    "router",
    "shutdown",
    "signature_key",
    "startup",
    "validate_level",
    "validate_logger_name",
    "validate_settable_logger_name",
]


class LevelResponse(BaseModel):
    """A logger's level on one replica."""

    name: str
    level: str
    effective_level: str


LevelInfo = LevelResponse
"""The earlier name of `LevelResponse`."""


class LevelChangeResponse(LevelResponse):
    """The answer of a change: the level here, the revert delay, and each replica's answer."""

    duration: float | None = None
    replicas: list[dict[str, Any]] = Field(default_factory=list)


class OverrideResponse(BaseModel):
    """A stored override: the level and, when it reverts by itself, the seconds left."""

    name: str
    level: str
    expires_in: float | None = None


class OverridesResponse(BaseModel):
    """The stored overrides."""

    overrides: list[OverrideResponse]


class LevelChange(BaseModel):
    """The body of `POST /logging/level`."""

    name: str = Field(description="Logger name ('root' for the root logger)")
    level: LevelName = Field(description="New level")
    duration: Duration | None = Field(default=None, description="Revert automatically after this long (max 7 days)")

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: object) -> str:
        return validate_settable_logger_name(value)

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: object) -> str:
        return validate_level(value)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: datetime.timedelta | None) -> datetime.timedelta | None:
        if value is not None and not datetime.timedelta(seconds=1) <= value <= MAX_DURATION:
            raise ValueError("a duration is between 1 second and 7 days")
        return value


def _existing_logger(name: str) -> logging.Logger | None:
    if name == "root":
        return logging.getLogger()
    candidate = logging.Logger.manager.loggerDict.get(name)
    return candidate if isinstance(candidate, logging.Logger) else None


def level_info(name: str) -> LevelResponse:
    """The level of `name` in this process, without creating the logger."""
    logger = _existing_logger(name)
    if logger is not None:
        return LevelResponse(
            name=name,
            level=logging.getLevelName(logger.level),
            effective_level=logging.getLevelName(logger.getEffectiveLevel()),
        )
    # Not created yet: it would inherit from its nearest existing ancestor.
    parent = name
    while "." in parent:
        parent = parent.rsplit(".", 1)[0]
        ancestor = _existing_logger(parent)
        if ancestor is not None:
            return LevelResponse(
                name=name, level="NOTSET", effective_level=logging.getLevelName(ancestor.getEffectiveLevel())
            )
    return LevelResponse(name=name, level="NOTSET", effective_level=logging.getLevelName(logging.getLogger().level))


class _LoopParts:
    """What the tool holds in one event loop: its broadcast caller, its sync task, its revert timers."""

    def __init__(self) -> None:
        self.broadcast: Callable[..., Awaitable[Any]] | None = None
        self.sync_task: asyncio.Task[None] | None = None
        self.timers: dict[str, asyncio.TimerHandle] = {}

    async def aclose(self) -> None:
        """Cancel the timers and stop the sync task (on the loop they belong to)."""
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.broadcast = None
        task, self.sync_task = self.sync_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclasses.dataclass(frozen=True)
class SyncStatus:
    """Whether this process's levels follow the stored overrides.

    `state`: `local` (no Redis: nothing to follow), `in_sync` (the last read of the stored
    overrides succeeded), `degraded` (not read yet, or the last read failed: the background
    synchronisation retries; or the last read was cut by `MAX_KEYS` or `MAX_OVERRIDES`, so that
    stored overrides may be missed: `last_error` says so). `last_error` is the last failure, `degraded_since` and
    `last_success` are `time.time()` values, `ignored` counts the stored overrides the last read
    ignored (invalid, or unsigned or forged with a secret set).
    """

    state: Literal["local", "in_sync", "degraded"]
    last_error: str | None = None
    degraded_since: float | None = None
    last_success: float | None = None
    ignored: int = 0


def _log_change(name: str, level: str | None, seconds: float | None, source: str) -> None:
    """One INFO line per level changed here by another replica or by Redis: a trace of every change,
    forged ones included (without `C2C__BROADCAST__SECRET` nothing tells them apart)."""
    from c2casgiutils import config

    what = f"set to {level}" + (f" for {seconds:.0f} s" if seconds else "") if level else "restored"
    unsigned = "" if config.settings.broadcast.secret is not None else " (unsigned: C2C__BROADCAST__SECRET unset)"
    LOG.info("Logger %s %s by %s%s", shown(name), what, source, unsigned)


def _silent_at_broadcast_startup() -> str | None:
    """Why the startup should not ask Redis: the broadcaster's startup waited for it and got no answer.

    Right after `c2c_broadcast.startup()` returned, a Redis broadcaster still `connecting`, without
    an error, waited `C2C__BROADCAST__CONNECT_TIMEOUT` for a Redis that neither answered nor refused (a
    frozen server, a black-holed address): reading the overrides would wait as long again. None: ask.
    """
    from c2c_broadcast import status

    current = status()
    never_answered = current.state == "connecting" and not current.reconnections and not current.last_error
    if current.kind == "redis" and never_answered:
        return "Redis did not answer the broadcaster's startup: not asked again"
    return None


def _checked_duration(duration: object) -> float | None:
    """A broadcast change's `duration` (seconds): None, or a number from 1 second to 7 days; else `ValueError`."""
    if duration is None:
        return None
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise ValueError(f"invalid duration {duration!r}: a number of seconds")
    if not 1 <= duration <= MAX_DURATION.total_seconds():  # NaN compares false: refused too
        raise ValueError(f"invalid duration {duration!r}: a duration is between 1 second and 7 days")
    return float(duration)


class LoggingTool:
    """The logging tool of a process: levels to restore, revert deadlines, in-memory overrides; loop parts per loop."""

    def __init__(self) -> None:
        self._original: dict[str, int] = {}
        self._deadlines: dict[str, float] = {}  # time.monotonic() at which a timed override reverts
        self._local_overrides: dict[str, tuple[str, float | None]] = {}
        self._loops: LoopLocal[_LoopParts] = LoopLocal(_LoopParts, _LoopParts.aclose, name="logging tool")
        # The synchronisation's state (process-wide, as the levels are).
        self._synced = False
        self._sync_error: str | None = "not read yet"
        self._degraded_since: float | None = time.time()
        self._last_success: float | None = None
        self._store = OverrideStore()  # what the last read of the stored overrides left out, warnings said
        # The loggers created for overrides, by the synchronisation or the handler (`MAX_CREATED_LOGGERS`).
        self._created: set[str] = set()

    # --- applied on every replica (the broadcast handler) ---------------------------------------

    def apply(self, name: str, level: str | None, duration: float | None = None) -> LevelResponse:
        """Set (or, with `level=None`, restore) a logger's level in this process; never an audit logger's."""
        name = validate_logger_name(name) if level is None else validate_settable_logger_name(name)
        self._disarm(name)
        self._deadlines.pop(name, None)
        if level is None:
            # Only a level this tool set is restored: a logger it never changed keeps the level the
            # application gave it (a DELETE reaching a replica that did not apply the override).
            existing = _existing_logger(name)  # a logger this process does not have is not created to restore it
            if name in self._original and existing is not None:
                existing.setLevel(self._original[name])
            self._original.pop(name, None)
        else:
            logger = logging.getLogger() if name == "root" else logging.getLogger(name)
            self._original.setdefault(name, logger.level)
            logger.setLevel(validate_level(level))
            if duration:
                deadline = self._deadlines[name] = time.monotonic() + duration
                self._arm(name, deadline)
        return level_info(name)

    def _arm(self, name: str, deadline: float) -> None:
        """Schedule the revert on the running loop (with none running, the next `startup()` does)."""
        loop = _running_loop()
        if loop is None:
            return
        timers = self._loops.get().timers
        previous = timers.pop(name, None)
        if previous is not None:
            previous.cancel()
        timers[name] = loop.call_later(max(deadline - time.monotonic(), 0.0), self._expire, name, deadline)

    def _disarm(self, name: str) -> None:
        parts = self._loops.peek()
        timer = parts.timers.pop(name, None) if parts is not None else None
        if timer is not None:
            timer.cancel()

    def _expire(self, name: str, deadline: float) -> None:
        parts = self._loops.peek()
        if parts is not None:
            parts.timers.pop(name, None)
        if self._deadlines.get(name) != deadline:  # changed since this timer was armed
            return
        del self._deadlines[name]
        self._local_overrides.pop(name, None)
        logger = logging.getLogger() if name == "root" else logging.getLogger(name)
        logger.setLevel(self._original.pop(name, logging.NOTSET))
        LOG.info("Logger %s reverted to %s", name, logging.getLevelName(logger.level))

    # The annotation is what the callers validate the answers against: ours answer a LevelResponse,
    # c2casgiutils 0.14 replicas (a mixed rollout) answer `True`.
    async def handle(self, *, name: str, level: str | None, duration: float | None = None) -> LevelResponse | bool:
        """The broadcast handler: apply the change here and report the result.

        The message may come from anyone who can publish on the shared Redis (without a broadcast
        secret): its `duration` is checked as the HTTP API checks it (1 second to 7 days), else
        the change is refused (an error answer).
        """
        checked = _checked_duration(duration)
        if level is not None:
            name = validate_settable_logger_name(name)
            if _existing_logger(name) is None and not self._may_create(name):
                raise ValueError(
                    f"logger {shown(name)!r} not created in this process: {MAX_CREATED_LOGGERS} loggers were"
                    " created for overrides already; a stored override is applied once the application creates it"
                )
        if level is None:
            self._store.removed(name)  # an earlier signed override of it written back is a replay
        result = self.apply(name, level, checked)
        _log_change(name, level, checked, "a broadcast")  # the request id of the caller's change is on the record
        return result

    # --- keeping this process in line with the stored overrides -------------------------------------

    async def sync(self) -> int:
        """Apply the stored overrides this process does not run, and drop the ones no longer stored.

        A replica misses a broadcast while its Redis connection is down (a Redis restart, a
        failover): the stored overrides are the truth, and this brings the process back to them.
        Returns the number of loggers changed.

        Raises:
            RedisUnavailableError: Redis failed or did not answer within `C2C__REDIS__TIMEOUT`.
        """
        stored = {name: (level, expires_in) for name, level, expires_in in await self.overrides()}
        changed = 0
        for name, (level, expires_in) in stored.items():
            logger = _existing_logger(name)
            if logger is None and not self._may_create(name):
                continue  # applied by a later synchronisation, once the application created the logger
            if logger is None or logging.getLevelName(logger.level) != level or name not in self._original:
                self.apply(name, level, expires_in)
                _log_change(name, level, expires_in, "a stored override")
                changed += 1
        # A read cut at `MAX_KEYS` did not see every key: what it did not see may still be stored.
        # Nor is an override it ignored as stale (an older signed one written back): the level stays.
        gone = [name for name in self._original if name not in stored and name not in self._store.stale]
        for name in gone if self._store.complete else []:
            self.apply(name, None)
            _log_change(name, None, None, "the stored overrides (its own is gone)")
            changed += 1
        if changed:
            LOG.info("Logging levels brought in line with %d stored override(s)", changed)
        return changed

    def _may_create(self, name: str) -> bool:
        """Whether an override may create the logger `name` (at most `MAX_CREATED_LOGGERS` ever)."""
        if name in self._created or name in self._original:
            return True
        if len(self._created) < MAX_CREATED_LOGGERS:
            self._created.add(name)
            return True
        self._store.warn_once(
            shown(key_prefix()) + "*",
            "",
            f"{MAX_CREATED_LOGGERS} loggers were created for overrides already: the overrides of loggers"
            " this process does not have yet are applied once the application creates them",
        )
        return False

    def sync_status(self) -> SyncStatus:
        """Whether this process's levels follow the stored overrides (`local` without Redis).

        A read that could not consider every stored override (more than `MAX_KEYS` keys under the
        prefix, or more than `MAX_OVERRIDES` valid overrides) is `degraded` too, `last_error` saying why.
        """
        from c2casgiutils import config

        if not config.settings.redis.configured:
            return SyncStatus(state="local", ignored=self._store.ignored)
        if self._synced and self._store.incomplete is not None:
            return SyncStatus(
                state="degraded",
                last_error=self._store.incomplete,
                degraded_since=self._store.incomplete_since,
                last_success=self._last_success,
                ignored=self._store.ignored,
            )
        return SyncStatus(
            state="in_sync" if self._synced else "degraded",
            last_error=None if self._synced else self._sync_error,
            degraded_since=None if self._synced else self._degraded_since,
            last_success=self._last_success,
            ignored=self._store.ignored,
        )

    async def _try_sync(self) -> bool:
        """One synchronisation that never raises; records the outcome for `sync_status()`."""
        try:
            await self.sync()
        except Exception as error:  # Redis down or frozen: the next round retries
            self._not_read(str(error) if isinstance(error, RedisUnavailableError) else describe_error(error))
            return False
        if not self._synced and self._last_success is not None:
            LOG.info("The stored logging overrides are readable again")
        self._synced, self._sync_error, self._last_success = True, None, time.time()
        return True

    def _not_read(self, message: str) -> None:
        """The stored overrides could not be read: `degraded`, said once per outage (WARNING)."""
        if self._synced or self._sync_error == "not read yet":
            LOG.warning("Cannot read the stored logging overrides (%s); retrying in the background", message)
            self._degraded_since = time.time()
        self._synced, self._sync_error = False, message

    async def _sync_loop(self, interval: float) -> None:
        """Re-read the stored overrides: every second while degraded, after a reconnection, every `interval`."""
        from c2c_broadcast import status

        reconnections = status().reconnections
        next_sync = time.monotonic() + interval
        while True:
            raise_if_cancelled()  # one lost in redis-py (Python 3.11's wait_for) would keep it going
            await asyncio.sleep(min(RETRY_DELAY, interval) if interval > 0 else RETRY_DELAY)
            current = status().reconnections
            # Until a read succeeds; right after a reconnection (the broadcasts of the outage are
            # lost); else periodically.
            if self._synced and current == reconnections and (interval <= 0 or time.monotonic() < next_sync):
                continue
            reconnections = current
            next_sync = time.monotonic() + interval
            if await self._try_sync() and interval <= 0:
                return  # periodic synchronisation disabled: it only had to catch up once

    # --- the caller side ---------------------------------------------------------------------------

    async def _subscribed(self) -> _LoopParts:
        """The running loop's parts, subscribed to the level changes of the other replicas."""
        from c2c_broadcast import decorate  # imported late: the tool works before broadcast is used

        parts = self._loops.get()
        if parts.broadcast is None:
            parts.broadcast = await decorate(
                self.handle, channel=CHANNEL, expect_answers=True, timeout=BROADCAST_TIMEOUT
            )
        return parts

    async def startup(self) -> None:
        """Subscribe the handler in the running loop, restore the stored overrides and, with Redis, keep them in sync.

        Never fails because Redis is down, and never waits for it longer than
        `C2C__REDIS__TIMEOUT`: when the stored overrides cannot be read, the background
        synchronisation applies them once Redis answers, and `sync_status()` says `degraded`.
        """
        from c2casgiutils import config

        parts = await self._subscribed()
        silent = _silent_at_broadcast_startup()
        if silent:  # the broadcaster's startup just waited for Redis in vain: a startup waits once
            self._not_read(silent)
            synced = False
        else:
            synced = await self._try_sync()
        # Timed overrides applied in an earlier loop revert in this one.
        for name, deadline in list(self._deadlines.items()):
            if name not in parts.timers:
                self._arm(name, deadline)
        if config.settings.redis.configured and (parts.sync_task is None or parts.sync_task.done()):
            interval = config.settings.tools.logging.sync_interval.total_seconds()
            if interval > 0 or not synced:
                parts.sync_task = asyncio.create_task(self._sync_loop(interval), name="c2c-logging-sync")

    async def shutdown(self) -> None:
        """Stop the running loop's background work (sync task, revert timers); the levels stay."""
        await self._loops.aclose()

    async def change(self, name: str, level: str | None, duration: float | None = None) -> list[Any]:
        """Persist a change and apply it on every replica (through broadcast); return the answers.

        Raises:
            RedisUnavailableError: Redis failed or did not answer in time (nothing was applied
                when storing failed; when only the broadcast failed, the change is applied on this
                replica and the others apply the stored change at their next synchronisation).
        """
        from c2c_broadcast import BroadcastUnavailableError

        await self._persist(name, level, duration)
        arguments: dict[str, Any] = {"name": name, "level": level}
        if duration:
            arguments["duration"] = duration
        limit = BROADCAST_TIMEOUT + redis_timeout()
        try:
            async with asyncio.timeout(limit):
                parts = await self._subscribed()
                assert parts.broadcast is not None
                return cast("list[Any]", await parts.broadcast(**arguments) or [])
        except (TimeoutError, BroadcastUnavailableError) as error:
            # Stored: this replica need not wait for its next synchronisation to apply it.
            self.apply(name, level, duration)
            why = f"no answer within {limit:g} s" if isinstance(error, TimeoutError) else type(error).__name__
            raise RedisUnavailableError(
                f"the change is stored and applied on this replica but could not be broadcast ({why}); the other"
                " replicas apply it at their next synchronisation"
            ) from None

    async def _persist(self, name: str, level: str | None, duration: float | None) -> None:
        from c2casgiutils import config

        master = factory().master() if config.settings.redis.configured else None
        if master is None:
            if level is None:
                self._local_overrides.pop(name, None)
            else:
                self._local_overrides[name] = (level, time.monotonic() + duration if duration else None)
            return
        await self._store.persist(master, name, level, duration)

    async def overrides(self, *, request: bool = False) -> list[tuple[str, str, float | None]]:
        """The persisted overrides: `(name, level, seconds left or None)`, invalid or unsigned entries skipped.

        `request`: read for a request (see `_bounded`: not asked within the skip window).

        Raises:
            RedisUnavailableError: Redis failed or did not answer within `C2C__REDIS__TIMEOUT`.
        """
        from c2casgiutils import config

        if not config.settings.redis.configured:
            now = time.monotonic()
            return [
                (name, level, max(deadline - now, 0.001) if deadline else None)
                for name, (level, deadline) in sorted(self._local_overrides.items())
                if deadline is None or deadline > now
            ]
        return await self._store.read(request=request)


_TOOL: LoggingTool | None = None


def get_tool() -> LoggingTool:
    """The process-wide logging tool (its loop-bound parts are per event loop)."""
    global _TOOL
    if _TOOL is None:
        _TOOL = LoggingTool()
    return _TOOL


async def startup(main_app: FastAPI | None = None) -> None:
    """Start the logging tool in the running loop (called by `c2casgiutils.startup`, `tools.startup`, `cli.init`).

    `main_app` is accepted as in c2casgiutils 0.14 and not used: a worker without an application
    calls `await startup(None)`. Subscribes to the level changes, restores the stored overrides
    and, with Redis, starts the periodic synchronisation.
    """
    del main_app
    await get_tool().startup()


async def shutdown() -> None:
    """Stop the logging tool's background work in the running loop (called by `c2casgiutils.shutdown`)."""
    if _TOOL is not None:
        await _TOOL.shutdown()


def _answers(answers: Sequence[Any]) -> list[dict[str, Any]]:
    """Each replica's answer: `{hostname, pid, payload}`, or `{hostname, pid, error, ...}` when it did not answer."""
    rendered = []
    for answer in answers:
        if isinstance(answer, BaseModel):
            rendered.append(answer.model_dump(mode="json"))
        elif dataclasses.is_dataclass(answer) and not isinstance(answer, type):
            rendered.append({**dataclasses.asdict(answer), "error": type(answer).__name__})
        else:
            rendered.append({"error": type(answer).__name__, "detail": str(answer)})
    return rendered


# A query's logger name: refused with 422 as the body's `name` is (FastAPI's validation answer).
_QueryLoggerName = Annotated[str, AfterValidator(validate_logger_name), Query(description="Logger name")]


router = APIRouter(tags=["logging"])
"""The logging routes, relative as in 0.14 (`/level`, `/overrides`): `c2casgiutils.tools.router`
includes them under `/logging`."""


@router.get("/level")
async def c2c_logging_level(
    name: _QueryLoggerName,
    _: Annotated[None, Depends(require_read_only_access)],
) -> LevelResponse:
    """A logger's level in this process (`GET /c2c/logging/level?name=`), without creating the logger."""
    return level_info(name)


# Read-only access is checked first, as 0.14's tools router did for every route: an anonymous
# caller gets 0.14's "You don't have read-only access to this resource" (the body guard runs the
# route's checks in the same order, before reading the body).
@router.post("/level", dependencies=[Depends(require_read_only_access)], response_model_exclude_unset=True)
async def c2c_logging_set_level(
    level: LevelChange,
    _: Annotated[None, Depends(require_read_write_access)],
    _request: Request,
    _auth: Annotated[AuthInfo, Depends(get_auth)],
    replicas: Annotated[bool, Query(description="Also return each replica's answer (`replicas`)")] = False,
) -> LevelChangeResponse:
    """Set a level on every replica, persisted, reverting after `duration` if given (`POST /c2c/logging/level`).

    The answer is 0.14's (`name`, `level`, `effective_level`), with `duration` when one was given and
    `replicas` (each replica's answer) when asked for with `?replicas=true`.
    """
    duration = level.duration.total_seconds() if level.duration else None
    try:
        answers = await get_tool().change(level.name, level.level, duration)
    except RedisUnavailableError as error:
        raise TemporarilyUnavailable(str(error)) from None
    await audit.record(_request, "level_set", {"name": level.name, "level": level.level, "duration": duration}, _auth)
    extra: dict[str, Any] = {} if duration is None else {"duration": duration}
    if replicas:
        extra["replicas"] = _answers(answers)
    return LevelChangeResponse(**level_info(level.name).model_dump(), **extra)


@router.delete("/level", dependencies=[Depends(require_read_only_access)], response_model_exclude_unset=True)
async def c2c_logging_delete_level(
    name: _QueryLoggerName,
    _: Annotated[None, Depends(require_read_write_access)],
    _request: Request,
    _auth: Annotated[AuthInfo, Depends(get_auth)],
) -> LevelChangeResponse:
    """Remove an override everywhere; each replica restores its previous level (`DELETE /c2c/logging/level`)."""
    checked = name
    try:
        answers = await get_tool().change(checked, None)
    except RedisUnavailableError as error:
        raise TemporarilyUnavailable(str(error)) from None
    await audit.record(_request, "level_deleted", {"name": checked}, _auth)
    return LevelChangeResponse(**level_info(checked).model_dump(), replicas=_answers(answers))


# exclude_none: an override without a time limit is `{"name", "level"}`, exactly 0.14's item, so that
# 0.14 clients and test suites (`{"name": ..., "level": ...} in overrides`) keep matching.
@router.get("/overrides", response_model_exclude_none=True)
async def c2c_logging_overrides(_: Annotated[None, Depends(require_read_only_access)]) -> OverridesResponse:
    """The stored overrides (`GET /c2c/logging/overrides`); `expires_in` only for an override that reverts."""
    try:
        overrides = await get_tool().overrides(request=True)
    except RedisUnavailableError as error:
        raise TemporarilyUnavailable(str(error)) from None
    return OverridesResponse(
        overrides=[
            OverrideResponse(name=name, level=level, expires_in=expires_in) for name, level, expires_in in overrides
        ]
    )
