"""The HTTP endpoints, relative to where the router is included.

`/health_checks` (and `/health`), `/health_checks/history`, `/livez`, `/readyz`.

Every route answers GET and HEAD (HEAD: the same status and headers, no body). The probes answer
`Accept: application/health+json` with the IETF health-check draft's shape.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from c2c_health import LIVENESS, READINESS
from c2c_health._core import FACTORY, Factory, GlobalResult, HistoryReport, Report, parse_filter
from c2c_health._probes import DRAINING_OUTPUT, HEALTH_JSON, UNKNOWN_FILTERS, draining, health_json, wants_health_json

LOG = logging.getLogger("c2c_health")

Authorizer = Callable[[Request], Awaitable[bool]]
"""Decides whether the caller of a request may see the details of the checks."""

DEFAULT_PATHS = ("/health_checks", "/health", "/health/")
LIVEZ_PATH = "/livez"
READYZ_PATH = "/readyz"
HISTORY_PATH = "/health_checks/history"
HISTORY_FORBIDDEN = "The health history is shown only to callers allowed to see the checks' details"

_NAME_HELP = "Only the checks with one of these names (comma-separated or repeated)"
_TAGS_HELP = "Only the checks having any of these tags (comma-separated or repeated), e.g. readiness"
_NAME_HELP_014 = "Only the checks with one of these names (comma-separated)"
_TAGS_HELP_014 = "Only the checks having any of these tags (comma-separated), e.g. readiness"


async def _ask(authorize: Authorizer, request: Request, otherwise: str) -> bool:
    """`authorize`'s answer; False when it refuses with an HTTP error (logged at DEBUG: any caller
    can provoke one, e.g. a 429 once a wrong-secret budget is spent) or fails (logged as an error)."""
    try:
        return bool(await authorize(request))
    except HTTPException as refusal:
        LOG.debug("The health-check authorize function refused (%s); %s", refusal.status_code, otherwise)
        return False
    except Exception:
        LOG.exception("The health-check authorize function failed; %s", otherwise)
        return False


async def _may_see_details(request: Request, factory: Factory, authorize: Authorizer | None) -> bool:
    visibility = factory.settings().health_checks.details
    if visibility == "always":
        return True
    if visibility == "never" or authorize is None:
        return False
    return await _ask(authorize, request, "the details stay hidden")


async def _may_see_history(request: Request, factory: Factory, authorize: Authorizer | None) -> bool:
    # The history has no payload, but it tells when each check failed over the last runs: the
    # callers of `authorize` see it (even with details 'never'), everybody when details are 'always'.
    if factory.settings().health_checks.details == "always":
        return True
    if authorize is None:
        return False
    return await _ask(authorize, request, "the history stays hidden")


def _history_endpoint(factory: Factory | None, authorize: Authorizer | None) -> Callable[..., Awaitable[Response]]:
    async def health_checks_history(
        request: Request,
        name: Annotated[list[str] | None, Query(description=_NAME_HELP)] = None,
        tags: Annotated[list[str] | None, Query(description=_TAGS_HELP)] = None,
    ) -> Response:
        """The last results (time, status, latency) of each check, oldest first; runs no check."""
        current = FACTORY if factory is None else factory
        if not await _may_see_history(request, current, authorize):
            return _json(request, {"detail": HISTORY_FORBIDDEN}, 403)
        _warn_unknown(current, name, tags)
        body = current.history_report(name=name, tags=tags)
        return _json(request, body.model_dump(mode="json"), 200)

    return health_checks_history


def _add_history(
    router: APIRouter, endpoint: Callable[..., Awaitable[Response]], include_in_schema: bool, skip: Sequence[str] = ()
) -> None:
    if HISTORY_PATH in skip:
        return
    for method in ("GET", "HEAD"):
        router.add_api_route(
            HISTORY_PATH,
            endpoint,
            methods=[method],
            response_model=HistoryReport,
            responses={403: {"description": "The caller may not see the checks' details"}},
            name="c2c_health_checks_history" if method == "GET" else "c2c_health_checks_history_head",
            summary="Health checks' history",
            include_in_schema=include_in_schema and method == "GET",
        )


class _Probes:
    """The probe endpoints of one router: `livez` and `readyz`, on a factory, with its detail policy."""

    def __init__(
        self, factory: Factory | None, authorize: Authorizer | None, service_id: str | None, version: str | None
    ) -> None:
        self.factory = factory
        self.authorize = authorize
        self.service_id = service_id if service_id is not None else socket.gethostname()
        self.version = version

    async def _answer(self, request: Request, tag: str, fallback_to_all: bool) -> Response:
        current = FACTORY if self.factory is None else self.factory
        if tag == READINESS and draining():
            return self._respond(request, None, 503, details=False, output=DRAINING_OUTPUT)
        # The caller's access first: a check that needs Redis then knows whether this request already
        # waited for it (`c2c_config.redis.unreachable_here`), and a request waits for Redis once.
        details = await _may_see_details(request, current, self.authorize)
        tagged = bool(current.select(tags=[tag]))
        if tagged or fallback_to_all:
            report = await current.run(tags=[tag] if tagged else None)
        else:  # liveness: no check tagged, nothing to run
            report = Report((), 0.0)
        return self._respond(request, report, report.status_code, details=details)

    def _respond(
        self, request: Request, report: Report | None, status_code: int, *, details: bool, output: str | None = None
    ) -> Response:
        body: dict[str, Any]
        if wants_health_json(request.headers.get("accept")):
            media_type = HEALTH_JSON
            body = health_json(report, details=details, service_id=self.service_id, version=self.version, output=output)
        else:
            media_type = "application/json"
            body = (report or Report((), 0.0)).to_model(details=details).model_dump(mode="json")
            body["status_code"] = status_code
            if output is not None:
                body["draining"] = True
        return _json(request, body, status_code, media_type)

    async def livez(self, request: Request) -> Response:
        """Liveness: the process answers. Runs only the checks tagged `liveness` (none by default)."""
        return await self._answer(request, LIVENESS, fallback_to_all=False)

    async def readyz(self, request: Request) -> Response:
        """Readiness: the checks tagged `readiness` (all checks when none is); 503 at once while draining."""
        return await self._answer(request, READINESS, fallback_to_all=True)


def _json(request: Request, body: object, status_code: int, media_type: str = "application/json") -> Response:
    response = JSONResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"}, media_type=media_type)
    if request.method == "HEAD":
        headers = dict(response.headers)  # the GET's headers, Content-Length included
        return Response(status_code=status_code, headers=headers)
    return response


def _warn_unknown(factory: Factory, name: str | list[str] | None, tags: str | list[str] | None) -> None:
    UNKNOWN_FILTERS.check(factory, parse_filter(name), parse_filter(tags))


def create_router(
    factory: Factory | None = None,
    *,
    authorize: Authorizer | None = None,
    paths: Sequence[str] = DEFAULT_PATHS,
    include_in_schema: bool = True,
    probes: bool = True,
    history: bool = True,
    service_id: str | None = None,
    version: str | None = None,
) -> APIRouter:
    """An `APIRouter` serving the health report at each of `paths` and the probes (relative: include it where you like).

    Args:
        factory: the checks to run (default: `FACTORY`, looked up at each request).
        authorize: an async function of the request telling whether the caller may see the
            details, used when the `details` setting is `authorized` (default: nobody may).
        paths: the routes; by default `/health_checks` (as documented by c2casgiutils) and `/health`
            (where c2casgiutils served it), so `app.mount("/c2c", ...)` gives `/c2c/health_checks`.
        include_in_schema: whether the routes appear in the OpenAPI schema.
        probes: whether to serve the Kubernetes probes `/livez` and `/readyz` too (not at a path
            that is in `paths`: the report keeps it).
        history: whether to serve `/health_checks/history`: each check's last results (time, status
            code, duration; no payload), for callers `authorize` accepts (everybody when the
            `details` setting is `always`, else 403).
        service_id: the `serviceId` of the `application/health+json` answers (default: the host name).
        version: the `version` of those answers (default: none).

    The health report is the JSON `GlobalResult`, with the HTTP status of the worst check (200 when
    none matched) and `Cache-Control: no-store`; a `name`/`tags` value that no check has is logged
    once (warning). `/readyz` runs the checks tagged `readiness` (all when none is), 503 at once
    while draining (see `startup`); `/livez` runs only the checks tagged `liveness` (none by
    default: 200 as long as the event loop answers). Same timeouts, cache and detail policy.
    """
    router = APIRouter()
    if history:
        _add_history(router, _history_endpoint(factory, authorize), include_in_schema, skip=paths)

    async def health_checks(
        request: Request,
        name: Annotated[list[str] | None, Query(description=_NAME_HELP)] = None,
        tags: Annotated[list[str] | None, Query(description=_TAGS_HELP)] = None,
    ) -> Response:
        """Run the health checks (filtered by `name` and `tags`) and report each one."""
        current = FACTORY if factory is None else factory
        _warn_unknown(current, name, tags)
        details = await _may_see_details(request, current, authorize)  # first: see `_Probes`
        report = await current.run(name=name, tags=tags)
        body = report.to_model(details=details)
        return _json(request, body.model_dump(mode="json"), body.status_code)

    _add_routes(router, health_checks, paths, include_in_schema)
    if probes:
        _add_probes(router, _Probes(factory, authorize, service_id, version), include_in_schema, skip=paths)
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
    function; use `create_router(authorize=...)` for that). A filter value that no check has is
    logged once (warning).
    """
    _warn_unknown(FACTORY, name, tags)
    report = await FACTORY.run(name=name, tags=tags)
    response.status_code = report.status_code
    response.headers["Cache-Control"] = "no-store"
    return report.to_model(details=FACTORY.settings().health_checks.details == "always")


