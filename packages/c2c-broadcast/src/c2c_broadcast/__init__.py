"""c2c-broadcast: call a function on every replica of a service and collect the answers.

With no Redis configured, a local broadcaster runs calls in this process. With `C2C__REDIS__URL` (or
Sentinels) set, calls go through Redis pub/sub to every replica, in a wire format c2casgiutils
0.14 understands. See the README for the semantics, the wire format and the settings.

    await c2c_broadcast.startup()                       # in the application's lifespan
    echo = await c2c_broadcast.decorate(_echo, expect_answers=True)
    answers = await echo(message="hello")               # one item per replica
    await c2c_broadcast.shutdown()
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from c2c_broadcast import types
from c2c_broadcast._base import BaseBroadcaster, BroadcastUnavailableError, Handler
from c2c_broadcast._decorate import Decorated, default_channel
from c2c_broadcast._local import LocalBroadcaster
from c2c_broadcast._settings import BroadcastSettings, Settings
from c2c_broadcast._status import BroadcasterStatus, InMemoryMetrics, Metrics
from c2c_broadcast._wire import make_targets
from c2c_broadcast.types import BroadcastResponse, ErrorAnswer, MissingAnswer
from c2c_config import get_settings

if TYPE_CHECKING:
    from c2c_broadcast._redis import RedisBroadcaster

__version__ = _version("c2c-broadcast")

LOG = logging.getLogger("c2c_broadcast")

_P = ParamSpec("_P")
_R = TypeVar("_R")

_broadcaster: BaseBroadcaster | None = None
_closing: set[asyncio.Task[None]] = set()


def _load_redis_broadcaster() -> type[RedisBroadcaster]:
    try:
        from c2c_broadcast._redis import RedisBroadcaster
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "Redis is configured (C2C__REDIS__URL or C2C__REDIS__SENTINELS) but the Redis client is not installed: "
            "install c2c-broadcast[redis]",
            name=error.name,
        ) from None
    return RedisBroadcaster


async def startup(app: object | None = None, *, metrics: Metrics | None = None) -> None:
    """Install the process's broadcaster: Redis when configured, else local.

    `app` is accepted for compatibility and not used. Reads `get_settings(Settings)`. When Redis is
    configured but down, startup does not fail: it logs a warning and the broadcaster keeps
    connecting in the background (`status()` shows it). Callbacks subscribed before startup (on the
    automatic local broadcaster) move to the Redis broadcaster. Raises `ModuleNotFoundError` when
    Redis is configured and the `redis` extra is not installed.
    """
    del app
    global _broadcaster
    settings = get_settings(Settings)
    if not settings.redis.configured:
        if _broadcaster is None:
            _broadcaster = LocalBroadcaster(settings.broadcast, metrics)
            LOG.info("Broadcast: no Redis configured, using the local (in-process) broadcaster")
        return
    if _broadcaster is not None and _broadcaster.kind == "redis":
        return
    redis_broadcaster = _load_redis_broadcaster()
    from c2c_config.redis import get_factory

    broadcaster = redis_broadcaster(get_factory(settings.redis), settings.broadcast, metrics=metrics)
    previous, _broadcaster = _broadcaster, broadcaster
    await broadcaster.start()
    if previous is not None:
        LOG.info("Broadcast: switching from the local broadcaster to Redis")
        for channel, callback in previous.get_subscribers().items():
            await broadcaster.subscribe(channel, callback)
        await previous.close()


def _get(need_init: bool = False) -> BaseBroadcaster:
    global _broadcaster
    if _broadcaster is None:
        if need_init:
            LOG.error("Broadcast used before startup(): using a local broadcaster")
        _broadcaster = LocalBroadcaster(get_settings(Settings).broadcast)
    return _broadcaster


def get_broadcaster() -> BaseBroadcaster:
    """The process's broadcaster (a local one is created if `startup()` was not called)."""
    return _get()


def status() -> BroadcasterStatus:
    """The state of the process's broadcaster, for a health check (`status().healthy`) or an admin page."""
    return _get().status()


async def shutdown() -> None:
    """Stop the broadcaster cleanly (unregister, close connections, cancel running handlers) and forget it.

    Bounded in time (a few seconds at most, even with Redis down) and never raises.
    """
    global _broadcaster
    broadcaster, _broadcaster = _broadcaster, None
    if broadcaster is not None:
        await broadcaster.close()
    if _closing:
        await asyncio.wait(list(_closing), timeout=5)


def cleanup() -> asyncio.Task[None] | None:
    """Forget the broadcaster, so the next `startup()` builds a new one (synchronous, as in c2casgiutils 0.14).

    When an event loop is running, the old broadcaster is closed in a task, which is returned (await
    it, or call `await shutdown()` instead, to wait for the end); otherwise nothing is left to close.
    """
    global _broadcaster
    broadcaster, _broadcaster = _broadcaster, None
    if broadcaster is None:
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    task = loop.create_task(broadcaster.close(), name="c2c-broadcast cleanup")
    _closing.add(task)
    task.add_done_callback(_closing.discard)
    return task


async def subscribe(channel: str, callback: Handler) -> None:
    """Call `callback(**params)` (sync or async) for every broadcast on `channel`, in this process.

    One callback per channel and process: a second subscription replaces the first. Its return value
    (JSON serialisable, or a pydantic model) is the payload of this replica's answer; if it raises,
    the caller gets an `ErrorAnswer`.
    """
    await _get().subscribe(channel, callback)


async def unsubscribe(channel: str) -> None:
    """Stop handling `channel` in this process."""
    await _get().unsubscribe(channel)


