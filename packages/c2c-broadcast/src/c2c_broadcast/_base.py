"""What both broadcasters share: identity, handler registry, running a handler, building answers."""

from __future__ import annotations

import abc
import inspect
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Literal

import pydantic_core

from c2c_broadcast._settings import BroadcastSettings
from c2c_broadcast._status import (
    HANDLER_CALLS,
    HANDLER_ERRORS,
    BroadcasterStatus,
    InMemoryMetrics,
    Metrics,
    RateLimitedLog,
)
from c2c_broadcast._wire import EVERYONE, Answer, Targets, dumps
from c2c_broadcast.types import BroadcastResponse, ErrorAnswer, MissingAnswer

LOG = logging.getLogger("c2c_broadcast")

Handler = Callable[..., Awaitable[Any] | Any]
"""A subscriber: called with the broadcast's params as keyword arguments; may be sync or async."""

Result = BroadcastResponse[Any] | MissingAnswer
"""One item of a broadcast's answers (`ErrorAnswer` is a `MissingAnswer`)."""

REPLICA_STOPPED = "ReplicaStoppedError"
"""The `error_type` of the `ErrorAnswer` for a replica that stopped before its handler finished."""


class BroadcastUnavailableError(ConnectionError):
    """The broadcast could not be sent: Redis is unreachable (the listener keeps reconnecting)."""


class MessageTooLargeError(ValueError):
    """A broadcast message is larger than `C2C__BROADCAST__MAX_MESSAGE_SIZE`: it is not sent.

    Raised by `broadcast()` (and the functions `decorate` returns) before anything reaches Redis:
    a message over Redis' pub/sub output-buffer limit would make Redis disconnect every subscriber
    of the channel. `size` is the encoded message's size in bytes, `max_size` the limit. An
    *answer* too large is never raised: the caller gets an `ErrorAnswer` whose `error_type` is
    `"MessageTooLargeError"` for that replica.
    """

    def __init__(self, what: str, size: int, max_size: int) -> None:
        """`what` names the message ("the broadcast message on 'channel'", "the answer")."""
        super().__init__(f"{what} is {size} bytes, over C2C__BROADCAST__MAX_MESSAGE_SIZE ({max_size} bytes): not sent")
        self.size = size
        self.max_size = max_size


