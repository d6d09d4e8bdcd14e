"""The plugin as pytest sees it: missing binaries, teardown after failures, header, markers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from c2c_testing._binaries import POSTGRESQL_BIN_DIRS_ENV

pytest_plugins = ["pytester"]
# The inner runs have no configuration file: keep pytest-asyncio out of them (it would warn).
INNER = ("-p", "no:asyncio")


@pytest.fixture
def no_binaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide every server binary: an empty PATH and an empty PostgreSQL search directory."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv(POSTGRESQL_BIN_DIRS_ENV, str(empty))


@pytest.mark.usefixtures("no_binaries")
@pytest.mark.parametrize(
    ("fixture", "binary"),
    [
        ("redis_server", "redis-server"),
        ("redis_sentinel", "redis-server"),
        ("postgresql", "initdb"),
        ("postgresql_database", "initdb"),
    ],
)
def test_missing_binary_is_an_error_not_a_skip(pytester: pytest.Pytester, fixture: str, binary: str) -> None:
    pytester.makepyfile(f"def test_uses_it({fixture}):\n    pass\n")
    result = pytester.runpytest_inprocess(*INNER, "-rA")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*`{binary}` was not found*",
            "*Install the test services with `bash scripts/install-services.sh`*",
            "*apt-get install -y --no-install-recommends redis-server redis-sentinel postgresql*",
        ]
    )
    output = result.stdout.str()
    assert "skipped" not in output.lower()
    assert "During handling" not in output  # reported once, not chained to a copy of itself


@pytest.mark.usefixtures("no_binaries")
def test_missing_binaries_in_the_report_header(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess(*INNER, "--co")
    result.stdout.fnmatch_lines(
        ["c2c-testing: redis-server NOT FOUND*install-services.sh*", "c2c-testing: PostgreSQL NOT FOUND*"]
    )


def test_report_header_shows_versions(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess(*INNER, "--co")
    result.stdout.fnmatch_lines(["c2c-testing: Redis server v=*redis-server)", "c2c-testing: postgres (PostgreSQL) *"])


def test_servers_are_stopped_after_a_failing_test(pytester: pytest.Pytester) -> None:
    pids = pytester.path / "pids"
    pytester.makepyfile(
        f"""
        from pathlib import Path

        def test_fails(redis_server, redis_sentinel):
            servers = [redis_server, redis_sentinel.master, redis_sentinel.replica, *redis_sentinel.sentinel_servers]
            Path({str(pids)!r}).write_text("\\n".join(f"{{s.pid}} {{s.directory}}" for s in servers))
            raise AssertionError("boom")
        """
    )
    result = pytester.runpytest_inprocess(*INNER)
    result.assert_outcomes(failed=1)
    started = [line.split(" ", 1) for line in pids.read_text().splitlines()]
    assert len(started) == 4
    for pid, directory in started:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
        assert not Path(directory).exists()


def test_tests_are_marked_by_the_servers_they_use(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_plain():
            pass

        def test_redis(redis_server_factory):
            pass

        def test_pg(postgresql_database):
            pass
        """
    )
    result = pytester.runpytest_inprocess(*INNER, "--co", "-q", "-m", "not redis and not postgresql")
    result.stdout.fnmatch_lines(["*test_plain*", "*1/3 tests collected (2 deselected)*"])


def test_sigterm_tears_the_servers_down(pytester: pytest.Pytester) -> None:
    """A run stopped by SIGTERM (a CI timeout, scripts/test stopping its second lane) leaves no server."""
    started = pytester.path / "started"
    pytester.makepyfile(
        f"""
        import os, time
        from pathlib import Path

        def test_waits(redis_server):
            Path({str(started)!r}).write_text(str(redis_server.pid))
            time.sleep(120)
        """
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", *INNER, "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not started.exists() or not started.read_text():
            assert run.poll() is None, run.communicate()[0].decode()
            assert time.monotonic() < deadline, "the inner test did not start its server"
            time.sleep(0.05)
        server_pid = int(started.read_text())
        run.send_signal(signal.SIGTERM)
        output = run.communicate(timeout=30)[0].decode()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert "stopped by signal SIGTERM" in output, output
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
