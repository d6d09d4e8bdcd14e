"""`--url`: what a running service receives, read through its request-headers tool (`/c2c/headers/`)."""

from __future__ import annotations

from typing import Any

import httpx

from c2casgiutils._settings import Settings
from c2casgiutils.check._findings import PROXY_NONE, URL_UNREADABLE, Finding

PROXY_HEADER_NAMES = ("forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port")
"""Request headers that show a reverse proxy in front of the service."""


async def fetch_request_headers(
    url: str, secret: str | None, limit: float, transport: httpx.AsyncBaseTransport | None = None
) -> dict[str, str]:
    """GET `<url>/headers/` (url: the service's `/c2c` address), with the secret in `X-API-Key` if given.

    Raises `httpx.HTTPError` or `ValueError` (not the tool's answer) on failure.
    """
    target = url.rstrip("/") + "/headers/"
    request_headers = {"X-API-Key": secret} if secret else {}
    async with httpx.AsyncClient(timeout=limit, transport=transport, follow_redirects=False) as client:
        response = await client.get(target, headers=request_headers)
    if response.status_code != 200:
        raise ValueError(f"GET {target} answered {response.status_code}")
    body: Any = response.json()
    headers = body.get("headers") if isinstance(body, dict) else None
    if not isinstance(headers, dict):
        raise ValueError(f"GET {target} did not answer the request-headers tool's JSON")
    return {str(name).lower(): str(value) for name, value in headers.items()}


async def remote_findings(
    url: str,
    secret: str | None,
    settings: Settings,
    limit: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Finding]:
    """Whether requests reach the service through a proxy that the settings ignore (proxy headers `none`)."""
    try:
        received = await fetch_request_headers(url, secret, limit, transport)
    except (httpx.HTTPError, ValueError) as error:
        return [URL_UNREADABLE.at(f"cannot read the request headers of {url}: {type(error).__name__}: {error}")]
    seen = [name for name in PROXY_HEADER_NAMES if name in received]
    if seen and settings.proxy_headers.type == "none":
        return [
            PROXY_NONE.at(
                f"requests reach the service with {', '.join(seen)} while C2C__PROXY_HEADERS__TYPE is none: "
                "the application sees the proxy's address and scheme (wrong client addresses, http:// redirects)"
            )
        ]
    return []
