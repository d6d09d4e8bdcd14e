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
override key, `<SIGNATURE_KEY_PREFIX><prefix><name>` holds `<expiry in ms since the epoch, 0 for
none>:<hex HMAC-SHA256>` over the logger name, the level and that expiry, with a key derived from
the secret for this use only (`SIGNATURE_LABEL`), so that a pub/sub signature is no override
signature. An unsigned, tampered, moved (another name) or expired (replayed) override is ignored
with a warning naming its key. The override key itself keeps 0.14's format (the plain level).

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
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, BaseModel, Field, field_validator

from c2c_auth import AUDIT_LOGGER_NAME as AUTH_AUDIT_LOGGER_NAME
from c2c_auth import AuthInfo, TemporarilyUnavailable, get_auth, require_read_only_access, require_read_write_access
from c2c_broadcast.types import BroadcastResponse, MissingAnswer
from c2c_config import Duration, LoopLocal, describe_error, raise_if_cancelled
from c2casgiutils.tools import audit

if TYPE_CHECKING:
    from fastapi import FastAPI

    from c2c_config.redis import RedisClient, RedisFactory

LOG = logging.getLogger(__name__)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NOTSET")
LevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NOTSET"]
_LOGGER_NAME = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")
MAX_NAME_LENGTH = 200
MAX_DURATION = datetime.timedelta(days=7)
# The channel c2casgiutils 0.14 used for level changes: old and new replicas sharing a Redis during
# a migration apply each other's changes (both send `name` and `level`; `duration` only when given).
CHANNEL = "c2c_decorated_c2casgiutils.tools.logging_.__set_level"
BROADCAST_TIMEOUT = 10.0
RETRY_DELAY = 1.0
"""Seconds between two attempts of the background synchronisation while Redis cannot be read."""
SIGNATURE_KEY_PREFIX = "c2c_logging_signature:"
"""Prefix of the keys holding the signatures of the stored overrides (with a broadcast secret)."""
SIGNATURE_LABEL = b"c2casgiutils logging override signature v1"
"""What the signing key is derived with from the broadcast secret (a key for this use only)."""
MAX_KEYS = 10_000
"""How many keys under the prefix one read of the stored overrides looks at; beyond, the rest is not
read (one warning) and the overrides already applied are kept."""
MAX_OVERRIDES = 1000
"""How many stored overrides one read accepts (the first by name); the others are ignored."""
MAX_NAMED_WARNINGS = 10
"""How many newly ignored keys one read names, a warning each; the others get one warning with their count."""
_SCAN_COUNT = 1000  # the keys one `SCAN` call asks for: one batch of `MGET`s and `PTTL`s
_READ_CHUNK = 1000  # the most override keys one read script gets (Lua's `unpack` has a stack limit)

# The values, signatures and `PTTL`s of a batch of overrides, read at once: a write (`_persist`, a
# MULTI/EXEC of value and signature) cannot fall between them, as it could between separate commands
# (a new level with the old signature: a false "bad signature"). Read only: it runs on a replica too.
# KEYS: the override keys, then their signature keys when signed; ARGV[1]: how many override keys.
# `MGET` answers nil for a key of another type (no `WRONGTYPE`); one slot on a cluster (hash tag).
# Values and signatures are read cut (`GETRANGE`): a value of any size written under the prefix costs
# no more than a valid one (ARGV[2], ARGV[3]: the most bytes read of each); `lengths` (`STRLEN`)
# tells a cut value from a valid one. A key holding another type reads as nil (as `MGET` answers).
_READ_SCRIPT = """
local n = tonumber(ARGV[1])
local function cut(key, most)
  if redis.call('TYPE', key)['ok'] ~= 'string' then return false, 0 end
  return redis.call('GETRANGE', key, 0, most - 1), redis.call('STRLEN', key)
end
local values, signatures, ttls, lengths = {}, {}, {}, {}
for i = 1, n do
  values[i], lengths[i] = cut(KEYS[i], tonumber(ARGV[2]))
  ttls[i] = redis.call('PTTL', KEYS[i])
end
for i = n + 1, #KEYS do signatures[i - n] = cut(KEYS[i], tonumber(ARGV[3])) end
return {values, signatures, ttls, lengths}
"""
MAX_VALUE_LENGTH = 64
"""The most bytes of a stored override's value read (a level name is at most 8 characters): a longer
value is ignored (with a warning) without being downloaded."""
_MAX_SIGNATURE_READ = 128  # a signature is `<at most 18 digits>:<64 hex digits>`: a longer one is cut, and fails
MAX_CREATED_LOGGERS = 1000
"""How many loggers the synchronisation and the broadcast handler create, over the process's life,
for overrides of loggers the process does not have yet (Python never frees a logger): beyond, such
a change is refused here (the handler's error answer) and a stored override is applied at a later
synchronisation, once the application itself created the logger."""
_MAX_SHOWN = 200  # characters of a key name, a value or a reason put in a warning
_MAX_WARNED = 2 * MAX_KEYS + 100
"""How many ignored keys the warnings remember (least recently seen forgotten first): more than one read sees."""

