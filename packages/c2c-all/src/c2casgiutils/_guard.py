"""`BodyGuardMiddleware`: the `/c2c` sub-application's request bodies are bounded and read only after access is checked.

FastAPI reads and parses a request body before it runs the dependencies that check access, so
without this guard an anonymous caller could make a replica hold any body in memory before
getting its 403. This pure-ASGI middleware sits in front of the sub-application's routes:

1. A `Content-Length` above the limit is answered with 413 before anything is read (an invalid
   one with 400).
2. The first time the route asks for the body (FastAPI has chosen the route by then, and runs its
   dependencies only after the body), the guard runs the route's c2c-auth access dependency
   (`require_read_only_access`, `require_read_write_access`, `require_admin_access`,
   `auth_required`) itself, with the same `get_auth`: a caller without access gets the refusal the
   route would give (403, or 503 when GitHub cannot answer; same JSON `detail`, same cookies) and
   not one byte of the body is read. When the route's `get_auth` or access dependency is
   overridden (`dependency_overrides`), the route decides alone, as before.
3. The body is counted as it streams: past the limit the guard answers 413 and hands nothing more
   to the route (a chunked body is never held whole). After the response has started (a route
   that answered without reading its body), a body past the limit ends as a disconnect.
4. A response that starts before the request's body has been read to its end (a refusal above,
   or a route that ignores its body) says `Connection: close`: the client opens a new connection
   for its next request. granian (2.8) may otherwise close such a connection after a keep-alive
   answer, and a client that reuses it gets a disconnect instead of its next answer.

The refusals are raised as `HTTPException` from `receive`, which FastAPI passes on unchanged, so
the sub-application's own exception handlers write them (`{"detail": ...}`). The limit is
`C2C__TOOLS__MAX_BODY_SIZE` (64 KiB by default), read at each request, unless given to the
constructor. `websocket` and `lifespan` scopes pass through.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, Request, Response, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import c2c_auth

__all__ = ["BodyGuardMiddleware", "too_large_message"]

LOG = logging.getLogger(__name__)
ACCESS_CHECK_FAILED_MESSAGE = "The access check failed; try again later"


def too_large_message(limit: int) -> str:
    """The `detail` of the 413 answer."""
    return f"Request body too large: the /c2c application accepts at most {limit} bytes"


def _access_dependencies() -> dict[Callable[..., Any], bool]:
    """c2c-auth's access dependencies, and whether each takes the response (`auth_required` does not)."""
    return {
        c2c_auth.require_read_only_access: True,
        c2c_auth.require_read_write_access: True,
        c2c_auth.require_admin_access: True,
        c2c_auth.auth_required: False,
    }


