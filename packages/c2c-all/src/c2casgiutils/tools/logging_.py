"""The logging tool: read and change logger levels on every replica, with optional automatic revert.

Endpoints (under the `/c2c` mount):

- `GET /logging/level?name=` (read-only access): `{"name", "level", "effective_level"}`; looking a
  logger up never creates it.
- `POST /logging/level` (read-write access), JSON `{"name", "level", "duration"?}`: validates the
  level (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`, `NOTSET`, any case) and the logger name,
  broadcasts the change to every replica and answers with each replica's result, persists the
  override in Redis (key `<C2C__TOOLS__LOGGING__REDIS_PREFIX><name>`, value the level name, as
  c2casgiutils 0.14 stored it) so that replicas started later apply it. With `duration` (seconds
  or any `Duration` notation) the level reverts by itself on every replica and the Redis key
  expires.
- `DELETE /logging/level?name=` (read-write access): removes the override everywhere; each
  replica restores the level the logger had before its first override.
- `GET /logging/overrides` (read-only access): `{"overrides": [{"name", "level", "expires_in"}]}`.

Without Redis the overrides live in the process (the local broadcaster reaches only it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, cast

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field, field_validator

from c2c_config import Duration

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

__all__ = [
    "LEVELS",
    "LevelChange",
    "LevelInfo",
    "LoggingTool",
    "create_router",
    "get_tool",
    "shutdown",
    "startup",
    "validate_level",
    "validate_logger_name",
]


def validate_level(value: object) -> str:
    """Normalise a level name (`debug` → `DEBUG`); raise `ValueError` listing the accepted names."""
    if isinstance(value, str) and value.strip().upper() in LEVELS:
        return value.strip().upper()
    raise ValueError(f"invalid level {value!r}: expected one of {', '.join(LEVELS)}")


def validate_logger_name(value: object) -> str:
    """Accept a dotted logger name (`root` or empty for the root logger); raise `ValueError` otherwise."""
    if not isinstance(value, str):
        raise ValueError("a logger name is a string")
    name = value.strip()
    if name in ("", "root"):
        return "root"
    if len(name) > MAX_NAME_LENGTH or not _LOGGER_NAME.fullmatch(name):
        raise ValueError(
            f"invalid logger name {value!r}: dotted names of letters, digits, '_' and '-' "
            f"(at most {MAX_NAME_LENGTH} characters)"
        )
    return name


class LevelInfo(BaseModel):
    """A logger's level on one replica."""

    name: str
    level: str
    effective_level: str


class LevelChange(BaseModel):
    """The body of `POST /logging/level`."""

    name: str = Field(description="Logger name ('root' or empty for the root logger)")
    level: LevelName = Field(description="New level")
    duration: Duration | None = Field(default=None, description="Revert automatically after this long (max 7 days)")

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: object) -> str:
        return validate_logger_name(value)

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


