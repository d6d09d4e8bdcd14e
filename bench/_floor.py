"""What every in-process bench measures against: the bare app and the floor middleware.

Shared by `bench_headers.py` and `bench_request_id.py` (a script directory, not a package: each
script imports this module from its own directory). The floor is the least a pure-ASGI header
middleware can do: one ``send`` wrapper per request adding one static header; a middleware's
overhead is read as a multiple of the floor's.
"""

from __future__ import annotations

from c2c_headers.types import ASGIApp, Message, Receive, Scope, Send

APP_HEADERS = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"2")]
FLOOR_NAME = "floor (1 static header)"


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The application every stack wraps: an HTML response, two headers, a two-byte body."""
    await send({"type": "http.response.start", "status": 200, "headers": list(APP_HEADERS)})
    await send({"type": "http.response.body", "body": b"ok"})


class FloorMiddleware:
    """The floor: the least a pure-ASGI header middleware can do (one static header)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-floor", b"1")]
            await send(message)

        await self.app(scope, receive, send_wrapper)
