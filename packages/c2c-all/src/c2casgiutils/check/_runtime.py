"""The findings that need the application running: lifespan startup and shutdown, Redis, health checks."""

from __future__ import annotations

import asyncio
from typing import Any

from c2c_config import describe_error
from c2casgiutils._settings import Settings
from c2casgiutils.check._findings import (
    HEALTH_FAILED,
    HEALTH_NONE,
    LIVENESS_DEPENDENCY,
    REDIS_DOWN,
    SHUTDOWN,
    STARTUP,
    Finding,
)

_ASGI = {"version": "3.0", "spec_version": "2.0"}


_describe = describe_error


class LifespanRunner:
    """Drive an ASGI application's lifespan as a server does: startup, then shutdown, each within a timeout.

    Each step returns None on success, else a one-line reason. An application that does not speak
    the lifespan protocol (it raises or returns at once) is accepted, as uvicorn's `auto` mode does.
    """

    def __init__(self, app: Any, timeout: float) -> None:
        self.app = app
        self.timeout = timeout
        self.started = False
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": {}}
        await self.app(scope, self._inbox.get, self._outbox.put)

    async def _task_error(self) -> BaseException | None:
        """The exception the lifespan task ended with (waiting for it briefly), None if it did not end so."""
        assert self._task is not None
        done, _ = await asyncio.wait({self._task}, timeout=1.0)
        if not done or self._task.cancelled():
            return None
        return self._task.exception()

    async def _step(self, name: str) -> str | None:
        assert self._task is not None
        await self._inbox.put({"type": f"lifespan.{name}"})
        answer = asyncio.ensure_future(self._outbox.get())
        try:
            done, _ = await asyncio.wait({answer, self._task}, timeout=self.timeout, return_when="FIRST_COMPLETED")
        finally:
            answer.cancel()
        if not done:
            return f"the lifespan {name} did not end within {self.timeout:g} s"
        if answer in done:
            message = answer.result()
            if message["type"] == f"lifespan.{name}.complete":
                return None
            error = await self._task_error()
            reason = _describe(error) if error is not None else str(message.get("message", "")).strip()
            return f"the lifespan {name} failed: {reason.splitlines()[-1] if reason else message['type']}"
        # The task ended without answering. Returning is how an application without lifespan
        # support declines it (accepted at startup); raising is a failure, even though uvicorn's
        # `--lifespan auto` then logs it at INFO only and goes on.
        error = await self._task_error()
        if error is None and name == "startup":
            return None
        detail = f": {_describe(error)}" if error is not None else ""
        return f"the application ended its lifespan during {name} without answering{detail}"

    async def startup(self) -> str | None:
        """Send `lifespan.startup`; None when the application started (or has no lifespan)."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        reason = await self._step("startup")
        self.started = reason is None and not self._task.done()
        return reason

    async def shutdown(self) -> str | None:
        """Send `lifespan.shutdown` when startup succeeded; then make sure the lifespan task is gone."""
        reason = await self._step("shutdown") if self.started else None
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=self.timeout)
        return reason


async def redis_findings(settings: Settings) -> list[Finding]:
    """Ping Redis as the Redis health check does (`c2c_health.Redis`: the URL's server, the Sentinel
    master and replica, or every master of a cluster), within `C2C__REDIS__TIMEOUT`; a finding per
    server that does not answer."""
    if not settings.redis.configured:
        return []
    from c2c_config.redis import get_factory
    from c2c_health import Redis

    factory = get_factory(settings.redis)
    result = await Redis(factory=factory, timeout=settings.redis.timeout.total_seconds()).check()
    if result.status_code < 400:
        return []
    payload = result.payload
    where = f"Redis ({factory.describe()})"
    failed_masters = [master for master in payload.get("masters", ()) if not master.get("ok")]
    if failed_masters:
        return [
            REDIS_DOWN.at(f"Redis Cluster master {master['address']} is not reachable: {master.get('error')}")
            for master in failed_masters
        ]
    master, replica = payload.get("master_error"), payload.get("slave_error")
    if master is None and replica is not None:
        return [REDIS_DOWN.at(f"{where} replica is not reachable: {replica}")]
    # One server; or the master, whose failure the replica's (Sentinels not answering) usually follows.
    return [REDIS_DOWN.at(f"{where} is not reachable: {master or payload.get('error', payload)}")]


# The checks of a dependency: failing while it is down, which must not restart the pods (liveness).
_DEPENDENCY_CHECKS = ("Redis", "SQLAlchemy", "Alembic", "HTTP", "BroadcastCheck", "LoggingSyncCheck")


def liveness_findings() -> list[Finding]:
    """A dependency's check tagged `liveness`: `/livez` runs it, so an outage of that dependency
    fails the liveness probe of every pod and Kubernetes restarts them all (0.14's scaffold tagged
    its Redis check so; `/livez` did not exist then)."""
    from c2c_health import FACTORY, LIVENESS

    findings = []
    for name, check in FACTORY.registered.items():
        kinds = {cls.__name__ for cls in type(check).__mro__}
        if LIVENESS in check.tags and kinds.intersection(_DEPENDENCY_CHECKS):
            findings.append(
                LIVENESS_DEPENDENCY.at(
                    f"health check {name!r} ({type(check).__name__}) is tagged liveness: /livez fails whenever "
                    "its dependency does"
                )
            )
    return findings


async def health_findings() -> list[Finding]:
    """Run every registered health check once (each within its own timeout); one finding per failure."""
    from c2c_health import FACTORY

    if not FACTORY.checks:
        return [HEALTH_NONE.at("no health check is registered")]
    report = await FACTORY.run()
    findings = []
    for outcome in report.outcomes:
        if outcome.status_code >= 400:
            error = outcome.payload.get("error", outcome.payload)
            findings.append(HEALTH_FAILED.at(f"health check {outcome.name!r} failed ({outcome.status_code}): {error}"))
    return findings


async def running_findings(app: Any, settings: Settings, limit: float) -> list[Finding]:
    """Start the application, connect to Redis, run the health checks, stop the application."""
    runner = LifespanRunner(app, limit)
    findings = []
    reason = await runner.startup()
    if reason is not None:
        findings.append(STARTUP.at(reason))
    try:
        findings.extend(await redis_findings(settings))
        findings.extend(liveness_findings())
        findings.extend(await health_findings())
    finally:
        reason = await runner.shutdown()
    if reason is not None:
        findings.append(SHUTDOWN.at(reason))
    return findings