def level_info(name: str) -> LevelInfo:
    """The level of `name` in this process, without creating the logger."""
    logger = _existing_logger(name)
    if logger is not None:
        return LevelInfo(
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
            return LevelInfo(
                name=name, level="NOTSET", effective_level=logging.getLevelName(ancestor.getEffectiveLevel())
            )
    return LevelInfo(name=name, level="NOTSET", effective_level=logging.getLevelName(logging.getLogger().level))


class LoggingTool:
    """The per-process state of the logging tool: original levels, revert timers, in-memory overrides."""

    def __init__(self) -> None:
        self._original: dict[str, int] = {}
        self._reverts: dict[str, asyncio.TimerHandle] = {}
        self._local_overrides: dict[str, tuple[str, float | None]] = {}
        self._broadcast: Callable[..., Awaitable[Any]] | None = None
        self._sync_task: asyncio.Task[None] | None = None

    # --- applied on every replica (the broadcast handler) ---------------------------------------

    def apply(self, name: str, level: str | None, duration: float | None = None) -> LevelInfo:
        """Set (or, with `level=None`, restore) a logger's level in this process."""
        name = validate_logger_name(name)
        logger = logging.getLogger() if name == "root" else logging.getLogger(name)
        timer = self._reverts.pop(name, None)
        if timer is not None:
            timer.cancel()
        if level is None:
            original = self._original.pop(name, logging.NOTSET)
            logger.setLevel(original)
        else:
            self._original.setdefault(name, logger.level)
            logger.setLevel(validate_level(level))
            if duration:
                loop = asyncio.get_running_loop()
                self._reverts[name] = loop.call_later(duration, self._revert, name)
        return level_info(name)

    def _revert(self, name: str) -> None:
        self._reverts.pop(name, None)
        self._local_overrides.pop(name, None)
        logger = logging.getLogger() if name == "root" else logging.getLogger(name)
        logger.setLevel(self._original.pop(name, logging.NOTSET))
        LOG.info("Logger %s reverted to %s", name, logging.getLevelName(logger.level))

    async def handle(self, *, name: str, level: str | None, duration: float | None = None) -> LevelInfo:
        """The broadcast handler: apply the change here and report the result."""
        return self.apply(name, level, duration)

    # --- keeping this process in line with the stored overrides -------------------------------------

    async def sync(self) -> int:
        """Apply the stored overrides this process does not run, and drop the ones no longer stored.

        A replica misses a broadcast while its Redis connection is down (a Redis restart, a
        failover): the stored overrides are the truth, and this brings the process back to them.
        Returns the number of loggers changed.
        """
        stored = {name: (level, expires_in) for name, level, expires_in in await self.overrides()}
        changed = 0
        for name, (level, expires_in) in stored.items():
            logger = _existing_logger(name)
            if logger is None or logging.getLevelName(logger.level) != level or name not in self._original:
                self.apply(name, level, expires_in)
                changed += 1
        for name in [name for name in self._original if name not in stored]:
            self.apply(name, None)
            changed += 1
        if changed:
            LOG.info("Logging levels brought in line with %d stored override(s)", changed)
        return changed

    async def _sync_loop(self, interval: float) -> None:
        from c2c_broadcast import status

        reconnections = status().reconnections
        next_sync = time.monotonic() + interval
        while True:
            await asyncio.sleep(min(1.0, interval))
            current = status().reconnections
            # Right after a reconnection (the broadcasts of the outage are lost), else periodically.
            if current != reconnections or time.monotonic() >= next_sync:
                reconnections = current
                next_sync = time.monotonic() + interval
                try:
                    await self.sync()
                except Exception as error:  # Redis down: the next round retries
                    LOG.warning("Cannot read the stored logging overrides (%s: %s)", type(error).__name__, error)

    # --- the caller side ---------------------------------------------------------------------------

    async def startup(self) -> None:
        """Subscribe the handler, restore the persisted overrides and, with Redis, keep them in sync."""
        from c2c_broadcast import decorate  # imported late: the tool works before broadcast is used
        from c2casgiutils import config

        self._broadcast = await decorate(self.handle, channel=CHANNEL, expect_answers=True, timeout=BROADCAST_TIMEOUT)
        for name, level, expires_in in await self.overrides():
            try:
                self.apply(name, level, expires_in)
            except ValueError as error:  # a bad entry (written by hand?) must not stop the others
                LOG.warning("Skipped the stored logging override %r: %s", name, error)
        if config.settings.redis.configured and self._sync_task is None:
            interval = config.settings.tools.logging.sync_interval.total_seconds()
            if interval > 0:
                self._sync_task = asyncio.create_task(self._sync_loop(interval), name="c2c-logging-sync")

    async def shutdown(self) -> None:
        """Stop the background synchronisation."""
        task, self._sync_task = self._sync_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def change(self, name: str, level: str | None, duration: float | None = None) -> list[Any]:
        """Apply a change on every replica (through broadcast) and persist it; return the answers."""
        await self._persist(name, level, duration)
        if self._broadcast is None:
            await self.startup()
        assert self._broadcast is not None
        arguments: dict[str, Any] = {"name": name, "level": level}
        if duration:
            arguments["duration"] = duration
        return cast("list[Any]", await self._broadcast(**arguments) or [])

    async def _persist(self, name: str, level: str | None, duration: float | None) -> None:
        from c2c_config.redis import get_factory
        from c2casgiutils import config

        prefix = config.settings.tools.logging.redis_prefix
        master = get_factory(config.settings.redis).master() if config.settings.redis.configured else None
        if master is None:
            if level is None:
                self._local_overrides.pop(name, None)
            else:
                self._local_overrides[name] = (level, time.monotonic() + duration if duration else None)
            return
        key = prefix + name
        if level is None:
            await master.delete(key)
        elif duration:
            await master.set(key, level, px=int(duration * 1000))
        else:
            await master.set(key, level)

    async def overrides(self) -> list[tuple[str, str, float | None]]:
        """The persisted overrides: `(name, level, seconds left or None)`, invalid entries skipped."""
        from c2casgiutils import config

        if not config.settings.redis.configured:
            now = time.monotonic()
            return [
                (name, level, max(deadline - now, 0.001) if deadline else None)
                for name, (level, deadline) in sorted(self._local_overrides.items())
                if deadline is None or deadline > now
            ]
        from c2c_config.redis import get_factory

        prefix = config.settings.tools.logging.redis_prefix
        replica = get_factory(config.settings.redis).replica()
        assert replica is not None
        result = []
        async for key in replica.scan_iter(match=_escape_glob(prefix) + "*", count=500):
            key_text = key.decode() if isinstance(key, bytes) else str(key)
            value, ttl = await asyncio.gather(replica.get(key), replica.pttl(key))
            if value is None:
                continue
            name = key_text[len(prefix) :]
            level = value.decode() if isinstance(value, bytes) else str(value)
            try:
                result.append((validate_logger_name(name), validate_level(level), ttl / 1000 if ttl > 0 else None))
            except ValueError as error:
                LOG.warning("Ignored the stored logging override %s: %s", key_text, error)
        return sorted(result)


def _escape_glob(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


_TOOL: LoggingTool | None = None


def get_tool() -> LoggingTool:
    """The process-wide logging tool."""
    global _TOOL
    if _TOOL is None:
        _TOOL = LoggingTool()
    return _TOOL


async def startup() -> None:
    """Start the process-wide logging tool (called by `c2casgiutils.startup` and `cli.init`)."""
    await get_tool().startup()


async def shutdown() -> None:
    """Stop the process-wide logging tool's background work (called by `c2casgiutils.shutdown`)."""
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


def create_router(
    read_only: Callable[..., Any] | None = None, read_write: Callable[..., Any] | None = None
) -> APIRouter:
    """The `/logging` routes; `read_only` and `read_write` are FastAPI dependencies guarding them."""
    router = APIRouter(prefix="/logging", tags=["logging"])
    read_deps = [Depends(read_only)] if read_only else []
    write_deps = [Depends(read_write)] if read_write else []

    def checked_name(name: str) -> str:
        try:
            return validate_logger_name(name)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None

    @router.get("/level", dependencies=read_deps)
    async def get_level(name: str = Query(description="Logger name")) -> LevelInfo:
        return level_info(checked_name(name))

    @router.post("/level", dependencies=write_deps)
    async def set_level(change: LevelChange) -> dict[str, Any]:
        duration = change.duration.total_seconds() if change.duration else None
        answers = await get_tool().change(change.name, change.level, duration)
        local = level_info(change.name)
        return {**local.model_dump(), "duration": duration, "replicas": _answers(answers)}

    @router.delete("/level", dependencies=write_deps)
    async def delete_level(name: str = Query(description="Logger name")) -> dict[str, Any]:
        checked = checked_name(name)
        answers = await get_tool().change(checked, None)
        return {**level_info(checked).model_dump(), "replicas": _answers(answers)}

    @router.get("/overrides", dependencies=read_deps)
    async def get_overrides() -> dict[str, list[dict[str, Any]]]:
        return {
            "overrides": [
                {"name": name, "level": level, "expires_in": expires_in}
                for name, level, expires_in in await get_tool().overrides()
            ]
        }

    return router