@overload
async def broadcast(
    channel: str,
    params: Mapping[str, Any] | None = None,
    *,
    expect_answers: Literal[True],
    timeout: float | None = None,  # noqa: ASYNC109 - the API of c2casgiutils
    hostnames: Collection[str] | str | None = None,
    pids: Collection[int] | int | None = None,
) -> list[BroadcastResponse[Any] | MissingAnswer]: ...
@overload
async def broadcast(
    channel: str,
    params: Mapping[str, Any] | None = None,
    expect_answers: Literal[False] = False,
    timeout: float | None = None,  # noqa: ASYNC109 - the API of c2casgiutils
    *,
    hostnames: Collection[str] | str | None = None,
    pids: Collection[int] | int | None = None,
) -> None: ...
@overload
async def broadcast(
    channel: str,
    params: Mapping[str, Any] | None = None,
    expect_answers: bool = False,
    timeout: float | None = None,  # noqa: ASYNC109 - the API of c2casgiutils
    *,
    hostnames: Collection[str] | str | None = None,
    pids: Collection[int] | int | None = None,
) -> list[BroadcastResponse[Any] | MissingAnswer] | None: ...
async def broadcast(
    channel: str,
    params: Mapping[str, Any] | None = None,
    expect_answers: bool = False,
    timeout: float | None = None,  # noqa: ASYNC109 - the API of c2casgiutils
    *,
    hostnames: Collection[str] | str | None = None,
    pids: Collection[int] | int | None = None,
) -> list[BroadcastResponse[Any] | MissingAnswer] | None:
    """Call the subscribers of `channel` on every replica with `params` as keyword arguments.

    Without `expect_answers`, returns None once the call is sent. With it, waits up to `timeout`
    seconds (default `C2C__BROADCAST__DEFAULT_TIMEOUT`, 10 s) and returns one item per replica:
    `BroadcastResponse` (payload), `ErrorAnswer` (the handler raised) or `MissingAnswer` (no answer
    in time); it returns early once every live replica answered. `hostnames` / `pids` address a
    subset of replicas. Raises `BroadcastUnavailableError` when Redis is unreachable, `TypeError`
    when params are not JSON serialisable.
    """
    broadcaster = _get(need_init=True)
    # Read at use time, so that `reload_settings(Settings)` applies to the next call.
    wait = get_settings(Settings).broadcast.default_timeout.total_seconds() if timeout is None else float(timeout)
    return await broadcaster.broadcast(channel, params, expect_answers, wait, make_targets(hostnames, pids))


@overload
async def decorate(
    func: Callable[_P, Awaitable[_R]],
    channel: str | None = None,
    *,
    expect_answers: Literal[True],
    timeout: float | None = None,  # noqa: ASYNC109 - the API of c2casgiutils
) -> Callable[_P, Coroutine[Any, Any, list[BroadcastResponse[_R] | MissingAnswer]]]: ...
@overload
async def decorate(
    func: Callable[_P, _R],
    channel: str | None = None,
    *,
    expect_answers: Literal[True],
    timeout: float | None = None,  # noqa: ASYNC109 - the API of c2casgiutils
) -> Callable[_P, Coroutine[Any, Any, list[BroadcastResponse[_R] | MissingAnswer]]]: ...
@overload
async def decorate(
    func: Callable[_P, Any],
    channel: str | None = None,
    *,
    expect_answers: Literal[False] = False,
    timeout: float | None = None,  # noqa: ASYNC109 - the API of c2casgiutils
) -> Callable[_P, Coroutine[Any, Any, None]]: ...
async def decorate(
    func: Callable[..., Any],
    channel: str | None = None,
    expect_answers: bool = False,
    timeout: float | None = None,  # noqa: ASYNC109 - the API of c2casgiutils
) -> Callable[..., Coroutine[Any, Any, list[BroadcastResponse[Any] | MissingAnswer] | None]]:
    """Subscribe `func` (sync or async) and return an async function that calls it on every replica.

    Await it once, at startup. The returned function takes keyword arguments only (positional
    ones raise `TypeError`, as do arguments `func` does not accept) and returns None, or with
    `expect_answers` the list of answers with payloads validated against `func`'s return
    annotation (a payload that does not fit becomes an `ErrorAnswer`). On each replica the
    arguments are validated against `func`'s type hints, so pydantic models travel as JSON and
    arrive as models. Default channel: `c2c_decorated_<module>.<qualified name>`.
    """
    decorated = Decorated(func, default_channel(func) if channel is None else channel, expect_answers, timeout)
    await subscribe(decorated.channel, decorated.handler)

    @functools.wraps(func)
    async def call(*args: Any, **kwargs: Any) -> list[BroadcastResponse[Any] | MissingAnswer] | None:
        decorated.check_call(args, kwargs)
        answers = await broadcast(decorated.channel, kwargs, expect_answers, decorated.timeout)
        return None if answers is None else decorated.validate_answers(answers)

    return call


__all__ = [
    "BaseBroadcaster",
    "BroadcastResponse",
    "BroadcastSettings",
    "BroadcastUnavailableError",
    "BroadcasterStatus",
    "ErrorAnswer",
    "InMemoryMetrics",
    "LocalBroadcaster",
    "Metrics",
    "MissingAnswer",
    "Settings",
    "__version__",
    "broadcast",
    "cleanup",
    "decorate",
    "get_broadcaster",
    "shutdown",
    "startup",
    "status",
    "subscribe",
    "types",
    "unsubscribe",
]
