"""The Alembic check against a real migration directory generated in a temporary directory."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from c2c_health import Alembic, Factory

try:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    HAVE_ALEMBIC = True
except ModuleNotFoundError:
    HAVE_ALEMBIC = False

pytestmark = pytest.mark.skipif(not HAVE_ALEMBIC, reason="needs the alembic extra: c2c-health[alembic]")

MakeFactory = Callable[..., Factory]

ENV_PY = """
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
section = config.get_section(config.config_ini_section)
engine = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("table_{revision}", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("table_{revision}")
"""


class Migrations:
    """alembic.ini + env.py + versions/ in a temporary directory, on a SQLite file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.database = root / "app.sqlite"
        self.versions = root / "migrations" / "versions"
        self.versions.mkdir(parents=True)
        (root / "migrations" / "env.py").write_text(ENV_PY)
        self.ini = root / "alembic.ini"
        # %(here)s: the script location does not depend on the working directory.
        self.ini.write_text(
            f"[alembic]\nscript_location = %(here)s/migrations\nsqlalchemy.url = sqlite:///{self.database}\n"
        )

    def revision(self, revision: str, down: str | None) -> None:
        (self.versions / f"{revision}.py").write_text(textwrap.dedent(REVISION.format(revision=revision, down=down)))

    async def upgrade(self, target: str) -> None:
        await asyncio.to_thread(command.upgrade, Config(str(self.ini)), target)


@pytest.fixture
def migrations(tmp_path: Path) -> Migrations:
    migrations = Migrations(tmp_path)
    migrations.revision("a1", None)
    migrations.revision("a2", "a1")
    return migrations


@pytest.fixture
async def session(migrations: Migrations) -> AsyncIterator[Any]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{migrations.database}")
    yield async_sessionmaker(engine)
    await engine.dispose()


async def _outcome(factory: Factory) -> Any:
    (outcome,) = (await factory.run()).outcomes
    return outcome


async def test_behind_then_upgraded(make_factory: MakeFactory, migrations: Migrations, session: Any) -> None:
    factory = make_factory(timeout=10)
    factory.add(Alembic(session, str(migrations.ini), tags=["migrations"]))

    outcome = await _outcome(factory)  # empty database: no revision at all
    assert outcome.status_code == 500
    assert (outcome.payload["current"], outcome.payload["head"]) == (None, "a2")

    await migrations.upgrade("a1")
    outcome = await _outcome(factory)
    assert outcome.status_code == 500
    assert outcome.payload == {"error": "the database is not at the migration head(s)", "current": "a1", "head": "a2"}
    assert outcome.public_payload == {"error": "the database schema is not up to date"}

    await migrations.upgrade("head")
    outcome = await _outcome(factory)
    assert (outcome.status_code, outcome.payload) == (200, {"version": "a2", "head": "a2"})


async def test_branched_heads(make_factory: MakeFactory, migrations: Migrations, session: Any) -> None:
    migrations.revision("b1", "a2")
    migrations.revision("b2", "a2")
    factory = make_factory(timeout=10)
    factory.add(Alembic(Session=session, config_file=str(migrations.ini)))

    await migrations.upgrade("b1")  # one branch only
    outcome = await _outcome(factory)
    assert outcome.status_code == 500
    assert (outcome.payload["current"], outcome.payload["head"]) == ("b1", "b1,b2")

    await migrations.upgrade("heads")
    outcome = await _outcome(factory)
    assert (outcome.status_code, outcome.payload) == (200, {"version": "b1,b2", "head": "b1,b2"})


async def test_merged_heads(make_factory: MakeFactory, migrations: Migrations, session: Any) -> None:
    migrations.revision("b1", "a2")
    migrations.revision("b2", "a2")
    (migrations.versions / "m1.py").write_text(textwrap.dedent(REVISION.format(revision="m1", down=("b1", "b2"))))
    factory = make_factory(timeout=10)
    factory.add(Alembic(session, str(migrations.ini)))
    await migrations.upgrade("heads")
    outcome = await _outcome(factory)
    assert (outcome.status_code, outcome.payload) == (200, {"version": "m1", "head": "m1"})


async def test_script_directory_read_once_off_the_event_loop(
    make_factory: MakeFactory, migrations: Migrations, session: Any
) -> None:
    threads: list[int] = []

    class Recording(Alembic):
        def script_heads(self) -> tuple[str, ...]:
            threads.append(threading.get_ident())
            return super().script_heads()

    await migrations.upgrade("head")
    factory = make_factory(timeout=10)
    factory.add(Recording(session, str(migrations.ini)))
    assert (await _outcome(factory)).status_code == 200
    assert threads
    assert threading.get_ident() not in threads  # read in a worker thread
    # The scripts are gone, the check still knows the heads: they were read once.
    shutil.rmtree(migrations.versions)
    migrations.ini.unlink()
    outcome = await _outcome(factory)
    assert (outcome.status_code, outcome.payload) == (200, {"version": "a2", "head": "a2"})
    assert len(threads) == 1


async def test_missing_config_file_fails_clearly(make_factory: MakeFactory, tmp_path: Path, session: Any) -> None:
    factory = make_factory(timeout=10)
    factory.add(Alembic(session, str(tmp_path / "nope.ini")))
    outcome = await _outcome(factory)
    assert outcome.status_code == 500
    assert outcome.payload["error"].startswith("Alembic configuration file ")
    assert "nope.ini" in outcome.payload["error"]
