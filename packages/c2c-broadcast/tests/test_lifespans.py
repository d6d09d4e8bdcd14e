"""Several event loops in one process: a `with TestClient(app):` per test, as a test suite does.

Each `TestClient` runs the lifespan on an event loop of its own. The broadcaster of a loop (its
pub/sub connections, tasks, events) must never be reused by a later loop, must be closed on its own
loop when that loop ends (with or without `shutdown()` in the lifespan: c2casgiutils 0.14's lifespan
only calls `startup`), and must leave no warning (filterwarnings=error), no loop error and no
registry entry behind.
"""

# mypy: disallow-untyped-calls=False

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import c2c_broadcast
from c2c_broadcast import BroadcastResponse, Settings
from c2c_config import reload_settings
from c2c_testing import RedisServer

try:
    import redis  # noqa: F401
except ModuleNotFoundError:  # the suite also runs without the extra
    HAS_REDIS = False
else:
    HAS_REDIS = True

HOST = socket.gethostname()
PID = os.getpid()
LOOP_ERRORS = (
    "Event loop is closed",
    "Task was destroyed",
    "was never awaited",
    "attached to a different loop",
    "bound to a different event loop",
    "Unclosed",
    "unclosed",
)
FAST = {"C2C__BROADCAST__HEARTBEAT_INTERVAL": "0.5", "C2C__BROADCAST__REPLICA_TTL": "30"}


def _make_app(stop: str) -> tuple[FastAPI, dict[str, Any]]:
    """An app whose lifespan starts the broadcaster and decorates a handler that names its lifespan."""
    state: dict[str, Any] = {"number": 0, "broadcasters": []}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await c2c_broadcast.startup(app)
        number = state["number"]

        async def which(*, text: str) -> dict[str, Any]:
            return {"lifespan": number, "text": text}

        state["call"] = await c2c_broadcast.decorate(which, channel="which", expect_answers=True, timeout=5)
        state["broadcasters"].append(c2c_broadcast.get_broadcaster())
        yield
        if stop == "shutdown":
            await c2c_broadcast.shutdown()

    app = FastAPI(lifespan=lifespan)

    @app.get("/which")
    async def which_endpoint(text: str) -> list[Any]:
        answers = await state["call"](text=text)
        return [a.payload if isinstance(a, BroadcastResponse) else repr(a) for a in answers]

    @app.get("/status")
    async def status_endpoint() -> dict[str, Any]:
        status = c2c_broadcast.status()
        return {"kind": status.kind, "healthy": status.healthy, "replica": status.replica_id}

    return app, state


@pytest.fixture
def redis_env(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> Iterator[RedisServer]:
    for name, value in {"C2C__REDIS__URL": redis_server.url, **FAST}.items():
        monkeypatch.setenv(name, value)
    reload_settings(Settings)
    yield redis_server
    for name in ("C2C__REDIS__URL", *FAST):
        monkeypatch.delenv(name)
    reload_settings(Settings)


def _loop_problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if any(error in record.getMessage() for error in LOOP_ERRORS)
        or (record.name == "asyncio" and record.levelno >= logging.ERROR)
        or "did not stop" in record.getMessage()
    ]


@pytest.mark.skipif(not HAS_REDIS, reason="needs the redis extra: c2c-broadcast[redis]")
@pytest.mark.parametrize("stop", ["shutdown", "nothing"], ids=["with-shutdown", "startup-only"])
def test_ten_lifespans_with_redis(redis_env: RedisServer, stop: str, caplog: pytest.LogCaptureFixture) -> None:
    app, state = _make_app(stop)
    caplog.set_level(logging.INFO)
    for number in range(10):
        state["number"] = number
        with TestClient(app) as client:
            status = client.get("/status").json()
            assert (status["kind"], status["healthy"]) == ("redis", True)
            # This lifespan's handler answers, once: no answer, and no MissingAnswer, from an earlier loop.
            assert client.get("/which", params={"text": f"t{number}"}).json() == [
                {"lifespan": number, "text": f"t{number}"}
            ]
            assert redis_env.command("ZCARD", "broadcast_api_c2c_registry:which") == 1
        # The loop's end closed its broadcaster on that loop and left the registry.
        assert state["broadcasters"][-1].status().state == "stopped"
        assert redis_env.command("ZCARD", "broadcast_api_c2c_registry:which") == 0
        gc.collect()  # an unclosed connection of that loop would warn here (filterwarnings=error)
    broadcasters = state["broadcasters"]
    assert len({id(b) for b in broadcasters}) == len({b.replica_id for b in broadcasters}) == 10
    assert _loop_problems(caplog) == []
    assert caplog.text.count("Broadcast through Redis") == 10
    # Nothing of the ten loops is left connected to Redis.
    clients = redis_env.command("CLIENT", "LIST")
    assert isinstance(clients, bytes)
    assert len(clients.strip().splitlines()) <= 1, clients.decode()


@pytest.mark.skipif(not HAS_REDIS, reason="needs the redis extra: c2c-broadcast[redis]")
def test_a_loop_without_lifespan_gets_its_own_started_broadcaster(
    redis_env: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """After a lifespan, `TestClient(app)` without `with` runs each request on a new loop: it still broadcasts."""
    app, state = _make_app("nothing")
    with TestClient(app) as client:
        assert client.get("/which", params={"text": "in"}).json() == [{"lifespan": 0, "text": "in"}]
    client = TestClient(app)  # no lifespan: every request has a loop of its own
    for text in ("a", "b"):
        # The subscription belongs to the process; this loop's broadcaster starts on first use.
        assert client.get("/which", params={"text": text}).json() == [{"lifespan": 0, "text": text}]
        assert redis_env.command("ZCARD", "broadcast_api_c2c_registry:which") == 0
    gc.collect()
    assert _loop_problems(caplog) == []
    assert "used before startup" not in caplog.text
    clients = redis_env.command("CLIENT", "LIST")
    assert isinstance(clients, bytes)
    assert len(clients.strip().splitlines()) <= 1, clients.decode()


@pytest.mark.parametrize("stop", ["shutdown", "nothing"], ids=["with-shutdown", "startup-only"])
def test_ten_lifespans_local(stop: str, caplog: pytest.LogCaptureFixture) -> None:
    app, state = _make_app(stop)
    for number in range(10):
        state["number"] = number
        with TestClient(app) as client:
            assert client.get("/status").json()["kind"] == "local"
            assert client.get("/which", params={"text": "x"}).json() == [{"lifespan": number, "text": "x"}]
        assert state["broadcasters"][-1].status().state == "stopped"
        gc.collect()
    assert len({b.replica_id for b in state["broadcasters"]}) == 10
    assert _loop_problems(caplog) == []
