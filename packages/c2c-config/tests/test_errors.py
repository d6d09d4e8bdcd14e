"""`describe_error`: one line for an error, whatever it holds."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2c_config import describe_error


class _Broken(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_type_and_message() -> None:
    assert describe_error(ValueError("bad value")) == "ValueError: bad value"
    assert describe_error(TimeoutError()) == "TimeoutError"
    assert describe_error(ValueError("  \n ")) == "ValueError"
    assert describe_error(_Broken()) == "_Broken"
    assert describe_error(OSError("one\ntwo\r\n  three")) == "OSError: one two three"
    assert describe_error(ValueError("x" * 50), limit=10) == "ValueErro…"
    assert describe_error(ValueError("cannot reach redis://user:hunter2@cache:6379/0?password=pw2&db=1")) == (
        "ValueError: cannot reach redis://user:***@cache:6379/0?password=***&db=1"
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_real_sentinel_error_names_the_sentinels_not_their_clients() -> None:
    """redis-py's `MasterNotFoundError` holds the repr of every Sentinel client it asked (some 1,500
    characters each, with their options); the description names their addresses."""
    redis_sentinel = pytest.importorskip("redis.asyncio.sentinel")
    ports = [_closed_port(), _closed_port()]
    sentinel = redis_sentinel.Sentinel([("127.0.0.1", port) for port in ports], socket_timeout=1.0)
    with pytest.raises(Exception) as raised:  # noqa: PT011 (redis-py's class, whatever its module)
        await sentinel.discover_master("mymaster")
    for client in sentinel.sentinels:
        await client.aclose()
    raw = str(raised.value)
    described = describe_error(raised.value)
    assert type(raised.value).__name__ == "MasterNotFoundError"
    assert "<redis." in raw
    assert len(raw) > 1000
    assert "<redis" not in described
    assert len(described) < 500, described
    assert described.startswith("MasterNotFoundError: No master found for 'mymaster'")
    for port in ports:
        assert f"127.0.0.1:{port} - " in described


def test_a_cut_client_repr() -> None:
    text = "failed: <redis.asyncio.client.Redis(<redis.asyncio.connection.ConnectionPool(<Conn(host=h,port=1"
    assert describe_error(ConnectionError(text)) == "ConnectionError: failed: <redis client>"
    assert describe_error(ConnectionError("a <redis.X(host=a,port=1)> b <redis.Y()> c")) == (
        "ConnectionError: a a:1 b <redis client> c"
    )


@given(st.text(), st.one_of(st.none(), st.integers(min_value=1, max_value=300)))
def test_any_message_gives_one_bounded_line(message: str, limit: int | None) -> None:
    described = describe_error(RuntimeError(message), limit=limit)
    assert described.startswith("RuntimeError"[: (limit or 99) - 1])
    assert "\n" not in described
    assert "\r" not in described
    if limit is not None:
        assert len(described) <= limit


@given(st.text(alphabet="abcdefgh0123456789", min_size=6, max_size=20))
def test_a_url_password_never_shows(password: str) -> None:
    error = ConnectionError(f"Error connecting to redis://default:{password}@10.0.0.1:6379/0: refused")
    assert password not in describe_error(error).replace("10.0.0.1:6379", "")
