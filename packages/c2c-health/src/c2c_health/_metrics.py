"""Prometheus metrics of the health checks, registered lazily, once per registry and name prefix.

In prometheus_client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, several workers) the failure
gauge is served as the most recent run of each check in any worker (`multiprocess_mode="mostrecent"`,
prometheus-client >= 0.18): one series per check, no `pid` label, so a dead worker's last failure
is replaced by the next run elsewhere instead of staying in the scrape forever.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram

LOG = logging.getLogger("c2c_health")

FAILURE_GAUGE = "health_checks_failure"
# Several worker processes: the last run of the check in any of them (a dead worker's value is not kept).
FAILURE_MULTIPROCESS_MODE: Final = "mostrecent"
DURATION_HISTOGRAM = "health_checks_duration_seconds"
# Health checks are bounded by a timeout of a few seconds: buckets from 5 ms to 30 s.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class HealthMetrics:
    """The failure gauge (last status code of each check) and the duration histogram, label `name`."""

    failure: Gauge
    duration: Histogram

    def observe(self, name: str, status_code: int, seconds: float) -> None:
        """Record one run of the check `name`."""
        self.failure.labels(name=name).set(status_code)
        self.duration.labels(name=name).observe(seconds)


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, HealthMetrics | None]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def get_metrics(registry: CollectorRegistry | None, prefix: str) -> HealthMetrics | None:
    """The metrics named `<prefix>health_checks_*` in `registry` (default: the global one), created on first use.

    Returns None, after one log line, when another collector already holds one of the names (the
    checks still run; only their metrics are missing).
    """
    registry = REGISTRY if registry is None else registry
    with _LOCK:
        known = _BY_REGISTRY.setdefault(registry, {})
        if prefix in known:
            return known[prefix]
        metrics: HealthMetrics | None
        try:
            failure = Gauge(
                prefix + FAILURE_GAUGE,
                "Status code of the last run of each health check (200 = healthy)",
                ["name"],
                registry=registry,
                multiprocess_mode=FAILURE_MULTIPROCESS_MODE,
            )
            try:
                duration = Histogram(
                    prefix + DURATION_HISTOGRAM,
                    "Duration of each health check run, in seconds (a timed-out run counts its timeout)",
                    ["name"],
                    registry=registry,
                    buckets=DURATION_BUCKETS,
                )
            except ValueError:
                registry.unregister(failure)
                raise
            metrics = HealthMetrics(failure, duration)
        except ValueError as error:
            LOG.warning("Health-check metrics disabled for prefix %r: %s", prefix, error)
            metrics = None
        known[prefix] = metrics
        return metrics
