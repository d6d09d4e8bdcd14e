"""Checks, results, and the factory that runs them: filters, timeouts, concurrency, cache, metrics."""

from __future__ import annotations

import abc
import asyncio
import collections
import contextvars
import dataclasses
import datetime
import functools
import inspect
import json
import logging
import math
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from c2c_config import LoopLocal, redact_url
from c2c_health._metrics import get_metrics
from c2c_health._settings import HealthSettingsSource, default_settings

LOG = logging.getLogger("c2c_health")

# What an anonymous caller reads instead of the real error (see the `details` setting).
GENERIC_ERROR = "check failed (details are in the service logs)"
TIMEOUT_ERROR = "timeout"
FAILURE_STATUS = 500
# Distinct filters that can hold a cached report at once (filters are caller input: keep it bounded).
CACHE_MAX_ENTRIES = 64
FAILURE_LOG_INTERVAL = 60.0
"""While a check keeps failing, its failure is logged at most this often (seconds) at WARNING or ERROR;
the failing runs in between are logged at DEBUG and counted in the next line. A probe every second
on a dependency that is down is then one line a minute per check, not one per probe."""

Timeout = float | datetime.timedelta | None

# The event-loop time by which the running check must end (its own timeout, else the factory's default),
# set by the factory for the task of each run: a check that bounds its own calls reads it with `time_left()`.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("c2c_health_deadline", default=None)


