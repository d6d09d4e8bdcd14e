"""Issue 16 item 4 against real servers: `GET /c2c/audit` gathers every replica's actions through Redis.

Three uvicorn replica processes share a real redis-server: each one's actions appear in the answer
of another, a replica that answers late and a killed one are listed as `missing`, and the answer
does not wait longer than `C2C__TOOLS__AUDIT__TIMEOUT` for them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from c2c_testing import RedisServer, free_port, stop_process, wait_for_port

SECRET = "audit-replicas-secret-0123456789"
KEY = {"X-API-Key": SECRET}
TIMEOUT = 1.5

REPLICA_APP = """\
import asyncio
import contextlib
import os

from fastapi import FastAPI

import c2casgiutils


@contextlib.asynccontextmanager
async def lifespan(app):
    await c2casgiutils.startup(app)
    late = os.environ.get("AUDIT_TEST_LATE")
    if late:  # this replica answers the audit requests too late
        from c2c_broadcast import subscribe
        from c2casgiutils.tools import audit

        async def slow(limit):
            await asyncio.sleep(float(late))
            return []

        await subscribe(audit.CHANNEL, slow)
    yield
    await c2casgiutils.shutdown()


app = FastAPI(lifespan=lifespan)
app.mount("/c2c", c2casgiutils.app)
"""


class Replica:
    """One uvicorn process of the replica application."""

    def __init__(self, tmp_path: Path, name: str, redis_url: str, late: float | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {key: value for key, value in os.environ.items() if not key.upper().startswith("C2C__")}
        env.update(
            C2C__REDIS__URL=redis_url,
            C2C__AUTH__SECRET=SECRET,
            C2C__TOOLS__AUDIT__TIMEOUT=str(TIMEOUT),
        )
        if late is not None:
            env["AUDIT_TEST_LATE"] = str(late)
        self.log = tmp_path / f"{name}.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "replica_app:app",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait(self) -> None:
        wait_for_port("127.0.0.1", self.port, timeout=60)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def stop(self) -> None:
        stop_process(self.process, timeout=5)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    (tmp_path / "replica_app.py").write_text(REPLICA_APP)
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()


def _audit(replica: Replica) -> tuple[dict[str, Any], float]:
    start = time.monotonic()
    with replica.client() as client:
        answer = client.get("/c2c/audit", headers=KEY)
    assert answer.status_code == 200, answer.text
    return answer.json(), time.monotonic() - start


def _statuses(body: dict[str, Any]) -> dict[int, str]:
    return {replica["pid"]: replica["status"] for replica in body["replicas"]}


def test_every_replica_actions_late_and_killed_replicas(
    tmp_path: Path, redis_server: RedisServer, replicas: list[Replica]
) -> None:
    first, second, late = (
        Replica(tmp_path, "first", redis_server.url),
        Replica(tmp_path, "second", redis_server.url),
        Replica(tmp_path, "late", redis_server.url, late=TIMEOUT * 4),
    )
    replicas.extend([first, second, late])
    for replica in replicas:
        replica.wait()

    with first.client() as client:
        assert (
            client.post("/c2c/logging/level", json={"name": "c2c_replica", "level": "DEBUG"}, headers=KEY).status_code
            == 200
        )
    with second.client() as client:
        assert client.post("/c2c/auth/login", headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.post("/c2c/auth/login", headers=KEY).status_code == 200

    body, elapsed = _audit(first)
    assert elapsed < TIMEOUT + 5  # the late replica is not waited for beyond the timeout
    by_pid = {(entry["pid"], entry["action"]) for entry in body["entries"]}
    assert (first.process.pid, "level_set") in by_pid
    assert {(second.process.pid, "login"), (second.process.pid, "login_refused")} <= by_pid
    times = [entry["time"] for entry in body["entries"]]
    assert times == sorted(times, reverse=True)
    assert _statuses(body) == {first.process.pid: "ok", second.process.pid: "ok", late.process.pid: "missing"}
    assert SECRET not in str(body)

    # A killed replica (still in the registry of live replicas) is shown as missing; the others answer.
    second.process.send_signal(signal.SIGKILL)
    second.process.wait(timeout=10)
    body, _ = _audit(first)
    statuses = _statuses(body)
    assert statuses[second.process.pid] == "missing"
    assert statuses[first.process.pid] == "ok"
    assert {entry["pid"] for entry in body["entries"]} == {first.process.pid}