def default_router(paths: Sequence[str] = DEFAULT_PATHS) -> APIRouter:
    """The router of `c2c_health.router`: `c2c_health_checks` on `FACTORY` at `paths`, probes, history.

    The history is served only when the `details` setting is `always` (no authorize function).
    `c2casgiutils.health_checks.router` is ``default_router(paths=("/",))``: the report at the
    router's root, as c2casgiutils 0.14's router had it.
    """
    router = APIRouter()
    _add_history(router, _history_endpoint(None, None), include_in_schema=True)
    _add_routes(router, c2c_health_checks, paths, include_in_schema=True)
    _add_probes(router, _Probes(None, None, None, None), include_in_schema=True)
    return router


def _add_routes(
    router: APIRouter, endpoint: Callable[..., Awaitable[object]], paths: Sequence[str], include_in_schema: bool
) -> None:
    for index, path in enumerate(paths):
        name = "c2c_health_checks" if index == 0 else f"c2c_health_checks_{index}"
        for method in ("GET", "HEAD"):  # HEAD apart: one OpenAPI operation per route
            router.add_api_route(
                path,
                endpoint,
                methods=[method],
                response_model=GlobalResult,
                responses={500: {"model": GlobalResult, "description": "At least one check failed"}},
                name=name if method == "GET" else f"{name}_head",
                summary="Health checks",
                include_in_schema=include_in_schema and index == 0 and method == "GET",
            )


def _add_probes(router: APIRouter, probes: _Probes, include_in_schema: bool, skip: Sequence[str] = ()) -> None:
    for path, endpoint, summary in (
        (LIVEZ_PATH, probes.livez, "Liveness probe"),
        (READYZ_PATH, probes.readyz, "Readiness probe"),
    ):
        if path in skip:  # the caller serves the report there (paths=["/livez"] before the probes existed)
            continue
        name = f"c2c_{path.strip('/')}"
        for method in ("GET", "HEAD"):
            router.add_api_route(
                path,
                endpoint,
                methods=[method],
                response_model=GlobalResult,
                responses={
                    503: {"model": GlobalResult, "description": "Draining (readiness) or a check failed"},
                    200: {"content": {HEALTH_JSON: {}}},
                },
                name=name if method == "GET" else f"{name}_head",
                summary=summary,
                include_in_schema=include_in_schema and method == "GET",
            )
