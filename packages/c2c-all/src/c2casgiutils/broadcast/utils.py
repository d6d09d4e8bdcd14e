"""c2casgiutils 0.14's `add_host_info`, and the conversion of our answers to 0.14's raw form."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any, TypedDict

from c2c_broadcast._wire import error_payload
from c2c_broadcast.types import BroadcastResponse, ErrorAnswer, MissingAnswer

__all__ = ["add_host_info"]


class _BroadcastResponse(TypedDict):
    """One replica's raw answer in c2casgiutils 0.14's form: `BroadcastResponse(**value)` builds the model."""

    hostname: str
    pid: int
    payload: Any


def add_host_info(response: Any) -> _BroadcastResponse:
    """Wrap a handler's result with this process's host name and pid, as c2casgiutils 0.14 did.

    Returns the dict `{"hostname": ..., "pid": ..., "payload": response}` (0.14's answer on the
    wire, and what its broadcasters' `broadcast` returned per answer).
    """
    return {"hostname": socket.gethostname(), "pid": os.getpid(), "payload": response}


def to_014_answers(answers: Sequence[BroadcastResponse[Any] | MissingAnswer] | None) -> list[Any] | None:
    """Our answers in the raw form 0.14's broadcasters returned: dicts, `None` for a missing one.

    A handler error (`ErrorAnswer`) becomes the payload 0.14's Redis broadcaster sent on errors,
    `{"status": 500, "message": ...}`.
    """
    if answers is None:
        return None
    raw: list[Any] = []
    for answer in answers:
        if isinstance(answer, BroadcastResponse):
            raw.append({"hostname": answer.hostname, "pid": answer.pid, "payload": answer.payload})
        elif isinstance(answer, ErrorAnswer):
            raw.append({"hostname": answer.hostname, "pid": answer.pid, "payload": error_payload(answer.message)})
        else:
            raw.append(None)
    return raw
