"""The logging tool's stored overrides on a real Redis Cluster (issue 18, item 1).

- The keys of an override and of its signature carry one hash tag (`cluster_prefix`): one slot,
  so a change is one transaction and the list one `SCAN` of the slot's master; a single Redis
  keeps 0.14's key names.
- Set, list, delete and the synchronisation on the cluster; through the HTTP endpoints too, with
  the stored overrides applied at startup.
- A failover of the slot's master: meanwhile every answer is the list or a `RedisUnavailableError`
  (503) within the timeout, never another error nor a hang; afterwards everything works and
  nothing written (and replicated) before is lost.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _c2c_all_env import clear_c2c_variables
from hypothesis import given
from hypothesis import strategies as st

from c2c_config.redis import CLUSTER_MIN_REDIS_PY, redis_py_version
from c2c_testing import RedisCluster, key_slot
from c2casgiutils import config
from c2casgiutils.monitoring import LoggingSyncCheck
from c2casgiutils.tools import logging_ as logging_tool

pytestmark = pytest.mark.usefixtures("fresh_logging_tool")

CLUSTER_CAPABLE = redis_py_version() >= CLUSTER_MIN_REDIS_PY
# Only the redis-py floor run (redis-py < 8, refused in cluster mode) skips the cluster tests.
needs_cluster = pytest.mark.skipif(not CLUSTER_CAPABLE, reason="Redis Cluster mode needs redis-py >= 8")

PREFIX = "c2c_logging_level_"
TAGGED = "{c2c_logging_level_}"
SECRET = "cluster-test-secret"
KEY = {"X-API-Key": SECRET}
BROADCAST_SECRET = "cluster-broadcast-secret"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _keys(node: Any) -> set[str]:
    return {_text(key) for key in node.command("KEYS", "*")}


# --- key names -------------------------------------------------------------------------------------


def test_cluster_prefix_examples() -> None:
    assert logging_tool.cluster_prefix("c2c_logging_level_") == TAGGED
    assert logging_tool.cluster_prefix("{app}logging_") == "{app}logging_"  # a tag of its own is kept
    assert logging_tool.cluster_prefix("") == logging_tool.CLUSTER_TAG
    assert logging_tool.cluster_prefix("{}x") == "{{}x}"
    assert logging_tool.cluster_prefix("}") == "{c2c_logging}}"  # "{}}": an empty tag


@given(
    prefix=st.text(max_size=30),
    name=st.from_regex(r"[A-Za-z0-9_\-]{1,20}(\.[A-Za-z0-9_\-]{1,10}){0,2}", fullmatch=True),
)
def test_an_override_and_its_signature_share_a_slot(prefix: str, name: str) -> None:
    tagged = logging_tool.cluster_prefix(prefix)
    assert tagged in (prefix, "{" + prefix + "}", logging_tool.CLUSTER_TAG + prefix)
    # Every key of the prefix is in the slot of the prefix itself (what the listing scans).
    slot = key_slot(tagged)
    assert key_slot(tagged + name) == slot
    assert key_slot(logging_tool.signature_key(tagged, name)) == slot
    assert key_slot(tagged + name + "x") == slot


# --- the tool on the cluster -------------------------------------------------------------------------


@pytest.fixture
def cluster_env(redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisCluster]:
    clear_c2c_variables(monkeypatch)
    monkeypatch.setenv("C2C__REDIS__URL", redis_cluster.url)
    monkeypatch.setenv("C2C__REDIS__CLUSTER", "true")
    monkeypatch.setenv("C2C__REDIS__TIMEOUT", "0.5")
    config.reload()
    yield redis_cluster
    clear_c2c_variables(monkeypatch)
    config.reload()


@pytest.fixture
async def tool(cluster_env: RedisCluster) -> AsyncIterator[logging_tool.LoggingTool]:
    from c2c_config.redis import reset_factory

    created = logging_tool._TOOL = logging_tool.LoggingTool()  # the one LoggingSyncCheck reads
    yield created
    await created.shutdown()
    await reset_factory()


@pytest.fixture(autouse=True)
def loggers() -> Iterator[list[logging.Logger]]:
    created = [logging.getLogger(f"cluster_test_{index}") for index in range(3)]
    for logger in created:
        logger.setLevel(logging.NOTSET)
    yield created
    for logger in created:
        logger.setLevel(logging.NOTSET)


@needs_cluster
@pytest.mark.parametrize("signed", [False, True], ids=["plain", "signed"])
async def test_set_list_delete_and_sync_on_a_cluster(
    tool: logging_tool.LoggingTool,
    cluster_env: RedisCluster,
    loggers: list[logging.Logger],
    monkeypatch: pytest.MonkeyPatch,
    signed: bool,
) -> None:
    if signed:
        monkeypatch.setenv("C2C__BROADCAST__SECRET", BROADCAST_SECRET)
        config.reload()
    await tool._persist("cluster_test_0", "DEBUG", None)
    await tool._persist("cluster_test_1", "ERROR", 60)

    # Both overrides (and their signatures) on the master of the prefix's slot, under the hash tag.
    owner = cluster_env.master_for_key(TAGGED)
    stored = _keys(owner)
    assert {TAGGED + "cluster_test_0", TAGGED + "cluster_test_1"} <= stored
    signatures = {logging_tool.signature_key(TAGGED, f"cluster_test_{index}") for index in (0, 1)}
    assert (signatures <= stored) is signed
    assert _text(owner.command("GET", TAGGED + "cluster_test_0")) == "DEBUG"

    overrides = await tool.overrides()
    assert [(name, level) for name, level, _ in overrides] == [("cluster_test_0", "DEBUG"), ("cluster_test_1", "ERROR")]
    assert overrides[0][2] is None
    assert overrides[1][2] is not None and 50 < overrides[1][2] <= 60

    assert await tool.sync() == 2
    assert [logger.level for logger in loggers[:2]] == [logging.DEBUG, logging.ERROR]

    await tool._persist("cluster_test_0", None, None)
    assert [name for name, _, _ in await tool.overrides()] == ["cluster_test_1"]
    assert TAGGED + "cluster_test_0" not in _keys(owner)
    assert not any(key.endswith("cluster_test_0") for key in _keys(owner))
    await tool.sync()
    assert loggers[0].level == logging.NOTSET  # restored


def _wait_replicated(cluster: RedisCluster, key: str) -> None:
    owner = cluster.master_for_key(key)
    replicas = owner.command("WAIT", "1", "5000")
    assert isinstance(replicas, int) and replicas >= 1  # the replica has everything written so far


async def _poll_during(stop: threading.Event, call: Any) -> list[tuple[str, float]]:
    """Call `call()` until `stop` is set: each outcome (`ok`, `unavailable`) and how long it took."""
    outcomes: list[tuple[str, float]] = []
    while not stop.is_set():
        started = time.monotonic()
        try:
            # A task of its own, as each request has under a server: what Redis did to one call is
            # not remembered by the next (`unreachable_here`). Python 3.11's wait_for made one,
            # 3.12's runs the call in this task.
            await asyncio.wait_for(asyncio.create_task(call()), 10)  # generous: the limit is 0.5 s
        except logging_tool.RedisUnavailableError:
            outcomes.append(("unavailable", time.monotonic() - started))
        else:
            outcomes.append(("ok", time.monotonic() - started))
        await asyncio.sleep(0.05)
    return outcomes


async def _during_failover(cluster: RedisCluster, call: Any) -> list[tuple[str, float]]:
    """Kill the master of the overrides' slot (in a thread) while `call()` runs again and again."""
    owner = cluster.master_for_key(TAGGED)
    done = threading.Event()

    def kill() -> None:
        try:
            cluster.kill_master(owner)
        finally:
            done.set()

    killer = asyncio.create_task(asyncio.to_thread(kill))
    outcomes = await _poll_during(done, call)
    await killer
    assert cluster.master_for_key(TAGGED) is not owner
    return outcomes


