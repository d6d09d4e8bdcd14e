"""`PendingCookiesMiddleware`: the cookies the authentication code set or cleared reach the response.

`get_auth`, the access checks and the auth endpoints record every cookie they set or clear on the
request (`_sessions.pending_cookies`). FastAPI copies the dependency `Response`'s headers only onto
a response it builds itself: an endpoint returning its own `Response` (a page, a redirect, a file)
drops them, and so does a check that runs outside a dependency. This middleware appends, in the
`http.response.start` message, the Set-Cookie of every cookie the request changed that the response
does not already carry, so endpoints no longer call `apply_pending_cookies` (which stays, and is
never doubled: a cookie whose Set-Cookie is already in the response is left alone).

Pure ASGI: only the headers of `http.response.start` are edited, the body passes through unread;
`websocket` and `lifespan` scopes pass through.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from c2c_auth import _sessions

__all__ = ["PendingCookiesMiddleware"]

_SET_COOKIE = b"set-cookie"

CookieId = tuple[str, str | None]
"""A cookie as the browser tells it apart: name and path (our cookies set no domain)."""


def cookie_id(header: bytes) -> CookieId:
    """The name and `Path` of a Set-Cookie header value."""
    text = header.decode("latin-1")
    first, *attributes = text.split(";")
    path = None
    for attribute in attributes:
        key, _, value = attribute.strip().partition("=")
        if key.lower() == "path":
            path = value.strip()
    return first.split("=", 1)[0].strip(), path


def missing_cookies(pending: list[bytes], headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The Set-Cookie values of `pending` (in the order they were recorded) that `headers` lacks.

    Per cookie only the last change counts (a browser keeps the last Set-Cookie of a cookie). It is
    missing unless the response's last Set-Cookie of that cookie is exactly it. A Set-Cookie of the
    same cookie that the authentication code did not produce (the application set it itself) is the
    application's decision and wins.
    """
    ours = set(pending)
    last_change: dict[CookieId, bytes] = {cookie_id(value): value for value in pending}
    in_response: dict[CookieId, bytes] = {
        cookie_id(value): value for name, value in headers if name.lower() == _SET_COOKIE
    }
    missing = []
    for identity, value in last_change.items():
        present = in_response.get(identity)
        if present is None or (present != value and present in ours):
            missing.append(value)
    return missing


class PendingCookiesMiddleware:
    """Append the cookies the authentication code set or cleared during a request to its response.

    `app.add_middleware(c2c_auth.PendingCookiesMiddleware)` when the application is built (Starlette
    refuses middleware added once it has started). Installed twice (the application and a mounted
    sub-application), a cookie is still set once.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The state dict is shared by every copy of the scope the inner layers make; an inner layer
        # may also put a copy of the state in the scope (ArmorHeaderMiddleware does, to add the CSP
        # nonce): the cookies recorded there are read too.
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                pending = _sessions.pending_set_cookies(state)
                current = scope.get("state")
                if current is not state and isinstance(current, dict):
                    pending = [*pending, *_sessions.pending_set_cookies(current)]
                message = _with_cookies(message, pending)
            await send(message)

        await self.app(scope, receive, send_with_cookies)


def _with_cookies(message: Message, pending: list[bytes]) -> Message:
    if not pending:
        return message
    headers = list(message.get("headers", []))
    missing = missing_cookies(pending, headers)
    if not missing:
        return message
    return {**message, "headers": headers + [(_SET_COOKIE, value) for value in missing]}
