"""The request-headers tool: what the application sees of a request (behind proxies, after middlewares).

`GET /headers/`, `/headers/{path}`, `/headers/{path_1}/{path_2}` (read-only access) answer
`{"headers", "client_info", "scope"}`. Header values are shown in clear only for the names in
`CLEAR_HEADERS` (routing and content negotiation); every other value (cookies, authorization,
API keys, anything unknown) is masked, since an admin page must not become a credential viewer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request

MASK = "*****"
CLEAR_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "content-length",
        "content-type",
        "dnt",
        "forwarded",
        "host",
        "origin",
        "pragma",
        "referer",
        "sec-ch-ua",
        "sec-ch-ua-mobile",
        "sec-ch-ua-platform",
        "sec-fetch-dest",
        "sec-fetch-mode",
        "sec-fetch-site",
        "sec-fetch-user",
        "te",
        "upgrade-insecure-requests",
        "user-agent",
        "via",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-proto",
        "x-real-ip",
        "x-request-id",
        "x-correlation-id",
    }
)
_URL_FIELDS = ("scheme", "netloc", "path", "query", "fragment", "hostname", "port", "is_secure")

__all__ = ["CLEAR_HEADERS", "MASK", "create_router", "describe_request"]


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def describe_request(request: Request) -> dict[str, Any]:
    """The headers (masked outside `CLEAR_HEADERS`), URL details and the scalar entries of the ASGI scope."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1") if name in CLEAR_HEADERS else MASK
        headers[name] = f"{headers[name]}, {value}" if name in headers else value

    def url_details(url: Any) -> dict[str, Any]:
        return {field: getattr(url, field) for field in _URL_FIELDS}

    scope = {key: value for key, value in request.scope.items() if _scalar(value) and key != "headers"}
    for key in ("client", "server"):
        if isinstance(request.scope.get(key), tuple | list):
            scope[key] = list(request.scope[key])
    return {
        "headers": headers,
        "client_info": {
            "url_str": str(request.url.remove_query_params(list(request.query_params))),
            "url": url_details(request.url) | {"query": ""},
            "base_url_str": str(request.base_url),
            "base_url": url_details(request.base_url),
            "query_params": dict.fromkeys(request.query_params, MASK),
            "path_params": dict(request.path_params),
        },
        "scope": scope,
    }


def create_router(read_only: Callable[..., Any] | None = None) -> APIRouter:
    """The `/headers` routes, guarded by the `read_only` FastAPI dependency."""
    router = APIRouter(prefix="/headers", tags=["headers"], dependencies=[Depends(read_only)] if read_only else [])

    @router.get("/")
    async def headers(request: Request) -> dict[str, Any]:
        return describe_request(request)

    @router.get("/{path}")
    async def headers_path(request: Request, path: str) -> dict[str, Any]:
        return describe_request(request)

    @router.get("/{path_1}/{path_2}")
    async def headers_paths(request: Request, path_1: str, path_2: str) -> dict[str, Any]:
        return describe_request(request)

    return router