def time_left() -> float | None:
    """Seconds left before the running check's timeout (in a run of a `Factory`), else None."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return None
    return max(deadline - asyncio.get_running_loop().time(), 0.0)


def _seconds(timeout: Timeout, what: str) -> float | None:
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {timeout!r}")
    return seconds


def _check_label(value: str, what: str) -> str:
    if not isinstance(cast("object", value), str) or not value.strip() or value != value.strip() or "," in value:
        raise ValueError(f"{what} {value!r} must be a non-empty string without commas or surrounding spaces")
    return value


def _normalize_tags(tags: Iterable[str] | str | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [part.strip() for part in tags.split(",") if part.strip()]
    return [_check_label(tag, "tag") for tag in tags]


def parse_filter(values: str | Iterable[str] | None) -> frozenset[str] | None:
    """Parse a `name` or `tags` query filter: comma-separated and/or repeated values.

    Items are stripped and empty ones dropped; None (no filter) when nothing is left, so
    `?tags=` filters nothing, as does an absent parameter.
    """
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    items = frozenset(part.strip() for value in values for part in value.split(",") if part.strip())
    return items or None


class Result(BaseModel):
    """What a check returns: an HTTP-like `status_code` (below 400 = healthy) and a JSON-able `payload`.

    A pydantic model, as in c2casgiutils 0.14: `Result(status_code=500, payload={"error": ...})`;
    the positional form `Result(500, {...})` works too. A `payload` that is not a mapping is
    wrapped as `{"value": payload}`.

    `payload` is shown only to callers allowed to see details (setting `details`). The others see
    `public_payload` when the check gives one, else `{}` when healthy and a generic error message
    when not; so a payload may carry error texts, host names or versions.
    """

    status_code: int = Field(default=200, description="Below 400 is healthy")
    payload: dict[str, Any] = Field(default_factory=dict, description="Details, for authorised callers")
    public_payload: dict[str, Any] | None = Field(default=None, description="What everybody may see")

    def __init__(
        self,
        status_code: int = 200,
        payload: Mapping[str, Any] | None = None,
        *,
        public_payload: Mapping[str, Any] | None = None,
        **data: Any,
    ) -> None:
        super().__init__(
            status_code=status_code,
            payload={} if payload is None else payload,
            public_payload=public_payload,
            **data,
        )

    @field_validator("payload", "public_payload", mode="before")
    @classmethod
    def _wrap(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return {} if info.field_name == "payload" else None
        if isinstance(value, Mapping):
            return value
        return {"value": value}

    @property
    def healthy(self) -> bool:
        """Whether the status code is below 400."""
        return self.status_code < 400


class Check:
    """Base class of a health check: implement `async def check(self) -> Result`.

    A plain class, as in c2casgiutils 0.14 (`check` is marked abstract for type checkers, not
    enforced): a subclass may provide `check` another way (an attribute set in `__init__`); one
    that provides none fails when run, with `NotImplementedError` in its log.

    Args:
        tags: labels to select the check with (`?tags=readiness`); a list or a comma-separated string.
        name: the name used by the `name` filter, in the report and as the metric label; defaults to
            the class name. Two checks with the same name both run: the factory registers the
            later one as `<name>-2` (and logs a warning), so give names to choose them.
        timeout: time limit in seconds (or a `timedelta`); defaults to the `health_checks.timeout`
            setting. A check still running then is cancelled and fails with the error "timeout".

    Exceptions raised by `check` are logged with their traceback and make the check fail.
    """

    timeout: float | None
    _tags: list[str]

    def __init__(
        self,
        tags: Iterable[str] | str | None = None,
        *,
        name: str | None = None,
        timeout: Timeout = None,
    ) -> None:
        if tags is not None or "_tags" not in self.__dict__:  # a subclass may have set `self.tags` before
            self.tags = tags  # the setter normalises
        if name is not None:
            self._name: str | None = _check_label(name, "check name")
        elif "_name" not in self.__dict__:  # a subclass may have set `self.name` before calling us
            self._name = None
        self.timeout = _seconds(timeout, "timeout")

    @property
    def name(self) -> str:
        """The check's name: the `name` argument, else the class name."""
        return self.__dict__.get("_name") or type(self).__name__

    @name.setter
    def name(self, value: str) -> None:
        self._name = _check_label(value, "check name")

    @property
    def tags(self) -> list[str]:
        """The check's tags (a list; assigning a comma-separated string or None works too)."""
        tags: list[str] | None = self.__dict__.get("_tags")
        if tags is None:  # a subclass that did not call our __init__
            tags = self._tags = []
        return tags

    @tags.setter
    def tags(self, value: Iterable[str] | str | None) -> None:
        self._tags = _normalize_tags(value)

    @abc.abstractmethod
    async def check(self) -> Result:
        """Run the check and return its result (raise, or return a status code >= 400, on failure)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement `async def check(self) -> Result`")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} tags={_tags_of(self)!r}>"


def _tags_of(check: Check) -> list[str]:
    # A subclass may override __init__ without calling ours.
    return list(getattr(check, "tags", None) or [])


def _timeout_of(check: Check) -> float | None:
    return getattr(check, "timeout", None)


class EntityResult(BaseModel):
    """One check in a report."""

    name: str = Field(description="Name the check is registered under")
    tags: list[str] = Field(description="Tags of the check")
    status_code: int = Field(default=200, description="Status of the check: below 400 is healthy")
    payload: dict[str, Any] = Field(
        default_factory=dict, description="Details, or a generic message for callers not allowed to see them"
    )
    time_taken: float = Field(default=0.0, description="Duration of the check, in seconds")


class GlobalResult(BaseModel):
    """The health report: the worst status code, the total duration and each check's result."""

    status_code: int = Field(default=200, description="The highest status code of the checks (200 when none ran)")
    time_taken: float = Field(default=0.0, description="Duration of the whole run, in seconds")
    entities: list[EntityResult] = Field(default_factory=list, description="One entry per check that ran")


class HistoryPoint(BaseModel):
    """One past run of a check: when it ended, its status code and how long it took."""

    time: datetime.datetime = Field(description="When the run ended (UTC)")
    status_code: int = Field(description="Status of the check: below 400 is healthy")
    time_taken: float = Field(description="Duration of the check, in seconds")


class CheckHistory(BaseModel):
    """The last results of one registered check, oldest first."""

    name: str = Field(description="Name the check is registered under")
    tags: list[str] = Field(description="Tags of the check")
    history: list[HistoryPoint] = Field(description="Its last results, oldest first (at most `size`)")


