"""The `/c2c` sub-application: index page, health checks, authentication and the tools.

Mount it with `app.mount("/c2c", c2casgiutils.app)`. Routes (relative to the mount):

| route | access |
|---|---|
| `GET /` (`tools.c2c_index`) | everyone; content depends on the caller's access |
| `GET /health_checks`, `/health` | everyone (details per `C2C__HEALTH_CHECKS__DETAILS`) |
| `GET /health_checks/history` (each check's last results, no payload) | read-only (everyone with details `always`) |
| `GET /livez`, `/readyz` (Kubernetes probes; HEAD on every health route) | everyone (same detail policy) |
| `/auth/...` | see c2c-auth |
| `GET /headers/...` | read-only |
| `GET /logging/level`, `GET /logging/overrides` | read-only |
| `POST /logging/level`, `DELETE /logging/level` | read-write |
| `GET /audit` (admin actions of every replica) | read-write |
| `GET /config` (effective configuration, secrets masked) | admin |
| `GET /replicas` (every replica side by side) | read-only |
| `GET /versions` | read-only |
| `GET /static/...` (`c2c_static`) | everyone |

The OpenAPI schema and its documentation pages are not served: they would describe every admin
endpoint to anonymous callers. `c2c_auth.PendingCookiesMiddleware` is installed: a session cookie
refreshed or cleared during a request reaches the response whatever the endpoint returns.

Request bodies go through `BodyGuardMiddleware` (`c2casgiutils._guard`): at most
`C2C__TOOLS__MAX_BODY_SIZE` bytes (413 beyond, before reading more), and a route protected by an
access dependency refuses a caller without access before any of the body is read.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import c2c_auth
import c2c_health
from c2c_config.redis import request_scope
from c2casgiutils import tools
from c2casgiutils._guard import BodyGuardMiddleware
from c2casgiutils.tools import TEMPLATES, access_summary

_HERE = Path(__file__).parent

__all__ = ["TEMPLATES", "access_summary", "create_app"]


async def _get_auth(request: Request, response: Response) -> c2c_auth.AuthInfo:
    """`c2c_auth.get_auth`, or the override a test set on the application for it
    (`c2casgiutils.app.dependency_overrides[auth.get_auth] = ...`, as 0.14 test suites do): the
    health router asks for the caller outside FastAPI's dependency injection, which would apply it.

    The override is called with the parameters it names among `request` and `response` (by name or
    by annotation); one that needs anything else is not called here, and the real `get_auth` is.
    """
    overrides = getattr(request.app, "dependency_overrides", None) or {}
    override = overrides.get(c2c_auth.get_auth)
    if override is None:
        return await c2c_auth.get_auth(request, response)
    given: dict[str, Any] = {}
    for name, parameter in inspect.signature(override).parameters.items():
        annotation = parameter.annotation
        if name == "request" or annotation in (Request, "Request"):
            given[name] = request
        elif name == "response" or annotation in (Response, "Response"):
            given[name] = response
        elif parameter.default is inspect.Parameter.empty:
            return await c2c_auth.get_auth(request, response)
    answer = override(**given)
    if inspect.isawaitable(answer):
        answer = await answer
    return cast("c2c_auth.AuthInfo", answer)


async def _authorized_for_details(request: Request) -> bool:
    """Health-check details are shown to callers with read-only access (`get_auth`, or its override).

    A refusal the authentication raises (a 429 once the wrong-secret budget is spent) means "no
    details" to c2c-health's router: the probe still answers, and it logs the refusal at DEBUG only.
    """
    response = Response()
    info = await _get_auth(request, response)
    return await c2c_auth.check_read_only_access(info, request, response)


def _printable(value: Any) -> Any:
    """`value` (decoded JSON) with what JSON cannot carry made text: a non-finite number as its
    name (``inf``, ``nan``), a lone surrogate as its ``\\udxxx`` escape."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(item) for item in value]
    return value


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 answer, whatever the input: its default handler fails (a 500) when the refused
    input holds a number JSON cannot write (``1e309`` parses as infinity) or a lone surrogate."""
    if not isinstance(error, RequestValidationError):  # registered for that class only
        raise error
    return JSONResponse(status_code=422, content={"detail": _printable(jsonable_encoder(error.errors()))})


class _RequestDefaults:
    """Per request of the `/c2c` application (outermost):

    - serve it inside `c2c_config.redis.request_scope()`: a Redis failure is remembered for that
      request only, also under a test client that runs requests in its own task (httpx's
      `ASGITransport`), where the next request would otherwise be refused for up to 2 s;
    - answer with `Cache-Control: no-store` unless the endpoint chose a policy: the tools answer
      settings, request headers, audit records and levels to an authenticated caller, which a
      shared cache between the browser and the service must never keep and hand to the next
      caller. The static files get `no-cache`: kept, but revalidated (their `ETag`) on each use,
      so that after an upgrade a browser never runs an old script module with the new page.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        root_path = scope.get("root_path", "")
        if path.startswith(root_path):
            path = path[len(root_path) :]
        policy = b"no-cache" if path.startswith("/static/") else b"no-store"

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", policy))
                    message = {**message, "headers": headers}
            await send(message)

        with request_scope():
            await self.app(scope, receive, send_with_policy)


def create_app() -> FastAPI:
    """Build a new `/c2c` sub-application (the package's `app` is one built on first use)."""
    app = FastAPI(title="C2C ASGI Utils", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(c2c_health.create_router(authorize=_authorized_for_details))
    app.include_router(c2c_auth.create_router(), prefix="/auth")
    app.include_router(tools.router)  # the page, /headers, /logging, /versions
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="c2c_static")
    # The guard runs inside PendingCookiesMiddleware, so a cookie its access check clears still reaches the answer.
    app.add_middleware(BodyGuardMiddleware)
    app.add_middleware(c2c_auth.PendingCookiesMiddleware)
    app.add_middleware(_RequestDefaults)  # outermost: the session check's failure counts for the request
    return app
