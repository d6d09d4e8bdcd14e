"""The probe command against the real endpoint, served over TCP on 127.0.0.1 (container HEALTHCHECK flow)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any

import pytest
from fastapi import FastAPI

from c2c_health import LIVENESS, READINESS, Check, Factory, Result, Wrong

MakeFactory = Callable[..., Factory]
MakeApp = Callable[..., FastAPI]


class Ok(Check):
    async def check(self) -> Result:
        return Result()


async def _serve_one(app: FastAPI, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A minimal HTTP/1.1 front for an ASGI app: one request per connection, no body."""
    method, target, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
    headers = []
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower().encode(), value.strip().encode()))
    path, _, query = target.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": writer.get_extra_info("peername")[:2],
        "server": writer.get_extra_info("sockname")[:2],
    }
    response: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response.append(f"HTTP/1.1 {message['status']} -\r\n".encode())
            response.extend(name + b": " + value + b"\r\n" for name, value in message.get("headers", []))
            response.append(b"Connection: close\r\n\r\n")
        elif message["type"] == "http.response.body":
            response.append(message.get("body", b""))

    await app(scope, receive, send)
    writer.write(b"".join(response))
    await writer.drain()
    writer.close()


@pytest.fixture
async def served(make_factory: MakeFactory, make_app: MakeApp) -> AsyncIterator[str]:
    factory = make_factory(timeout=2)
    factory.add(Ok(tags=[LIVENESS], name="process"))
    factory.add(Wrong(tags=[READINESS], name="database"))
    app = make_app(factory)
    server = await asyncio.start_server(lambda r, w: _serve_one(app, r, w), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


async def _probe(url: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "c2c_health", "--quiet", url, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_healthcheck_command_against_the_endpoint(served: str) -> None:
    assert await _probe(f"{served}/c2c/health_checks?tags={LIVENESS}") == (0, "")
    url = f"{served}/c2c/health_checks?tags={READINESS}"
    assert await _probe(url) == (1, f"unhealthy: {url} answered 500\n")
    assert await _probe(f"{served}/c2c/health?name=process") == (0, "")
