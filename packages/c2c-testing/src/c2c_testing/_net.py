"""Loopback ports: pick a free one, wait for one to accept connections."""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on `host` right now (the kernel picks it by binding port 0).

    Another process may take it before you bind it: servers started by c2c-testing retry on a new
    port when that happens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


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
