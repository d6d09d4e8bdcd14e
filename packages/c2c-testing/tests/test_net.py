"""free_port and wait_for_port."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import pytest

from c2c_testing import _net, free_port, wait_for_port


def test_free_port_can_be_bound_on_loopback() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_port_returns_once_listening() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        wait_for_port("127.0.0.1", server.getsockname()[1], timeout=5)


def test_wait_for_port_times_out_with_the_address() -> None:
    port = free_port()
    with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}"):
        wait_for_port("127.0.0.1", port, timeout=0.2)


def test_a_port_handed_out_is_reserved_across_processes(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_net, "RESERVATIONS", tmp_path)
    port = free_port()
    assert (tmp_path / str(port)).exists()
    assert _net._reserve(port) is False  # another caller (here, the same one) cannot have it
    other = free_port()
    assert other != port


def test_an_old_reservation_is_taken_over(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_net, "RESERVATIONS", tmp_path)
    (tmp_path / "40000").touch()
    old = time.time() - _net.RESERVATION_SECONDS - 1
    os.utime(tmp_path / "40000", (old, old))
    assert _net._reserve(40000) is True
    assert _net._reserve(40000) is False


def test_every_offer_reserved_still_gives_a_free_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_net, "_reserve", lambda port: False)
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
