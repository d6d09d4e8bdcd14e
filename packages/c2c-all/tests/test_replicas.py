"""`GET /c2c/replicas` in one process: access, the row of this replica, missing/late/failing replicas, versions."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import c2c_broadcast
import c2casgiutils
from c2c_headers.armor import ArmorHeaderMiddleware
from c2c_health import FACTORY, Check, Result
from c2c_testing import RedisServer
from c2casgiutils import config
from c2casgiutils.tools import logging_ as logging_tool
from c2casgiutils.tools import replicas

SECRET = "replicas-test-secret-value"
KEY = {"X-API-Key": SECRET}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "C2C__AUTH__SECRET": SECRET,
        "C2C__AUTH__JWT__COOKIE__SECURE": "false",
        "C2C__TOOLS__VERSIONS_FILE": str(tmp_path / "versions.json"),
    }


@pytest.fixture
async def client(c2c_client_factory: Any, env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    logging_tool._TOOL = None  # a fresh tool per test
    async with c2c_client_factory(env) as http_client:
        yield http_client


class _Failing(Check):
    async def check(self) -> Result:
        return Result(status_code=500, payload={"secret": "do-not-show-me"})


@pytest.fixture
def failing_check() -> Iterator[None]:
    FACTORY.add(_Failing(name="replicas-test-failing"))
    FACTORY.clear_cache()
    yield
    FACTORY.remove("replicas-test-failing")
    FACTORY.clear_cache()


async def test_anonymous_and_wrong_key_are_refused(client: httpx.AsyncClient) -> None:
    assert (await client.get("/c2c/replicas")).status_code == 403
    assert (await client.get("/c2c/replicas", headers={"X-API-Key": "wrong"})).status_code == 403


async def test_local_broadcast_gives_this_replica_only(client: httpx.AsyncClient) -> None:
    logging.getLogger("replicas_test").setLevel(logging.WARNING)
    keep = ArmorHeaderMiddleware(lambda *_: None, engine="python")  # type: ignore[arg-type]
    changed = await client.post("/c2c/logging/level", json={"name": "replicas_test", "level": "DEBUG"}, headers=KEY)
    assert changed.status_code == 200
    answer = await client.get("/c2c/replicas", headers=KEY)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["timeout"] == replicas.DEFAULT_TIMEOUT
    [row] = body["replicas"]
    assert row["status"] == "ok"
    assert row["replica_id"] == c2c_broadcast.status().replica_id
    assert row["pid"] == os.getpid()
    assert row["python"] == platform.python_version()
    assert "c2c-all" in row["packages"] and "c2c-broadcast" in row["packages"]
    assert row["application_version"] == "0.1.0"  # FastAPI's default app.version: no versions.json
    assert "python" in row["engines"]
    assert {"name": "replicas_test", "level": "DEBUG"} in row["overrides"]
    assert row["health"]["failing"] == []
    assert row["uptime"] >= 0 and 0 <= row["response_time"] <= body["elapsed"]
    assert row["differences"] == []
    del keep


async def test_versions_file_gives_the_application_version(client: httpx.AsyncClient, tmp_path: Path) -> None:
    (tmp_path / "versions.json").write_text(json.dumps({"main": {"git_hash": "abc", "git_tag": "1.2.3"}}))
    [row] = (await client.get("/c2c/replicas", headers=KEY)).json()["replicas"]
    assert row["application_version"] == "1.2.3"
    (tmp_path / "versions.json").write_text(json.dumps({"main": {"git_hash": "abc"}}))
    [row] = (await client.get("/c2c/replicas", headers=KEY)).json()["replicas"]
    assert row["application_version"] == "abc"
    (tmp_path / "versions.json").write_text("[1, 2]")
    [row] = (await client.get("/c2c/replicas", headers=KEY)).json()["replicas"]
    assert row["application_version"] == "0.1.0"


async def test_unhealthy_replica_names_its_failing_checks_without_payloads(
    client: httpx.AsyncClient, failing_check: None
) -> None:
    del failing_check
    answer = await client.get("/c2c/replicas", headers=KEY)
    [row] = answer.json()["replicas"]
    assert row["health"] == {"status_code": 500, "failing": ["replicas-test-failing"]}
    assert row["differences"] == ["health"]
    assert "do-not-show-me" not in answer.text
    assert SECRET not in answer.text


async def test_a_replica_answering_late_is_missing(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    original = replicas.describe

    async def late() -> replicas.ReplicaInfo:
        await asyncio.sleep(1.5)
        return await original()

    monkeypatch.setattr(replicas, "describe", late)
    answer = await client.get("/c2c/replicas?timeout=0.3", headers=KEY)
    assert answer.status_code == 200
    [row] = answer.json()["replicas"]
    assert row["status"] == "missing"
    assert row["replica_id"] is None and row["health"] is None
    await asyncio.sleep(1.3)  # let the late handler finish in this loop


async def test_a_replica_whose_handler_fails_is_an_error(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> replicas.ReplicaInfo:
        raise RuntimeError("boom")

    monkeypatch.setattr(replicas, "describe", broken)
    [row] = (await client.get("/c2c/replicas", headers=KEY)).json()["replicas"]
    assert row["status"] == "error" and row["error"] == "RuntimeError"
    assert row["pid"] == os.getpid()


async def test_an_invalid_answer_is_an_error(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def handle(**_: Any) -> dict[str, Any]:
        return {"unexpected": True}

    await c2c_broadcast.subscribe(replicas.CHANNEL, handle)
    [row] = (await client.get("/c2c/replicas", headers=KEY)).json()["replicas"]
    assert row["status"] == "error" and row["error"] == "invalid answer"


async def test_timeout_is_bounded(client: httpx.AsyncClient) -> None:
    assert (await client.get("/c2c/replicas?timeout=0", headers=KEY)).status_code == 422
    assert (await client.get("/c2c/replicas?timeout=31", headers=KEY)).status_code == 422
    assert (await client.get("/c2c/replicas?timeout=abc", headers=KEY)).status_code == 422


async def test_broadcast_unavailable_gives_503(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def unavailable(*_: Any, **__: Any) -> Any:
        raise c2c_broadcast.BroadcastUnavailableError("down")

    monkeypatch.setattr(c2c_broadcast, "broadcast", unavailable)
    answer = await client.get("/c2c/replicas", headers=KEY)
    assert answer.status_code == 503
    assert "BroadcastUnavailableError" in answer.json()["detail"]


async def test_versions_without_a_file_lists_the_installed_distributions(client: httpx.AsyncClient) -> None:
    answer = await client.get("/c2c/versions", headers=KEY)
    assert answer.status_code == 200
    body = answer.json()
    assert body["main"] == {}
    assert body["packages"]["c2c-all"] == replicas.installed_versions()["packages"]["c2c-all"]
    assert list(body["packages"]) == sorted(body["packages"])


def test_differences_mark_the_rows_apart_from_most() -> None:
    def row(version: str, overrides: list[replicas.Override], status_code: int = 200) -> replicas.ReplicaRow:
        return replicas.ReplicaRow(
            status="ok",
            application_version=version,
            overrides=overrides,
            health=replicas.HealthSummary(status_code=status_code),
        )

    debug = [replicas.Override(name="app", level="DEBUG")]
    rows = [row("1", []), row("1", []), row("2", []), row("1", debug, 503), replicas.ReplicaRow(status="missing")]
    replicas._mark_differences(rows)
    assert [r.differences for r in rows] == [[], [], ["application_version"], ["overrides", "health"], []]


def _second_replica(redis_url: str, ready: threading.Event, stop: threading.Event) -> None:
    """Another replica of the toolkit in this process: its own event loop, its own broadcaster."""

    async def run() -> None:
        await c2casgiutils.startup(None)
        ready.set()
        await asyncio.to_thread(stop.wait, 20)
        await c2casgiutils.shutdown()

    asyncio.run(run())


async def test_two_replicas_in_one_process_have_ids_of_their_own(
    c2c_client_factory: Any, env: dict[str, str], redis_server: RedisServer
) -> None:
    logging_tool._TOOL = None
    env = {**env, "C2C__REDIS__URL": redis_server.url, "C2C__BROADCAST__HEARTBEAT_INTERVAL": "1"}
    async with c2c_client_factory(env) as client:
        assert config.settings.redis.configured
        ready, stop = threading.Event(), threading.Event()
        thread = threading.Thread(target=_second_replica, args=(redis_server.url, ready, stop))
        thread.start()
        try:
            assert await asyncio.to_thread(ready.wait, 10)
            answer = await client.get("/c2c/replicas?timeout=5", headers=KEY)
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 10)
    rows = answer.json()["replicas"]
    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert {row["pid"] for row in rows} == {os.getpid()}
    ids = {row["replica_id"] for row in rows}
    assert len(ids) == 2 and all(isinstance(value, str) for value in ids)
    # The second replica started without an application: no version, a difference.
    assert sorted(row["application_version"] or "" for row in rows) == ["", "0.1.0"]


async def test_a_replica_answering_late_through_redis_is_missing_with_its_host_and_pid(
    c2c_client_factory: Any, env: dict[str, str], redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    logging_tool._TOOL = None
    env = {**env, "C2C__REDIS__URL": redis_server.url, "C2C__BROADCAST__HEARTBEAT_INTERVAL": "1"}
    original = replicas.describe
    async with c2c_client_factory(env) as client:
        this_replica = c2c_broadcast.status().replica_id

        async def late_elsewhere() -> replicas.ReplicaInfo:
            if c2c_broadcast.status().replica_id != this_replica:
                await asyncio.sleep(2)  # the other replica answers after the caller's timeout
            return await original()

        monkeypatch.setattr(replicas, "describe", late_elsewhere)
        ready, stop = threading.Event(), threading.Event()
        thread = threading.Thread(target=_second_replica, args=(redis_server.url, ready, stop))
        thread.start()
        try:
            assert await asyncio.to_thread(ready.wait, 10)
            answer = await client.get("/c2c/replicas?timeout=0.5", headers=KEY)
            await asyncio.sleep(2)  # the late answer arrives and is dropped
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 10)
    assert answer.status_code == 200
    rows = {row["status"]: row for row in answer.json()["replicas"]}
    assert set(rows) == {"ok", "missing"}
    assert rows["ok"]["replica_id"] == this_replica
    # The registry names the missing replica: this process, its host.
    assert rows["missing"]["pid"] == os.getpid() and rows["missing"]["hostname"] == rows["ok"]["hostname"]
    assert rows["missing"]["replica_id"] is None
