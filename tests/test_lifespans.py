"""Several lifespans in one process: a 0.14 test suite's `with TestClient(app):` per test, with Redis.

Each `TestClient` runs the lifespan on an event loop of its own. Nothing bound to an earlier loop may
be reused (Redis clients, pub/sub, tasks, locks, the GitHub client), with or without
`c2casgiutils.shutdown()` in the lifespan (0.14's README lifespan only calls `startup`) or with
`c2casgiutils.lifespan.including(...)` around the application's own, and no
unclosed-connection warning (pytest's filterwarnings=error) or loop error may appear.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import c2casgiutils
from c2c_testing import RedisServer
from c2casgiutils import broadcast, config, health_checks

SECRET = "lifespan-test-secret-with-enough-length"
LOOP_ERRORS = ("Event loop is closed", "Task was destroyed", "was never awaited", "attached to a different loop")


@pytest.fixture
def redis_env(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> Iterator[RedisServer]:
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    monkeypatch.setenv("C2C__AUTH__SECRET", SECRET)
    config.reload()
    yield redis_server
    monkeypatch.delenv("C2C__REDIS__URL")
    monkeypatch.delenv("C2C__AUTH__SECRET")
    config.reload()


def _echo(message: str) -> dict[str, Any]:
    return {"echo": message}


def _make_app(kind: str) -> FastAPI:
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await c2casgiutils.startup(app)
        state["echo"] = await broadcast.decorate(_echo, channel="lifespan_echo", expect_answers=True, timeout=5)
        yield
        if kind == "with-shutdown":
            await c2casgiutils.shutdown()

    @contextlib.asynccontextmanager
    async def application_lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Inside c2casgiutils.lifespan: startup() has run, shutdown() runs after this ends.
        state["echo"] = await broadcast.decorate(_echo, channel="lifespan_echo", expect_answers=True, timeout=5)
        yield

    composed = c2casgiutils.lifespan.including(application_lifespan)
    app = FastAPI(lifespan=composed if kind == "c2casgiutils.lifespan" else lifespan)
    app.mount("/c2c", c2casgiutils.app)
    health_checks.FACTORY.add(health_checks.Redis(tags=["redis"]))

    @app.get("/echo")
    async def echo(message: str) -> list[Any]:
        answers = await state["echo"](message=message)
        return [answer.payload if isinstance(answer, broadcast.BroadcastResponse) else None for answer in answers]

    return app


@pytest.mark.parametrize("kind", ["with-shutdown", "startup-only", "c2casgiutils.lifespan"])
def test_ten_lifespans_with_redis(redis_env: RedisServer, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    app = _make_app(kind)
    with caplog.at_level(logging.WARNING):
        for number in range(10):
            with TestClient(app) as client:
                health = client.get("/c2c/health_checks", params={"tags": "redis"})
                assert health.status_code == 200, health.text
                assert client.get("/echo", params={"message": f"hi {number}"}).json() == [{"echo": f"hi {number}"}]
                level = client.post(
                    "/c2c/logging/level",
                    json={"name": "c2c_lifespan_test", "level": "DEBUG" if number % 2 else "INFO"},
                    headers={"X-API-Key": SECRET},
                )
                assert level.status_code == 200, level.text
                assert logging.getLogger("c2c_lifespan_test").level == (logging.DEBUG if number % 2 else logging.INFO)
            gc.collect()  # an unclosed client of this loop would warn here (filterwarnings=error)
    problems = [record.getMessage() for record in caplog.records if any(e in record.getMessage() for e in LOOP_ERRORS)]
    assert problems == []
    assert redis_env.command("GET", "c2c_logging_level_c2c_lifespan_test") == b"DEBUG"
    # Nothing of the ten loops is left connected: only this test's own command connection, if any.
    clients = redis_env.command("CLIENT", "LIST")
    assert isinstance(clients, bytes)
    assert len(clients.strip().splitlines()) <= 1, clients.decode()
