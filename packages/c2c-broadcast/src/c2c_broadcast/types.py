"""The items a broadcast with `expect_answers=True` returns.

- `BroadcastResponse[T]`: a replica answered; `payload` is what its handler returned.
- `ErrorAnswer`: a replica's handler raised (or the replica stopped before it finished:
  `error_type="ReplicaStoppedError"`); it carries the replica and the exception type and message.
  It is a `MissingAnswer` (no payload came back), so code written for c2casgiutils 0.14 that
  treats every non-`BroadcastResponse` item as missing keeps working.
- `MissingAnswer`: a replica expected to answer did not within the timeout. `hostname` and `pid`
  are known when the replica was in the registry of live replicas, else `None`.
"""

from __future__ import annotations

import dataclasses
from typing import Generic, TypeVar

from pydantic import BaseModel

_PayloadT = TypeVar("_PayloadT")

__all__ = ["BroadcastResponse", "ErrorAnswer", "MissingAnswer"]


class BroadcastResponse(BaseModel, Generic[_PayloadT]):
    """The answer of one replica: where it ran and what the handler returned."""

    hostname: str
    pid: int
    payload: _PayloadT


@dataclasses.dataclass(frozen=True, kw_only=True)
class MissingAnswer:
    """Placeholder for a replica that did not answer within the timeout."""

    hostname: str | None = None
    pid: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ErrorAnswer(MissingAnswer):
    """A replica's handler raised, or the replica stopped before it finished: no payload, but who and why."""

    hostname: str
    pid: int
    error_type: str
    message: str