__all__ = [
    "CLUSTER_TAG",
    "LEVELS",
    "PROTECTED_LOGGERS",
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


def validate_level(value: object) -> str:
    """Normalise a level name (`debug` → `DEBUG`); raise `ValueError` listing the accepted names."""
    if isinstance(value, str) and value.strip().upper() in LEVELS:
        return value.strip().upper()
    raise ValueError(f"invalid level {value!r}: expected one of {', '.join(LEVELS)}")


def validate_logger_name(value: object) -> str:
    """Accept a dotted logger name (`root` for the root logger); raise `ValueError` otherwise (a blank name too)."""
    if not isinstance(value, str):
        raise ValueError("a logger name is a string")
    name = value.strip()
    if not name:
        raise ValueError("a logger name must not be blank: the root logger is named 'root'")
    if name == "root":
        return "root"
    if len(name) > MAX_NAME_LENGTH or not _LOGGER_NAME.fullmatch(name):
        raise ValueError(
            f"invalid logger name {value!r}: dotted names of letters, digits, '_' and '-' "
            f"(at most {MAX_NAME_LENGTH} characters)"
        )
    return name


PROTECTED_LOGGERS = (audit.AUDIT_LOGGER_NAME, AUTH_AUDIT_LOGGER_NAME)
"""The audit loggers (and their children): the tool never sets their level. A caller with
read-write access could otherwise silence the audit trail on every replica, the record of that
change included."""


def is_protected(name: str) -> bool:
    """Whether the level of the logger `name` is out of the tool's reach (`PROTECTED_LOGGERS`)."""
    return any(name == protected or name.startswith(f"{protected}.") for protected in PROTECTED_LOGGERS)


def validate_settable_logger_name(value: object) -> str:
    """`validate_logger_name`, refusing the audit loggers too (`PROTECTED_LOGGERS`)."""
    name = validate_logger_name(value)
    if is_protected(name):
        raise ValueError(f"the level of {name!r} cannot be changed here: it keeps the audit trail")
    return name


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


class RedisUnavailableError(Exception):
    """Redis refused, failed or did not answer within `C2C__REDIS__TIMEOUT`; the routes answer 503."""


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


def _redis_timeout() -> float:
    """`C2C__REDIS__TIMEOUT` in seconds, read at call time."""
    from c2casgiutils import config

    return config.settings.redis.timeout.total_seconds()


@contextlib.asynccontextmanager
async def _bounded(what: str, *, request: bool = False) -> AsyncIterator[None]:
    """Bound the Redis calls of the block by `C2C__REDIS__TIMEOUT`; a failure is a `RedisUnavailableError`.

    `request`: the block serves a request. Then Redis is not asked when this very request already
    waited for it in vain (its session check timed out: `c2c_config.redis.unreachable_here`), so
    that a frozen Redis costs a request one `C2C__REDIS__TIMEOUT`, not one per call it makes.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisClusterException, RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from c2c_config import redis as c2c_redis

    if request and c2c_redis.unreachable_here():
        raise RedisUnavailableError(
            f"Redis is unavailable ({what}: not asked again, it failed earlier in this request:"
            f" {c2c_redis.unreachable_reason()})"
        )
    seconds = _redis_timeout()
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        c2c_redis.note_unreachable(f"TimeoutError: no answer within {seconds:g} s")
        raise RedisUnavailableError(f"Redis did not answer within {seconds:g} s ({what})") from None
    except (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError) as error:
        # A cluster with no master for a slot, or no node reachable, raises `RedisClusterException`,
        # which is no `RedisError`: it is "Redis is unavailable" as well.
        c2c_redis.note_unreachable(type(error).__name__)
        raise RedisUnavailableError(f"Redis is unavailable ({what}: {type(error).__name__})") from error
    except RedisError as error:  # Redis answered (out of memory, read-only replica...): not a reason to skip it
        raise RedisUnavailableError(f"Redis is unavailable ({what}: {type(error).__name__})") from error


def _log_change(name: str, level: str | None, seconds: float | None, source: str) -> None:
    """One INFO line per level changed here by another replica or by Redis: a trace of every change,
    forged ones included (without `C2C__BROADCAST__SECRET` nothing tells them apart)."""
    from c2casgiutils import config

    what = f"set to {level}" + (f" for {seconds:.0f} s" if seconds else "") if level else "restored"
    unsigned = "" if config.settings.broadcast.secret is not None else " (unsigned: C2C__BROADCAST__SECRET unset)"
    LOG.info("Logger %s %s by %s%s", _shown(name), what, source, unsigned)


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


def _derived_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), SIGNATURE_LABEL, hashlib.sha256).digest()


def _signing_key() -> bytes | None:
    """The key that signs the stored overrides, derived from `C2C__BROADCAST__SECRET`; None without a secret."""
    from c2casgiutils import config

    secret = config.settings.broadcast.secret
    return None if secret is None else _derived_key(secret.get_secret_value())


def _verifying_keys() -> tuple[bytes, ...] | None:
    """The keys a stored override's signature may be made with: the signing key, then those derived from
    `C2C__BROADCAST__ACCEPTED_SECRETS` (a rotation in progress); None without a secret."""
    from c2casgiutils import config

    signing = _signing_key()
    if signing is None:
        return None
    accepted = config.settings.broadcast.accepted_secrets
    return (signing, *(_derived_key(secret.get_secret_value()) for secret in accepted))


def _override_signature(key: bytes, name: str, level: str, expiry_ms: int) -> str:
    """The hex HMAC of one override: its logger name, its level and its expiry (ms since the epoch, 0 for none)."""
    message = json.dumps(["logging override", name, level, expiry_ms], separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, message.encode("ascii"), hashlib.sha256).hexdigest()


CLUSTER_TAG = "{c2c_logging}"
"""The key prefix of the stored overrides on a Redis Cluster when `C2C__TOOLS__LOGGING__REDIS_PREFIX` is empty."""


def cluster_prefix(prefix: str) -> str:
    """The key prefix of the stored overrides on a Redis Cluster: `prefix` holding a hash tag.

    Every override and its signature then live in one hash slot (one master): a change is one
    transaction and the list is one `SCAN` of that master. A prefix that already holds a non-empty
    hash tag (`{app}logging_`) is kept; any other is put in braces (`c2c_logging_level_` →
    `{c2c_logging_level_}`); an empty one becomes `CLUSTER_TAG`, and one starting with `}` (in
    braces, an empty tag: Redis would hash each whole key) goes after it (`{c2c_logging}}x`). On a
    single Redis (URL or Sentinel) the prefix is used as it is, as in c2casgiutils 0.14.
    """
    start = prefix.find("{")
    if start != -1 and prefix.find("}", start + 1) > start + 1:
        return prefix
    if not prefix:
        return CLUSTER_TAG
    return CLUSTER_TAG + prefix if prefix.startswith("}") else "{" + prefix + "}"


def signature_key(prefix: str, name: str) -> str:
    """The Redis key of an override's signature: outside `prefix`, so neither we nor 0.14 read it as an override."""
    base = SIGNATURE_KEY_PREFIX + prefix
    for lead in ("", "_", "#"):  # the prefix cannot start with two different characters
        if not prefix or not (lead + base).startswith(prefix):
            return lead + base + name
    raise AssertionError("unreachable")  # pragma: no cover


def _checked_duration(duration: object) -> float | None:
    """A broadcast change's `duration` (seconds): None, or a number from 1 second to 7 days; else `ValueError`."""
    if duration is None:
        return None
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise ValueError(f"invalid duration {duration!r}: a number of seconds")
    if not 1 <= duration <= MAX_DURATION.total_seconds():  # NaN compares false: refused too
        raise ValueError(f"invalid duration {duration!r}: a duration is between 1 second and 7 days")
    return float(duration)


class _IgnoredOverrideError(ValueError):
    """A stored override that is not applied (the message says why)."""


def _verified_expiry(keys: tuple[bytes, ...], name: str, level: str, signature: object, now_ms: int) -> int:
    """Check an override's signature; return its signed expiry (0 for none) or raise `_IgnoredOverrideError`."""
    if not isinstance(signature, str):
        raise _IgnoredOverrideError("not signed (a broadcast secret is set)")
    expiry_text, _, digest = signature.partition(":")
    if not expiry_text.isascii() or not expiry_text.isdigit() or len(expiry_text) > 18 or not digest.isascii():
        raise _IgnoredOverrideError("malformed signature")
    expiry_ms = int(expiry_text)
    if not any(hmac.compare_digest(digest, _override_signature(key, name, level, expiry_ms)) for key in keys):
        raise _IgnoredOverrideError("bad signature (changed, or copied from another logger's override)")
    if expiry_ms and expiry_ms <= now_ms:
        raise _IgnoredOverrideError("signed expiry passed (a replayed override)")
    return expiry_ms


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
        self._ignored = 0
        # Hashes of (key, value, reason) warned about, least recently seen first: one warning each.
        self._warned: dict[int, None] = {}
        self._complete = True  # whether the last read saw every key under the prefix (`MAX_KEYS`)
        # Why the last read may have missed stored overrides (`MAX_KEYS`, `MAX_OVERRIDES`), and since when.
        self._incomplete: str | None = None
        self._incomplete_since: float | None = None
        # The loggers created for overrides, by the synchronisation or the handler (`MAX_CREATED_LOGGERS`).
        self._created: set[str] = set()

    # --- applied on every replica (the broadcast handler) ---------------------------------------

    def apply(self, name: str, level: str | None, duration: float | None = None) -> LevelResponse:
        """Set (or, with `level=None`, restore) a logger's level in this process; never an audit logger's."""
        name = validate_logger_name(name) if level is None else validate_settable_logger_name(name)
        self._disarm(name)
        self._deadlines.pop(name, None)
        if level is None:
            original = self._original.pop(name, logging.NOTSET)
            existing = _existing_logger(name)  # a logger this process does not have is not created to restore it
            if existing is not None:
                existing.setLevel(original)
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
                    f"logger {_shown(name)!r} not created in this process: {MAX_CREATED_LOGGERS} loggers were"
                    " created for overrides already; a stored override is applied once the application creates it"
                )
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
        for name in [name for name in self._original if name not in stored] if self._complete else []:
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
        self._warn_once(
            _shown(_key_prefix()) + "*",
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
            return SyncStatus(state="local", ignored=self._ignored)
        if self._synced and self._incomplete is not None:
            return SyncStatus(
                state="degraded",
                last_error=self._incomplete,
                degraded_since=self._incomplete_since,
                last_success=self._last_success,
                ignored=self._ignored,
            )
        return SyncStatus(
            state="in_sync" if self._synced else "degraded",
            last_error=None if self._synced else self._sync_error,
            degraded_since=None if self._synced else self._degraded_since,
            last_success=self._last_success,
            ignored=self._ignored,
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
        limit = BROADCAST_TIMEOUT + _redis_timeout()
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

        master = _factory().master() if config.settings.redis.configured else None
        if master is None:
            if level is None:
                self._local_overrides.pop(name, None)
            else:
                self._local_overrides[name] = (level, time.monotonic() + duration if duration else None)
            return
        prefix = _key_prefix()
        key, sig_key = prefix + name, signature_key(prefix, name)
        signing_key = _signing_key()
        async with _bounded("storing the logging override", request=True):
            if level is None:
                await master.delete(key, sig_key)  # one slot on a cluster: one command
                return
            # Redis expires both keys together (relative TTL: Redis's clock); the signed expiry is ours.
            px = max(int(duration * 1000), 1) if duration else None
            expiry_ms = int(time.time() * 1000) + px if px else 0
            async with master.pipeline(transaction=True) as pipe:
                pipe.set(key, level, px=px)
                if signing_key is None:
                    pipe.delete(sig_key)
                else:
                    signature = f"{expiry_ms}:{_override_signature(signing_key, name, level, expiry_ms)}"
                    pipe.set(sig_key, signature, px=px)
                await pipe.execute()

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
        async with _bounded("reading the logging overrides", request=request):
            return await self._stored_overrides(_key_prefix())

    async def _stored_overrides(self, prefix: str) -> list[tuple[str, str, float | None]]:
        """Read the overrides under `prefix`: bounded work and bounded warnings, whatever the keys hold.

        The keys come from `SCAN` in batches, undecoded (a name that is not UTF-8 is skipped, not an
        error); each batch is read by one script (`_READ_SCRIPT`: the values, the signatures and the
        `PTTL`s, with no write between them), plus a pipeline of `TYPE`s for the keys that hold no
        string. At most `MAX_KEYS` keys are read and `MAX_OVERRIDES` overrides accepted; a key that
        is no valid override is ignored.
        """
        replica = _factory().replica()
        assert replica is not None
        verifying_keys = _verifying_keys()
        result: list[tuple[str, str, float | None]] = []
        ignored: list[tuple[str, str, str]] = []  # (key shown, value, reason)
        seen: set[bytes] = set()  # a `SCAN` may return a key twice
        complete = True
        # Closed here even when a command fails: no async generator left for the loop's finaliser.
        async with contextlib.aclosing(_key_batches(replica, prefix)) as batches:
            async for batch in batches:
                fresh = [key for key in dict.fromkeys(batch) if key not in seen]
                room = MAX_KEYS - len(seen)
                if len(fresh) > room:
                    fresh, complete = fresh[:room], False
                seen.update(fresh)
                result.extend(await self._read_batch(replica, prefix, fresh, verifying_keys, ignored))
                if not complete:
                    break
        result.sort()
        for name, level, _ in result[MAX_OVERRIDES:]:
            ignored.append((_shown(prefix + name), level, f"more than {MAX_OVERRIDES} overrides stored"))
        self._ignored, self._complete = len(ignored), complete
        incomplete = [
            *([] if complete else [f"more than {MAX_KEYS} keys under the prefix: only {MAX_KEYS} were read"]),
            *(
                [f"{len(result)} valid overrides stored: only {MAX_OVERRIDES} applied"]
                if len(result) > MAX_OVERRIDES
                else []
            ),
        ]
        if incomplete:
            if self._incomplete is None:
                self._incomplete_since = time.time()
            self._incomplete = "incomplete read of the stored overrides (some may not be applied): " + "; ".join(
                incomplete
            )
        else:
            self._incomplete = self._incomplete_since = None
        self._report(ignored)
        if not complete:
            self._warn_once(
                _shown(prefix) + "*",
                "",
                f"more than {MAX_KEYS} keys under the prefix: only {MAX_KEYS} were read, "
                "the overrides among the others are not applied",
            )
        return result[:MAX_OVERRIDES]

    async def _read_batch(
        self,
        client: RedisClient,
        prefix: str,
        keys: list[bytes],
        verifying_keys: tuple[bytes, ...] | None,
        ignored: list[tuple[str, str, str]],
    ) -> list[tuple[str, str, float | None]]:
        """The overrides of one batch of keys (a few round trips for the whole batch); `ignored` gets the others."""
        candidates: list[tuple[bytes, str]] = []  # the key and the logger name
        for key in keys:
            try:
                text = key.decode()
            except UnicodeDecodeError:
                ignored.append((_shown(key), "", "the key name is not UTF-8"))
                continue
            try:
                candidates.append((key, validate_logger_name(text[len(prefix) :])))
            except ValueError as error:
                ignored.append((_shown(key), "", _short(str(error))))
        if not candidates:
            return []
        values, signatures, ttls, types = await _fetch(client, prefix, candidates, verifying_keys is not None)
        result = []
        for (key, name), value, ttl, signature in zip(candidates, values, ttls, signatures, strict=True):
            if value is None:
                kind = types.get(key, "none")
                if kind != "none":  # "none": deleted or expired since the `SCAN`
                    ignored.append((_shown(key), "", f"not an override: the key holds a {_short(kind)}, not a string"))
                continue
            level = _decoded(value)
            if isinstance(value, _TooLong):
                ignored.append(
                    (_shown(key), level, f"the value is {value.length} bytes long: no level is over {MAX_VALUE_LENGTH}")
                )
                continue
            try:
                ttl_ms = int(ttl)
                result.append(
                    self._checked_override(
                        verifying_keys, name, level, ttl_ms, None if signature is None else _decoded(signature)
                    )
                )
            except (ValueError, TypeError) as error:
                ignored.append((_shown(key), level, _short(str(error))))
        return result

    @staticmethod
    def _checked_override(
        verifying_keys: tuple[bytes, ...] | None, name: str, level: str, ttl: int, signature: object
    ) -> tuple[str, str, float | None]:
        """`(name, level, seconds left)` of a stored override, or a `ValueError` saying why it is ignored."""
        name, level = validate_settable_logger_name(name), validate_level(level)
        expires_in = ttl / 1000 if ttl > 0 else None
        if verifying_keys is not None:
            now_ms = int(time.time() * 1000)
            expiry_ms = _verified_expiry(verifying_keys, name, level, signature, now_ms)
            if expiry_ms:  # the signed expiry wins over a TTL changed (or removed) in Redis
                expires_in = min(expires_in or float("inf"), (expiry_ms - now_ms) / 1000)
        return name, level, expires_in

    def _first_time(self, key: str, value: str, reason: str) -> bool:
        """Whether this ignored key, value and reason is new; remembered (least recently seen forgotten first)."""
        marker = hash((key, value[:100], reason))
        if marker in self._warned:
            del self._warned[marker]  # seen again: the most recent now
            self._warned[marker] = None
            return False
        while len(self._warned) >= _MAX_WARNED:
            del self._warned[next(iter(self._warned))]
        self._warned[marker] = None
        return True

    def _warn_once(self, key: str, value: str, reason: str) -> None:
        """One warning per ignored key, value and reason (the synchronisation reads them every round)."""
        if self._first_time(key, value, reason):
            LOG.warning("Ignored the stored logging override %s: %s", key, reason)

    def _report(self, ignored: Sequence[tuple[str, str, str]]) -> None:
        """Warn about the newly ignored keys of one read: `MAX_NAMED_WARNINGS` named, the others counted in one."""
        named = unnamed = 0
        for key, value, reason in ignored:
            if not self._first_time(key, value, reason):
                continue
            if named < MAX_NAMED_WARNINGS:
                named += 1
                LOG.warning("Ignored the stored logging override %s: %s", key, reason)
            else:
                unnamed += 1
        if unnamed:
            LOG.warning(
                "Ignored %d more stored logging overrides (at most %d named per read; sync_status().ignored "
                "counts the ignored keys)",
                unnamed,
                MAX_NAMED_WARNINGS,
            )


async def _fetch(
    client: RedisClient, prefix: str, candidates: Sequence[tuple[bytes, str]], signed: bool
) -> tuple[list[Any], list[Any], list[Any], dict[bytes, str]]:
    """The values, signatures (None each without a secret) and `PTTL`s of `(key, name)`s, read at once
    (`_READ_SCRIPT`, per chunk), and the type of each key holding no string (a pipeline of `TYPE`s)."""
    from redis.client import NEVER_DECODE

    raw: dict[str, Any] = {NEVER_DECODE: True}  # values as bytes: one that is not UTF-8 is no error
    values: list[Any] = []
    signatures: list[Any] = []
    ttls: list[Any] = []
    for start in range(0, len(candidates), _READ_CHUNK):
        chunk = candidates[start : start + _READ_CHUNK]
        keys: list[bytes | str] = [key for key, _ in chunk]
        if signed:
            keys += [signature_key(prefix, name) for _, name in chunk]
        reply = await client.execute_command(
            "EVAL", _READ_SCRIPT, len(keys), *keys, len(chunk), MAX_VALUE_LENGTH, _MAX_SIGNATURE_READ, **raw
        )
        chunk_values, chunk_signatures, chunk_ttls, chunk_lengths = reply
        # A value longer than any level: cut when read, marked so that it is ignored (`_TooLong`).
        values += [
            _TooLong(value, int(length)) if value is not None and int(length) > MAX_VALUE_LENGTH else value
            for value, length in zip(chunk_values, chunk_lengths, strict=True)
        ]
        signatures += chunk_signatures if signed else [None] * len(chunk)
        ttls += chunk_ttls
    missing = [key for (key, _), value in zip(candidates, values, strict=True) if value is None]
    types: dict[bytes, str] = {}
    if missing:
        async with client.pipeline(transaction=False) as pipe:
            for key in missing:
                pipe.type(key)
            types = {key: _decoded(kind) for key, kind in zip(missing, await pipe.execute(), strict=True)}
    return values, signatures, ttls, types


class _TooLong(bytes):
    """The first `MAX_VALUE_LENGTH` bytes of a stored value of `length` bytes: no override."""

    length: int

    def __new__(cls, start: bytes, length: int) -> _TooLong:
        made = super().__new__(cls, start)
        made.length = length
        return made


def _decoded(value: object) -> str:
    """A reply as text: bytes that are not UTF-8 escaped (`\\xff`), cut after `_MAX_SHOWN` characters."""
    text = value[: _MAX_SHOWN * 4].decode(errors="backslashreplace") if isinstance(value, bytes) else str(value)
    return _short(text)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _shown(key: bytes | str) -> str:
    """A key name fit for a log line: not UTF-8 escaped, control characters escaped, long names cut."""
    text = _decoded(key)
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _factory() -> RedisFactory:
    from c2c_config.redis import get_factory
    from c2casgiutils import config

    return get_factory(config.settings.redis)


def _key_prefix() -> str:
    """The prefix of the override keys: the setting's, with a hash tag on a cluster (`cluster_prefix`)."""
    from c2casgiutils import config

    prefix = config.settings.tools.logging.redis_prefix
    return cluster_prefix(prefix) if _factory().cluster else prefix


async def _key_batches(client: RedisClient, prefix: str) -> AsyncGenerator[list[bytes], None]:
    """The keys under `prefix`, undecoded, a `SCAN` reply at a time (on a cluster, of the slot's master)."""
    from redis.asyncio.cluster import RedisCluster
    from redis.client import NEVER_DECODE

    match = _escape_glob(prefix) + "*"
    options: dict[str, Any] = {NEVER_DECODE: True}  # a key name that is not UTF-8 is no error
    if isinstance(client, RedisCluster):
        # A command routed by key first: the client follows `MOVED` and, after a failover, retries on
        # the refreshed topology, which a `SCAN` sent to one node does not do (the first call after a
        # failover would fail).
        await client.exists(prefix)
        options["target_nodes"] = client.get_node_from_key(prefix)  # the hash tag decides
    cursor = 0
    while True:
        reply: Any = await client.scan(cursor=cursor, match=match, count=_SCAN_COUNT, **options)
        next_cursor, keys = reply
        if isinstance(next_cursor, dict):  # a cluster answers per node: the one node asked
            next_cursor = next(iter(next_cursor.values()), 0)
        yield [key if isinstance(key, bytes) else str(key).encode() for key in keys]
        cursor = int(next_cursor)
        if not cursor:
            return


def _escape_glob(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


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