class HistoryReport(BaseModel):
    """The history of the selected checks, in registration order (no payload: status and latency only)."""

    size: int = Field(description="How many results each check keeps (setting `history_size`; 0 = none)")
    checks: list[CheckHistory] = Field(default_factory=list, description="One entry per selected check")


# (time.time() when the run ended, status code, duration in seconds)
_Point = tuple[float, int, float]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One check's outcome, with both the detailed and the public payload."""

    name: str
    tags: tuple[str, ...]
    status_code: int
    payload: dict[str, Any]
    public_payload: dict[str, Any]
    time_taken: float

    def entity(self, details: bool) -> EntityResult:
        """The report entry, with the detailed payload or the public one."""
        return EntityResult(
            name=self.name,
            tags=list(self.tags),
            status_code=self.status_code,
            payload=dict(self.payload if details else self.public_payload),
            time_taken=self.time_taken,
        )


@dataclasses.dataclass(frozen=True)
class Report:
    """The outcome of one run of a selection of checks."""

    outcomes: tuple[Outcome, ...]
    time_taken: float

    @property
    def status_code(self) -> int:
        """The highest status code, 200 when no check ran."""
        return max((outcome.status_code for outcome in self.outcomes), default=200)

    def to_model(self, details: bool) -> GlobalResult:
        """The JSON report; `details=False` replaces each payload by its public form."""
        return GlobalResult(
            status_code=self.status_code,
            time_taken=self.time_taken,
            entities=[outcome.entity(details) for outcome in self.outcomes],
        )


def _jsonable(payload: object) -> dict[str, Any]:
    """A JSON-compatible copy of a payload (values JSON cannot hold become strings), URL passwords masked."""
    if not isinstance(payload, dict):
        payload = {"value": payload}
    converted: dict[str, Any] = _mask_urls(json.loads(json.dumps(payload, default=str)))
    return converted


def _mask_urls(value: Any) -> Any:
    """Mask the passwords of URLs in every string of a JSON value."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, list):
        return [_mask_urls(item) for item in value]
    if isinstance(value, dict):
        return {key: _mask_urls(item) for key, item in value.items()}
    return value


def _public_payload(result: Result) -> dict[str, Any]:
    if result.public_payload is not None:
        return dict(result.public_payload)
    return {} if result.healthy else {"error": GENERIC_ERROR}


@dataclasses.dataclass
class _CacheEntry:
    expires: float
    report: Report


async def _invoke(check: Check) -> Result:
    # Inside the task, so that a `check` that is not `async def` (raising, or returning a Result
    # directly) is reported like any other failure instead of breaking the whole report.
    returned: Any = check.check()
    if inspect.isawaitable(returned):
        returned = await returned
    result: Result = returned
    return result


def _running_loop() -> Callable[[], asyncio.AbstractEventLoop | None] | None:
    """A reference to the running event loop (weak when the loop allows it), None outside any loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    try:
        return weakref.ref(loop)
    except TypeError:  # a loop class without weak references
        return lambda: loop


@dataclasses.dataclass(frozen=True)
class _Entry:
    """A registered check: the name it is registered under, its own name, the loop it was added in."""

    name: str
    base: str
    check: Check
    loop: Callable[[], asyncio.AbstractEventLoop | None] | None

    def stale(self) -> bool:
        """Whether the check was added while an event loop was running that is now closed (or gone)."""
        if self.loop is None:
            return False
        loop = self.loop()
        return loop is None or loop.is_closed()


def _equal(left: object, right: object) -> bool:
    if left is right:
        return True
    if type(left) is not type(right):
        return False
    try:
        return (left == right) is True
    except Exception:
        return False


def _same_configuration(left: Check, right: Check) -> bool:
    """Whether two checks of one class hold equal attributes (so they check the same thing)."""
    try:
        left_vars, right_vars = vars(left), vars(right)
    except TypeError:  # no __dict__
        return False
    ignored: frozenset[str] = getattr(type(left), "_c2c_compare_ignore", frozenset())
    keys = left_vars.keys() - ignored
    return keys == right_vars.keys() - ignored and all(_equal(left_vars[key], right_vars[key]) for key in keys)


