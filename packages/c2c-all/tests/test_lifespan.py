"""`c2casgiutils.lifespan`: `FastAPI(lifespan=c2casgiutils.lifespan)`, alone or `.including(...)` the application's."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

import c2c_broadcast
import c2casgiutils
from c2casgiutils import config


@pytest.fixture(autouse=True)
def _no_c2c_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    config.reload()
    yield
    config.reload()


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What ran, in order: the toolkit's startup and shutdown (the real ones, recorded) and the tests' lifespans."""
    happened: list[str] = []
    real_startup, real_shutdown = c2casgiutils.startup, c2casgiutils.shutdown

    async def startup(app: Any = None) -> None:
        happened.append("startup")
        await real_startup(app)

    async def shutdown() -> None:
        happened.append("shutdown")
        await real_shutdown()

    monkeypatch.setattr(c2casgiutils, "startup", startup)
    monkeypatch.setattr(c2casgiutils, "shutdown", shutdown)
    return happened


def _echo(message: str) -> dict[str, str]:
    return {"echo": message}


async def _fail(message: str) -> None:
    raise RuntimeError(message)


async def _answers(echo: Any, message: str) -> list[Any]:
    answers = await echo(message=message)
    return [getattr(answer, "payload", answer) for answer in answers]


def recording(events: list[str], name: str, state: dict[str, Any] | None = None) -> Any:
    """A lifespan of the application that records its start and stop and checks the toolkit is up for both."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any] | None]:
        # The toolkit is up while the application starts and still up while it stops: broadcast works.
        echo = await c2c_broadcast.decorate(_echo, channel=f"lifespan_{name}", expect_answers=True, timeout=5)
        assert await _answers(echo, "start") == [{"echo": "start"}]
        events.append(f"{name} start")
        yield state
        assert await _answers(echo, "stop") == [{"echo": "stop"}]
        events.append(f"{name} stop")

    lifespan.__qualname__ = name
    return lifespan


def test_alone(events: list[str]) -> None:
    app = FastAPI(lifespan=c2casgiutils.lifespan)
    app.mount("/c2c", c2casgiutils.app)
    with TestClient(app) as client:
        assert events == ["startup"]
        assert client.get("/c2c/health_checks").status_code == 200
    assert events == ["startup", "shutdown"]


def test_several_in_a_row(events: list[str]) -> None:
    app = FastAPI(lifespan=c2casgiutils.lifespan.including(recording(events, "application")))
    app.mount("/c2c", c2casgiutils.app)
    for _ in range(5):
        with TestClient(app) as client:
            assert client.get("/c2c/health_checks").status_code == 200
    assert events == ["startup", "application start", "application stop", "shutdown"] * 5


def test_including_nests_and_merges_the_state(events: list[str]) -> None:
    first = recording(events, "first", {"database": "db", "shared": 1})
    stateless = recording(events, "stateless")
    second = recording(events, "second", {"shared": 2})
    app = FastAPI(lifespan=c2casgiutils.lifespan.including(first, stateless).including(second))

    @app.get("/state")
    async def state(request: Request) -> dict[str, Any]:
        return {"database": request.state.database, "shared": request.state.shared}

    with TestClient(app) as client:
        assert client.get("/state").json() == {"database": "db", "shared": 2}  # a later lifespan wins
    assert events == [
        "startup",
        "first start",
        "stateless start",
        "second start",
        "second stop",
        "stateless stop",
        "first stop",
        "shutdown",
    ]


async def test_no_state_yields_none(events: list[str]) -> None:
    # A server without lifespan state support still runs a lifespan that yields None.
    async with c2casgiutils.lifespan(FastAPI()) as state:
        assert state is None
    async with c2casgiutils.lifespan.including(recording(events, "stateless"))(FastAPI()) as state:
        assert state is None
    async with c2casgiutils.lifespan.including(recording(events, "stateful", {"a": 1}))(FastAPI()) as state:
        assert state == {"a": 1}


def test_shutdown_runs_when_the_application_fails_to_start(events: list[str]) -> None:
    @contextlib.asynccontextmanager
    async def failing(app: FastAPI) -> AsyncIterator[None]:
        await _fail("database unreachable")
        yield

    app = FastAPI(lifespan=c2casgiutils.lifespan.including(recording(events, "before"), failing))
    with pytest.raises(RuntimeError, match="database unreachable"), TestClient(app):
        pass
    # "before" is exited with the error (its code after `yield` does not run, as for any
    # @asynccontextmanager without try/finally), then the toolkit shuts down.
    assert events == ["startup", "before start", "shutdown"]


def test_shutdown_runs_when_the_application_fails_to_stop(events: list[str]) -> None:
    @contextlib.asynccontextmanager
    async def failing(app: FastAPI) -> AsyncIterator[None]:
        yield
        raise RuntimeError("flush failed")

    app = FastAPI(lifespan=c2casgiutils.lifespan.including(failing))
    with pytest.raises(RuntimeError, match="flush failed"), TestClient(app):
        pass
    assert events == ["startup", "shutdown"]


def test_a_generator_function_is_refused() -> None:
    async def undecorated(app: FastAPI) -> AsyncIterator[None]:
        yield

    with pytest.raises(TypeError, match="asynccontextmanager"):
        c2casgiutils.lifespan.including(undecorated)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a function of the application"):
        c2casgiutils.lifespan.including("not a lifespan")  # type: ignore[arg-type]


def test_the_same_object_and_a_readable_repr(events: list[str]) -> None:
    assert c2casgiutils.lifespan is c2casgiutils.lifespan
    assert repr(c2casgiutils.lifespan) == "c2casgiutils.lifespan"
    composed = c2casgiutils.lifespan.including(recording(events, "application"))
    assert repr(composed) == "c2casgiutils.lifespan.including(application)"
    assert repr(c2casgiutils.lifespan) == "c2casgiutils.lifespan"  # including() builds a new one
    assert "lifespan" in c2casgiutils.__all__


def test_reaching_it_stays_cheap() -> None:
    code = (
        "import sys, c2casgiutils\n"
        "c2casgiutils.lifespan.including\n"
        "print([m for m in ('fastapi', 'c2c_auth', 'c2c_broadcast') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
