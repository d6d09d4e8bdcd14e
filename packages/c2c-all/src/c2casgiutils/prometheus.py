"""Prometheus set-up: the metrics server on `C2C__PROMETHEUS__PORT` and the request instrumentation.

```python
from c2casgiutils import prometheus
prometheus.start_server()            # in the lifespan; safe with several uvicorn workers
prometheus.instrument(app)           # route templates as labels, probe routes left out
```

With several worker processes set `PROMETHEUS_MULTIPROC_DIR` to an empty directory shared by the
workers (prometheus_client's multiprocess mode): the server, started by whichever worker binds the
port first, then serves the metrics of every worker aggregated, plus the state gauges read at
scrape time in the serving worker (`<prefix>broadcast_healthy`); the other workers log that the
port is taken instead of failing (INFO). Without multiprocess mode a taken port is held by another
program, or by another worker of the same server (several workers without
`PROMETHEUS_MULTIPROC_DIR`, whose metrics would each be partial): the metrics are not served and
one WARNING line says so, naming the port and both remedies (`PROMETHEUS_MULTIPROC_DIR`,
`C2C__PROMETHEUS__PORT`); the application still starts.

The request metrics' `method` label is bounded: the standard methods as they are, any other
(`curl -X FOO`) counted as `other`; the application still sees the real method.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
import time
from collections.abc import Awaitable, Iterable
from typing import Any, cast

import prometheus_client
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator

LOG = logging.getLogger(__name__)

# Handlers (regular expressions searched in the route template) that are polled by machines: the
# probe routes of c2c-health's router (the reports, their history, livez and readyz) wherever it is
# mounted, and the metrics.
EXCLUDED_HANDLERS = [
    r".*/health_checks(/history)?/?$",
    r".*/health/?$",
    r".*/livez/?$",
    r".*/readyz/?$",
    r"/metrics",
]

# The `method` label takes these values as they are; any other method is counted as OTHER_METHOD
# (a client choosing the method would otherwise create as many series as it sends methods).
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
OTHER_METHOD = "other"

__all__ = ["EXCLUDED_HANDLERS", "OTHER_METHOD", "STANDARD_METHODS", "instrument", "registry", "start_server"]

# Collectors of the serving process's own state, read at scrape time (the broadcaster's health):
# they are on the default registry, which multiprocess mode does not serve, so `registry()` adds them.
_PROCESS_COLLECTORS: list[Collector] = []
_PROCESS_COLLECTORS_LOCK = threading.Lock()


def _add_process_collector(collector: Collector) -> None:
    """Also serve `collector` (registered on the default registry) in multiprocess mode, from the serving worker."""
    with _PROCESS_COLLECTORS_LOCK:
        if collector not in _PROCESS_COLLECTORS:
            _PROCESS_COLLECTORS.append(collector)


class _ProcessCollectors(Collector):
    """The process collectors known at scrape time (`start_server` may run before they are installed)."""

    def collect(self) -> Iterable[Metric]:
        with _PROCESS_COLLECTORS_LOCK:
            collectors = list(_PROCESS_COLLECTORS)
        for collector in collectors:
            yield from collector.collect()


_SETTLE_DELAYS = (0.01, 0.02, 0.05, 0.1, 0.2)
"""Waits between the readings of the workers' files while one of them is being created."""


class _SettledMultiProcessCollector(multiprocess.MultiProcessCollector):
    """prometheus_client's multiprocess collector, read again when a worker is creating a file.

    A worker creates a metric's file empty, then sizes and fills it: a scrape in between reads an
    empty or half-written file (`struct.error`, "Read beyond file size"), and the whole scrape was a
    500. The files are read again a few times (under 0.4 s in all); a file still unreadable after
    that is a real error, raised (a failed scrape, not an empty one).
    """

    def collect(self) -> Iterable[Metric]:
        for delay in _SETTLE_DELAYS:
            try:
                return list(super().collect())  # type: ignore[no-untyped-call]
            except (struct.error, RuntimeError) as error:
                LOG.debug("Prometheus: a worker's metrics file is being written (%s); reading again", error)
                time.sleep(delay)
        return list(super().collect())  # type: ignore[no-untyped-call]


