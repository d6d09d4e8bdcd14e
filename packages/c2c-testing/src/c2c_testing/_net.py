"""Loopback ports: pick a free one, wait for one to accept connections."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


# Ports handed out lately, one file per port, shared by every process on the machine.
RESERVATIONS = Path(tempfile.gettempdir()) / "c2c-testing-ports"
RESERVATION_SECONDS = 120.0


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on `host` right now (the kernel picks it by binding port 0).

    The port is also reserved for `RESERVATION_SECONDS` across processes (a file per port in
    `RESERVATIONS`, created exclusively), so that two test runs side by side (CI runs the isolation
    cells next to the whole workspace) never hand the same port to two servers that are both still
    starting: the kernel may offer a port again as soon as the probing socket is closed. A process
    that does not call this may still take it: servers started by c2c-testing retry on a new port
    when that happens.
    """
    port = 0
    for _ in range(64):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if _reserve(port):
            return port
    return port  # every offer was reserved elsewhere: this one is at least free right now


def _reserve(port: int) -> bool:
    """Reserve `port` for this process; False when another caller reserved it less than
    `RESERVATION_SECONDS` ago."""
    path = RESERVATIONS / str(port)
    try:
        RESERVATIONS.mkdir(exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        try:
            if time.time() - path.stat().st_mtime < RESERVATION_SECONDS:
                return False
            os.utime(path)  # an old reservation: taken over
        except OSError:
            return False
    except OSError:  # no writable temporary directory: no reservation, the port is free right now
        return True
    return True


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to `host:port` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Wait until `host:port` accepts TCP connections; raise `TimeoutError` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not port_is_open(host, port, timeout=min(0.5, max(timeout, 0.01))):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing accepted connections on {host}:{port} within {timeout:g} s")
        time.sleep(0.05)
