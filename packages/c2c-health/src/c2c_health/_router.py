"""The HTTP endpoint: `GET /health_checks` (and `/health`), relative to where the router is included."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from c2c_health._core import FACTORY, Factory, GlobalResult

LOG = logging.getLogger("c2c_health")

Authorizer = Callable[[Request], Awaitable[bool]]
"""Decides whether the caller of a request may see the details of the checks."""

DEFAULT_PATHS = ("/health_checks", "/health", "/health/")

_NAME_HELP = "Only the checks with one of these names (comma-separated or repeated)"
_TAGS_HELP = "Only the checks having any of these tags (comma-separated or repeated), e.g. readiness"
_NAME_HELP_014 = "Only the checks with one of these names (comma-separated)"
_TAGS_HELP_014 = "Only the checks having any of these tags (comma-separated), e.g. readiness"


async def _may_see_details(request: Request, factory: Factory, authorize: Authorizer | None) -> bool:
    visibility = factory.settings().health_checks.details
    if visibility == "always":
        return True
    if visibility == "never" or authorize is None:
        return False
    try:
        return bool(await authorize(request))
    except Exception:
        LOG.exception("The health-check authorize function failed; the details stay hidden")
        return False


def create_router(
    factory: Factory | None = None,
    *,
    authorize: Authorizer | None = None,
    paths: Sequence[str] = DEFAULT_PATHS,
    include_in_schema: bool = True,
) -> APIRouter:
    """An `APIRouter` serving the health report at each of `paths` (relative: include it where you like).

    Args:
        factory: the checks to run (default: `FACTORY`, looked up at each request).
        authorize: an async function of the request telling whether the caller may see the
            details, used when the `details` setting is `authorized` (default: nobody may).
        paths: the routes; by default `/health_checks` (as documented by c2casgiutils) and `/health`
            (where c2casgiutils served it), so `app.mount("/c2c", ...)` gives `/c2c/health_checks`.
        include_in_schema: whether the routes appear in the OpenAPI schema.

    The response is the JSON `GlobalResult`, with the HTTP status of the worst check (200 when
    none matched) and `Cache-Control: no-store`.
    """
    router = APIRouter()

    async def health_checks(
        request: Request,
        name: Annotated[list[str] | None, Query(description=_NAME_HELP)] = None,
        tags: Annotated[list[str] | None, Query(description=_TAGS_HELP)] = None,
    ) -> JSONResponse:
        """Run the health checks (filtered by `name` and `tags`) and report each one."""
        current = FACTORY if factory is None else factory
        report = await current.run(name=name, tags=tags)
        details = await _may_see_details(request, current, authorize)
        body = report.to_model(details=details)
        return JSONResponse(
            body.model_dump(mode="json"),
            status_code=body.status_code,
            headers={"Cache-Control": "no-store"},
        )

    _add_routes(router, health_checks, paths, include_in_schema)
    return router


async def c2c_health_checks(
    response: Response,
    name: Annotated[str | None, Query(description=_NAME_HELP_014)] = None,
    tags: Annotated[str | None, Query(description=_TAGS_HELP_014)] = None,
) -> GlobalResult:
    """Run the checks of `FACTORY` (filtered by `name` and `tags`) and return the report.

    The endpoint of `c2c_health.router`, with the signature of `c2casgiutils.health_checks`
    0.14: `name` and `tags` are comma-separated lists (a repeated parameter keeps its last value;
    `create_router()` accepts repeated ones). Sets `response.status_code` to the worst status of
    the checks (200 when none ran) and `Cache-Control: no-store`. The payloads are shown only
    when the `C2C__HEALTH_CHECKS__DETAILS` setting is `always` (this endpoint has no authorize
    function; use `create_router(authorize=...)` for that).
    """
    report = await FACTORY.run(name=name, tags=tags)
    response.status_code = report.status_code
    response.headers["Cache-Control"] = "no-store"
    return report.to_model(details=FACTORY.settings().health_checks.details == "always")


def default_router() -> APIRouter:
    """The router of `c2c_health.router`: `c2c_health_checks` on `FACTORY`, at the default paths."""
    router = APIRouter()
    _add_routes(router, c2c_health_checks, DEFAULT_PATHS, include_in_schema=True)
    return router


def _add_routes(
    router: APIRouter, endpoint: Callable[..., Awaitable[object]], paths: Sequence[str], include_in_schema: bool
) -> None:
    for index, path in enumerate(paths):
        router.add_api_route(
            path,
            endpoint,
            methods=["GET"],
            response_model=GlobalResult,
            responses={500: {"model": GlobalResult, "description": "At least one check failed"}},
            name="c2c_health_checks" if index == 0 else f"c2c_health_checks_{index}",
            summary="Health checks",
            include_in_schema=include_in_schema and index == 0,
        )