@dataclasses.dataclass
class _FailureLog:
    """A failing check: when its failure was last logged above DEBUG, and the failing runs logged at DEBUG since."""

    logged: float
    quiet: int = 0
    traceback_of: str | None = None
    """The type of the exception whose traceback was logged in this failure streak (None: none was)."""


class Factory:
    """The registry of checks, and the runner: concurrent, each check bounded by its timeout.

    Args:
        registry: the Prometheus registry of the metrics (default: the global one).
        settings: returns the settings to use, called at each run (default: `get_settings(Settings)`).
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        settings: Callable[[], HealthSettingsSource] | None = None,
    ) -> None:
        self.registry = registry
        self.settings: Callable[[], HealthSettingsSource] = settings or default_settings
        self._entries: dict[str, _Entry] = {}
        self._cache: dict[tuple[str, ...], _CacheEntry] = {}
        # Tasks belong to their event loop, so these two live in LoopLocals (each loop its own, gone
        # with it). The runs in progress, by selection: concurrent probes of one selection share one.
        self._inflight: LoopLocal[dict[tuple[str, ...], asyncio.Task[Report]]] = LoopLocal(
            dict, name="health checks' runs in progress"
        )
        # Runs still going after their timeout, by check name: kept referenced until they end (then
        # their error is logged), and no new run of that check starts meanwhile, so a dependency
        # that hangs even cancellation costs one pending run per check, not one per probe.
        self._abandoned: LoopLocal[dict[str, asyncio.Task[Result]]] = LoopLocal(
            dict, name="health checks' abandoned runs"
        )
        # The last results of each check, by registered name (setting `history_size`): only runs,
        # not cache hits; in memory, per process.
        self._history: dict[str, collections.deque[_Point]] = {}
        # The checks failing now, by registered name: when their failure was last logged at WARNING
        # (or ERROR) and how many failing runs were logged at DEBUG only since (see FAILURE_LOG_INTERVAL).
        self._failing: dict[str, _FailureLog] = {}

    # -- registry -------------------------------------------------------------------------------

    def add(self, item: Check) -> Check:
        """Register the check `item` (0.14's parameter name) and return it. Never refuses a check for its name.

        - The same object again: nothing happens.
        - A check of the same class and name whose attributes are all equal to a registered one's
          (the same check made again): it takes the registered one's place and name.
        - A check of the same class and name as one registered while an event loop was running
          that is now closed (an earlier run of the application, e.g. the lifespan of a previous
          `TestClient`): it takes the first such check's place and name, so a lifespan that
          registers its checks can run any number of times.
        - Otherwise, when the name is taken, the check is registered as `<name>-2` (then `-3`...)
          and a warning naming both checks is logged; pass `name=` to choose the names.

        The name a check is registered under (see `registered`) is the one of the report, of the
        `name` filter and of the metric label.

        Raises:
            TypeError: `item` is not a `Check`.
        """
        check = item
        if not isinstance(check, Check):
            raise TypeError(f"a health check must be an instance of c2c_health.Check, got {type(check).__name__}")
        if any(entry.check is check for entry in self._entries.values()):
            return check
        base = check.name
        loop = _running_loop()
        same_kind = [
            entry for entry in self._entries.values() if entry.base == base and type(entry.check) is type(check)
        ]
        replaced = next((entry for entry in same_kind if _same_configuration(entry.check, check)), None)
        reason = "an equal check"
        if replaced is None:
            replaced = next((entry for entry in same_kind if entry.stale()), None)
            reason = "a check registered in an event loop now closed"
        if replaced is not None:
            LOG.debug("Health check %r replaces %s, %r", replaced.name, reason, replaced.check)
            self._entries[replaced.name] = _Entry(replaced.name, base, check, loop)
            self.clear_cache()
            return check
        name = base
        if name in self._entries:
            number = 2
            while f"{base}-{number}" in self._entries:
                number += 1
            name = f"{base}-{number}"
            LOG.warning(
                "Two health checks are named %r: %r, registered first, and %r, registered as %r; "
                "pass name= to give them names of your choice",
                base,
                self._entries[base].check,
                check,
                name,
            )
        self._entries[name] = _Entry(name, base, check, loop)
        self.clear_cache()
        return check

    def remove(self, name: str) -> None:
        """Unregister the check registered as `name` (KeyError if there is none)."""
        del self._entries[name]
        self._history.pop(name, None)
        self._failing.pop(name, None)
        self.clear_cache()

    def clear(self) -> None:
        """Unregister every check."""
        self._entries.clear()
        self._history.clear()
        self._failing.clear()
        self.clear_cache()

    def clear_cache(self) -> None:
        """Forget the cached reports."""
        self._cache.clear()

    @property
    def checks(self) -> list[Check]:
        """The registered checks, in registration order."""
        return [entry.check for entry in self._entries.values()]

    @property
    def registered(self) -> dict[str, Check]:
        """The registered checks by the name they are registered under, in registration order (a copy)."""
        return {name: entry.check for name, entry in self._entries.items()}

    def select(self, name: str | Iterable[str] | None = None, tags: str | Iterable[str] | None = None) -> list[Check]:
        """The checks registered under one of `name` and having any of `tags` (each filter optional).

        Names match exactly (case included): `SQLAlchemy` does not select `SQLAlchemy-2`.
        """
        return [check for _, check in self._select(name, tags)]

    def _select(
        self, name: str | Iterable[str] | None = None, tags: str | Iterable[str] | None = None
    ) -> list[tuple[str, Check]]:
        names = parse_filter(name)
        wanted_tags = parse_filter(tags)
        return [
            (registered, entry.check)
            for registered, entry in self._entries.items()
            if (names is None or registered in names)
            and (wanted_tags is None or not wanted_tags.isdisjoint(_tags_of(entry.check)))
        ]

    # -- history --------------------------------------------------------------------------------

    def history(
        self, name: str | Iterable[str] | None = None, tags: str | Iterable[str] | None = None
    ) -> dict[str, list[HistoryPoint]]:
        """The last results of the selected checks (see `select`), oldest first, by registered name.

        Each check keeps its last `history_size` results (setting, default 60; 0 = none), recorded
        each time it really runs (a report served from the cache adds nothing), in this process only.
        A check that has not run yet has an empty list.
        """
        size = self.settings().health_checks.history_size
        return {registered: self._points(registered, size) for registered, _ in self._select(name, tags)}

    def history_report(
        self, name: str | Iterable[str] | None = None, tags: str | Iterable[str] | None = None
    ) -> HistoryReport:
        """`history` as the JSON model served at `/health_checks/history`, with the tags of each check."""
        size = self.settings().health_checks.history_size
        return HistoryReport(
            size=size,
            checks=[
                CheckHistory(name=registered, tags=_tags_of(check), history=self._points(registered, size))
                for registered, check in self._select(name, tags)
            ],
        )

    def _points(self, name: str, size: int) -> list[HistoryPoint]:
        points = list(self._history.get(name, ()))
        points = points[len(points) - size :] if size > 0 else []  # the setting may have shrunk since
        return [
            HistoryPoint(
                time=datetime.datetime.fromtimestamp(ended, tz=datetime.UTC), status_code=status, time_taken=taken
            )
            for ended, status, taken in points
        ]

    def _record(self, outcomes: Iterable[Outcome], size: int) -> None:
        if size <= 0:
            self._history.clear()
            return
        ended = time.time()
        for outcome in outcomes:
            if outcome.name not in self._entries:  # removed while it ran
                continue
            points = self._history.get(outcome.name)
            if points is None or points.maxlen != size:
                points = self._history[outcome.name] = collections.deque(points or (), maxlen=size)
            points.append((ended, outcome.status_code, outcome.time_taken))

    # -- running --------------------------------------------------------------------------------

    async def check(
        self, name: str | Iterable[str] | None = None, tags: str | Iterable[str] | None = None
    ) -> GlobalResult:
        """Run the selected checks (see `select`) and return the report with full details."""
        report = await self.run(name, tags)
        return report.to_model(details=True)

    async def run(self, name: str | Iterable[str] | None = None, tags: str | Iterable[str] | None = None) -> Report:
        """Run the selected checks concurrently, or reuse a recent report (setting `cache_ttl`)."""
        settings = self.settings()
        checks = self._select(name, tags)
        ttl = settings.health_checks.cache_ttl.total_seconds()
        if ttl <= 0:
            return await self._execute(checks, settings)
        # The key is the selection, not the raw filter: equivalent filters share an entry, and
        # arbitrary query strings cannot grow the cache beyond the subsets of registered checks.
        key = tuple(registered for registered, _ in checks)
        entry = self._cache.get(key)
        if entry is not None and entry.expires > time.monotonic():
            return entry.report
        inflight = self._inflight.get()
        task = inflight.get(key)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._execute_and_cache(key, checks, settings, ttl))
            inflight[key] = task
        # shield: a probe that disconnects must not cancel the run other probes wait for.
        return await asyncio.shield(task)

    async def _execute_and_cache(
        self, key: tuple[str, ...], checks: list[tuple[str, Check]], settings: HealthSettingsSource, ttl: float
    ) -> Report:
        try:
            report = await self._execute(checks, settings)
            now = time.monotonic()
            for stale in [k for k, entry in self._cache.items() if entry.expires <= now]:
                del self._cache[stale]
            while len(self._cache) >= CACHE_MAX_ENTRIES:
                del self._cache[next(iter(self._cache))]
            # The period starts when the run ends: at most one run per period and filter.
            self._cache[key] = _CacheEntry(now + ttl, report)
            return report
        finally:
            # peek(), not get(): at the loop's end its values may be gone already; never recreate them then.
            inflight = self._inflight.peek()
            if inflight is not None and inflight.get(key) is asyncio.current_task():
                del inflight[key]

    async def _execute(self, checks: list[tuple[str, Check]], settings: HealthSettingsSource) -> Report:
        default_timeout = settings.health_checks.timeout.total_seconds()
        metrics = get_metrics(self.registry, settings.prometheus.prefix) if checks else None
        start = time.perf_counter()
        outcomes = await asyncio.gather(*(self._run_one(name, check, default_timeout) for name, check in checks))
        if metrics is not None:
            for outcome in outcomes:
                metrics.observe(outcome.name, outcome.status_code, outcome.time_taken)
        self._record(outcomes, settings.health_checks.history_size)
        for outcome in outcomes:
            if outcome.status_code < 400 and outcome.name in self._failing:
                failed = self._failing.pop(outcome.name)
                LOG.info("Health check %r is healthy again (%d failing run(s) not logged)", outcome.name, failed.quiet)
        return Report(tuple(outcomes), time.perf_counter() - start)

    async def _run_one(self, name: str, check: Check, default_timeout: float) -> Outcome:
        timeout = _timeout_of(check) or default_timeout
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        previous = self._abandoned.get().get(name)
        if previous is not None and not previous.done():
            self._log_failure(
                name,
                logging.WARNING,
                "Health check %r not started: its run abandoned after a timeout is still going",
                name,
            )
            return Outcome(
                name,
                tuple(_tags_of(check)),
                FAILURE_STATUS,
                {"error": TIMEOUT_ERROR, "timeout": timeout, "previous_run_pending": True},
                {"error": TIMEOUT_ERROR},
                time.perf_counter() - start,
            )
        token = _DEADLINE.set(loop.time() + timeout)
        try:  # the task copies the context now: the check sees its deadline
            task: asyncio.Task[Result] = loop.create_task(_invoke(check), name=f"health check {name}")
        finally:
            _DEADLINE.reset(token)
        try:
            # wait() rather than timeout(): the bound holds even for a check that swallows cancellation.
            await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        elapsed = time.perf_counter() - start

        def outcome(status_code: int, payload: dict[str, Any], public: dict[str, Any]) -> Outcome:
            return Outcome(name, tuple(_tags_of(check)), status_code, payload, public, elapsed)

        if not task.done():
            task.cancel()
            self._abandoned.get()[name] = task
            task.add_done_callback(functools.partial(self._forget, name))
            self._log_failure(name, logging.WARNING, "Health check %r timed out after %g s", name, timeout)
            return outcome(FAILURE_STATUS, {"error": TIMEOUT_ERROR, "timeout": timeout}, {"error": TIMEOUT_ERROR})
        if task.cancelled():
            self._log_failure(name, logging.WARNING, "Health check %r was cancelled", name)
            return outcome(FAILURE_STATUS, {"error": "cancelled"}, {"error": GENERIC_ERROR})
        error = task.exception()
        if error is not None:
            self._log_failure(name, logging.ERROR, "Health check %r failed with an exception", name, exc_info=error)
            # URL passwords are masked even for authorised callers; the log above has the full traceback.
            message = redact_url(str(error)) or type(error).__name__
            return outcome(FAILURE_STATUS, {"error": message}, {"error": GENERIC_ERROR})
        returned: object = task.result()
        status: object = getattr(returned, "status_code", None)
        # Any int (HTTPStatus too) but not a bool, which is an int to Python.
        if not isinstance(returned, Result) or not isinstance(status, int) or isinstance(status, bool):
            self._log_failure(
                name, logging.ERROR, "Health check %r returned %r instead of a c2c_health.Result", name, returned
            )
            return outcome(FAILURE_STATUS, {"error": "the check returned an invalid result"}, {"error": GENERIC_ERROR})
        if not 100 <= status <= 599:
            self._log_failure(name, logging.ERROR, "Health check %r returned the invalid status code %r", name, status)
            return outcome(
                FAILURE_STATUS, {"error": "the check returned an invalid status code"}, {"error": GENERIC_ERROR}
            )
        if status >= 400:
            shown = redact_url(repr(returned.payload))
            self._log_failure(
                name, logging.WARNING, "Health check %r is failing with status %d: %s", name, status, shown
            )
        return outcome(int(status), _jsonable(returned.payload), _jsonable(_public_payload(returned)))

    def _log_failure(
        self, name: str, level: int, message: str, *args: object, exc_info: BaseException | None = None
    ) -> None:
        """Log a failing run of `name` at `level`, or at DEBUG when it was logged less than FAILURE_LOG_INTERVAL ago.

        An exception's traceback is logged once per failure streak and exception type: while the
        same exception goes on, the reminder is a WARNING that names it, without the traceback (an
        ERROR with a traceback is an error-tracker event: one per incident, not one a minute).
        """
        now = time.monotonic()
        failing = self._failing.get(name)
        if failing is not None and now - failing.logged < FAILURE_LOG_INTERVAL:
            failing.quiet += 1
            LOG.debug(message, *args, exc_info=exc_info)
            return
        traceback_of = failing.traceback_of if failing is not None else None
        if exc_info is not None:
            kind = f"{type(exc_info).__module__}.{type(exc_info).__qualname__}"
            if kind == traceback_of:
                level = logging.WARNING
                message += " again, the same %s as before (traceback at DEBUG): %s"
                args = (*args, type(exc_info).__name__, redact_url(str(exc_info)) or "no message")
                LOG.debug("Health check %r: the traceback", name, exc_info=exc_info)
                exc_info = None
            traceback_of = kind
        if failing is not None and failing.quiet:
            message += " (and %d failing run(s) since the last such line, logged at DEBUG)"
            args = (*args, failing.quiet)
        self._failing[name] = _FailureLog(now, traceback_of=traceback_of)
        LOG.log(level, message, *args, exc_info=exc_info)

    def _forget(self, name: str, task: asyncio.Task[Result]) -> None:
        abandoned = self._abandoned.peek()  # never recreated at the loop's end (see _execute_and_cache)
        if abandoned is not None and abandoned.get(name) is task:
            del abandoned[name]
        if not task.cancelled() and task.exception() is not None:
            LOG.warning(
                "Health check task %r ended after its timeout with an error", task.get_name(), exc_info=task.exception()
            )


FACTORY = Factory()
"""The process-wide factory that the router serves by default: `FACTORY.add(MyCheck(tags=[...]))`."""
