"""redis_server and redis_server_factory start real redis-server processes."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from c2c_testing import RedisServer, RedisServerFactory, RespError, ServerError, free_port


def test_answers_ping_set_and_get(redis_server: RedisServer) -> None:
    assert redis_server.command("PING") == "PONG"
    assert redis_server.command("SET", "greeting", "hello") == "OK"
    assert redis_server.command("GET", "greeting") == b"hello"
    assert redis_server.command("INCR", "counter") == 1
    assert redis_server.command("GET", "missing") is None
    assert redis_server.command("RPUSH", "list", "a", "b") == 2
    assert redis_server.command("LRANGE", "list", 0, -1) == [b"a", b"b"]


def test_url_and_address(redis_server: RedisServer) -> None:
    assert redis_server.host == "127.0.0.1"
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.address == ("127.0.0.1", redis_server.port)


def test_binds_loopback_only_without_persistence(redis_server: RedisServer) -> None:
    assert redis_server.command("CONFIG", "GET", "bind") == [b"bind", b"127.0.0.1"]
    assert redis_server.command("CONFIG", "GET", "save") == [b"save", b""]
    assert redis_server.command("CONFIG", "GET", "appendonly") == [b"appendonly", b"no"]
    assert redis_server.command("CONFIG", "GET", "dir")[1] == str(redis_server.directory).encode()  # type: ignore[index]


def test_error_replies_raise(redis_server: RedisServer) -> None:
    redis_server.command("SET", "text", "x")
    with pytest.raises(RespError, match="WRONGTYPE"):
        redis_server.command("LPUSH", "text", "y")


def test_stop_refuses_connections_and_start_keeps_the_port(redis_server: RedisServer) -> None:
    port = redis_server.port
    redis_server.stop()
    assert redis_server.pid is None  # (not `is_running`: mypy would keep it narrowed to False)
    assert not redis_server.ping()
    with pytest.raises(ConnectionRefusedError):
        redis_server.command("PING")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    redis_server.start()
    assert redis_server.is_running
    assert redis_server.port == port
    assert redis_server.command("PING") == "PONG"


def test_frozen_keeps_connections_open_and_answers_after(redis_server: RedisServer) -> None:
    """Within `frozen()` a connection is accepted (the kernel's backlog) but nothing answers; after it
    the server answers with its data intact, on a connection opened while it was frozen too."""
    redis_server.command("SET", "k", "v")
    pid = redis_server.pid
    with redis_server.frozen() as same:
        assert same is redis_server
        assert not redis_server.ping(timeout=0.3)
        with pytest.raises(TimeoutError):
            redis_server.command("PING", timeout=0.3)
        waiting = socket.create_connection(("127.0.0.1", redis_server.port), timeout=1)
        waiting.sendall(b"PING\r\n")
    try:
        waiting.settimeout(5)
        assert waiting.recv(64) == b"+PONG\r\n"  # the request sent while frozen is answered after
    finally:
        waiting.close()
    assert redis_server.pid == pid
    assert redis_server.command("GET", "k") == b"v"


def test_frozen_resumes_after_an_error_and_refuses_a_stopped_server(redis_server: RedisServer) -> None:
    with pytest.raises(RuntimeError, match="inside"), redis_server.frozen():
        raise RuntimeError("inside")
    assert redis_server.ping()
    redis_server.stop()
    with pytest.raises(ServerError, match="not running"), redis_server.frozen():
        pass


def test_restart_keeps_the_port_and_loses_the_data(redis_server: RedisServer) -> None:
    port, pid = redis_server.port, redis_server.pid
    redis_server.command("SET", "k", "v")
    redis_server.restart()
    assert redis_server.port == port
    assert redis_server.pid != pid
    assert redis_server.command("GET", "k") is None  # no persistence: a restart is a clean server


def test_config_set_applies(redis_server: RedisServer) -> None:
    assert redis_server.command("CONFIG", "SET", "maxmemory", "10mb") == "OK"
    assert redis_server.command("CONFIG", "GET", "maxmemory") == [b"maxmemory", b"10485760"]


def test_factory_starts_independent_servers(redis_server_factory: RedisServerFactory) -> None:
    first, second = redis_server_factory(), redis_server_factory()
    assert first.port != second.port
    first.command("SET", "where", "first")
    assert second.command("GET", "where") is None


def test_factory_password_and_extra_args(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory(password="s3cret:/@", args=["--databases", "4"])
    assert server.url == f"redis://:s3cret%3A%2F%40@127.0.0.1:{server.port}/0"
    assert server.command("PING") == "PONG"  # the helper authenticates
    assert server.command("CONFIG", "GET", "databases") == [b"databases", b"4"]
    with socket.create_connection(server.address, timeout=2) as sock:
        sock.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
        assert sock.recv(100).startswith(b"-NOAUTH")


def test_factory_stops_its_servers_at_teardown(redis_server_factory: RedisServerFactory) -> None:
    # The teardown side is proven in test_plugin.py; here: a server can be closed early, twice.
    server = redis_server_factory()
    pid = server.pid
    assert pid is not None
    server.close()
    server.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not server.directory.exists()


def test_start_twice_is_an_error(redis_server: RedisServer) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        redis_server.start()


def _listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_a_fresh_server_moves_off_a_port_taken_meanwhile() -> None:
    server = RedisServer()
    taken = server.port
    with _listen(taken), server:
        assert server.port != taken
        assert server.command("PING") == "PONG"


def test_a_restart_waits_for_its_port_to_be_released(redis_server: RedisServer) -> None:
    port = redis_server.port
    redis_server.stop()
    blocker = _listen(port)
    release = threading.Timer(0.3, blocker.close)
    release.start()
    try:
        redis_server.start(timeout=10)
    finally:
        release.join()
    assert redis_server.port == port
    assert redis_server.command("PING") == "PONG"


def test_a_busy_fixed_port_is_a_clear_error() -> None:
    port = free_port()
    server = RedisServer(port=port)
    try:
        with _listen(port), pytest.raises(ServerError, match=rf"could not bind 127.0.0.1:{port} .*port busy"):
            server.start(timeout=0.5)
    finally:
        server.close()


def test_a_server_that_cannot_start_reports_its_log() -> None:
    server = RedisServer(args=["--no-such-directive", "1"])
    try:
        with pytest.raises(ServerError, match=r"(?s)exited with status 1 while starting.*no-such-directive"):
            server.start()
    finally:
        server.close()
    assert not server.directory.exists()


def test_never_adopts_another_server_answering_on_its_port(redis_server: RedisServer) -> None:
    newcomer = RedisServer()
    newcomer.port = redis_server.port  # as if another process took the port after free_port()
    with newcomer:
        assert newcomer.port != redis_server.port
        newcomer.command("SET", "owner", "newcomer")
        assert redis_server.command("GET", "owner") is None
