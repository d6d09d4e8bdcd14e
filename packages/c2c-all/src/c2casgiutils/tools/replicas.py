"""The replicas tool: every replica of the service side by side (`GET /c2c/replicas`, read-only access).

The endpoint asks every replica through broadcast (channel `CHANNEL`) and answers a
`ReplicasResponse`: one `ReplicaRow` per replica, sorted by hostname, pid and replica id:

- `status`: `ok` (it answered), `missing` (registered in the broadcast registry but no answer within
  `timeout`, or killed and its entry not expired yet), `error` (its handler raised);
- `replica_id`: the broadcaster's id (`hostname:pid:random`), distinct for several replicas in one
  process (absent for a missing replica: the registry gives only the hostname and the pid);
- `hostname`, `pid`, `uptime` (seconds since this replica's `startup()`), `python`, `packages`
  (versions of the installed c2c distributions), `application_version` (the `main` entry of
  `versions.json`: its `git_tag`, else its `git_hash`; else the FastAPI application's `version`),
  `engines` (the header engine of each live `ArmorHeaderMiddleware`: `native` or `python`),
  `overrides` (the logging overrides in force on that replica: `{"name", "level"}`), `health`
  (`{"status_code", "failing"}` from `c2c_health.FACTORY`'s run, cached per its `cache_ttl`, no
  payload), `response_time` (seconds between the call and the replica's answer, from the two
  clocks, bounded by the call's duration);
- `differences`: the fields of this row that differ from most answering replicas
  (`application_version`, `packages`, `engines`, `overrides`) and `health` when it is unhealthy.

With the local broadcaster (no Redis) there is one row. `timeout` (query, seconds, 0.1 to 30,
default `DEFAULT_TIMEOUT`) bounds the wait; a broadcast that cannot be sent gives 503.

`installed_versions()` is what `/c2c/versions` answers when `versions.json` is absent: the same
shape as `c2casgiutils-genversion` writes, `{"main": {}, "packages": {name: version}}`, from the
installed distributions (`importlib.metadata`).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import os
import platform
import socket
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from c2c_auth import TemporarilyUnavailable, require_read_only_access
from c2c_broadcast.types import BroadcastResponse, ErrorAnswer
from c2c_config import LoopLocal

if TYPE_CHECKING:
    from fastapi import FastAPI

LOG = logging.getLogger(__name__)

CHANNEL = "c2c_replicas_info"
"""The broadcast channel every replica answers its description on."""
DEFAULT_TIMEOUT = 5.0
"""Seconds a call waits for the replicas by default."""
HEALTH_TIMEOUT = 3.0
"""Seconds a replica gives its health checks before answering without them."""
C2C_DISTRIBUTIONS = (
    "c2c-all",
    "c2c-auth",
    "c2c-broadcast",
    "c2c-config",
    "c2c-headers",
    "c2c-headers-native",
    "c2c-health",
)
"""The distributions whose versions each replica reports (those installed)."""
COMPARED = ("application_version", "packages", "engines", "overrides")
"""The fields compared between replicas for `differences`."""

__all__ = [
    "CHANNEL",
    "DEFAULT_TIMEOUT",
    "HealthSummary",
    "Override",
    "ReplicaInfo",
    "ReplicaRow",
    "ReplicasResponse",
    "c2c_replicas",
    "describe",
    "installed_versions",
    "router",
    "startup",
]


class Override(BaseModel):
    """A logging override in force on a replica."""

    name: str
    level: str


class HealthSummary(BaseModel):
    """A replica's health: the worst status code and the names of the failing checks."""

    status_code: int | None = Field(default=None, description="None when the checks did not finish in time")
    failing: list[str] = Field(default_factory=list)


class ReplicaInfo(BaseModel):
    """What a replica answers about itself."""

    replica_id: str
    hostname: str
    pid: int
    uptime: float
    python: str
    packages: dict[str, str]
    application_version: str | None = None
    engines: list[str] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)
    health: HealthSummary = Field(default_factory=HealthSummary)
    answered_at: float = Field(description="The replica's clock when it answered (seconds since the epoch)")


class ReplicaRow(BaseModel):
    """One row of `GET /c2c/replicas`."""

    status: Literal["ok", "missing", "error"]
    replica_id: str | None = None
    hostname: str | None = None
    pid: int | None = None
    uptime: float | None = None
    python: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    application_version: str | None = None
    engines: list[str] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)
    health: HealthSummary | None = None
    response_time: float | None = None
    error: str | None = None
    differences: list[str] = Field(default_factory=list)


class ReplicasResponse(BaseModel):
    """The answer of `GET /c2c/replicas`."""

    replicas: list[ReplicaRow]
    elapsed: float = Field(description="Seconds the call took")
    timeout: float


class _LoopState:
    """This loop's replica: when it started and the application's version (`startup` sets them)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.app_version: str | None = None


_STATE: LoopLocal[_LoopState] = LoopLocal(_LoopState, name="replicas tool")
_PACKAGES: dict[str, str] | None = None


def _c2c_packages() -> dict[str, str]:
    global _PACKAGES
    if _PACKAGES is None:
        found = {}
        for name in C2C_DISTRIBUTIONS:
            try:
                found[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
        _PACKAGES = found
    return _PACKAGES


def installed_versions() -> dict[str, Any]:
    """`versions.json`'s shape from the installed distributions: `{"main": {}, "packages": {name: version}}`."""
    packages = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            packages[name.lower()] = distribution.version
    return {"main": {}, "packages": dict(sorted(packages.items()))}


