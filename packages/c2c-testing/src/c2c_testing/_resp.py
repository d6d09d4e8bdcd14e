"""A tiny synchronous RESP2 client: enough to configure and probe servers from tests."""

from __future__ import annotations

import socket
from typing import BinaryIO, TypeAlias

RespValue: TypeAlias = bytes | str | int | list["RespValue"] | None
Arg: TypeAlias = str | bytes | int | float


class RespError(Exception):
    """An error reply from the server (`-ERR ...`, `-NOAUTH ...`); the message is the reply text."""

    @property
    def code(self) -> str:
        """The first word of the error, e.g. `ERR`, `NOAUTH`, `LOADING`."""
        return str(self).split(" ", 1)[0]


class RespProtocolError(ConnectionError):
    """The connection closed mid-reply or the server sent something that is not RESP2."""


def encode_command(args: tuple[Arg, ...]) -> bytes:
    """Encode a command as a RESP array of bulk strings."""
    if not args:
        raise ValueError("a Redis command needs at least a name")
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        value: object = arg  # checked at run time too: callers are tests, not type-checked code
        if isinstance(value, bytes):
            data = value
        elif isinstance(value, str):
            data = value.encode()
        elif isinstance(value, int | float) and not isinstance(value, bool):
            data = repr(value).encode()
        else:
            raise TypeError(f"cannot send {type(value).__name__} to Redis: use str, bytes, int or float")
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def read_reply(stream: BinaryIO) -> RespValue:
    """Read one RESP2 reply; an error reply raises `RespError`.

    Simple strings come back as `str`, bulk strings as `bytes`, integers as `int`, arrays as
    lists, null bulk/array as None.
    """
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise RespProtocolError("connection closed before a complete reply")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RespError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        length = int(body)
        if length < 0:
            return None
        data = stream.read(length + 2)
        if len(data) != length + 2:
            raise RespProtocolError("connection closed inside a bulk string")
        return data[:-2]
    if kind == b"*":
        count = int(body)
        if count < 0:
            return None
        return [read_reply(stream) for _ in range(count)]
    raise RespProtocolError(f"unexpected RESP reply type {kind!r}")


def execute(host: str, port: int, *args: Arg, password: str | None = None, timeout: float = 5.0) -> RespValue:
    """Open a connection, authenticate when `password` is given, send one command, return its reply."""
    payload = encode_command(args)
    with socket.create_connection((host, port), timeout=timeout) as sock, sock.makefile("rb") as stream:
        if password is not None:
            sock.sendall(encode_command(("AUTH", password)))
            read_reply(stream)
        sock.sendall(payload)
        return read_reply(stream)


def as_text(value: RespValue) -> str:
    """A bulk or simple string reply as `str` (for replies such as ROLE or SENTINEL fields)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string reply, got {value!r}")


def pairs_to_dict(value: RespValue) -> dict[str, str]:
    """A flat `[key, value, key, value, ...]` reply (SENTINEL MASTER/REPLICAS) as a dict."""
    if not isinstance(value, list):
        raise TypeError(f"expected an array reply, got {value!r}")
    items = [as_text(item) for item in value]
    return dict(zip(items[::2], items[1::2], strict=True))
