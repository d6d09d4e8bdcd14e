"""Log levels changed through one replica reach every replica, through a real redis-server.

Three separate uvicorn processes serve the same small application (`c2casgiutils.app` mounted at
`/c2c`), sharing one Redis: a change through one replica's `/c2c/logging/level` is applied by all
of them (each answers), persisted, and restored by a replica started later. The same on a real
Redis Cluster (issue 18, item 1; the override keys then carry a hash tag).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from c2c_config.redis import CLUSTER_MIN_REDIS_PY, redis_py_version
from c2c_testing import RedisCluster, RedisServer, free_port, stop_process, wait_for_port

SECRET = "replica-test-secret"
KEY = {"X-API-Key": SECRET}
PREFIX = "c2c_logging_level_"

APP = textwrap.dedent(
    """
    import logging
    from contextlib import asynccontextmanager
    from fastapi import FastAPI
    import c2casgiutils

    logging.getLogger("replica_test").setLevel(logging.WARNING)

    @asynccontextmanager
    async def lifespan(app):
        await c2casgiutils.startup(app)
        yield
        await c2casgiutils.shutdown()

    app = FastAPI(lifespan=lifespan)
    app.mount("/c2c", c2casgiutils.app)
    """
)


class Replica:
    """One uvicorn process of the application."""

    def __init__(self, directory: Path, redis_url: str, extra: dict[str, str] | None = None) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("C2C__")}
        env.update(
            {
                "C2C__REDIS__URL": redis_url,
                "C2C__AUTH__SECRET": SECRET,
                "C2C__BROADCAST__HEARTBEAT_INTERVAL": "1",
                **(extra or {}),
            }
        )
        self.log = (directory / f"replica-{self.port}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "replica_app:app", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=directory,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port("127.0.0.1", self.port, timeout=30)
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.get(self.url + path, headers=KEY, timeout=20, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        stop_process(self.process, timeout=15)
        self.log.close()


@dataclass
class Store:
    """Where the replicas keep their overrides: a single Redis, or a cluster (keys under a hash tag)."""

    url: str
    prefix: str
    command: Callable[..., object]  # command(name, key, *args) on the server holding `key`
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(
    params=[
        "redis",
        # Skipped only by the redis-py floor run: cluster mode needs redis-py >= 8.
        pytest.param(
            "cluster", marks=pytest.mark.skipif(redis_py_version() < CLUSTER_MIN_REDIS_PY, reason="redis-py < 8")
        ),
    ]
)
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return Store(server.url, PREFIX, lambda name, key, *args: server.command(name, key, *args))
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    return Store(
        cluster.url,
        "{" + PREFIX + "}",
        lambda name, key, *args: cluster.master_for_key(key).command(name, key, *args),
        {"C2C__REDIS__CLUSTER": "true"},
    )


@pytest.fixture
def replicas(tmp_path: Path, store: Store) -> Iterator[list[Replica]]:
    (tmp_path / "replica_app.py").write_text(APP, encoding="utf-8")
    started: list[Replica] = []
    try:
        started.extend(Replica(tmp_path, store.url, store.env) for _ in range(3))
        yield started
    finally:
        for replica in started:
            replica.stop()


def _level(replica: Replica, name: str) -> str:
    response = replica.get("/c2c/logging/level", params={"name": name})
    assert response.status_code == 200, response.text
    return str(response.json()["level"])


def _wait_for_replicas(replica: Replica, count: int) -> None:
    """Until `count` replicas answer a (harmless) GET-equivalent broadcast: the registry is filled."""
    deadline = time.monotonic() + 20
    while True:
        answers = httpx.post(
            replica.url + "/c2c/logging/level?replicas=true",
            json={"name": "replica_probe", "level": "INFO"},
            headers=KEY,
            timeout=20,
        ).json()["replicas"]
        if sum("payload" in answer for answer in answers) >= count or time.monotonic() > deadline:
            return
        time.sleep(0.5)


def test_level_change_reaches_every_replica(replicas: list[Replica], store: Store, tmp_path: Path) -> None:
    first, second, third = replicas
    _wait_for_replicas(first, 3)
    assert {_level(replica, "replica_test") for replica in replicas} == {"WARNING"}

    response = httpx.post(
        first.url + "/c2c/logging/level?replicas=true",
        json={"name": "replica_test", "level": "DEBUG"},
        headers=KEY,
        timeout=20,
    )
    assert response.status_code == 200, response.text
    answers = response.json()["replicas"]
    assert len(answers) == 3, answers
    assert {answer["payload"]["level"] for answer in answers} == {"DEBUG"}
    assert len({answer["pid"] for answer in answers}) == 3  # three distinct processes answered
    assert {_level(replica, "replica_test") for replica in replicas} == {"DEBUG"}

    # Persisted as c2casgiutils 0.14 stored it, and listed by every replica.
    assert store.command("GET", store.prefix + "replica_test") == b"DEBUG"
    overrides = second.get("/c2c/logging/overrides").json()["overrides"]
    assert {"name": "replica_test", "level": "DEBUG"} in overrides

    # A replica started later restores the override; a bad stored value does not stop it.
    store.command("SET", store.prefix + "aaa_bad", "LOUD")
    late = Replica(tmp_path, store.url, store.env)
    try:
        assert _level(late, "replica_test") == "DEBUG"
        assert "Skipped the stored logging override" in (tmp_path / f"replica-{late.port}.log").read_text() or (
            "Ignored the stored logging override" in (tmp_path / f"replica-{late.port}.log").read_text()
        )
    finally:
        late.stop()

    # Deleting through another replica restores the previous level everywhere.
    deleted = httpx.request(
        "DELETE", third.url + "/c2c/logging/level", params={"name": "replica_test"}, headers=KEY, timeout=20
    )
    assert deleted.status_code == 200, deleted.text
    assert {_level(replica, "replica_test") for replica in replicas} == {"WARNING"}
    assert store.command("GET", store.prefix + "replica_test") is None


@pytest.mark.parametrize("store", ["redis"], indirect=True)  # nothing Redis-specific
def test_killed_replica_is_reported_missing_not_a_hang(replicas: list[Replica]) -> None:
    first, second, third = replicas
    _wait_for_replicas(first, 3)
    third.process.kill()
    third.process.wait(10)
    started = time.monotonic()
    response = httpx.post(
        first.url + "/c2c/logging/level?replicas=true",
        json={"name": "replica_test", "level": "INFO"},
        headers=KEY,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    answers = response.json()["replicas"]
    answered = [answer for answer in answers if "payload" in answer]
    assert len(answered) == 2
    # Either the registry already forgot the killed replica (2 answers), or it is listed as missing.
    missing = [answer for answer in answers if answer.get("error") == "MissingAnswer"]
    assert len(answers) == 2 or len(missing) == 1, answers
    assert elapsed < 15  # bounded by the broadcast timeout (10 s), not a hang
