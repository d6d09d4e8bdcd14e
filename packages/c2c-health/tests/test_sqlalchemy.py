"""The SQLAlchemy check on SQLite (aiosqlite, temp file) and PostgreSQL (asyncpg), real servers."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from c2c_health import GENERIC_ERROR, TIMEOUT_ERROR, Factory, SQLAlchemy
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
