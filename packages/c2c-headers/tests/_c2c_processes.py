"""Server processes of the real-proxy tests (uvicorn, granian, behind nginx): wait for them, stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from c2c_testing import wait_for_port

START_TIMEOUT = 60.0  # a bound for "does not hang"


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log, for a failure message."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no {path})"
    return f"last lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait, then SIGKILL (to its process group when it leads one: granian's worker too); always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            if os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
    process.wait(10)


def wait_started(process: subprocess.Popen[bytes], ready: Callable[[], bool], log: Path, what: str) -> None:
    """Until `ready()`; fail with the log's tail when `process` exits first or after `START_TIMEOUT`."""
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"{what} exited with status {process.returncode} while starting\n{tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not start in {START_TIMEOUT:g} s\n{tail(log)}")
        time.sleep(0.05)


def port_ready(port: int) -> Callable[[], bool]:
    """Whether 127.0.0.1:`port` accepts connections."""

    def ready() -> bool:
        try:
            wait_for_port("127.0.0.1", port, timeout=0.2)
        except TimeoutError:
            return False
        return True

    return ready


def socket_ready(path: Path) -> Callable[[], bool]:
    """Whether the unix socket `path` accepts connections."""

    def ready() -> bool:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.settimeout(0.2)
            try:
                probe.connect(str(path))
            except OSError:
                return False
            return True

    return ready
