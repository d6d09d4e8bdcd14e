"""postgresql (session) and postgresql_database: a real PostgreSQL server."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from c2c_testing import PostgreSQLServer, ServerError

pytest_plugins = ["pytester"]


def _psql(dsn: str, sql: str) -> subprocess.CompletedProcess[str]:
    # The psql binary directly, with the DSN as a user would pass it (not the fixture's helper).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_accepts_a_password_connection(postgresql: PostgreSQLServer) -> None:
    result = _psql(postgresql.dsn, "select 1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    assert postgresql.psql("select current_user, current_database()").strip() == "c2c|c2c"


def test_urls(postgresql: PostgreSQLServer) -> None:
    expected = f"{postgresql.user}:{postgresql.password}@127.0.0.1:{postgresql.port}/{postgresql.database}"
    assert postgresql.dsn == f"postgresql://{expected}"
    assert postgresql.asyncpg_url == f"postgresql+asyncpg://{expected}"


def test_wrong_password_is_refused(postgresql: PostgreSQLServer) -> None:
    dsn = postgresql.dsn.replace(postgresql.password, "wrong")
    result = _psql(dsn, "select 1")
    assert result.returncode != 0
    assert "password authentication failed" in result.stderr


def test_listens_on_loopback_only(postgresql: PostgreSQLServer) -> None:
    assert postgresql.psql("show listen_addresses").strip() == "127.0.0.1"
    assert postgresql.psql("show fsync").strip() == "off"


def test_create_database(postgresql: PostgreSQLServer) -> None:
    dsn = postgresql.create_database("c2c_testing_created")
    try:
        assert dsn == postgresql.dsn_for("c2c_testing_created")
        result = _psql(dsn, "create table t (x int); insert into t values (42); select x from t")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "42"
    finally:
        postgresql.drop_database("c2c_testing_created")
    assert _psql(dsn, "select 1").returncode != 0


@pytest.mark.parametrize(
    "name", ["Upper", "semi;colon", 'quo"te', "", "x" * 64], ids=["upper", "semicolon", "quote", "empty", "too-long"]
)
def test_create_database_rejects_unsafe_names(postgresql: PostgreSQLServer, name: str) -> None:
    with pytest.raises(ValueError, match="invalid PostgreSQL name"):
        postgresql.create_database(name)


def test_sql_errors_raise(postgresql: PostgreSQLServer) -> None:
    with pytest.raises(ServerError, match="does_not_exist"):
        postgresql.psql("select * from does_not_exist")


@pytest.mark.parametrize("round_", [1, 2])
def test_postgresql_database_is_fresh_and_empty(postgresql_database: str, round_: int) -> None:
    # Run twice: the table created by the first round must not exist in the second one.
    tables = _psql(postgresql_database, "select count(*) from pg_tables where schemaname = 'public'")
    assert tables.stdout.strip() == "0", tables.stderr
    assert _psql(postgresql_database, "create table mine (x int)").returncode == 0
    assert postgresql_database.rsplit("/", 1)[1].startswith("test_")


def test_outage_stop_and_start(postgresql: PostgreSQLServer) -> None:
    postgresql.psql("create table if not exists survives (x int)", "insert into survives values (1)")
    port = postgresql.port
    postgresql.stop()
    assert not postgresql.is_running
    down = _psql(postgresql.dsn, "select 1")
    assert down.returncode != 0
    assert "Connection refused" in down.stderr
    postgresql.start()
    assert postgresql.port == port
    assert postgresql.psql("select count(*) > 0 from survives").strip() == "t"  # data kept
    postgresql.psql("drop table survives")


def test_left_stopped_by_a_test_is_started_again(pytester: pytest.Pytester) -> None:
    """A test that leaves the session server stopped: the plugin starts it again for the next one.

    Run in an inner session of its own, so that this test does not depend on the order of the others.
    """
    pytester.makepyfile(
        """
        def test_stops_it(postgresql):
            postgresql.stop()

        def test_finds_it_running(postgresql):
            assert postgresql.is_running
            assert postgresql.psql("select 1").strip() == "1"
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:asyncio", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_a_fresh_server_moves_off_a_port_taken_meanwhile() -> None:
    server = PostgreSQLServer(user="other", database="otherdb")
    taken = server.port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        with server:
            assert server.port != taken
            assert server.psql("select current_user, current_database()").strip() == "other|otherdb"
    assert not server.directory.exists()
    assert not server.is_running
