"""The logging tool against real servers when Redis misbehaves, and its untrusted input (issue 14: 1, 2, 7, 15, 17).

- Startup with Redis stopped (a real uvicorn process) or frozen (a server that accepts and never
  answers; a real redis-server stopped with SIGSTOP): the startup ends within about
  `C2C__REDIS__TIMEOUT`, the health check says `degraded`, the overrides are applied once Redis
  answers.
- Every Redis call of a request is bounded: 503 with a JSON `detail`, never a hang or a 500.
- With a broadcast secret, stored overrides are signed; forged, tampered, moved and replayed ones
  are ignored with a warning naming the key.
- Out-of-range durations and blank logger names are 422.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _c2c_all_env import clear_c2c_variables

from c2c_config.redis import CLUSTER_MIN_REDIS_PY, redis_py_version
from c2c_testing import RedisCluster, RedisServer, RedisServerFactory, free_port, stop_process, wait_for_port
from c2casgiutils import config
from c2casgiutils.tools import _overrides as overrides_module
from c2casgiutils.tools import logging_ as logging_tool

pytestmark = pytest.mark.usefixtures("fresh_logging_tool")

SECRET = "hardening-test-secret"
KEY = {"X-API-Key": SECRET}
PREFIX = "c2c_logging_level_"
BROADCAST_SECRET = "hardening-broadcast-secret"


@contextlib.asynccontextmanager
async def _silent_server() -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never says anything: a frozen Redis."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()


# --- item 1: startup with Redis stopped, in a real uvicorn process ---------------------------------

APP = textwrap.dedent(
    """
    import logging
    from fastapi import FastAPI
    import c2casgiutils
    from c2casgiutils import health_checks, monitoring

    logging.getLogger("hardening_test").setLevel(logging.WARNING)
    health_checks.FACTORY.add(monitoring.LoggingSyncCheck())

    app = FastAPI(lifespan=c2casgiutils.lifespan)
    app.mount("/c2c", c2casgiutils.app)
    """
)


def _health(url: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(url + "/c2c/health/", params={"name": "LoggingSync"}, headers=KEY, timeout=10)
    report = response.json()
    (entity,) = [entity for entity in report["entities"] if entity["name"] == "LoggingSync"]
    return entity["status_code"], entity["payload"]


def _level(url: str, name: str) -> str:
    response = httpx.get(url + "/c2c/logging/level", params={"name": name}, headers=KEY, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["level"])


def test_startup_with_redis_stopped_then_applied_when_it_answers(
    tmp_path: Path, redis_server_factory: RedisServerFactory
) -> None:
    # A Redis with a stored override, saved to disk and stopped: it comes back with the override.
    redis = redis_server_factory()
    redis.command("SET", PREFIX + "hardening_test", "DEBUG")
    redis.command("SAVE")
    redis.stop()

    (tmp_path / "hardening_app.py").write_text(APP, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("C2C__")}
    env.update({"C2C__REDIS__URL": redis.url, "C2C__REDIS__TIMEOUT": "1", "C2C__AUTH__SECRET": SECRET})
    port = free_port()
    started = time.monotonic()
    with (tmp_path / "uvicorn.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "hardening_app:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port("127.0.0.1", port, timeout=60)
            startup_seconds = time.monotonic() - started
            url = f"http://127.0.0.1:{port}"
            # It serves, it says the logging sync is degraded, the override is not applied yet.
            status, payload = _health(url)
            assert (status, payload["state"]) == (503, "degraded"), payload
            assert "Redis" in payload["last_error"]
            assert _level(url, "hardening_test") == "WARNING"

            redis.start()
            deadline = time.monotonic() + 10
            while _level(url, "hardening_test") != "DEBUG" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _level(url, "hardening_test") == "DEBUG"  # applied by the background sync
            status, payload = _health(url)
            assert (status, payload["state"]) == (200, "in_sync"), payload
        finally:
            stop_process(process, timeout=10)
    assert "Application startup failed" not in (tmp_path / "uvicorn.log").read_text(encoding="utf-8")
    assert startup_seconds < 15  # generous: "does not hang" (the uvicorn import included)


# --- item 1: startup with Redis frozen, in the process ---------------------------------------------


async def _until_level(logger: logging.Logger, level: int) -> None:
    """Wait (at most 10 s) until the background synchronisation gave `logger` this level."""
    for _ in range(100):
        if logger.level == level:
            return
        await asyncio.sleep(0.1)
    assert logging.getLevelName(logger.level) == logging.getLevelName(level)


async def test_startup_with_a_silent_server_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from c2c_config.redis import reset_factory

    async with _silent_server() as port:
        clear_c2c_variables(monkeypatch)
        monkeypatch.setenv("C2C__REDIS__URL", f"redis://127.0.0.1:{port}/0")
        monkeypatch.setenv("C2C__REDIS__TIMEOUT", "0.5")
        config.reload()
        tool = logging_tool.get_tool()
        try:
            started = time.monotonic()
            await asyncio.wait_for(tool.startup(), 10)  # generous: the limit is 0.5 s
            assert time.monotonic() - started < 10
            status = tool.sync_status()
            assert status.state == "degraded"
            assert "did not answer within 0.5 s" in (status.last_error or "")
        finally:
            await tool.shutdown()
            await reset_factory()
            clear_c2c_variables(monkeypatch)
            config.reload()


@pytest.fixture
async def stored_error(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[logging.Logger]:
    """A logger at INFO whose override `ERROR` is stored in the test's Redis (`C2C__REDIS__URL`, only):
    the test sets its other variables, then `config.reload()`. Everything put back afterwards."""
    from c2c_config.redis import reset_factory

    clear_c2c_variables(monkeypatch)
    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    name = f"hardening_stored_{secrets.token_hex(4)}"
    redis_server.command("SET", PREFIX + name, "ERROR")
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    yield logger
    await reset_factory()
    logger.setLevel(logging.NOTSET)
    clear_c2c_variables(monkeypatch)
    config.reload()


async def test_startup_with_redis_sigstopped_is_bounded(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, stored_error: logging.Logger
) -> None:
    monkeypatch.setenv("C2C__REDIS__TIMEOUT", "0.5")
    monkeypatch.setenv("C2C__TOOLS__LOGGING__SYNC_INTERVAL", "0")  # only the catch-up after the outage
    config.reload()
    tool = logging_tool.get_tool()
    try:
        with redis_server.frozen():
            await asyncio.wait_for(tool.startup(), 10)  # generous: the limit is 0.5 s
            assert tool.sync_status().state == "degraded"
            assert stored_error.level == logging.INFO
        # Redis answers again: the background sync catches up, though the periodic sync is off.
        await _until_level(stored_error, logging.ERROR)
        assert tool.sync_status().state == "in_sync"
    finally:
        await tool.shutdown()


async def test_the_whole_startup_waits_for_a_frozen_redis_once(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, stored_error: logging.Logger
) -> None:
    """`c2casgiutils.startup()`: the broadcaster waits `C2C__BROADCAST__CONNECT_TIMEOUT` for a frozen
    Redis; the logging tool then does not wait `C2C__REDIS__TIMEOUT` more to read the overrides (it
    did, a 10 s startup with the defaults): degraded at once, applied once Redis answers."""
    import c2casgiutils

    monkeypatch.setenv("C2C__BROADCAST__CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("C2C__REDIS__TIMEOUT", "4")
    config.reload()
    try:
        with redis_server.frozen():
            started = time.monotonic()
            await asyncio.wait_for(c2casgiutils.startup(None), 20)
            elapsed = time.monotonic() - started
            status = logging_tool.get_tool().sync_status()
            assert stored_error.level == logging.INFO
        assert elapsed < 1 + 4, elapsed  # the connect timeout, not it and the Redis timeout in a row
        assert status.state == "degraded"
        assert "broadcaster's startup" in (status.last_error or "")
        await _until_level(stored_error, logging.ERROR)  # Redis answers again: the background sync applies it
        assert logging_tool.get_tool().sync_status().state == "in_sync"
    finally:
        await c2casgiutils.shutdown()


# --- item 2: every Redis call of a request is bounded ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "what"),
    [
        ("POST", "/c2c/logging/level", {"name": "hardening_bounded", "level": "DEBUG"}, "storing the logging override"),
        ("DELETE", "/c2c/logging/level?name=hardening_bounded", None, "storing the logging override"),
        ("GET", "/c2c/logging/overrides", None, "reading the logging overrides"),
    ],
)
async def test_requests_with_redis_frozen_are_503(
    redis_client: httpx.AsyncClient, redis_server: RedisServer, method: str, path: str, body: object, what: str
) -> None:
    with redis_server.frozen():
        started = time.monotonic()
        response = await asyncio.wait_for(redis_client.request(method, path, json=body, headers=KEY), 10)
        assert time.monotonic() - started < 10  # generous: the limit is 0.5 s
    assert response.status_code == 503, response.text
    # One timeout for the whole request: the authentication's Redis call waited 0.5 s, then the
    # route did not ask Redis again (the shared skip window), and says why.
    assert response.json()["detail"] == (
        f"Redis is unavailable ({what}: not asked again, it failed earlier in this request: TimeoutError: no answer"
        " within 0.5 s)"
    )
    assert logging.getLogger("hardening_bounded").level == logging.NOTSET  # nothing applied


async def test_the_next_request_in_the_same_task_asks_redis_again(
    redis_client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    """httpx's `ASGITransport` runs each request in the caller's task (a server gives each its own).

    The failure one request noted must stay in that request: the next one, made once Redis is
    back but within the 2 s window, asks Redis and is served, not refused with "not asked again".
    """
    from c2c_config import redis as c2c_redis

    with redis_server.frozen():
        response = await redis_client.get("/c2c/logging/overrides", headers=KEY)  # in this very task
    failed_at = time.monotonic()
    assert response.status_code == 503, response.text
    assert not c2c_redis.unreachable_here()  # nothing leaked into the caller's context
    response = await redis_client.get("/c2c/logging/overrides", headers=KEY)
    assert time.monotonic() - failed_at < c2c_redis.SKIP_AFTER_FAILURE  # still inside the process window
    assert response.status_code == 200, response.text


async def test_requests_with_redis_stopped_are_503(redis_client: httpx.AsyncClient, redis_server: RedisServer) -> None:
    redis_server.stop()
    try:
        response = await redis_client.get("/c2c/logging/overrides", headers=KEY)
        assert response.status_code == 503, response.text
        assert "Redis" in response.json()["detail"]
    finally:
        redis_server.start()


async def test_a_change_stored_but_not_broadcast_is_applied_here(
    redis_client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    """Publishing refused (the Redis user lost its pub/sub rights) while writes work: 503, and the
    replica that served the change applies it at once instead of at its next synchronisation."""
    name = "hardening_not_broadcast"
    redis_server.command("ACL", "SETUSER", "default", "-@pubsub")
    try:
        response = await redis_client.post("/c2c/logging/level", json={"name": name, "level": "ERROR"}, headers=KEY)
    finally:
        redis_server.command("ACL", "SETUSER", "default", "+@pubsub")
    assert response.status_code == 503, response.text
    assert "stored and applied on this replica but could not be broadcast" in response.json()["detail"]
    assert logging.getLogger(name).level == logging.ERROR
    assert _text(redis_server.command("GET", PREFIX + name)) == "ERROR"
    await redis_client.delete(f"/c2c/logging/level?name={name}", headers=KEY)
    logging.getLogger(name).setLevel(logging.NOTSET)


# --- the audit loggers: out of the tool's reach --------------------------------------------------


async def test_the_audit_trail_cannot_be_silenced_through_the_tool(
    redis_client: httpx.AsyncClient, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-write caller set `c2casgiutils.audit` to CRITICAL on every replica: no record, not even of that."""
    audit_loggers = [logging.getLogger(name) for name in logging_tool.PROTECTED_LOGGERS]
    levels = [logger.level for logger in audit_loggers]
    for name in (*logging_tool.PROTECTED_LOGGERS, "c2c_auth.audit.child"):
        response = await redis_client.post("/c2c/logging/level", json={"name": name, "level": "CRITICAL"}, headers=KEY)
        assert response.status_code == 422, response.text
        assert "keeps the audit trail" in response.text
        assert redis_server.command("EXISTS", PREFIX + name) == 0
    looked_up = await redis_client.get("/c2c/logging/level", params={"name": "c2casgiutils.audit"}, headers=KEY)
    assert looked_up.status_code == 200  # reading stays allowed
    # The parent loggers stay changeable: the audit loggers have a level of their own.
    parent = await redis_client.post(
        "/c2c/logging/level", json={"name": "c2casgiutils", "level": "CRITICAL", "duration": 60}, headers=KEY
    )
    assert parent.status_code == 200, parent.text
    assert logging.getLogger(logging_tool.PROTECTED_LOGGERS[0]).isEnabledFor(logging.INFO)
    await redis_client.delete("/c2c/logging/level", params={"name": "c2casgiutils"}, headers=KEY)

    # Written straight into Redis (no broadcast secret here), or sent by a forged broadcast: ignored.
    redis_server.command("SET", PREFIX + "c2casgiutils.audit", "CRITICAL")
    with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
        await logging_tool.get_tool().sync()
    assert [logger.level for logger in audit_loggers] == levels
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(PREFIX + "c2casgiutils.audit" in message and "audit trail" in message for message in warnings)
    with pytest.raises(ValueError, match="keeps the audit trail"):
        await logging_tool.get_tool().handle(name="c2c_auth.audit", level="CRITICAL")
    assert [logger.level for logger in audit_loggers] == levels
    redis_server.command("DEL", PREFIX + "c2casgiutils.audit")


