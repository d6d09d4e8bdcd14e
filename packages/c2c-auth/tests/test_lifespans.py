"""Several lifespans in one process: each event loop gets its own GitHub client, closed with the loop."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import types
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

import c2c_auth
from c2c_auth import _github, _shared


def _app(with_shutdown: bool) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await c2c_auth.startup(app)  # 0.14's README lifespan: startup only
        yield
        if with_shutdown:
            await c2c_auth.shutdown(app)

    app = FastAPI(lifespan=lifespan)
    app.include_router(c2c_auth.router, prefix="/c2c/auth")

    @app.get("/c2c/admin", dependencies=[Depends(c2c_auth.require_admin_access)])
    async def admin() -> dict[str, str]:
        return {"access": "admin"}

    return app


@pytest.mark.parametrize("with_shutdown", [True, False], ids=["with-shutdown", "startup-only"])
def test_ten_test_clients_in_a_row(
    github_mode: Any, fake_github: Any, caplog: pytest.LogCaptureFixture, h: types.ModuleType, with_shutdown: bool
) -> None:
    # No cache: every request of every lifespan really calls the fake GitHub with its loop's client.
    github_mode.set(C2C__AUTH__GITHUB__CACHE_TTL="0")
    token = fake_github.issue_token("carol")
    app = _app(with_shutdown)
    connections: list[set[int]] = []
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(10):
            start = len(fake_github.peers)
            with TestClient(app, base_url=h.APP_BASE) as client:
                for _ in range(2):
                    response = client.get("/c2c/admin", headers={"Authorization": f"Bearer {token}"})
                    assert response.status_code == 200, response.text
                assert client.get("/c2c/auth/status").json()["is_logged_in"] is False
            # The client port of each call to GitHub: one pooled connection per lifespan.
            connections.append(set(fake_github.peers[start:]))
        # Requests outside `with`: Starlette runs each in a loop of its own.
        outside = TestClient(app, base_url=h.APP_BASE)
        for _ in range(3):
            assert outside.get("/c2c/admin", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        gc.collect()
    assert fake_github.calls["repo"] == fake_github.calls["user"] == 23
    assert [len(ports) for ports in connections] == [1] * 10
    assert len(set().union(*connections)) == 10  # never a connection of an earlier loop
    assert _github.CLIENTS.peek() is None  # outside a loop: nothing was created apart from the loops
    problems = [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.WARNING
        or record.name.startswith("c2c_config")  # e.g. "closing the GitHub HTTP client was cancelled"
        or any(word in record.getMessage().lower() for word in ("event loop is closed", "unclosed", "never awaited"))
    ]
    assert problems == []
    assert "Event loop is closed" not in caplog.text


@pytest.mark.skipif(
    importlib.util.find_spec("redis") is not None,
    reason="needs an environment without the redis package: c2c-auth's isolation run without extras",
)
async def test_redis_configured_without_its_client_is_said(
    secret_mode: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis configured but `c2c-auth[redis]` not installed: logouts would reach no other replica.
    `startup()` refuses to start, as c2c-broadcast does; without it, the first use says so once."""
    secret_mode.set(C2C__REDIS__URL="redis://127.0.0.1:1/0")
    with pytest.raises(ModuleNotFoundError, match=r"install c2c-auth\[redis\]"):
        await c2c_auth.startup()
    monkeypatch.setattr(_shared, "_missing_redis_logged", False)
    with caplog.at_level(logging.ERROR, logger="c2c_auth"):
        assert _shared.redis_client() is None
        assert _shared.redis_client() is None
    assert [record.getMessage() for record in caplog.records] == [_shared.REDIS_NOT_INSTALLED_MESSAGE]