def _file_version() -> str | None:
    """The `main` entry of `versions.json` (`git_tag`, else `git_hash`), None without a readable file."""
    from c2casgiutils import config

    try:
        main = json.loads(Path(config.settings.tools.versions_file).read_text(encoding="utf-8")).get("main")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(main, dict):
        return None
    value = main.get("git_tag") or main.get("git_hash")
    return str(value) if value else None


def _engines() -> list[str]:
    from c2c_headers.armor import live_instances

    return sorted(instance.engine_name for instance in live_instances())


def _overrides() -> list[Override]:
    from c2casgiutils.tools import logging_

    tool = logging_.get_tool()
    return [
        Override(name=name, level=logging_.level_info(name).level)
        for name in sorted(tool._original)  # the loggers this replica overrides
    ]


async def _health() -> HealthSummary:
    from c2c_health import FACTORY

    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            report = await FACTORY.run()
    except TimeoutError:
        return HealthSummary()
    failing = [outcome.name for outcome in report.outcomes if outcome.status_code >= 400]
    return HealthSummary(status_code=report.status_code, failing=failing)


async def describe() -> ReplicaInfo:
    """This replica's description (the broadcast handler's answer)."""
    from c2c_broadcast import status

    state = _STATE.get()
    file_version, packages = await asyncio.to_thread(lambda: (_file_version(), _c2c_packages()))
    return ReplicaInfo(
        replica_id=status().replica_id,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        uptime=round(time.monotonic() - state.started, 3),
        python=platform.python_version(),
        packages=packages,
        application_version=file_version or state.app_version,
        engines=_engines(),
        overrides=_overrides(),
        health=await _health(),
        answered_at=time.time(),
    )


async def _handle(**_: Any) -> dict[str, Any]:
    return (await describe()).model_dump(mode="json")


async def startup(main_app: FastAPI | None = None) -> None:
    """Answer the replicas calls in the running loop; `main_app`'s `version` is the fallback application version."""
    from c2c_broadcast import subscribe

    state = _STATE.get()
    version = getattr(main_app, "version", None)
    state.app_version = str(version) if version else None
    await subscribe(CHANNEL, _handle)


def _row(answer: object, sent_at: float, elapsed: float) -> ReplicaRow:
    if isinstance(answer, BroadcastResponse):
        try:
            info = ReplicaInfo.model_validate(answer.payload)
        except ValueError:
            return ReplicaRow(status="error", hostname=answer.hostname, pid=answer.pid, error="invalid answer")
        row = ReplicaRow(status="ok", **info.model_dump(exclude={"answered_at"}))
        row.response_time = round(min(max(info.answered_at - sent_at, 0.0), elapsed), 3)
        return row
    if isinstance(answer, ErrorAnswer):
        return ReplicaRow(status="error", hostname=answer.hostname, pid=answer.pid, error=answer.error_type)
    return ReplicaRow(status="missing", hostname=getattr(answer, "hostname", None), pid=getattr(answer, "pid", None))


def _key(row: ReplicaRow, field: str) -> str:
    return json.dumps(row.model_dump(mode="json")[field], sort_keys=True)


def _mark_differences(rows: list[ReplicaRow]) -> None:
    answered = [row for row in rows if row.status == "ok"]
    for field in COMPARED:
        counts = Counter(_key(row, field) for row in answered)
        if len(counts) < 2:
            continue
        usual = counts.most_common(1)[0][0]
        for row in answered:
            if _key(row, field) != usual:
                row.differences.append(field)
    for row in answered:
        if row.health is not None and (row.health.status_code is None or row.health.status_code >= 400):
            row.differences.append("health")


async def collect(timeout: float = DEFAULT_TIMEOUT) -> ReplicasResponse:  # noqa: ASYNC109 - the call's bound
    """Ask every replica and build the rows (see the module's docstring).

    Raises:
        c2c_broadcast.BroadcastUnavailableError: Redis is unreachable.
    """
    from c2c_broadcast import broadcast

    sent_at, start = time.time(), time.monotonic()
    answers = await broadcast(CHANNEL, {}, expect_answers=True, timeout=timeout)
    elapsed = time.monotonic() - start
    rows = [_row(answer, sent_at, elapsed) for answer in answers]
    rows.sort(key=lambda row: (row.hostname or "", row.pid or 0, row.replica_id or ""))
    _mark_differences(rows)
    return ReplicasResponse(replicas=rows, elapsed=round(elapsed, 3), timeout=timeout)


router = APIRouter(tags=["replicas"])
"""The replicas route; `c2casgiutils.tools.router` includes it."""


@router.get("/replicas")
async def c2c_replicas(
    _: Annotated[None, Depends(require_read_only_access)],
    timeout: Annotated[  # noqa: ASYNC109 - the query parameter, applied below
        float, Query(ge=0.1, le=30, description="Seconds to wait for the replicas")
    ] = DEFAULT_TIMEOUT,
) -> ReplicasResponse:
    """Every replica side by side (`GET /c2c/replicas`); 503 when the broadcast cannot be sent."""
    from c2c_broadcast import BroadcastUnavailableError

    try:
        async with asyncio.timeout(timeout + 5):
            return await collect(timeout)
    except (TimeoutError, BroadcastUnavailableError) as error:
        raise TemporarilyUnavailable(f"the replicas could not be asked ({type(error).__name__})") from None
