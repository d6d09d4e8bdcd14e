"""c2casgiutils: the whole c2c ASGI toolkit under one name (drop-in for the `c2casgiutils` library).

```python
import c2casgiutils

app = FastAPI(lifespan=c2casgiutils.lifespan.including(my_lifespan))  # or just c2casgiutils.lifespan
app.mount("/c2c", c2casgiutils.app)  # the admin sub-application
app.add_middleware(c2casgiutils.auth.PendingCookiesMiddleware)  # auth cookies on the application's routes
from c2casgiutils import auth, broadcast, cli, config, headers, health_checks
```

`c2casgiutils.lifespan` runs `await startup(app)` (broadcast, logging tool, auth) and, at the end,
`await shutdown()`; a lifespan of the application's own may call those two itself instead.

Importing the package is cheap: the sub-application and the submodules are loaded on first use.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from c2casgiutils import (
        auth,
        broadcast,
        cli,
        config,
        headers,
        health_checks,
        logging_filters,
        monitoring,
        prometheus,
        redis_utils,
        sentry,
        tools,
    )
    from c2casgiutils._lifespan import Lifespan

__version__ = _version("c2c-all")

# Loaded on first access, so that `import c2casgiutils` stays cheap and `c2casgiutils.tools.logging_`
# works after a plain `import c2casgiutils`, as it did in 0.14.
_SUBMODULES = frozenset(
    {
        "auth",
        "broadcast",
        "cli",
        "config",
        "headers",
        "health_checks",
        "logging_filters",
        "monitoring",
        "prometheus",
        "redis_utils",
        "sentry",
        "tools",
    }
)
_APP: FastAPI | None = None
_LIFESPAN: Lifespan | None = None

__all__ = [
    "__version__",
    "app",
    "auth",
    "broadcast",
    "cli",
    "config",
    "headers",
    "health_checks",
    "lifespan",
    "logging_filters",
    "monitoring",
    "prometheus",
    "redis_utils",
    "sentry",
    "shutdown",
    "startup",
    "tools",
]


async def startup(main_app: Any = None) -> None:
    """Start the toolkit's background parts; call it in the application's lifespan.

    Starts the broadcaster (Redis when configured, else local; never fails because Redis is
    down), the logging tool (subscribes to level changes, restores persisted overrides) and checks
    the authentication configuration (a clear error for GitHub mode without a JWT secret), makes
    `/c2c/readyz` answer 503 from SIGTERM on (`c2c_health.startup`: draining), and puts
    `logging_filters.RedactSecretsFilter` on the `uvicorn.access` and `granian.access` loggers and their
    handlers (`secret`, `code`, `state` query values redacted from the access log), and
    makes broadcast calls carry the request id (c2c-headers' `current_request_id`) to the handlers
    on every replica, and keeps this process's audit records for `GET /c2c/audit`
    (`tools.audit.install`; answers the other replicas' requests). The broadcaster reports to
    Prometheus' default registry (`monitoring.install_metrics` with `C2C__PROMETHEUS__PREFIX`:
    `<prefix>broadcast_events_total`, `<prefix>broadcast_healthy`).
    """
    from c2c_auth import startup as auth_startup
    from c2c_broadcast import startup as broadcast_startup
    from c2c_health import startup as health_startup
    from c2casgiutils import config
    from c2casgiutils._request_id import install_broadcast_carrier
    from c2casgiutils.logging_filters import install_access_log_filters
    from c2casgiutils.monitoring import install_metrics
    from c2casgiutils.tools import logging_, replicas
    from c2casgiutils.tools.audit import install as audit_install
    from c2casgiutils.tools.audit import startup as audit_startup

    install_access_log_filters()
    audit_install()  # this process's audit records, kept in memory for GET /c2c/audit
    install_broadcast_carrier()
    await auth_startup(main_app)
    await broadcast_startup(main_app, metrics=install_metrics(config.settings.prometheus.prefix))
    await logging_.startup()
    await audit_startup()  # answer the other replicas' GET /c2c/audit
    await replicas.startup(main_app)
    await health_startup()  # /c2c/readyz answers 503 from SIGTERM on (C2C__HEALTH_CHECKS__DRAIN_DELAY)


async def shutdown() -> None:
    """Stop what `startup` started and close the shared connections; call it at the end of the lifespan.

    Stops the broadcaster (unsubscribes, no hang), closes the pooled GitHub client and the Redis
    connections. (c2casgiutils 0.14 had no shutdown hook.)
    """
    from c2c_auth import shutdown as auth_shutdown
    from c2c_broadcast import shutdown as broadcast_shutdown
    from c2c_health import shutdown as health_shutdown
    from c2casgiutils.tools import logging_

    await health_shutdown()
    await logging_.shutdown()
    await broadcast_shutdown()
    await auth_shutdown()
    redis_module = sys.modules.get("c2c_config.redis")  # loaded only when Redis was used
    if redis_module is not None:
        await redis_module.reset_factory()


if TYPE_CHECKING:
    lifespan: Lifespan
    """`FastAPI(lifespan=c2casgiutils.lifespan)`: `startup(app)`, then at the end `shutdown()`.

    `c2casgiutils.lifespan.including(my_lifespan, ...)` runs the application's lifespans inside it
    (the toolkit is up while they start and stop) and merges the state they yield.
    """


def __getattr__(name: str) -> Any:
    global _APP, _LIFESPAN
    if name == "lifespan":
        if _LIFESPAN is None:
            from c2casgiutils._lifespan import Lifespan

            _LIFESPAN = Lifespan()
        return _LIFESPAN
    if name == "app":
        if _APP is None:
            from c2casgiutils._app import create_app

            _APP = create_app()
        return _APP
    if name in _SUBMODULES:
        return importlib.import_module(f"c2casgiutils.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
