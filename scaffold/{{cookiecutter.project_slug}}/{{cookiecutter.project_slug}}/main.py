"""The ASGI application: `uvicorn {{ cookiecutter.project_slug }}.main:app --no-proxy-headers`.

Middlewares, outermost first: ForwardedHeaders (unless `C2C__PROXY_HEADERS__TYPE` is `none`, its
default; the image sets `x-forwarded`: the client address, scheme and public host, from the proxies
of `C2C__PROXY_HEADERS__TRUSTED_HOSTS` only; the server runs with `--no-proxy-headers`, so that
this is the one place that reads them) -> RequestId (X-Request-ID) -> security headers
(so that the 400s and CORS answers below get them too) -> TrustedHost (checks the public host) ->
CORS -> GZip -> the routes.
The `/c2c` pages (health checks, logging levels, ...) are mounted under the route prefix
(`C2C__ROUTE_PREFIX`, default `/`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import c2casgiutils
from c2c_headers import RequestIdMiddleware
from c2casgiutils import config, headers, health_checks, prometheus, sentry
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware

from {{ cookiecutter.project_slug }} import api
from {{ cookiecutter.project_slug }}.settings import Settings

_LOGGER = logging.getLogger(__name__)

settings = Settings()
PREFIX = config.settings.route_prefix  # "/" or "/some/prefix/"

# Sentry, when C2C__SENTRY__DSN (or SENTRY_DSN) is set; before the app so that it is instrumented.
sentry.init()


class Alive(health_checks.Check):
    """Liveness and readiness: the process serves requests. Depends on nothing external: an outage
    of Redis never gets the containers restarted, nor takes every replica out of the Service at once
    (the routes do not need it; the Redis check is reported under the tag `redis`). Tag readiness on
    what this service cannot answer without, such as its own database."""

    async def check(self) -> health_checks.Result:
        return health_checks.Result(status_code=200, payload={"message": "alive"})


@asynccontextmanager
async def _lifespan(main_app: FastAPI) -> AsyncIterator[None]:
    _LOGGER.info("Starting {{ cookiecutter.project_slug }}")
    await c2casgiutils.startup(main_app)
    # Metrics on their own port (C2C__PROMETHEUS__PORT, default 9000; 0 disables).
    prometheus.start_server()
    yield
    await c2casgiutils.shutdown()


app = FastAPI(
    title="{{ cookiecutter.project_slug }}",
    description="{{ cookiecutter.project_description }}",
    lifespan=_lifespan,
    docs_url=f"{PREFIX}docs",
    redoc_url=None,
    openapi_url=f"{PREFIX}openapi.json",
)
app.include_router(api.router, prefix=f"{PREFIX}api")
app.mount(f"{PREFIX}c2c", c2casgiutils.app)


@app.get(PREFIX)
async def index() -> dict[str, str]:
    """Where things are."""
    return {"api": f"{PREFIX}api/", "admin": f"{PREFIX}c2c/", "health": f"{PREFIX}c2c/health_checks"}


# add_middleware wraps the stack built so far: the last one added sees the request first.
app.add_middleware(GZipMiddleware, minimum_size=1000)
app.add_middleware(
    CORSMiddleware,
    allow_origins=settings.cors_origins,
    allow_credentials=False,
    allow_methods=["GET"],
)
# A request for a host not listed is refused (400) before the application sees it.
app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
app.add_middleware(
    headers.ArmorHeaderMiddleware,
    # C2C__HTTP=true (development over plain HTTP): no Strict-Transport-Security.
    headers_config={"http": {"headers": {"Strict-Transport-Security": None}}} if config.settings.http else None,
    # The pages Swagger UI's CSP applies to: the docs follow C2C__ROUTE_PREFIX.
    docs_url=app.docs_url,
    redoc_url=app.redoc_url,
)
# Every request gets an id (X-Request-ID): kept when a trusted proxy
# (C2C__PROXY_HEADERS__TRUSTED_HOSTS) sends a well-formed one, generated otherwise; returned
# on the response, in every log line (logging.yaml's request_id filter), as the `request_id`
# tag of Sentry events, and carried by broadcasts to the handlers on the other replicas.
# Inside ForwardedHeadersMiddleware, which records the real peer it is judged on (scope["c2c.peer"]);
# the peer is the proxy only if the server did not rewrite the client first: uvicorn
# --no-proxy-headers, as in the Dockerfile.
app.add_middleware(RequestIdMiddleware, trusted_hosts=config.settings.proxy_headers.trusted_hosts)
if config.settings.proxy_headers.type != "none":
    app.add_middleware(
        headers.ForwardedHeadersMiddleware,
        trusted_hosts=config.settings.proxy_headers.trusted_hosts,
        headers_type=config.settings.proxy_headers.type,
        # C2C__PROXY_HEADERS__TRUST_HOST=false: the request's own Host, not X-Forwarded-Host.
        trust_host=config.settings.proxy_headers.trust_host,
    )

# Health checks: <prefix>c2c/livez (the checks tagged liveness) for the liveness probe and the
# container HEALTHCHECK, <prefix>c2c/readyz (tagged readiness; 503 at once on SIGTERM, see
# C2C__HEALTH_CHECKS__DRAIN_DELAY) for the readiness probe, <prefix>c2c/health_checks for people.
# Redis is shared by every replica: in readiness, its failover would take them all out at once.
health_checks.FACTORY.add(Alive(tags=[health_checks.LIVENESS, health_checks.READINESS, "all"]))
if config.settings.redis.configured:
    health_checks.FACTORY.add(health_checks.Redis(tags=["redis", "all"]))

# Request counts and latencies by route, served with the metrics.
prometheus.instrument(app)
