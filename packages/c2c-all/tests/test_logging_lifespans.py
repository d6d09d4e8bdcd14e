"""The logging tool across several lifespans in one process (a `TestClient` per test, each its own event loop).

With a real redis-server: ten `with TestClient(app):` in a row, with and without
`c2casgiutils.shutdown()` in the lifespan (0.14's README lifespan only calls `startup`). Each
lifespan gets its own subscription, sync task and Redis clients; those of a lifespan are stopped
when its loop ends; no warning, no "Event loop is closed", no task of an earlier loop; a level set
in the 5th lifespan is applied, stored, and still applied in the later ones.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import c2casgiutils
from c2c_testing import RedisServer
from c2casgiutils import config
from c2casgiutils._app import create_app
from c2casgiutils.tools import logging_ as logging_tool

SECRET = "lifespan-test-secret"
KEY = {"X-API-Key": SECRET}
PREFIX = "c2c_logging_level_"
LOGGER = "c2c_lifespan_test"
BAD_WORDS = (
    "Event loop is closed",
    "never retrieved",
    "was destroyed but it is pending",
    "attached to a different loop",
)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("C2C__AUTH__SECRET", SECRET)
    monkeypatch.setenv("C2C__TOOLS__LOGGING__SYNC_INTERVAL", "1")
    logging_tool._TOOL = None  # a fresh tool: the process state of earlier tests does not leak in
    yield monkeypatch
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    config.reload()
    logging_tool._TOOL = None
    logging.getLogger(LOGGER).setLevel(logging.NOTSET)


def _application(with_shutdown: bool, seen: list[dict[str, Any]]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await c2casgiutils.startup(app)
        yield
        if with_shutdown:
            await c2casgiutils.shutdown()

    app = FastAPI(lifespan=lifespan)
    app.mount("/c2c", create_app())

    @app.get("/probe")
    async def probe() -> dict[str, Any]:
        """What the logging tool holds in this loop (read inside the loop, as the application sees it)."""
        loop = asyncio.get_running_loop()
        parts = logging_tool.get_tool()._loops.peek()
        assert parts is not None, "the logging tool did not start in this loop"
        task = parts.sync_task
        seen.append({"loop": loop, "task": task})
        return {
            "subscribed": parts.broadcast is not None,
            "task_running": task is not None and not task.done(),
            "task_of_this_loop": task is not None and task.get_loop() is loop,
            "other_loop_tasks": [t.get_name() for t in asyncio.all_tasks() if t.get_loop() is not loop],
        }

    return app


def _check_no_leftovers(seen: list[dict[str, Any]]) -> None:
    for entry in seen:
        assert entry["loop"].is_closed()
        task = entry["task"]
        assert task is None or task.done(), f"a sync task of an ended loop still runs: {task}"


@pytest.mark.parametrize("with_shutdown", [True, False], ids=["with-shutdown", "startup-only"])
def test_ten_lifespans_with_redis(
    environment: pytest.MonkeyPatch,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    with_shutdown: bool,
) -> None:
    environment.setenv("C2C__REDIS__URL", redis_server.url)
    config.reload()
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.WARNING)
    seen: list[dict[str, Any]] = []
    app = _application(with_shutdown, seen)
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for number in range(1, 11):
            with TestClient(app) as client:
                probe = client.get("/probe").json()
                assert probe == {
                    "subscribed": True,
                    "task_running": True,
                    "task_of_this_loop": True,
                    "other_loop_tasks": [],
                }, number
                if number == 5:
                    response = client.post(
                        "/c2c/logging/level?replicas=true", json={"name": LOGGER, "level": "DEBUG"}, headers=KEY
                    )
                    assert response.status_code == 200, response.text
                    body = response.json()
                    assert body["level"] == "DEBUG"
                    # The broadcast went through Redis and came back to this process's subscription.
                    assert [(r["pid"], r["payload"]["level"]) for r in body["replicas"]] == [(os.getpid(), "DEBUG")]
                    assert logger.level == logging.DEBUG
                    assert redis_server.command("GET", PREFIX + LOGGER) == b"DEBUG"
                overrides = client.get("/c2c/logging/overrides", headers=KEY)
                assert overrides.status_code == 200, overrides.text
                expected = [{"name": LOGGER, "level": "DEBUG"}] if number >= 5 else []
                assert overrides.json()["overrides"] == expected, number
                level = client.get("/c2c/logging/level", params={"name": LOGGER}, headers=KEY).json()
                assert level["level"] == ("DEBUG" if number >= 5 else "WARNING"), number
            _check_no_leftovers(seen)
        gc.collect()
    assert [str(w.message) for w in caught] == []
    assert logger.level == logging.DEBUG
    assert redis_server.command("GET", PREFIX + LOGGER) == b"DEBUG"
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    problems += [r.getMessage() for r in caplog.records if any(word in r.getMessage() for word in BAD_WORDS)]
    assert problems == []


def test_a_timed_override_reverts_in_a_later_lifespan(environment: pytest.MonkeyPatch) -> None:
    """Without Redis: a level set for 1 s in one lifespan reverts in the next, whose loop arms the revert."""
    config.reload()
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.ERROR)
    app = _application(False, [])
    with TestClient(app) as client:
        response = client.post("/c2c/logging/level", json={"name": LOGGER, "level": "INFO", "duration": 1}, headers=KEY)
        assert response.status_code == 200, response.text
        assert logger.level == logging.INFO
    with TestClient(app) as client:
        deadline = time.monotonic() + 5
        while logger.level != logging.ERROR and time.monotonic() < deadline:
            time.sleep(0.05)
        assert logger.level == logging.ERROR
        assert client.get("/c2c/logging/overrides", headers=KEY).json() == {"overrides": []}


async def test_worker_startup_with_none() -> None:
    """A 0.14 worker without an application: `await tools.logging_.startup(None)`."""
    config.reload()
    logging_tool._TOOL = None
    await c2casgiutils.tools.logging_.startup(None)
    await c2casgiutils.tools.startup(None)
    try:
        assert logging_tool.get_tool()._loops.peek() is not None
    finally:
        await logging_tool.shutdown()
        logging_tool._TOOL = None
