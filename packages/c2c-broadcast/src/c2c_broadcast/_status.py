"""What a broadcaster reports about itself: a status snapshot and prometheus-free counters."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from typing import Literal, Protocol

from c2c_config import describe_error

State = Literal["local", "connecting", "connected", "degraded", "reconnecting", "stopped"]

# Counter names (a `Metrics` implementation receives these).
BROADCASTS_SENT = "broadcasts_sent"
MESSAGES_RECEIVED = "messages_received"
MESSAGES_DROPPED = "messages_dropped"  # label `reason`: malformed, oversized, unsigned, forged, expired, replayed, ...
HANDLER_CALLS = "handler_calls"
HANDLER_ERRORS = "handler_errors"
ANSWERS_SENT = "answers_sent"
ANSWERS_RECEIVED = "answers_received"
ANSWERS_MISSING = "answers_missing"
ANSWERS_DROPPED = "answers_dropped"  # the answer queue was full (C2C__BROADCAST__ANSWER_QUEUE_SIZE)
RECONNECTIONS = "reconnections"


def explained(error: BaseException, bound: float) -> BaseException:
    """`error`, or for asyncio's bare `TimeoutError` one that says how long it waited (`bound`, in s)."""
    if isinstance(error, TimeoutError) and not str(error):
        return TimeoutError(f"no answer within {bound:g} s")
    return error


class Metrics(Protocol):
    """Where a broadcaster reports counters; adapt it to Prometheus or anything else.

    `increment("messages_dropped", reason="forged")`: names are the constants of this module,
    labels are keyword arguments with string values.
    """

    def increment(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add `amount` to the counter `name` with `labels`."""
        ...


class InMemoryMetrics:
    """The default `Metrics`: thread-safe counters kept in the process, read with `snapshot()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}

    def increment(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add `amount` to `name{labels}`."""
        key = name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}" if labels else "")
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + amount

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter, keyed `name` or `name{label=value,...}`."""
        with self._lock:
            return dict(self._counters)

    def get(self, name: str, **labels: str) -> int:
        """One counter's value (0 when never incremented)."""
        key = name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}" if labels else "")
        with self._lock:
            return self._counters.get(key, 0)


@dataclasses.dataclass(frozen=True)
class BroadcasterStatus:
    """A snapshot of a broadcaster's health, for logs, an admin page or a health check.

    `healthy` is what a health check should test: true for the local broadcaster, and for the Redis
    broadcaster while its listeners are connected and subscribed and neither publishing nor the
    heartbeat keeps failing (`degraded`: `CommandHealth`).
    """

    kind: Literal["local", "redis"]
    state: State
    healthy: bool
    since: float
    """`time.time()` of the last state change."""
    replica_id: str
    channels: tuple[str, ...]
    redis: str = "not configured"
    """Where Redis is (`RedisFactory.describe()`: no password)."""
    last_error: str | None = None
    reconnections: int = 0
    pending_handlers: int = 0
    counters: Mapping[str, int] = dataclasses.field(default_factory=dict)
    answers_waiting: int = 0
    """Answers not published yet: in the queue (at most `C2C__BROADCAST__ANSWER_QUEUE_SIZE`) or being published."""
    answers_dropped: int = 0
    """Answers dropped because the queue was full, since the broadcaster started."""

    def describe(self) -> str:
        """A one-line summary."""
        error = f", last error: {self.last_error}" if self.last_error else ""
        return (
            f"{self.kind} broadcaster {self.state} since {time.strftime('%H:%M:%S', time.localtime(self.since))}"
            f" ({self.redis}), {len(self.channels)} channel(s), {self.reconnections} reconnection(s){error}"
        )


class RateLimitedLog:
    """Log a warning at most once per `interval` seconds per key, counting what was suppressed."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, tuple[float, int]] = {}

    @property
    def logger(self) -> logging.Logger:
        """The logger it writes to (for the lines that are never rate limited)."""
        return self._logger

    def warning(self, key: str, message: str, *args: object) -> None:
        """Log `message % args` unless `key` was logged less than `interval` seconds ago."""
        self._log(logging.WARNING, key, message, args)

    def exception(self, key: str, message: str, *args: object) -> None:
        """`warning`'s rule at ERROR, with the exception being handled (its traceback)."""
        self._log(logging.ERROR, key, message, args, exc_info=True)

    def _log(self, level: int, key: str, message: str, args: tuple[object, ...], exc_info: bool = False) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(key, (-float("inf"), 0))
        if now - last < self._interval:
            self._last[key] = (last, suppressed + 1)
            return
        self._last[key] = (now, 0)
        if suppressed:
            message += " (%d similar message(s) suppressed)"
            args = (*args, suppressed)
        self._logger.log(level, message, *args, exc_info=exc_info)


FAILURES_BEFORE_DEGRADED = 2
"""How many failures in a row of one kind of command make the broadcaster `degraded` (not healthy)."""


class CommandHealth:
    """Whether one kind of Redis command (publishing, the heartbeat) works, while the pub/sub connections look fine.

    The rule: *failing* once the last `threshold` (2) commands of this kind failed, none
    succeeding since; healthy again at the next success. One failure alone is a blip (a full pool
    under load, a timeout): the owner retries soon after it (the next heartbeat, a publishing
    probe), so a real outage is confirmed within about one heartbeat interval, and a blip never
    flips the health check. Every failure is logged at WARNING with Redis's error text, at most once
    per 10 s (`RateLimitedLog`, the rest counted); becoming failing and recovering are logged once each.
    """

    def __init__(self, what: str, log: RateLimitedLog, threshold: int = FAILURES_BEFORE_DEGRADED) -> None:
        """`what`: the kind of command, for the logs and `last_error` (`publishing`, `heartbeat`)."""
        self.what = what
        self._log = log
        self.threshold = threshold
        self.failures = 0
        """Failures in a row (0 after a success)."""
        self.since: float | None = None
        """`time.time()` when it became failing, None while not failing."""
        self.last_error: str | None = None

    @property
    def failing(self) -> bool:
        """Whether the last `threshold` commands failed and none succeeded since."""
        return self.since is not None

    def failed(self, error: BaseException, where: str = "") -> None:
        """A command of this kind failed with `error` (`where`: a channel, for the log)."""
        self.failures += 1
        self.last_error = describe_error(error)
        where = f" ({where})" if where else ""
        self._log.warning(self.what, "Broadcast: %s failed%s: %s", self.what, where, self.last_error)
        if self.since is None and self.failures >= self.threshold:
            self.since = time.time()
            self._log.logger.warning(
                "Broadcast: %s failed %d times in a row (last: %s); the broadcaster is degraded, not healthy, "
                "until it works again",
                self.what,
                self.failures,
                self.last_error,
            )

    def succeeded(self) -> None:
        """A command of this kind succeeded."""
        if self.since is not None:
            self._log.logger.info("Broadcast: %s works again after %d failure(s)", self.what, self.failures)
        self.failures = 0
        self.since = None
