"""Small real ASGI apps and a direct caller (no mocks: the middleware runs exactly as under a server)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from c2c_headers.types import ASGIApp, Message, Receive, Scope, Send


def make_app(
    status: int = 200, headers: Sequence[tuple[bytes, bytes]] = ((b"content-type", b"text/plain"),), body: bytes = b"ok"
) -> ASGIApp:
    """An ASGI app answering every http request with ``status``, ``headers`` and ``body``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})

    return app


def http_scope(
    path: str = "/",
    method: str = "GET",
    host: str | None = "example.com",
    root_path: str = "",
    headers: Sequence[tuple[bytes, bytes]] = (),
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    scheme: str = "http",
    server: tuple[str, int | None] | None = ("127.0.0.1", 8000),
) -> dict[str, Any]:
    """A complete ``http`` scope as a server would build it."""
    all_headers = [(b"host", host.encode("latin-1"))] if host is not None else []
    all_headers.extend(headers)
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode("latin-1", "replace"),
        "query_string": b"",
        "root_path": root_path,
        "headers": all_headers,
        "client": client,
        "server": server,
    }


async def call(app: ASGIApp, scope: dict[str, Any]) -> list[Message]:
    """Call ``app`` once with ``scope``; return the messages it sent."""
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, make_receive(), send)
    return messages


def make_receive() -> Receive:
    """A ``receive`` as a server gives it: the (empty) request body, then wait until the client leaves."""
    sent = False
    disconnected = asyncio.Event()

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnected.wait()  # never set: the client stays connected until the response ends
        return {"type": "http.disconnect"}

    return receive


async def response_headers(app: ASGIApp, scope: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """The header list of the ``http.response.start`` message ``app`` sends for ``scope``."""
    messages = await call(app, scope)
    start = [message for message in messages if message["type"] == "http.response.start"]
    assert len(start) == 1
    return [(bytes(name), bytes(value)) for name, value in start[0]["headers"]]


def header_values(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Every value of header ``name`` (case-insensitive)."""
    return [value for key, value in headers if key.lower() == name.lower()]