# --- item 7: signed overrides ----------------------------------------------------------------------


@pytest.fixture
def signed_redis(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    clear_c2c_variables(monkeypatch)
    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    monkeypatch.setenv("C2C__BROADCAST__SECRET", BROADCAST_SECRET)
    config.reload()
    yield redis_server
    clear_c2c_variables(monkeypatch)
    config.reload()


@pytest.fixture
async def tool() -> AsyncIterator[logging_tool.LoggingTool]:
    from c2c_config.redis import reset_factory

    created = logging_tool.LoggingTool()
    yield created
    await created.shutdown()
    await reset_factory()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def test_a_forged_override_is_ignored_with_a_warning(
    signed_redis: RedisServer, tool: logging_tool.LoggingTool, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("hardening_forged")
    logger.setLevel(logging.WARNING)
    signed_redis.command("SET", PREFIX + "hardening_forged", "DEBUG")  # straight into Redis, unsigned
    signed_redis.command("SET", PREFIX + "root", "DEBUG")
    with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
        assert await tool.sync() == 0
        assert await tool.overrides() == []
    assert logger.level == logging.WARNING
    assert logging.getLogger().level != logging.DEBUG
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(PREFIX + "hardening_forged" in message and "not signed" in message for message in warnings), warnings
    assert any(PREFIX + "root" in message for message in warnings), warnings
    assert tool.sync_status().ignored == 2
    logger.setLevel(logging.NOTSET)


async def test_overrides_signed_with_an_accepted_secret_apply_during_a_rotation(
    signed_redis: RedisServer, tool: logging_tool.LoggingTool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored with the old secret; the replicas then sign with a new one: the override still applies while
    the old secret is in `C2C__BROADCAST__ACCEPTED_SECRETS`, and is ignored once it is dropped."""
    logger = logging.getLogger("hardening_rotated")
    logger.setLevel(logging.WARNING)
    try:
        await logging_tool.LoggingTool()._persist("hardening_rotated", "DEBUG", None)  # signed with the old one
        monkeypatch.setenv("C2C__BROADCAST__SECRET", "hardening-new-secret")
        monkeypatch.setenv("C2C__BROADCAST__ACCEPTED_SECRETS", BROADCAST_SECRET)
        config.reload()
        assert await tool.overrides() == [("hardening_rotated", "DEBUG", None)]
        assert await tool.sync() == 1
        assert logger.level == logging.DEBUG
        monkeypatch.delenv("C2C__BROADCAST__ACCEPTED_SECRETS")  # the rotation's last step
        config.reload()
        assert await tool.overrides() == []
        assert tool.sync_status().ignored == 1  # with a warning: "bad signature"
        assert await tool.sync() == 1  # no valid override left: the level it replaced is restored
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(logging.NOTSET)


async def test_signed_overrides_apply_and_tampering_is_caught(
    signed_redis: RedisServer, tool: logging_tool.LoggingTool, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = logging.getLogger("hardening_signed_a"), logging.getLogger("hardening_signed_b")
    for logger in (first, second):
        logger.setLevel(logging.WARNING)
    writer = logging_tool.LoggingTool()
    await writer._persist("hardening_signed_a", "DEBUG", None)
    # The override key keeps 0.14's format; the signature is in its own key, outside the prefix.
    assert _text(signed_redis.command("GET", PREFIX + "hardening_signed_a")) == "DEBUG"
    signature_key = logging_tool.signature_key(PREFIX, "hardening_signed_a")
    assert not signature_key.startswith(PREFIX)
    signature = _text(signed_redis.command("GET", signature_key))
    assert await tool.sync() == 1
    assert first.level == logging.DEBUG

    # Moved: the same value and signature under another logger's name.
    signed_redis.command("SET", PREFIX + "hardening_signed_b", "DEBUG")
    signed_redis.command("SET", logging_tool.signature_key(PREFIX, "hardening_signed_b"), signature)
    # Tampered: another level under the signed key.
    signed_redis.command("SET", PREFIX + "hardening_signed_a", "CRITICAL")
    with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
        await tool.sync()
    assert second.level == logging.WARNING
    assert first.level == logging.WARNING  # the tampered override is not stored any more: reverted
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(PREFIX + "hardening_signed_b" in message and "bad signature" in message for message in warnings)
    assert any(PREFIX + "hardening_signed_a" in message and "bad signature" in message for message in warnings)
    for logger in (first, second):
        logger.setLevel(logging.NOTSET)


RACE_WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from c2casgiutils.tools import logging_

    async def main():
        writer = logging_.LoggingTool()
        names = [f"hardening_race_{index}" for index in range(20)]
        levels = ["DEBUG", "INFO", "WARNING", "ERROR"]
        for name in names:
            await writer._persist(name, "INFO", None)
        print("ready", flush=True)
        end, round_ = time.monotonic() + float(sys.argv[1]), 0
        while time.monotonic() < end:
            round_ += 1
            await asyncio.gather(*(writer._persist(name, levels[round_ % 4], None) for name in names))

    asyncio.run(main())
    """
)


async def test_reads_racing_writes_never_see_a_level_with_another_signature(
    signed_redis: RedisServer, tool: logging_tool.LoggingTool, caplog: pytest.LogCaptureFixture
) -> None:
    """Overrides rewritten by another replica (a process) while this one reads them: the value, its
    signature and its TTL are read at once, so a read never pairs a new level with the old signature
    (a false "bad signature" warning, and the override skipped for that round), as separate commands
    did under about one write a second in a real cluster."""
    environment = {**os.environ, "C2C__REDIS__URL": signed_redis.url, "C2C__BROADCAST__SECRET": BROADCAST_SECRET}
    # Started once, before the reads: its short blocking start is not what is measured.
    writer = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-c", RACE_WRITER, "6"], env=environment, stdout=subprocess.PIPE
    )
    try:
        assert writer.stdout is not None
        assert await asyncio.to_thread(writer.stdout.readline) == b"ready\n"
        reads: list[int] = []
        with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
            begin = time.monotonic()
            while time.monotonic() - begin < 4:
                reads.append(len(await tool.overrides()))
    finally:
        stop_process(writer, timeout=10)
        if writer.stdout is not None:
            writer.stdout.close()
    assert len(reads) > 50
    assert set(reads) == {20}  # every override, every time
    assert [r.getMessage() for r in caplog.records if "bad signature" in r.getMessage()] == []


async def test_a_replayed_timed_override_is_ignored(
    signed_redis: RedisServer, tool: logging_tool.LoggingTool, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("hardening_replayed")
    logger.setLevel(logging.WARNING)
    writer = logging_tool.LoggingTool()
    await writer._persist("hardening_replayed", "DEBUG", 1.0)
    signature_key = logging_tool.signature_key(PREFIX, "hardening_replayed")
    signature = _text(signed_redis.command("GET", signature_key))
    assert [(name, level) for name, level, _ in await tool.overrides()] == [("hardening_replayed", "DEBUG")]
    await asyncio.sleep(1.2)  # expired
    # Written again, without an expiry this time: the signed expiry has passed.
    signed_redis.command("SET", PREFIX + "hardening_replayed", "DEBUG")
    signed_redis.command("SET", signature_key, signature)
    with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
        assert await tool.sync() == 0
    assert logger.level == logging.WARNING
    assert any(
        PREFIX + "hardening_replayed" in record.getMessage() and "expiry passed" in record.getMessage()
        for record in caplog.records
    )
    logger.setLevel(logging.NOTSET)


def _stored_pair(server: RedisServer, name: str) -> tuple[str, str]:
    """An override as stored: its level and its signature (what someone with access to Redis can copy)."""
    return _text(server.command("GET", PREFIX + name)), _text(
        server.command("GET", logging_tool.signature_key(PREFIX, name))
    )


def _write_back(server: RedisServer, name: str, pair: tuple[str, str]) -> None:
    server.command("SET", PREFIX + name, pair[0])
    server.command("SET", logging_tool.signature_key(PREFIX, name), pair[1])


async def test_a_deleted_permanent_override_written_back_is_refused_by_the_replicas_told_of_its_deletion(
    signed_redis: RedisServer, tool: logging_tool.LoggingTool, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone who can write to Redis keeps a signed permanent override and writes it back after the
    operator deleted it: refused by the replica that deleted it and by those its DELETE broadcast
    reached (whether they had applied it or not); a new override of that logger still applies."""
    name = "hardening_replayed_permanent"
    logger = logging.getLogger(name)
    logger.setLevel(logging.WARNING)
    deleting, told = logging_tool.LoggingTool(), logging_tool.LoggingTool()
    try:
        await deleting._persist(name, "DEBUG", None)
        kept = _stored_pair(signed_redis, name)
        assert await tool.sync() == 1  # `tool` saw it at a synchronisation
        assert logger.level == logging.DEBUG
        await deleting._persist(name, None, None)  # the operator's DELETE, on that replica
        for replica in (tool, told):  # its broadcast: `told` never had the override
            await replica.handle(name=name, level=None)
        assert logger.level == logging.WARNING
        assert await tool.sync() == 0

        _write_back(signed_redis, name, kept)
        with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
            for replica in (tool, deleting, told):
                assert await replica.overrides() == []
                assert name in replica._store.stale
            assert await tool.sync() == 0
        assert logger.level == logging.WARNING
        assert any(
            PREFIX + name in record.getMessage() and "a replayed override" in record.getMessage()
            for record in caplog.records
        )
        # A replica started later was not told: the limit of what Redis alone can tell.
        assert [entry[:2] for entry in await logging_tool.LoggingTool().overrides()] == [(name, "DEBUG")]

        # The operator sets it again: a newer signature, applied everywhere.
        await deleting._persist(name, "INFO", None)
        assert await tool.sync() == 1
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(logging.NOTSET)


async def test_an_older_signed_level_written_over_a_newer_one_is_refused_and_the_level_kept(
    signed_redis: RedisServer, tool: logging_tool.LoggingTool
) -> None:
    """A rollback: the operator moved a logger from DEBUG to ERROR; the old DEBUG override, signature
    intact, is written over the new one. The replicas keep ERROR (not reverted, not DEBUG)."""
    name = "hardening_rolled_back"
    logger = logging.getLogger(name)
    logger.setLevel(logging.WARNING)
    writer = logging_tool.LoggingTool()
    try:
        await writer._persist(name, "DEBUG", None)
        old = _stored_pair(signed_redis, name)
        assert await tool.sync() == 1
        await writer._persist(name, "ERROR", None)
        assert await tool.sync() == 1
        assert logger.level == logging.ERROR
        _write_back(signed_redis, name, old)
        assert await tool.sync() == 0
        assert logger.level == logging.ERROR
        assert tool.sync_status().ignored == 1
    finally:
        logger.setLevel(logging.NOTSET)


async def test_a_delete_reaching_a_replica_without_that_override_leaves_the_logger_alone(
    tool: logging_tool.LoggingTool,
) -> None:
    """The application configured the logger; this replica never applied an override of it (started
    after it was set and reverted, or the name had none): a DELETE broadcast does not reset it to NOTSET."""
    logger = logging.getLogger("hardening_never_overridden")
    logger.setLevel(logging.WARNING)
    try:
        await tool.handle(name="hardening_never_overridden", level=None)
        assert logger.level == logging.WARNING
        tool.apply("hardening_never_overridden", "DEBUG")
        await tool.handle(name="hardening_never_overridden", level=None)  # its own override: restored
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(logging.NOTSET)


async def test_without_a_secret_overrides_are_plain_as_in_014(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tool: logging_tool.LoggingTool
) -> None:
    clear_c2c_variables(monkeypatch)
    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    config.reload()
    logger = logging.getLogger("hardening_plain")
    try:
        redis_server.command("SET", PREFIX + "hardening_plain", "ERROR")  # as a 0.14 replica stores it
        assert await tool.sync() == 1
        assert logger.level == logging.ERROR
    finally:
        logger.setLevel(logging.NOTSET)
        clear_c2c_variables(monkeypatch)
        config.reload()


# --- items 15 and 17: durations and logger names ---------------------------------------------------


@pytest.fixture
async def client(c2c_client_factory: Any, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    env = {"C2C__AUTH__SECRET": SECRET, "C2C__TOOLS__VERSIONS_FILE": str(tmp_path / "versions.json")}
    async with c2c_client_factory(env) as http_client:
        yield http_client


@pytest.mark.parametrize("duration", [1e15, "99999999999999w", "P99999999999999W", 10**30, "9" * 400])
async def test_huge_durations_are_422(client: httpx.AsyncClient, duration: object) -> None:
    response = await client.post(
        "/c2c/logging/level", json={"name": "hardening_duration", "level": "DEBUG", "duration": duration}, headers=KEY
    )
    assert response.status_code == 422, response.text
    assert "out of range" in response.text
    assert logging.getLogger("hardening_duration").level == logging.NOTSET


@pytest.mark.parametrize("name", ["", "   ", "\t"])
async def test_blank_logger_names_are_422(client: httpx.AsyncClient, name: str) -> None:
    root = logging.getLogger()
    before = root.level
    response = await client.post("/c2c/logging/level", json={"name": name, "level": "CRITICAL"}, headers=KEY)
    assert response.status_code == 422, response.text
    assert "root" in response.text  # the message says how to name the root logger
    assert root.level == before
    assert (await client.get("/c2c/logging/overrides", headers=KEY)).json() == {"overrides": []}


async def test_the_root_logger_is_named_root(client: httpx.AsyncClient) -> None:
    root = logging.getLogger()
    before = root.level
    try:
        response = await client.post("/c2c/logging/level", json={"name": "root", "level": "ERROR"}, headers=KEY)
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "root"
        assert root.level == logging.ERROR
    finally:
        await client.delete("/c2c/logging/level", params={"name": "root"}, headers=KEY)
    assert root.level == before


# --- junk under the prefix: bad key names, wrong types, volume ---------------------------------------

# One EVAL writes many keys without a round trip each: `count` string keys `<prefix>junk_<i>` holding
# `value`, or hashes when `kind` is `hash`, or keys whose name ends with a byte that is not UTF-8.
_JUNK_SCRIPT = """
local count = tonumber(ARGV[1])
for i = 1, count do
    if ARGV[2] == 'hash' then
        redis.call('HSET', KEYS[1] .. 'junk_hash_' .. i, 'a', 'b')
    elseif ARGV[2] == 'binary' then
        redis.call('SET', KEYS[1] .. 'junk_bin_' .. i .. string.char(255), 'DEBUG')
    else
        redis.call('SET', KEYS[1] .. 'junk_' .. i, ARGV[3])
    end
end
return count
"""


def _junk(server: RedisServer, prefix: str, count: int, kind: str, value: str = "DEBUG") -> None:
    assert server.command("EVAL", _JUNK_SCRIPT, "1", prefix, str(count), kind, value) == count


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.WARNING and record.name == logging_tool.LOG.name
    ]


@pytest.fixture
def junk_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("hardening_junk")
    logger.setLevel(logging.WARNING)
    yield logger
    logger.setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    ("junk", "named"),
    [
        # a key name and a value that are not UTF-8: named, escaped
        (
            [("SET", PREFIX.encode() + b"bad\xff", "DEBUG"), ("SET", PREFIX + "hardening_bad_value", b"\xff\xfe")],
            [(PREFIX + "bad\\xff", ""), (PREFIX + "hardening_bad_value", "")],
        ),
        # keys of other types: named with their type
        (
            [("HSET", PREFIX + "junk", "a", "b"), ("RPUSH", PREFIX + "junk_list", "DEBUG")],
            [(PREFIX + "junk:", "hash"), (PREFIX + "junk_list", "list")],
        ),
    ],
    ids=["not-utf8", "other-types"],
)
async def test_junk_keys_are_skipped(
    redis_client: httpx.AsyncClient,
    redis_server: RedisServer,
    junk_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
    junk: list[tuple[str | bytes, ...]],
    named: list[tuple[str, str]],
) -> None:
    for command in junk:
        redis_server.command(*command)
    redis_server.command("SET", PREFIX + "hardening_junk", "ERROR")
    with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
        response = await redis_client.get("/c2c/logging/overrides", headers=KEY)
        assert response.status_code == 200, response.text
        assert response.json() == {"overrides": [{"name": "hardening_junk", "level": "ERROR"}]}
        tool = logging_tool.get_tool()
        await tool.sync()
    assert junk_logger.level == logging.ERROR
    status = tool.sync_status()
    assert status.state == "in_sync", status
    assert status.ignored == 2
    warnings = _warnings(caplog)
    for key, word in named:
        assert any(key in message and word in message for message in warnings), (key, warnings)


@pytest.fixture
async def signed_client(
    c2c_client_factory: Any, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        "C2C__AUTH__SECRET": SECRET,
        "C2C__REDIS__URL": redis_server.url,
        "C2C__BROADCAST__SECRET": BROADCAST_SECRET,
        "C2C__TOOLS__VERSIONS_FILE": str(tmp_path / "versions.json"),
    }
    async with c2c_client_factory(env) as client:
        yield client


async def test_many_junk_keys_beside_a_signed_override(
    signed_client: httpx.AsyncClient,
    redis_server: RedisServer,
    junk_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A signed override, written as a replica writes it, among thousands of junk keys: unsigned
    # overrides of valid names, hashes, names that are not UTF-8, values that are no level.
    await logging_tool.LoggingTool()._persist("hardening_junk", "ERROR", None)
    _junk(redis_server, PREFIX, 1500, "string", "DEBUG")
    _junk(redis_server, PREFIX, 500, "hash")
    _junk(redis_server, PREFIX, 500, "binary")
    redis_server.command("EVAL", _JUNK_SCRIPT, "1", PREFIX + "x", "500", "string", "LOUD")
    junk = 3000
    tool = logging_tool.get_tool()
    with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
        started = time.monotonic()
        response = await signed_client.get("/c2c/logging/overrides", headers=KEY)
        assert response.status_code == 200, response.text
        assert response.json() == {"overrides": [{"name": "hardening_junk", "level": "ERROR"}]}
        assert time.monotonic() - started < 5
        await tool.sync()  # a replica restarted among the junk
        assert junk_logger.level == logging.ERROR
        assert tool.sync_status().state == "in_sync"
        assert tool.sync_status().ignored == junk
        first = len(_warnings(caplog))
        # Bounded: a few keys named, one summary with the count, not one warning per key.
        assert first == logging_tool.MAX_NAMED_WARNINGS + 1, _warnings(caplog)
        assert any(str(junk - logging_tool.MAX_NAMED_WARNINGS) in message for message in _warnings(caplog))
        for _ in range(5):  # the periodic synchronisation: nothing new, nothing said again
            await tool.sync()
        assert len(_warnings(caplog)) == first, _warnings(caplog)[first:]


async def test_the_keys_one_read_considers_are_capped(
    signed_redis: RedisServer,
    tool: logging_tool.LoggingTool,
    junk_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(overrides_module, "MAX_KEYS", 100)
    _junk(signed_redis, PREFIX, 300, "hash")
    with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
        assert await tool.overrides() == []
        assert tool.sync_status().ignored >= 100
        for _ in range(3):
            await tool.sync()
    warnings = _warnings(caplog)
    assert len(warnings) <= 20, warnings
    assert sum("more than 100 keys" in message for message in warnings) == 1, warnings


async def test_the_overrides_one_read_accepts_are_capped(
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    tool: logging_tool.LoggingTool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clear_c2c_variables(monkeypatch)
    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    config.reload()
    monkeypatch.setattr(overrides_module, "MAX_OVERRIDES", 10)
    _junk(redis_server, PREFIX + "hardening_cap", 30, "string", "DEBUG")
    try:
        with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
            overrides = await tool.overrides()
        assert len(overrides) == 10
        assert tool.sync_status().ignored == 20
        assert any("more than 10 overrides" in message for message in _warnings(caplog)), _warnings(caplog)
    finally:
        clear_c2c_variables(monkeypatch)
        config.reload()


def test_warn_once_does_not_forget_everything_when_full(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overrides_module, "_MAX_WARNED", 50)
    store = overrides_module.OverrideStore()
    markers = [(f"{PREFIX}junk_{index}", "DEBUG", "not signed") for index in range(51)]
    with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
        for marker in markers:  # one more than it keeps: the oldest is forgotten, not all of them
            store.warn_once(*marker)
        assert len(caplog.records) == 51
        for _ in range(3):
            for marker in markers[-40:]:
                store.warn_once(*marker)
        assert len(caplog.records) == 51
        store.warn_once(*markers[0])  # forgotten (least recently seen): said again
    assert len(caplog.records) == 52


@pytest.mark.skipif(redis_py_version() < CLUSTER_MIN_REDIS_PY, reason="Redis Cluster mode needs redis-py >= 8")
async def test_junk_keys_on_a_cluster(
    redis_cluster: RedisCluster,
    monkeypatch: pytest.MonkeyPatch,
    tool: logging_tool.LoggingTool,
    junk_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clear_c2c_variables(monkeypatch)
    monkeypatch.setenv("C2C__REDIS__URL", redis_cluster.url)
    monkeypatch.setenv("C2C__REDIS__CLUSTER", "true")
    monkeypatch.setenv("C2C__BROADCAST__SECRET", BROADCAST_SECRET)
    config.reload()
    tagged = logging_tool.cluster_prefix(PREFIX)
    owner = redis_cluster.master_for_key(tagged)  # every key of the prefix is in the slot of its tag
    try:
        await tool._persist("hardening_junk", "ERROR", None)
        owner.command("SET", tagged.encode() + b"bad\xff", "DEBUG")
        owner.command("HSET", tagged + "junk", "a", "b")
        for index in range(30):
            owner.command("SET", tagged + f"junk_{index}", "DEBUG")  # unsigned
        with caplog.at_level(logging.WARNING, logger=logging_tool.LOG.name):
            assert [(name, level) for name, level, _ in await tool.overrides()] == [("hardening_junk", "ERROR")]
            await tool.sync()
        assert junk_logger.level == logging.ERROR
        assert tool.sync_status().ignored == 32
        warnings = _warnings(caplog)
        assert len(warnings) <= logging_tool.MAX_NAMED_WARNINGS + 1, warnings
        assert any("22 more" in message for message in warnings), warnings
    finally:
        clear_c2c_variables(monkeypatch)
        config.reload()
