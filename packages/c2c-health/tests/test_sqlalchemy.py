"""The SQLAlchemy check on SQLite (aiosqlite, temp file) and PostgreSQL (asyncpg), real servers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from c2c_health import FACTORY, GENERIC_ERROR, TIMEOUT_ERROR, Factory, SQLAlchemy, create_router, router
from c2c_testing import PostgreSQLServer

try:
    from sqlalchemy import event, text
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    HAVE_SQLALCHEMY = True
except ModuleNotFoundError:
    HAVE_SQLALCHEMY = False

pytestmark = pytest.mark.skipif(not HAVE_SQLALCHEMY, reason="needs the sqlalchemy extra: c2c-health[sqlalchemy]")

MakeFactory = Callable[..., Factory]


@pytest.fixture
async def black_hole() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never answers (a hung database)."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_sqlite_healthy_and_counts_one_query(make_factory: MakeFactory, tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        factory = make_factory()
        factory.add(SQLAlchemy(Session=async_sessionmaker(engine), tags=["database"]))
        (outcome,) = (await factory.run()).outcomes
        assert (outcome.status_code, outcome.payload) == (200, {})
        assert statements == ["SELECT 1"]
    finally:
        await engine.dispose()


async def test_sqlite_unreadable_file_fails(make_factory: MakeFactory, tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'db.sqlite'}")
    try:
        factory = make_factory()
        factory.add(SQLAlchemy(async_sessionmaker(engine)))
        (outcome,) = (await factory.run()).outcomes
        assert outcome.status_code == 500
        assert "unable to open database file" in outcome.payload["error"]
        assert outcome.public_payload == {"error": GENERIC_ERROR}
    finally:
        await engine.dispose()


async def test_postgresql_healthy(make_factory: MakeFactory, postgresql: PostgreSQLServer) -> None:
    engine = create_async_engine(postgresql.asyncpg_url)
    try:
        factory = make_factory(timeout=10)
        factory.add(SQLAlchemy(async_sessionmaker(engine), name="pg"))
        (outcome,) = (await factory.run()).outcomes
        assert (outcome.name, outcome.status_code) == ("pg", 200)
    finally:
        await engine.dispose()


async def test_postgresql_wrong_password_fails_without_leaking(
    make_factory: MakeFactory, postgresql: PostgreSQLServer
) -> None:
    url = postgresql.asyncpg_url.replace(f":{postgresql.password}@", ":not-the-password@")
    engine = create_async_engine(url)
    try:
        factory = make_factory(timeout=10)
        factory.add(SQLAlchemy(async_sessionmaker(engine)))
        (outcome,) = (await factory.run()).outcomes
        assert outcome.status_code == 500
        assert "password authentication failed" in outcome.payload["error"]
        assert outcome.public_payload == {"error": GENERIC_ERROR}
    finally:
        await engine.dispose()


async def test_hung_database_times_out(make_factory: MakeFactory, black_hole: int) -> None:
    engine = create_async_engine(f"postgresql+asyncpg://user:secret@127.0.0.1:{black_hole}/db")
    try:
        factory = make_factory(timeout=0.5)
        factory.add(SQLAlchemy(async_sessionmaker(engine)))
        start = time.monotonic()
        (outcome,) = (await factory.run()).outcomes
        assert time.monotonic() - start < 5
        assert outcome.payload == {"error": TIMEOUT_ERROR, "timeout": 0.5}
        assert outcome.public_payload == {"error": TIMEOUT_ERROR}
    finally:
        await engine.dispose()


async def test_postgresql_stopped_fails_then_heals(make_factory: MakeFactory, postgresql: PostgreSQLServer) -> None:
    engine = create_async_engine(postgresql.asyncpg_url, pool_pre_ping=True)
    try:
        factory = make_factory(timeout=5)
        factory.add(SQLAlchemy(async_sessionmaker(engine)))
        assert (await factory.run()).outcomes[0].status_code == 200
        await asyncio.to_thread(postgresql.stop)
        outcome: Any = (await factory.run()).outcomes[0]
        assert outcome.status_code == 500
        assert outcome.payload["error"] != TIMEOUT_ERROR  # refused, not hung
        await asyncio.to_thread(postgresql.start)
        assert (await factory.run()).outcomes[0].status_code == 200
    finally:
        await engine.dispose()


async def test_frozen_postgresql_backend_times_out_then_heals(
    make_factory: MakeFactory, postgresql: PostgreSQLServer
) -> None:
    # One pooled connection whose server process is stopped (SIGSTOP): a query on an established
    # connection that never answers, the case c2casgiutils hung on forever.
    engine = create_async_engine(postgresql.asyncpg_url, pool_size=1, max_overflow=0)
    backend: int | None = None
    try:
        async with engine.connect() as connection:
            backend = int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        factory = make_factory(timeout=0.5)
        factory.add(SQLAlchemy(async_sessionmaker(engine)))
        os.kill(backend, signal.SIGSTOP)
        start = time.monotonic()
        (outcome,) = (await factory.run()).outcomes
        assert time.monotonic() - start < 5
        assert outcome.payload == {"error": TIMEOUT_ERROR, "timeout": 0.5}
        os.kill(backend, signal.SIGCONT)
        backend = None
        # Heals once the abandoned run has finished its cleanup (polled for at most 10 s).
        for _ in range(20):
            (outcome,) = (await factory.run()).outcomes
            if outcome.status_code == 200:
                break
            await asyncio.sleep(0.5)
        assert (outcome.status_code, outcome.payload) == (200, {})
    finally:
        if backend is not None:
            os.kill(backend, signal.SIGCONT)
        await engine.dispose()


# -- two databases: checks with the same name -----------------------------------------------------

GAUGE = "c2casgiutils_health_checks_failure"


def _sqlite(path: Path) -> Any:
    return create_async_engine(f"sqlite+aiosqlite:///{path}")


async def test_two_sqlite_databases_both_run_under_distinct_names(
    make_factory: MakeFactory, registry: CollectorRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = _sqlite(tmp_path / "one.sqlite")
    bad = _sqlite(tmp_path / "missing-dir" / "two.sqlite")  # cannot be opened: this check fails
    try:
        factory = make_factory(details="always")
        first = factory.add(SQLAlchemy(async_sessionmaker(good), tags=["database"]))
        with caplog.at_level(logging.WARNING, logger="c2c_health"):
            session_two = async_sessionmaker(bad)
            second = factory.add(SQLAlchemy(session_two, tags=["database"]))
        assert factory.registered == {"SQLAlchemy": first, "SQLAlchemy-2": second}
        (warning,) = [r for r in caplog.records if r.getMessage().startswith("Two health checks are named")]
        assert "'SQLAlchemy'" in warning.getMessage() and "'SQLAlchemy-2'" in warning.getMessage()

        app = FastAPI()
        app.include_router(create_router(factory), prefix="/c2c")
        with TestClient(app) as client:
            response = client.get("/c2c/health_checks")
            assert response.status_code == 500
            entities = {entity["name"]: entity for entity in response.json()["entities"]}
            assert list(entities) == ["SQLAlchemy", "SQLAlchemy-2"]
            assert entities["SQLAlchemy"]["status_code"] == 200
            assert entities["SQLAlchemy-2"]["status_code"] == 500
            assert "unable to open database file" in entities["SQLAlchemy-2"]["payload"]["error"]
            # The gauge has one label value per check.
            assert registry.get_sample_value(GAUGE, {"name": "SQLAlchemy"}) == 200
            assert registry.get_sample_value(GAUGE, {"name": "SQLAlchemy-2"}) == 500
            # The name filter matches exactly.
            only_first = client.get("/c2c/health_checks?name=SQLAlchemy")
            assert only_first.status_code == 200
            assert [e["name"] for e in only_first.json()["entities"]] == ["SQLAlchemy"]
            only_second = client.get("/c2c/health_checks?name=SQLAlchemy-2")
            assert only_second.status_code == 500
            assert [e["name"] for e in only_second.json()["entities"]] == ["SQLAlchemy-2"]
            both = client.get("/c2c/health_checks?name=SQLAlchemy,SQLAlchemy-2")
            assert [e["name"] for e in both.json()["entities"]] == ["SQLAlchemy", "SQLAlchemy-2"]

        # Adding them again (same objects, or equal ones: same sessionmaker and tags) changes nothing.
        factory.add(first)
        factory.add(second)
        factory.add(SQLAlchemy(session_two, tags=["database"]))
        assert list(factory.registered) == ["SQLAlchemy", "SQLAlchemy-2"]
        assert factory.registered["SQLAlchemy"] is first
    finally:
        await good.dispose()
        await bad.dispose()


@pytest.fixture
def global_factory() -> Iterator[Factory]:
    """The process-wide FACTORY, emptied for the test and restored afterwards."""
    saved = dict(FACTORY._entries)
    settings = FACTORY.settings
    FACTORY.clear()
    try:
        yield FACTORY
    finally:
        FACTORY.clear()
        FACTORY._entries.update(saved)
        FACTORY.settings = settings


def test_lifespan_registering_two_databases_in_many_test_clients(
    global_factory: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The 0.14 pattern: a lifespan that builds its engines and checks, a TestClient per test."""
    disposed: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        one, two = _sqlite(tmp_path / "one.sqlite"), _sqlite(tmp_path / "two.sqlite")
        FACTORY.add(SQLAlchemy(async_sessionmaker(one), tags=["database", "all"]))
        FACTORY.add(SQLAlchemy(async_sessionmaker(two), tags=["database", "all"]))
        yield
        await one.dispose()
        await two.dispose()
        disposed.append("both")

    app = FastAPI(lifespan=lifespan)
    app.include_router(router, prefix="/c2c")
    with caplog.at_level(logging.WARNING, logger="c2c_health"):
        for _ in range(5):
            with TestClient(app) as client:
                response = client.get("/c2c/health_checks?tags=database")
                assert response.status_code == 200, response.json()
                assert [e["name"] for e in response.json()["entities"]] == ["SQLAlchemy", "SQLAlchemy-2"]
                second = client.get("/c2c/health_checks?name=SQLAlchemy-2")
                assert [e["name"] for e in second.json()["entities"]] == ["SQLAlchemy-2"]
    assert disposed == ["both"] * 5
    # The checks of each earlier run were replaced, never piled up: two checks, the last run's.
    assert list(FACTORY.registered) == ["SQLAlchemy", "SQLAlchemy-2"]
    warnings = [r for r in caplog.records if r.getMessage().startswith("Two health checks are named")]
    assert len(warnings) == 1  # at the first startup only
