"""Kubernetes probes: the draining state, the hooks that set it, and the `application/health+json` shape.

Draining: uvicorn, on SIGTERM, stops accepting connections and waits for the requests in flight
*before* the lifespan shutdown runs, so a readiness probe that waited for the lifespan would
never see the stop. `startup()` registers a SIGTERM hook (`c2c_config.signals`) that marks the
running loop as draining at once and delays the server's own shutdown by the `drain_delay`
setting: meanwhile `/readyz` answers 503 (the endpoints leave the Service) while every other route
keeps serving. The state belongs to the event loop (a later loop, e.g. the next test's
`TestClient`, starts ready).
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from c2c_config import LoopLocal, signals
from c2c_health._settings import HealthSettingsSource, default_settings

if TYPE_CHECKING:
    from c2c_health._core import Factory, Outcome, Report

LOG = logging.getLogger("c2c_health")

HOOK_NAME = "c2c_health"
"""The name of the SIGTERM hook registered by `startup()` (see `c2c_config.signals`)."""
HEALTH_JSON = "application/health+json"
"""The media type of the IETF health-check draft (draft-inadarei-api-health-check)."""
DRAINING_OUTPUT = "draining: the service is stopping"
# How many distinct unknown filter values are remembered (they come from callers: keep it bounded).
UNKNOWN_FILTERS_MAX = 256


class _Draining:
    """Whether (and since when) the loop drains."""

    def __init__(self) -> None:
        self.since: float | None = None


_DRAINING: LoopLocal[_Draining] = LoopLocal(_Draining, name="c2c_health draining")


def draining() -> bool:
    """Whether the running event loop is draining: `/readyz` answers 503 (set by SIGTERM or `start_draining`)."""
    state = _DRAINING.peek()
    return state is not None and state.since is not None


def start_draining() -> None:
    """Mark the running event loop as draining: from now on `/readyz` answers 503, the rest keeps serving.

    Called on SIGTERM by the hook of `startup()`; call it yourself from a stop hook of your own
    when the server handles SIGTERM outside Python.
    """
    state = _DRAINING.get()
    if state.since is None:
        state.since = time.monotonic()
        LOG.info("Health: draining, /readyz answers 503 from now on")


async def startup(settings: HealthSettingsSource | None = None) -> bool:
    """Make readiness follow the server's stop: call it in the application's lifespan.

    The running loop is ready again, and a SIGTERM hook is registered that starts draining and
    delays the server's own shutdown by `C2C__HEALTH_CHECKS__DRAIN_DELAY`. Returns whether the
    hook is installed (only in the main thread under a server with a Python SIGTERM handler, such
    as uvicorn; not in a `TestClient`). Under granian the hook runs in the worker but the delay
    does not hold: granian's main process stops listening at once (see the README).
    """
    current = settings if settings is not None else default_settings()
    _DRAINING.forget()
    return signals.on_sigterm(HOOK_NAME, start_draining, delay=current.health_checks.drain_delay)


async def shutdown() -> None:
    """Remove the SIGTERM hook and forget the running loop's draining state.

    By then the server accepts no more requests (uvicorn, granian), so nothing could see a 503; and a
    loop that runs another application's lifespan afterwards (a test suite's) starts ready.
    """
    signals.cancel_sigterm(HOOK_NAME)
    _DRAINING.forget()


# -- the IETF health-check draft's shape ---------------------------------------------------------


def wants_health_json(accept: str | None) -> bool:
    """Whether an `Accept` header asks for `application/health+json` (with a q-value above 0)."""
    for media_range in (accept or "").split(","):
        kind, _, parameters = media_range.partition(";")
        if kind.strip().lower() != HEALTH_JSON:
            continue
        quality = 1.0
        for parameter in parameters.split(";"):
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        if quality > 0:
            return True
    return False


def _status(status_code: int) -> str:
    if status_code >= 400:
        return "fail"
    return "warn" if status_code >= 300 else "pass"


def _output(outcome: Outcome, details: bool) -> str | None:
    payload = outcome.payload if details else outcome.public_payload
    if outcome.status_code < 400 and not details:
        return None
    error = payload.get("error")
    if isinstance(error, str):
        return error
    return json.dumps(payload, default=str) if payload else None


def health_json(
    report: Report | None,
    *,
    details: bool,
    service_id: str | None,
    version: str | None,
    output: str | None = None,
) -> dict[str, Any]:
    """The report in the draft's shape: `status` pass/warn/fail, `checks`, `serviceId`, `version`.

    A check's status is `pass` below 300, `warn` from 300 to 399, `fail` from 400; the global status
    is the worst. Each check is `"<name>:responseTime"`: its duration in ms, its status, its tags as
    `componentType`, and its error as `output` (the public text unless `details`). `report=None`
    (draining) gives `fail` with `output`.
    """
    now = datetime.datetime.now(datetime.UTC).isoformat()
    body: dict[str, Any] = {}
    if report is None:
        body["status"] = "fail"
    else:
        body["status"] = _status(report.status_code)
    if version is not None:
        body["version"] = version
    if service_id is not None:
        body["serviceId"] = service_id
    if output is not None:
        body["output"] = output
    checks: dict[str, list[dict[str, Any]]] = {}
    for outcome in report.outcomes if report is not None else ():
        entry: dict[str, Any] = {
            "componentId": outcome.name,
            "status": _status(outcome.status_code),
            "observedValue": round(outcome.time_taken * 1000, 3),
            "observedUnit": "ms",
            "time": now,
        }
        if outcome.tags:
            entry["componentType"] = ",".join(outcome.tags)
        text = _output(outcome, details)
        if text is not None:
            entry["output"] = text
        checks[f"{outcome.name}:responseTime"] = [entry]
    body["checks"] = checks
    return body


# -- unknown filters -------------------------------------------------------------------------------


class UnknownFilterLog:
    """Warns once per filter value (`name=` or `tags=`) that selects no registered check."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def check(self, factory: Factory, names: Iterable[str] | None, tags: Iterable[str] | None) -> None:
        """Log a warning for each value of `names`/`tags` that no registered check has, the first time only."""
        registered = factory.registered
        if names:
            for name in sorted(set(names) - registered.keys()):
                self._warn("name", name)
        if tags:
            known = {tag for check in registered.values() for tag in (getattr(check, "tags", None) or ())}
            for tag in sorted(set(tags) - known):
                self._warn("tag", tag)

    def _warn(self, kind: str, value: str) -> None:
        key = (kind, value)
        if key in self._seen or len(self._seen) >= UNKNOWN_FILTERS_MAX:
            return
        self._seen.add(key)
        LOG.warning(
            "Health checks: no registered check has the %s %r (the filter selects nothing from it)", kind, value
        )


UNKNOWN_FILTERS = UnknownFilterLog()
"""The process-wide warn-once log of unknown filter values."""
