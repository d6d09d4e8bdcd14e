"""Prometheus set-up: the metrics server on `C2C__PROMETHEUS__PORT` and the request instrumentation.

```python
from c2casgiutils import prometheus
prometheus.start_server()            # in the lifespan; safe with several uvicorn workers
prometheus.instrument(app)           # route templates as labels, probe routes left out
```

With several worker processes set `PROMETHEUS_MULTIPROC_DIR` to an empty directory shared by the
workers (prometheus_client's multiprocess mode): the server, started by whichever worker binds the
port first, then serves the metrics of every worker aggregated; the other workers log that the
port is taken instead of failing (INFO). In a single process a taken port means another program
holds it: the metrics are not served and one WARNING line says so, naming the port and
`C2C__PROMETHEUS__PORT`; the application still starts.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_fastapi_instrumentator import Instrumentator

LOG = logging.getLogger(__name__)

# Handlers (regular expressions on the route template) that are polled by machines.
EXCLUDED_HANDLERS = [r".*/health_checks/?$", r".*/health/?$", r"/metrics"]

__all__ = ["EXCLUDED_HANDLERS", "instrument", "registry", "start_server"]


def registry() -> CollectorRegistry:
    """The registry to expose: aggregated over workers in multiprocess mode, else the default one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collector_registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(collector_registry)  # type: ignore[no-untyped-call]
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
            LOG.warning(
                "Prometheus metrics not served: port %s:%s is already in use by another program "
                "(set C2C__PROMETHEUS__PORT to a free port, or to 0 to disable the metrics server)",
                addr,
                port,
            )
        return False
    LOG.info("Prometheus metrics served on port %s", port)
    return True


def instrument(app: Any, **options: Any) -> Instrumentator:
    """Instrument a FastAPI/Starlette app: request counts and latencies labelled by route template."""
    options.setdefault("should_instrument_requests_inprogress", True)
    options.setdefault("should_group_status_codes", False)
    options.setdefault("excluded_handlers", EXCLUDED_HANDLERS)
    instrumentator = Instrumentator(**options)
    instrumentator.instrument(app)
    return instrumentator