def registry() -> CollectorRegistry:
    """The registry to expose: aggregated over workers in multiprocess mode, else the default one.

    In multiprocess mode it also holds the state read at scrape time in the serving worker
    (`<prefix>broadcast_healthy`, installed by `c2casgiutils.startup`).
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collector_registry = CollectorRegistry()
        _SettledMultiProcessCollector(collector_registry)  # type: ignore[no-untyped-call]
        collector_registry.register(_ProcessCollectors())
        return collector_registry
    return prometheus_client.REGISTRY


# Metrics are scraped from outside the pod: all interfaces by default.
def start_server(port: int | None = None, addr: str = "0.0.0.0") -> bool:  # noqa: S104
    """Serve the metrics on `port` (default `C2C__PROMETHEUS__PORT`, 0 disables).

    Returns whether this process serves them: False when disabled or when the port is taken
    (by another worker in multiprocess mode, logged at INFO; else by another program, logged as
    a WARNING that names the port and the setting). Other bind errors raise.
    """
    if port is None:
        from c2casgiutils import config  # read at call time

        port = config.settings.prometheus.port
    if not port:
        return False
    try:
        prometheus_client.start_http_server(port, addr=addr, registry=registry())
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            LOG.info(
                "Prometheus port %s:%s is already in use, presumably by another worker serving the metrics "
                "of all workers (multiprocess mode); this worker does not serve them",
                addr,
                port,
            )
        else:
            # Another program, or a sibling worker of the same server (`--workers 2` without
            # multiprocess mode): which one cannot be told from here, so the message gives both remedies.
            LOG.warning(
                "Prometheus metrics not served: port %s:%s is already in use, by another program or by another "
                "worker of this server (with several workers set PROMETHEUS_MULTIPROC_DIR to an empty directory "
                "shared by the workers, else each worker counts apart and the metrics served are partial; "
                "for another program set C2C__PROMETHEUS__PORT to a free port, or to 0 to disable the metrics "
                "server)",
                addr,
                port,
            )
        return False
    LOG.info("Prometheus metrics served on port %s", port)
    return True


# The real method of a request whose method the instrumentation sees as OTHER_METHOD.
_REAL_METHOD = "c2casgiutils.prometheus.method"


class _BoundedMethod:
    """Outside the instrumentation: a non-standard method is shown to it as OTHER_METHOD.

    A standard method (nearly every request) passes through without a coroutine of this layer:
    `__call__` returns the application's own awaitable.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        if scope["type"] != "http" or scope["method"] in STANDARD_METHODS:
            return cast("Awaitable[None]", self.app(scope, receive, send))
        return self._other(scope, receive, send)

    async def _other(self, scope: Any, receive: Any, send: Any) -> None:
        method = scope["method"]
        # The same scope object (not a copy): what the layers inside record in it stays visible outside.
        scope["method"] = OTHER_METHOD
        scope[_REAL_METHOD] = method
        try:
            await self.app(scope, receive, send)
        finally:
            scope.pop(_REAL_METHOD, None)
            scope["method"] = method


class _RealMethod:
    """Inside the instrumentation: the rest of the application sees the real method again (a
    standard method passes through as in `_BoundedMethod`)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        if _REAL_METHOD not in scope:
            return cast("Awaitable[None]", self.app(scope, receive, send))
        return self._real(scope, receive, send)

    async def _real(self, scope: Any, receive: Any, send: Any) -> None:
        method = scope.pop(_REAL_METHOD)
        scope["method"] = method
        try:
            await self.app(scope, receive, send)
        finally:
            # The instrumentation reads the method again once the response is sent.
            scope["method"] = OTHER_METHOD
            scope[_REAL_METHOD] = method


def instrument(app: Any, **options: Any) -> Instrumentator:
    """Instrument a FastAPI/Starlette app: request counts and latencies labelled by route template.

    The probe routes (`EXCLUDED_HANDLERS`) are left out, and the `method` label is bounded (the
    `STANDARD_METHODS`, else `OTHER_METHOD`); the application still sees the real method.
    """
    options.setdefault("should_instrument_requests_inprogress", True)
    options.setdefault("should_group_status_codes", False)
    options.setdefault("excluded_handlers", EXCLUDED_HANDLERS)
    instrumentator = Instrumentator(**options)
    # Starlette puts each added middleware outside the ones added before: _BoundedMethod, then the
    # instrumentation, then _RealMethod, then the application.
    app.add_middleware(_RealMethod)
    instrumentator.instrument(app)
    app.add_middleware(_BoundedMethod)
    return instrumentator
