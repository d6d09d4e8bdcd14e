"""`serve_asgi`: an ASGI application behind a real uvicorn, reached over real HTTP."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from c2c_testing import serve_asgi


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = f"{scope['method']} {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def test_serves_over_http_then_stops() -> None:
    before = {thread.name for thread in threading.enumerate()}
    with serve_asgi(_app, name="served-by-the-test") as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/hello", timeout=5) as answer:  # noqa: S310 - a loopback URL
            assert answer.read() == b"GET /hello"
        assert "served-by-the-test" in {thread.name for thread in threading.enumerate()}
    assert {thread.name for thread in threading.enumerate()} == before
    with pytest.raises(urllib.error.URLError), urllib.request.urlopen(f"{url}/hello", timeout=1):  # noqa: S310
        pass
