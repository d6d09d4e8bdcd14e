"""The tiny RESP client: encoding commands and parsing replies."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2c_testing import RespError, RespValue
from c2c_testing._resp import RespProtocolError, encode_command, read_reply


def _encode_reply(value: RespValue) -> bytes:
    # The server side of RESP2, written independently of the client under test.
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str):
        return b"+" + value.encode() + b"\r\n"
    if isinstance(value, bytes):
        return b"$%d\r\n" % len(value) + value + b"\r\n"
    return b"*%d\r\n" % len(value) + b"".join(_encode_reply(item) for item in value)


simple = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=20)
replies: st.SearchStrategy[RespValue] = st.recursive(
    st.none() | st.integers() | simple | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=4),
    max_leaves=12,
)


@given(replies)
def test_replies_parse_back_to_the_same_value(value: RespValue) -> None:
    stream = io.BytesIO(_encode_reply(value) + b"+NEXT\r\n")
    assert read_reply(stream) == value
    assert read_reply(stream) == "NEXT"  # consumed exactly one reply


@given(st.binary(max_size=30))
def test_truncated_replies_raise_protocol_errors(payload: bytes) -> None:
    full = _encode_reply([payload, 7])
    for cut in range(len(full)):
        with pytest.raises(RespProtocolError):
            read_reply(io.BytesIO(full[:cut]))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("PING",), b"*1\r\n$4\r\nPING\r\n"),
        (("SET", b"k\r\n", 12), b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n12\r\n"),
        (("INCRBYFLOAT", "k", 1.5), b"*3\r\n$11\r\nINCRBYFLOAT\r\n$1\r\nk\r\n$3\r\n1.5\r\n"),
        (("SET", "é", ""), b"*3\r\n$3\r\nSET\r\n$2\r\n\xc3\xa9\r\n$0\r\n\r\n"),
    ],
    ids=["ping", "binary", "float", "utf8"],
)
def test_encode_command(args: tuple[str | bytes | int | float, ...], expected: bytes) -> None:
    assert encode_command(args) == expected


@pytest.mark.parametrize("bad", [None, True, ["x"]], ids=["none", "bool", "list"])
def test_encode_command_rejects_other_types(bad: object) -> None:
    with pytest.raises(TypeError, match="cannot send"):
        encode_command(("SET", "k", bad))  # type: ignore[arg-type]


def test_error_reply_raises_with_its_code() -> None:
    with pytest.raises(RespError, match="WRONGTYPE Operation") as info:
        read_reply(io.BytesIO(b"-WRONGTYPE Operation against a key\r\n"))
    assert info.value.code == "WRONGTYPE"


def test_null_array_and_unknown_type() -> None:
    assert read_reply(io.BytesIO(b"*-1\r\n")) is None
    with pytest.raises(RespProtocolError, match="unexpected"):
        read_reply(io.BytesIO(b"%1\r\n"))
