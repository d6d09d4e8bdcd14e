"""c2c_health: health checks for FastAPI services.

Register checks on `FACTORY` (or your own `Factory`), serve them with `create_router()` (or the
ready-made `router`), probe a URL from a container with `python -m c2c_health URL`. Every check
runs concurrently under a timeout; failures are logged in full and shown in detail only to
callers allowed by the `C2C__HEALTH_CHECKS__DETAILS` setting.
"""

from importlib.metadata import version as _version

from c2c_health._checks import HTTP, Alembic, Redis, SQLAlchemy, Wrong
from c2c_health._core import (
    FACTORY,
    GENERIC_ERROR,
    TIMEOUT_ERROR,
    Check,
    EntityResult,
    Factory,
    GlobalResult,
    Outcome,
    Report,
    Result,
    parse_filter,
)
from c2c_health._http import HTTPProbeError, fetch_status
from c2c_health._metrics import HealthMetrics, get_metrics
from c2c_health._router import DEFAULT_PATHS, Authorizer, create_router
from c2c_health._settings import DetailVisibility, HealthChecksSettings, HealthSettingsSource, Settings

__version__ = _version("c2c-health")

LIVENESS = "liveness"
"""Tag of the checks a liveness probe runs: only the process's own state, never an external service."""
READINESS = "readiness"
"""Tag of the checks a readiness probe runs: the dependencies without which requests cannot be served."""

router = create_router()
"""A router on `FACTORY` with no authorize function: include it, e.g. `app.include_router(router, prefix="/c2c")`."""

__all__ = [
    "DEFAULT_PATHS",
    "FACTORY",
    "GENERIC_ERROR",
    "HTTP",
    "LIVENESS",
    "READINESS",
    "TIMEOUT_ERROR",
    "Alembic",
    "Authorizer",
    "Check",
    "DetailVisibility",
    "EntityResult",
    "Factory",
    "GlobalResult",
    "HTTPProbeError",
    "HealthChecksSettings",
    "HealthMetrics",
    "HealthSettingsSource",
    "Outcome",
    "Redis",
    "Report",
    "Result",
    "SQLAlchemy",
    "Settings",
    "Wrong",
    "__version__",
    "create_router",
    "fetch_status",
    "get_metrics",
    "parse_filter",
    "router",
]
