"""The failure gauge with several worker processes (prometheus_client's multiprocess mode), real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, multiprocess

from c2c_testing import stop_process

GAUGE = "c2casgiutils_health_checks_failure"

# A worker: runs the check `dep` with the status code read on each line of stdin, with the default
# factory and registry (as a uvicorn worker does), and says when the run is recorded.
WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from c2c_health import Check, Factory, Result

    class Dep(Check):
        status = 200

        async def check(self) -> Result:
            return Result(status_code=self.status)

    factory = Factory()
    dep = factory.add(Dep(name="dep"))
    for line in sys.stdin:
        dep.status = int(line)
        asyncio.run(factory.run())
        print("ran", flush=True)
    """
)


class Worker:
    def __init__(self, directory: Path) -> None:
        env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
        env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        self.process: subprocess.Popen[bytes] = subprocess.Popen(
            [sys.executable, "-c", WORKER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def run(self, status: int) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{status}\n".encode())
        self.process.stdin.flush()
        assert self.process.stdout.readline() == b"ran\n"

    def close(self) -> None:
        stop_process(self.process, sig=signal.SIGKILL)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Worker, Worker]]:
    first, second = Worker(tmp_path), Worker(tmp_path)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def _scrape(directory: Path) -> list[tuple[dict[str, str], float]]:
    """The gauge's series as the serving worker exposes them (the shared files, aggregated)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return [
        (sample.labels, sample.value)
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == GAUGE
    ]


def test_a_dead_workers_failure_is_cleared_by_a_later_run(workers: tuple[Worker, Worker], tmp_path: Path) -> None:
    """One series per check, the last run in any worker: a killed worker's 503 does not stay forever.

    With the default multiprocess mode ("all") each worker had its own series (`pid` label) and a
    dead worker's last value was served until the directory was wiped: the documented alert
    `max by (name) (...) >= 400` never cleared.
    """
    first, second = workers
    first.run(200)
    second.run(200)
    assert _scrape(tmp_path) == [({"name": "dep"}, 200.0)]
    first.run(503)
    assert _scrape(tmp_path) == [({"name": "dep"}, 503.0)]  # a failure anywhere is seen
    first.close()  # killed (SIGKILL): its file stays, as with a crashed worker
    assert _scrape(tmp_path) == [({"name": "dep"}, 503.0)]  # still the latest result
    second.run(200)
    assert _scrape(tmp_path) == [({"name": "dep"}, 200.0)]  # cleared by the surviving worker
