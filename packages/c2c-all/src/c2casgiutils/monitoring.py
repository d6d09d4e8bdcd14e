"""Watching the toolkit itself: the broadcaster and the logging sync as health checks, Prometheus metrics.

```python
from c2casgiutils import health_checks, monitoring
health_checks.FACTORY.add(monitoring.BroadcastCheck(tags=["broadcast", "all"]))
health_checks.FACTORY.add(monitoring.LoggingSyncCheck(tags=["all"]))
```

`LoggingSyncCheck` answers 503 with the state `degraded` while the logging tool cannot read the
stored level overrides (Redis down or frozen since the startup or the last read): the service
works, but a level changed meanwhile may not be applied here yet. Tag neither `readiness` unless
taking every replica out of the load balancer at once during a Redis outage or failover is what you
want: both follow Redis, which every replica shares.

`c2casgiutils.startup()` reports the broadcaster's counters to Prometheus
(`<prefix>broadcast_events_total{event, reason}`) and exposes its state
(`<prefix>broadcast_healthy`, 1 while the listener is connected and subscribed, read at scrape
time). These live here because they join two packages that do not know each other (c2c-broadcast
and c2c-health / prometheus-client).

In multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, several workers), the counter adds up the events
of every worker, and `<prefix>broadcast_healthy` is the state of the worker that serves the metrics
(read at scrape time; each worker has its own listener, and `BroadcastCheck` reports each one).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import c2c_broadcast
from c2c_health import Check, Result

__all__ = ["BroadcastCheck", "LoggingSyncCheck", "PrometheusBroadcastMetrics", "install_metrics"]

# Label values are bounded: the event names are the broadcaster's constants, and reasons outside
# this set are reported as "other".
_REASONS = frozenset(
    {"malformed", "oversized", "unsigned", "forged", "expired", "replayed", "overloaded", "unknown_channel", "other"}
)


class BroadcastCheck(Check):
    """Healthy while the process's broadcaster can reach the other replicas (always, for the local one)."""

    def __init__(self, tags: Sequence[str] | None = None, *, name: str = "Broadcast") -> None:
        super().__init__(tags, name=name)

    async def check(self) -> Result:
        """The broadcaster's status: 200 when healthy, 503 with its state and last error otherwise."""
        status = c2c_broadcast.status()
        payload = {"kind": status.kind, "state": status.state, "reconnections": status.reconnections}
        if status.healthy:
            return Result(status_code=200, payload=payload)
        return Result(
            status_code=503,
            payload={**payload, "last_error": status.last_error},
            public_payload={"state": status.state},
        )


class LoggingSyncCheck(Check):
    """Healthy while the logging levels follow the stored overrides (always without Redis); 503 `degraded` otherwise."""

    def __init__(self, tags: Sequence[str] | None = None, *, name: str = "LoggingSync") -> None:
        super().__init__(tags, name=name)

    async def check(self) -> Result:
        """The logging tool's `sync_status()`: 200 `local` or `in_sync`, 503 `degraded` with the last error."""
        from c2casgiutils.tools.logging_ import get_tool

        status = get_tool().sync_status()
        payload = {"state": status.state, "ignored": status.ignored}
        if status.state != "degraded":
            return Result(status_code=200, payload=payload, public_payload={"state": status.state})
        return Result(
            status_code=503,
            payload={**payload, "last_error": status.last_error, "degraded_since": status.degraded_since},
            public_payload={"state": status.state},
        )


class PrometheusBroadcastMetrics:
    """A `c2c_broadcast.Metrics` that counts into a Prometheus counter."""

    def __init__(self, prefix: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.counter = Counter(
            f"{prefix}broadcast_events",
            "Broadcast events of this process (messages sent, received, dropped by reason, handler errors...)",
            ["event", "reason"],
            registry=registry,
        )

    def increment(self, name: str, amount: int = 1, **labels: str) -> None:
        """Count `amount` events `name` (the `reason` label only for dropped messages)."""
        reason = labels.get("reason", "")
        if reason and reason not in _REASONS:
            reason = "other"
        self.counter.labels(event=name, reason=reason).inc(amount)


class _StateCollector(Collector):
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def collect(self) -> Iterable[Metric]:
        status = c2c_broadcast.status()
        gauge = GaugeMetricFamily(
            f"{self.prefix}broadcast_healthy",
            "1 while the broadcaster reaches the other replicas (Redis listener connected and subscribed)",
            labels=["kind"],
        )
        gauge.add_metric([status.kind], 1.0 if status.healthy else 0.0)
        yield gauge


_INSTALLED: dict[tuple[int, str], PrometheusBroadcastMetrics] = {}
_LOCK = threading.Lock()


def install_metrics(prefix: str, registry: CollectorRegistry = REGISTRY) -> PrometheusBroadcastMetrics:
    """Register the broadcast metrics in `registry` once per prefix; return the `Metrics` to give the broadcaster.

    On the default registry, `<prefix>broadcast_healthy` is also served in multiprocess mode (the
    state of the worker serving the metrics).
    """
    key = (id(registry), prefix)
    with _LOCK:
        if key not in _INSTALLED:
            metrics = PrometheusBroadcastMetrics(prefix, registry)
            state = _StateCollector(prefix)
            registry.register(state)
            if registry is REGISTRY:
                # Multiprocess mode serves the workers' shared files, not the default registry: the
                # state is read in the serving worker too (`prometheus.registry()`).
                from c2casgiutils.prometheus import _add_process_collector

                _add_process_collector(state)
            _INSTALLED[key] = metrics
        return _INSTALLED[key]