def to_wire_params(params: Mapping[str, Any] | None, round_trip: bool = True) -> dict[str, Any]:
    """Turn params into JSON values (pydantic models to JSON-mode dicts, ...); `TypeError` when impossible.

    `round_trip=False` skips the final JSON round trip (the Redis broadcaster serialises right after).
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping of keyword arguments, not {type(params).__name__}")
    for key in params:
        if not isinstance(key, str):
            raise TypeError(f"params keys are keyword argument names, not {key!r}")
    try:
        jsonable = pydantic_core.to_jsonable_python(dict(params))
        # Round trip, so that the local broadcaster hands handlers what a Redis one would.
        value = json.loads(dumps(jsonable)) if round_trip else jsonable
    except (pydantic_core.PydanticSerializationError, ValueError) as error:
        raise TypeError(f"broadcast params must be JSON serialisable: {error}") from None
    assert isinstance(value, dict)
    return value


def answer_to_result(answer: Answer) -> Result:
    """The public item for a decoded answer."""
    if answer.error_type is not None:
        return ErrorAnswer(
            hostname=answer.hostname, pid=answer.pid, error_type=answer.error_type, message=answer.error_message or ""
        )
    return BroadcastResponse(hostname=answer.hostname, pid=answer.pid, payload=answer.payload)


class BaseBroadcaster(abc.ABC):
    """The interface of a broadcaster; `c2c_broadcast`'s functions delegate to the current one."""

    kind: ClassVar[Literal["local", "redis"]]

    def __init__(self, settings: BroadcastSettings | None = None, metrics: Metrics | None = None) -> None:
        """Create a broadcaster (no I/O: call `start()`)."""
        self.settings = settings if settings is not None else BroadcastSettings()
        self.memory_metrics = InMemoryMetrics()
        self.metrics: Metrics = metrics if metrics is not None else self.memory_metrics
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.replica_id = f"{self.hostname}:{self.pid}:{secrets.token_hex(6)}"
        self._handlers: dict[str, Handler] = {}
        # A handler's failures, one traceback per channel every 10 s: without a secret, anyone who
        # may PUBLISH can send calls with bad parameters, each an exception.
        self._handler_log = RateLimitedLog(LOG)

    def _count(self, name: str, amount: int = 1, **labels: str) -> None:
        self.memory_metrics.increment(name, amount, **labels)
        if self.metrics is not self.memory_metrics:
            self.metrics.increment(name, amount, **labels)

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """Whether `close()` was called (a closed broadcaster is not used again)."""

    def adopt(self, subscriptions: Mapping[str, Handler]) -> None:
        """Take these subscriptions before `start()` (no I/O: the start subscribes them)."""
        self._handlers.update(subscriptions)

    def bind(self) -> None:  # noqa: B027 - optional hook
        """Take what this broadcaster needs from the running event loop (its Redis client); no I/O."""

    async def drain(self) -> None:  # noqa: B027 - optional hook
        """Stop being expected by callers (the process is about to stop), while still answering.

        A Redis broadcaster leaves the registry of live replicas and stops its heartbeats, so that
        calls made meanwhile do not wait for this replica once it is gone; a local one has nothing
        to do. Bounded in time, never raises.
        """

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start background work (connections); never raises because a dependency is down.

        Idempotent; does nothing once closed.
        """

    @abc.abstractmethod
    async def subscribe(self, channel: str, callback: Handler) -> None:
        """Call `callback(**params)` for every broadcast on `channel` (replaces a previous callback)."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Stop handling `channel` (no error when it was not subscribed)."""

    @abc.abstractmethod
    async def broadcast(
        self,
        channel: str,
        params: Mapping[str, Any] | None,
        expect_answers: bool,
        timeout: float,  # noqa: ASYNC109 - the API of c2casgiutils
        targets: Targets = EVERYONE,
    ) -> list[Result] | None:
        """Send a call to every subscribed replica (or `targets`); with `expect_answers`, collect answers."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop every background task and connection; bounded in time, never raises."""

    @abc.abstractmethod
    def status(self) -> BroadcasterStatus:
        """A snapshot of the broadcaster's state."""

    def get_subscribers(self) -> Mapping[str, Handler]:
        """The subscribed channels and their callbacks (a copy)."""
        return dict(self._handlers)

    async def run_handler(
        self, channel: str, handler: Handler, params: dict[str, Any], payload: bool = True, round_trip: bool = True
    ) -> tuple[Any, tuple[str, str] | None]:
        """Call a handler; return `(JSON payload, None)` or `(None, (exception type, message))` if it raised.

        `payload=False`: nobody waits for the answer, the result is dropped unconverted.
        `round_trip=False`: the result is made JSON-able but not serialised (the caller does it).
        """
        self._count(HANDLER_CALLS)
        try:
            result = handler(**params)
            if inspect.isawaitable(result):
                result = await result
        except Exception as error:
            self._count(HANDLER_ERRORS)
            self._handler_log.exception(channel, "The broadcast handler of %r raised", channel)
            return None, (type(error).__name__, str(error))
        if not payload:
            return None, None
        try:
            jsonable = pydantic_core.to_jsonable_python(result)
            return (json.loads(dumps(jsonable)) if round_trip else jsonable), None
        except (pydantic_core.PydanticSerializationError, ValueError) as error:
            return None, self.not_json(channel, error)

    def not_json(self, channel: str, error: Exception) -> tuple[str, str]:
        """Count and log a handler result that cannot be sent; return the error to answer with."""
        self._count(HANDLER_ERRORS)
        LOG.error("The broadcast handler of %r returned a value that is not JSON serialisable: %s", channel, error)
        return ("TypeError", f"the handler returned a value that is not JSON serialisable: {error}")
