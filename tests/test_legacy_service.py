"""A c2casgiutils 0.14 service and its own test suite, run unchanged against c2c-all and against 0.14.

`legacy_service/` is a tile service written against 0.14's documented API only, with its own
pytest configuration (see its README). Its suite runs in a subprocess, from the service's
directory as its CI would, with a real Redis:

- against c2c-all (this workspace's environment): every test passes, with unclosed resources and
  un-awaited coroutines turned into errors (`-W error::...`: several lifespans in one process leave
  nothing behind);
- against c2casgiutils 0.14.0 from PyPI (the `c2casgiutils_014_python` environment, `slow`): the
  suite is a genuine 0.14 one; it passes except the tests listed in `FAILING_ON_0_14`, which fail
  because of 0.14 itself, and must keep failing there (so the list stays true).
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from c2c_testing import RedisServer

SERVICE_DIR = Path(__file__).parent / "legacy_service" / "tile-service"
SUITE_TIMEOUT = 900

# What 0.14 gets wrong in this suite. Each test passes on 0.14 when its TestClient is the first
# lifespan of the process: 0.14 keeps the broadcaster of the first event loop (its pub/sub reader
# task died with that loop), so from the second `with TestClient(app):` on, every broadcast with
# answers waits its full timeout (10 s) and gets a MissingAnswer instead of this replica's answer.
FAILING_ON_0_14 = {
    "tests/test_broadcast.py::test_purge_reaches_every_replica": "the purge gets MissingAnswer (second lifespan)",
    "tests/test_broadcast.py::test_purge_needs_push_access": "the purge gets MissingAnswer (second lifespan)",
    "tests/test_lifespan.py::test_started_again_and_again": "the purge gets MissingAnswer from round 1 on",
    "tests/test_redis.py::test_logging_levels_from_the_console": (
        "the level change is broadcast to the dead reader only: the local level stays NOTSET"
    ),
}
# The smallest number of tests the suite has: a suite that lost its tests must not pass silently.
MINIMUM_TESTS = 25


@dataclass(frozen=True)
class SuiteRun:
    """The outcome of one run of the service's suite."""

    returncode: int
    output: str
    outcomes: dict[str, str]  # test id (tests/test_x.py::name) -> passed, failed, error, skipped

    def with_outcome(self, outcome: str) -> set[str]:
        return {test for test, result in self.outcomes.items() if result == outcome}

    def report(self) -> str:
        lines = [f"{result:8} {test}" for test, result in sorted(self.outcomes.items())]
        return "\n".join([*lines, "", "--- output of the suite ---", self.output])


def _outcomes(junit: Path) -> dict[str, str]:
    if not junit.exists():
        return {}
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own subprocess's report
        module = case.get("classname", "").replace(".", "/")
        test = f"{module}.py::{case.get('name', '')}"
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = "failed" if tag == "failure" else tag
                break
        # An error in teardown after a failure: the test counts as failed.
        if outcomes.get(test) == "failed" and outcome == "error":
            continue
        outcomes[test] = outcome
    return outcomes


def _as_text(output: object) -> str:
    # TimeoutExpired keeps what was read so far: bytes, even with text=True, on some Pythons.
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return "" if output is None else str(output)


def run_service_suite(python: Path | str, redis: RedisServer, tmp_path: Path, *extra: str) -> SuiteRun:
    """Run the service's suite with `python` (from the service's directory) against `redis`."""
    junit = tmp_path / "legacy-service-junit.xml"
    # The service's environment only: nothing of the outer run's configuration leaks in (the header
    # engine choice, C2C_HEADERS_ENGINE, is kept: the python-engine CI run applies to the service too).
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("C2C__", "TILESERVICE__", "PYTEST_", "VIRTUAL_ENV"))
    }
    env["C2C__REDIS__URL"] = redis.url
    command = [
        str(python),
        "-m",
        "pytest",
        "tests",
        "-p",
        "no:cacheprovider",
        # The workspace's own plugin stays out: the service knows nothing of it.
        "-p",
        "no:c2c_testing",
        f"--junit-xml={junit}",
        "-o",
        "junit_family=xunit2",
        *extra,
    ]
    try:
        completed = subprocess.run(
            command,
            cwd=SERVICE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SUITE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        output = _as_text(error.stdout) + _as_text(error.stderr)
        pytest.fail(f"the service's suite did not finish in {SUITE_TIMEOUT} s: {' '.join(command)}\n{output}")
    return SuiteRun(completed.returncode, completed.stdout + completed.stderr, _outcomes(junit))


def test_the_014_service_suite_passes_against_c2c_all(redis_server: RedisServer, tmp_path: Path) -> None:
    """The service's suite, unchanged, against this workspace's c2casgiutils (c2c-all)."""
    run = run_service_suite(
        sys.executable,
        redis_server,
        tmp_path,
        "-W",
        "error::ResourceWarning",
        "-W",
        "error::pytest.PytestUnraisableExceptionWarning",
        "-W",
        "error::RuntimeWarning",
    )
    failed = run.with_outcome("failed") | run.with_outcome("error")
    if run.returncode != 0 or failed or run.with_outcome("skipped"):
        pytest.fail(f"the 0.14 service's suite fails against c2c-all ({len(failed)} failed):\n{run.report()}")
    assert len(run.outcomes) >= MINIMUM_TESTS, run.report()


@pytest.mark.slow
def test_the_service_suite_is_a_genuine_014_one(
    c2casgiutils_014_python: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The same suite against c2casgiutils 0.14.0 from PyPI: it passes but for 0.14's own faults."""
    run = run_service_suite(c2casgiutils_014_python, redis_server, tmp_path)
    assert len(run.outcomes) >= MINIMUM_TESTS, run.report()
    failed = run.with_outcome("failed") | run.with_outcome("error")
    if failed != set(FAILING_ON_0_14) or run.with_outcome("skipped"):
        unexpected = sorted(failed - set(FAILING_ON_0_14))
        now_passing = sorted(set(FAILING_ON_0_14) - failed)
        pytest.fail(
            f"against c2casgiutils 0.14.0: unexpected failures {unexpected}, expected failures that passed "
            f"{now_passing}:\n{run.report()}"
        )