def _declared_length(scope: Scope) -> int | None:
    """The `Content-Length` as an integer, None when absent; ValueError when it is not a length."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            if not text.isascii() or not text.isdigit():
                raise ValueError(text)
            return int(text)
    return None


def _chunked(scope: Scope) -> bool:
    """Whether the request announces a body without a length (`Transfer-Encoding`)."""
    return any(name.lower() == b"transfer-encoding" for name, _ in scope.get("headers", []))


def _find_requirements(dependant: Any, known: dict[Callable[..., Any], bool]) -> list[Callable[..., Any]]:
    """The c2c-auth access dependencies among a route's dependencies, in FastAPI's order (depth first:
    the route decorator's before the endpoint's parameters), each once (FastAPI calls it once)."""
    found: list[Callable[..., Any]] = []
    for sub in getattr(dependant, "dependencies", None) or []:
        call: Callable[..., Any] | None = getattr(sub, "call", None)
        if call is not None and call in known:
            if call not in found:
                found.append(call)
            continue
        found += [requirement for requirement in _find_requirements(sub, known) if requirement not in found]
    return found


def _overridden(scope: Scope, route: Any, calls: tuple[Callable[..., Any], ...]) -> bool:
    """Whether the application overrides one of `calls` (on the route's provider or the serving app)."""
    for provider in (getattr(route, "dependency_overrides_provider", None), scope.get("app")):
        overrides = getattr(provider, "dependency_overrides", None) or {}
        if any(call in overrides for call in calls):
            return True
    return False


async def _no_body() -> Message:
    raise RuntimeError("the /c2c body guard checks access without reading the body")


async def check_route_access(scope: Scope) -> None:
    """Run the access dependency of the route FastAPI chose (`scope["route"]`); raise its refusal.

    Does nothing for a route without such a dependency, or whose `get_auth` or access dependency
    is overridden by the application.
    """
    route = scope.get("route")
    known = _access_dependencies()
    requirements = _find_requirements(getattr(route, "dependant", None), known)
    if not requirements:
        return
    if _overridden(scope, route, (c2c_auth.get_auth, *requirements)):
        return  # the application decides who the caller is: the route checks, as before
    request = Request(scope, _no_body)
    response = Response()
    auth_info = await c2c_auth.get_auth(request, response)
    # In the route's order: the first refusal is the one FastAPI would give (0.14's tools router
    # checked read-only access before a write route's read-write check).
    for requirement in requirements:
        if known[requirement]:
            await requirement(auth_info, request, response)
        else:
            await requirement(auth_info, request)


class _GuardedReceive:
    """The `receive` the route gets: access checked at the first call, bytes counted."""

    def __init__(self, scope: Scope, receive: Receive, limit: int) -> None:
        self.scope = scope
        self.receive = receive
        self.limit = limit
        self.checked = False
        self.size = 0
        self.response_started = False
        self.body_complete = False

    async def __call__(self) -> Message:
        if not self.checked:
            self.checked = True
            try:
                await check_route_access(self.scope)
            except HTTPException:
                raise
            except Exception as error:
                # FastAPI would call anything else raised here "an error parsing the body" (400).
                LOG.exception("Access check before the body failed")
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, ACCESS_CHECK_FAILED_MESSAGE) from error
        if self.size > self.limit:
            return {"type": "http.disconnect"}
        message = await self.receive()
        if message["type"] == "http.request":
            self.body_complete = not message.get("more_body", False)
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                if self.response_started:
                    return {"type": "http.disconnect"}
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, too_large_message(self.limit))
        return message


async def _answer(send: Send, status_code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.append((b"connection", b"close"))  # the request's body is left unread (see the module's 4.)
    await send({"type": "http.response.start", "status": status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BodyGuardMiddleware:
    """Bound the request bodies of the `/c2c` sub-application and check access before reading them.

    `max_body_size`: the limit in bytes; None (the default) reads `C2C__TOOLS__MAX_BODY_SIZE` at
    each request. Refusals are JSON `{"detail": ...}`: 400 (invalid `Content-Length`), 413 (too
    large), and the route's own access refusal (403, 503). Add it inside the application's
    exception handling (`app.add_middleware`), so that the refusals it raises are answered.
    """

    def __init__(self, app: ASGIApp, max_body_size: int | None = None) -> None:
        self.app = app
        self.max_body_size = max_body_size

    def limit(self) -> int:
        """The limit in force now."""
        if self.max_body_size is not None:
            return self.max_body_size
        from c2casgiutils import config  # settings are read at call time

        return config.settings.tools.max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        try:
            declared = _declared_length(scope)
        except ValueError:
            await _answer(send, status.HTTP_400_BAD_REQUEST, "Invalid Content-Length header")
            return
        if declared is not None and declared > limit:
            await _answer(send, status.HTTP_413_CONTENT_TOO_LARGE, too_large_message(limit))
            return
        guarded = _GuardedReceive(scope, receive, limit)
        has_body = bool(declared) or (declared is None and _chunked(scope))

        async def watch_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                guarded.response_started = True
                if has_body and not guarded.body_complete:
                    message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, guarded, watch_send)
