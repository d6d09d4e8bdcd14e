"""A replica stopped gracefully (SIGTERM to uvicorn) leaves the registry at once, even without shutdown().

uvicorn re-raises SIGTERM once its lifespan shutdown is done, which ends the process before the
event loop's end could close the broadcaster; `startup()` chains a SIGTERM handler that drains it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import c2c_broadcast
from c2c_broadcast import BroadcastResponse, MissingAnswer
from c2c_config import reload_settings
from c2c_testing import RedisServer, free_port

pytest.importorskip("redis")
pytest.importorskip("uvicorn")

HERE = Path(__file__).parent
REGISTRY = "broadcast_api_c2c_registry:drain_echo"


def _start_replica(redis_server: RedisServer, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env.update({"C2C__REDIS__URL": redis_server.url, "PYTHONPATH": str(HERE)})
    with log.open("wb") as output:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "uvicorn_replica:app", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1):
                return process, port
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the replica did not start:\n{log.read_text()}")


def test_sigterm_leaves_the_registry_without_shutdown(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = tmp_path / "uvicorn.log"
    process, _ = _start_replica(redis_server, log)
    try:
        assert redis_server.command("ZCARD", REGISTRY) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
    assert redis_server.command("ZCARD", REGISTRY) == 0, log.read_text()

    # A caller is not kept waiting for the stopped replica (its entry would live REPLICA_TTL, 15 s).
    monkeypatch.setenv("C2C__REDIS__URL", redis_server.url)
    reload_settings(c2c_broadcast.Settings)

    async def call() -> list[BroadcastResponse[object] | MissingAnswer] | None:
        await c2c_broadcast.startup()
        try:
            return await c2c_broadcast.broadcast("drain_echo", {}, expect_answers=True, timeout=5)
        finally:
            await c2c_broadcast.shutdown()

    started = time.monotonic()
    try:
        assert asyncio.run(call()) == []
    finally:
        monkeypatch.delenv("C2C__REDIS__URL")
        reload_settings(c2c_broadcast.Settings)
    assert time.monotonic() - started < 3
