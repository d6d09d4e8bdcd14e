"""What a broadcaster reports about itself: a status snapshot and prometheus-free counters."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from typing import Literal, Protocol

State = Literal["local", "connecting", "connected", "reconnecting", "stopped"]

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
    broadcaster while its listeners are connected and subscribed.
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