@needs_cluster
async def test_a_failover_loses_nothing_and_answers_503_meanwhile(
    tool: logging_tool.LoggingTool, cluster_env: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("C2C__BROADCAST__SECRET", BROADCAST_SECRET)  # the signatures too
    # redis-py refreshes a cluster's topology at most once a second after errors: the first call
    # after the failover may wait for that refresh (the default timeout is 5 s).
    monkeypatch.setenv("C2C__REDIS__TIMEOUT", "2")
    config.reload()
    for index in range(3):
        await tool._persist(f"cluster_test_{index}", "INFO", None)
    _wait_replicated(cluster_env, TAGGED)
    expected = [(f"cluster_test_{index}", "INFO", None) for index in range(3)]
    assert await tool.overrides() == expected

    check = LoggingSyncCheck()
    # (did the synchronisation succeed, what LoggingSyncCheck said right after): which call falls
    # in the unavailable window depends on timing, so each answer is judged on its own sync.
    observed: list[tuple[bool, int, str]] = []

    async def list_and_sync() -> None:
        synced = await tool._try_sync()  # the background synchronisation's step: never raises
        result = await check.check()
        observed.append((synced, result.status_code, result.payload["state"]))
        if not synced:
            raise logging_tool.RedisUnavailableError(result.payload["last_error"])
        assert await tool.overrides() == expected

    outcomes = await _during_failover(cluster_env, list_and_sync)
    assert outcomes
    assert all(seconds < 8 for _, seconds in outcomes), outcomes  # generous: the limit is 2 s per call
    assert "unavailable" in {outcome for outcome, _ in outcomes}, outcomes  # the master was really gone
    # LoggingSyncCheck says so exactly while the synchronisation fails (503), never otherwise.
    for synced, status, state in observed:
        assert (status, state) == ((200, "in_sync") if synced else (503, "degraded")), observed

    # After the failover: every call completes, and nothing replicated before is lost.
    assert await tool.overrides() == expected
    assert await tool._try_sync()
    result = await check.check()
    assert (result.status_code, result.payload["state"]) == (200, "in_sync")
    await tool._persist("cluster_test_0", "DEBUG", None)
    await tool._persist("cluster_test_1", None, None)
    assert await tool.overrides() == [("cluster_test_0", "DEBUG", None), ("cluster_test_2", "INFO", None)]


@needs_cluster
async def test_the_whole_cluster_down_is_unavailable_not_an_error(
    tool: logging_tool.LoggingTool, cluster_env: RedisCluster
) -> None:
    await tool._persist("cluster_test_0", "INFO", None)
    cluster_env.stop()
    for call in (tool.overrides, lambda: tool._persist("cluster_test_0", "DEBUG", None)):
        started = time.monotonic()
        with pytest.raises(logging_tool.RedisUnavailableError):
            await asyncio.wait_for(call(), 10)
        assert time.monotonic() - started < 5  # generous: the limit is 0.5 s


# --- through the HTTP endpoints ------------------------------------------------------------------------


@pytest.fixture
async def client(
    c2c_client_factory: Any, redis_cluster: RedisCluster, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    # Stored before the start: the startup's synchronisation applies it.
    redis_cluster.master_for_key(TAGGED).command("SET", TAGGED + "cluster_test_2", "CRITICAL")
    env = {
        "C2C__AUTH__SECRET": SECRET,
        "C2C__REDIS__URL": redis_cluster.url,
        "C2C__REDIS__CLUSTER": "true",
        "C2C__REDIS__TIMEOUT": "2",  # the first call after a failover may wait for a topology refresh
        "C2C__TOOLS__VERSIONS_FILE": str(tmp_path / "versions.json"),
    }
    async with c2c_client_factory(env) as created:
        yield created


@needs_cluster
async def test_the_endpoints_on_a_cluster(
    client: httpx.AsyncClient, redis_cluster: RedisCluster, loggers: list[logging.Logger]
) -> None:
    assert loggers[2].level == logging.CRITICAL  # applied at startup

    response = await client.post("/c2c/logging/level", json={"name": "cluster_test_0", "level": "DEBUG"}, headers=KEY)
    assert response.status_code == 200, response.text
    assert loggers[0].level == logging.DEBUG
    assert _text(redis_cluster.master_for_key(TAGGED).command("GET", TAGGED + "cluster_test_0")) == "DEBUG"

    response = await client.get("/c2c/logging/overrides", headers=KEY)
    assert response.status_code == 200, response.text
    assert response.json()["overrides"] == [
        {"name": "cluster_test_0", "level": "DEBUG"},
        {"name": "cluster_test_2", "level": "CRITICAL"},
    ]

    response = await client.delete("/c2c/logging/level", params={"name": "cluster_test_0"}, headers=KEY)
    assert response.status_code == 200, response.text
    assert loggers[0].level == logging.NOTSET
    response = await client.get("/c2c/logging/overrides", headers=KEY)
    assert response.json()["overrides"] == [{"name": "cluster_test_2", "level": "CRITICAL"}]

    result = await LoggingSyncCheck().check()
    assert (result.status_code, result.payload["state"]) == (200, "in_sync")


@needs_cluster
async def test_the_endpoints_during_and_after_a_failover(
    client: httpx.AsyncClient, redis_cluster: RedisCluster
) -> None:
    response = await client.post("/c2c/logging/level", json={"name": "cluster_test_0", "level": "ERROR"}, headers=KEY)
    assert response.status_code == 200, response.text
    _wait_replicated(redis_cluster, TAGGED)

    async def listing() -> None:
        answer = await client.get("/c2c/logging/overrides", headers=KEY)
        assert answer.status_code in (200, 503), answer.text  # never a 500
        if answer.status_code == 503:
            assert "Redis" in answer.json()["detail"]
            raise logging_tool.RedisUnavailableError(answer.json()["detail"])

    # Each answer is a 200 or a 503 naming Redis, never a 500, and comes in time. Whether one of them
    # falls while the slot has no master is timing: redis-py's retry, once the replica is promoted,
    # can absorb the whole window (a CI run saw only 200s). The 503 itself is asserted, call by
    # call, in `test_a_failover_loses_nothing_and_answers_503_meanwhile`.
    outcomes = await _during_failover(redis_cluster, listing)
    assert all(seconds < 8 for _, seconds in outcomes), outcomes  # generous: the limit is 2 s
    assert outcomes, "no call was made while the master was being killed"

    response = await client.get("/c2c/logging/overrides", headers=KEY)
    assert response.status_code == 200, response.text
    assert {"name": "cluster_test_0", "level": "ERROR"} in response.json()["overrides"]
    response = await client.post("/c2c/logging/level", json={"name": "cluster_test_1", "level": "INFO"}, headers=KEY)
    assert response.status_code == 200, response.text
