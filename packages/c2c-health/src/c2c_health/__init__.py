"""c2c_health: health checks for FastAPI services.

Register checks on `FACTORY` (or your own `Factory`), serve them with `create_router()` (or the
ready-made `router`): the report at `/health_checks`, the Kubernetes probes at `/livez` and
`/readyz`; call `startup()` in the lifespan so that readiness turns 503 on SIGTERM (draining).
Probe a URL from a container with `python -m c2c_health URL`. Every check
runs concurrently under a timeout; failures are logged in full and shown in detail only to
callers allowed by the `C2C__HEALTH_CHECKS__DETAILS` setting.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import APIRouter

    from c2c_health._checks import HTTP, Alembic, Redis, SQLAlchemy, Wrong
    from c2c_health._core import (
        FACTORY,
        GENERIC_ERROR,
        TIMEOUT_ERROR,
        Check,
        CheckHistory,
        EntityResult,
        Factory,
        GlobalResult,
        HistoryPoint,
        HistoryReport,
        Outcome,
        Report,
        Result,
        parse_filter,
    )
    from c2c_health._http import HTTPProbeError, fetch_status
    from c2c_health._metrics import HealthMetrics, get_metrics
    from c2c_health._probes import HEALTH_JSON, draining, health_json, shutdown, start_draining, startup
    from c2c_health._router import (
        DEFAULT_PATHS,
        HISTORY_PATH,
        LIVEZ_PATH,
        READYZ_PATH,
        Authorizer,
        c2c_health_checks,
        create_router,
    )
    from c2c_health._settings import DetailVisibility, HealthChecksSettings, HealthSettingsSource, Settings

    __version__: str
    router: APIRouter
    """A router on `FACTORY` with no authorize function: `app.include_router(router, prefix="/c2c")`.

    Its endpoint is `c2c_health_checks` (the signature of c2casgiutils 0.14), at `DEFAULT_PATHS`.
    """

LIVENESS = "liveness"
"""Tag of the checks a liveness probe runs: only the process's own state, never an external service."""
READINESS = "readiness"
"""Tag of the checks a readiness probe runs: the dependencies without which requests cannot be served."""

# Names are imported on first access (module __getattr__), so that `python -m c2c_health`, the
# container probe, loads only the standard library and starts fast.
_MODULES = {
    "_checks": ("HTTP", "Alembic", "Redis", "SQLAlchemy", "Wrong"),
    "_core": (
        "FACTORY",
        "GENERIC_ERROR",
        "TIMEOUT_ERROR",
        "Check",
        "CheckHistory",
        "EntityResult",
        "Factory",
        "GlobalResult",
        "HistoryPoint",
        "HistoryReport",
        "Outcome",
        "Report",
        "Result",
        "parse_filter",
    ),
    "_http": ("HTTPProbeError", "fetch_status"),
    "_metrics": ("HealthMetrics", "get_metrics"),
    "_probes": ("HEALTH_JSON", "draining", "health_json", "shutdown", "start_draining", "startup"),
    "_router": (
        "DEFAULT_PATHS",
        "HISTORY_PATH",
        "LIVEZ_PATH",
        "READYZ_PATH",
        "Authorizer",
        "c2c_health_checks",
        "create_router",
    ),
    "_settings": ("DetailVisibility", "HealthChecksSettings", "HealthSettingsSource", "Settings"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}
_LOCK = threading.Lock()


def __getattr__(name: str) -> Any:
    with _LOCK:
        if name in globals():
            return globals()[name]
        value: Any
        if name == "__version__":
            value = importlib.import_module("importlib.metadata").version("c2c-health")
        elif name == "router":
            value = importlib.import_module("c2c_health._router").default_router()
        elif name in _LAZY:
            value = getattr(importlib.import_module(f"c2c_health.{_LAZY[name]}"), name)
        else:
            raise AttributeError(f"module 'c2c_health' has no attribute {name!r}")
        globals()[name] = value  # later accesses do not come here: the same object every time
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "DEFAULT_PATHS",
    "FACTORY",
    "GENERIC_ERROR",
    "HEALTH_JSON",
    "HISTORY_PATH",
    "HTTP",
    "LIVENESS",
    "LIVEZ_PATH",
    "READINESS",
    "READYZ_PATH",
    "TIMEOUT_ERROR",
    "Alembic",
    "Authorizer",
    "Check",
    "CheckHistory",
    "DetailVisibility",
    "EntityResult",
    "Factory",
    "GlobalResult",
    "HTTPProbeError",
    "HealthChecksSettings",
    "HealthMetrics",
    "HealthSettingsSource",
    "HistoryPoint",
    "HistoryReport",
    "Outcome",
    "Redis",
    "Report",
    "Result",
    "SQLAlchemy",
    "Settings",
    "Wrong",
    "__version__",
    "c2c_health_checks",
    "create_router",
    "draining",
    "fetch_status",
    "get_metrics",
    "health_json",
    "parse_filter",
    "router",
    "shutdown",
    "start_draining",
    "startup",
]
