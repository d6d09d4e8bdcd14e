"""The demo application: wired as the c2casgiutils README shows, runnable with no server at all.

`scripts/demo` starts it on http://127.0.0.1:8080 with uvicorn: local broadcast (no Redis needed;
set `C2C__REDIS__URL` to use Redis), health checks on SQLite, the `/c2c` admin page in secret mode,
the security and forwarded headers, Prometheus metrics and (when a DSN is set) Sentry.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

import c2casgiutils
from c2casgiutils import broadcast, config, headers, health_checks, monitoring, prometheus, sentry
from c2casgiutils.broadcast import MissingAnswer
from c2casgiutils.broadcast import types as broadcast_types

_LOGGER = logging.getLogger(__name__)

DATABASE = Path(os.environ.get("DEMO_DATABASE", Path(__file__).parent / ".demo.sqlite3"))
ENGINE = create_async_engine(f"sqlite+aiosqlite:///{DATABASE}")
Session = async_sessionmaker(ENGINE)

# Sentry, when C2C__SENTRY__DSN (or SENTRY_DSN) is set.
sentry.init()


class EchoResponse(BaseModel):
    """What each replica answers to the echo broadcast."""

    message: str


class EchoHandlerProto(Protocol):
    async def __call__(
        self, *, message: str
    ) -> list[broadcast_types.BroadcastResponse[EchoResponse] | MissingAnswer] | None: ...


# Late assignment, in the lifespan.
echo_handler: EchoHandlerProto = None  # type: ignore[assignment]


async def _echo_handler(*, message: str) -> EchoResponse:
    """Echo handler for broadcast messages."""
    return EchoResponse(message="Broadcast echo: " + message)


@asynccontextmanager
async def _lifespan(main_app: FastAPI) -> AsyncIterator[None]:
    """Handle application lifespan events."""
    global echo_handler
    _LOGGER.info("Starting the application")
    await c2casgiutils.startup(main_app)
    echo_handler = await broadcast.decorate(_echo_handler, expect_answers=True)
    # C2C__PROMETHEUS__PORT (9000; 0 disables); a taken port is one warning, the demo runs without.
    metrics = (
        f"http://127.0.0.1:{config.settings.prometheus.port}/metrics"
        if prometheus.start_server(addr="127.0.0.1")
        else "not served"
    )
    _LOGGER.info(
        "Demo ready: http://%s:%s/c2c/ (admin page; log in with C2C__AUTH__SECRET), /c2c/health_checks, /api/echo;"
        " metrics: %s",
        os.environ.get("DEMO_HOST", "127.0.0.1"),
        os.environ.get("DEMO_PORT", "8080"),
        metrics,
    )
    yield
    await c2casgiutils.shutdown()
    await ENGINE.dispose()


app = FastAPI(title="c2c ASGI toolkit demo", lifespan=_lifespan)
app.mount("/c2c", c2casgiutils.app)

# The README's order: each add_middleware wraps the previous ones, so ForwardedHeaders (added last)
# runs first and every inner middleware sees the public scheme and host; ArmorHeader also covers
# TrustedHost's 400 and the CORS answers.
app.add_middleware(
    TrustedHostMiddleware,
    allowed_hosts=os.environ.get("DEMO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(","),
)
app.add_middleware(GZipMiddleware, minimum_size=1000)
app.add_middleware(
    CORSMiddleware,
    allow_origins=[origin for origin in os.environ.get("DEMO_CORS_ORIGINS", "").split(",") if origin],
    allow_credentials=False,
    allow_methods=["GET"],
)
app.add_middleware(
    headers.ArmorHeaderMiddleware,
    headers_config={
        "http": {"headers": {"Strict-Transport-Security": None} if config.settings.http else {}},
    },
)
if config.settings.proxy_headers.type != "none":
    app.add_middleware(
        headers.ForwardedHeadersMiddleware,
        trusted_hosts=config.settings.proxy_headers.trusted_hosts,
        headers_type=config.settings.proxy_headers.type,
        trust_host=config.settings.proxy_headers.trust_host,
    )

# Health checks: the database in readiness (the demo's API cannot answer without it); liveness
# depends on nothing external. Redis and the broadcast are shared by every replica: in readiness, a
# Redis failover would take every replica out of the load balancer at once, the routes that do not
# need Redis included; they are reported (tags `broadcast`, `redis`), not used for readiness.
health_checks.FACTORY.add(health_checks.SQLAlchemy(Session=Session, tags=["readiness", "database", "all"]))
health_checks.FACTORY.add(monitoring.BroadcastCheck(tags=["broadcast", "all"]))
# The stored logging-level overrides not read yet (Redis down at startup): degraded, not unready.
health_checks.FACTORY.add(monitoring.LoggingSyncCheck(tags=["logging", "all"]))
if config.settings.redis.configured:
    health_checks.FACTORY.add(health_checks.Redis(tags=["redis", "all"]))

prometheus.instrument(app)


@app.get("/")
async def hello() -> dict[str, str]:
    """A trivial endpoint."""
    return {"message": "Hello from the c2c ASGI toolkit demo", "admin": "/c2c/"}


ECHO_UNAVAILABLE = "Broadcast unavailable (details are in the service logs)"
"""The echo route's 503 detail: the cause (which Redis, what error) is logged, not given to the caller."""


@app.get("/api/echo", responses={503: {"description": "The broadcast cannot reach Redis"}})
async def echo(message: str = "hello") -> dict[str, Any]:
    """Broadcast `message` to every replica and list their answers.

    While Redis is unreachable: 503 with a generic detail (`ECHO_UNAVAILABLE`), as the health
    checks answer anonymous callers; the cause (the Redis address, the error) is logged as a warning.
    """
    try:
        answers = await echo_handler(message=message) or []
    except broadcast.BroadcastUnavailableError as unavailable:
        _LOGGER.warning("GET /api/echo answered 503: %s", unavailable)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, ECHO_UNAVAILABLE) from None
    return {
        "answers": [
            answer.model_dump(mode="json") if isinstance(answer, broadcast_types.BroadcastResponse) else repr(answer)
            for answer in answers
        ]
    }


@app.get("/api/nonce")
async def nonce(request: Request) -> dict[str, str]:
    """The CSP nonce of this request (set by ArmorHeaderMiddleware when a rule asks for one)."""
    return {"nonce": getattr(request.state, "nonce", "")}
