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
import weakref
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from c2c_broadcast import types
from c2c_broadcast._base import BaseBroadcaster, BroadcastUnavailableError, Handler, MessageTooLargeError
from c2c_broadcast._context import add_context_carrier, context_carriers, remove_context_carrier
from c2c_broadcast._decorate import Decorated, default_channel
from c2c_broadcast._local import LocalBroadcaster
from c2c_broadcast._settings import BroadcastSettings, Settings
from c2c_broadcast._signals import drain_on_sigterm, restore_sigterm
from c2c_broadcast._status import BroadcasterStatus, InMemoryMetrics, Metrics
from c2c_broadcast._wire import make_targets
from c2c_broadcast.types import BroadcastResponse, ErrorAnswer, MissingAnswer
from c2c_config import LoopLocal, get_settings, running_loop

if TYPE_CHECKING:
    from c2c_broadcast._redis import RedisBroadcaster

__version__ = _version("c2c-broadcast")

LOG = logging.getLogger("c2c_broadcast")

_P = ParamSpec("_P")
_R = TypeVar("_R")


class _Process:
    """What the process keeps from one event loop to the next: nothing bound to a loop.

    The subscriptions (channel -> callback, plain callables) and whether `startup()` was called,
    so that a loop that never ran `startup()` (a `TestClient` without `with`, a second
    `asyncio.run`) still gets a broadcaster of the right kind with every subscription.
    """

    def __init__(self) -> None:
        self.subscriptions: dict[str, Handler] = {}
        self.started = False
        self.metrics: Metrics | None = None
        self.latest: weakref.ref[BaseBroadcaster] | None = None

    def reset(self) -> None:
        self.subscriptions.clear()
        self.started = False
        self.metrics = None
        self.latest = None

    def latest_open(self) -> BaseBroadcaster | None:
        broadcaster = self.latest() if self.latest is not None else None
        return broadcaster if broadcaster is not None and not broadcaster.closed else None


class _Slot:
    """One event loop's broadcaster, and the closings `cleanup()` started on that loop."""

    def __init__(self) -> None:
        self.broadcaster: BaseBroadcaster | None = None
        self.closing: set[asyncio.Task[None]] = set()

    def keep(self, task: asyncio.Task[None]) -> None:
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    async def close(self) -> None:
        broadcaster, self.broadcaster = self.broadcaster, None
        if broadcaster is not None:
            await broadcaster.close()
        if self.closing:
            await asyncio.wait(list(self.closing), timeout=5)


_PROCESS = _Process()
# Each running event loop has its own broadcaster (connections, tasks, events are bound to a loop):
# closed on that loop when it ends, even when the application never calls `shutdown()`.
_SLOTS: LoopLocal[_Slot] = LoopLocal(_Slot, _Slot.close, name="broadcaster")


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


def _new_broadcaster(settings: Settings, redis: bool) -> BaseBroadcaster:
    """A broadcaster (no I/O yet) holding the process's subscriptions."""
    broadcaster: BaseBroadcaster
    if redis:
        from c2c_config.redis import get_factory

        broadcaster = _load_redis_broadcaster()(
            get_factory(settings.redis), settings.broadcast, metrics=_PROCESS.metrics
        )
    else:
        broadcaster = LocalBroadcaster(settings.broadcast, _PROCESS.metrics)
    broadcaster.adopt(_PROCESS.subscriptions)
    return broadcaster


def _install(broadcaster: BaseBroadcaster) -> BaseBroadcaster | None:
    """Make `broadcaster` the running loop's one; return the one it replaces (to close)."""
    # A Redis broadcaster takes this loop's client now, so the client is older than the slot and,
    # when the loop ends, is closed after the broadcaster (newest first), which still uses it.
    broadcaster.bind()
    previous = _SLOTS.forget()
    slot = _SLOTS.get()
    slot.broadcaster = broadcaster
    if previous is not None:
        for task in previous.closing:
            slot.keep(task)
    _PROCESS.latest = weakref.ref(broadcaster)
    return previous.broadcaster if previous is not None else None


def _current() -> BaseBroadcaster:
    """The running loop's broadcaster, created (not started) if it has none.

    Outside an event loop (a metrics scrape in a thread): the most recent open broadcaster of the
    process, else a local one.
    """
    if running_loop() is None:
        latest = _PROCESS.latest_open()
        if latest is not None:
            return latest
        outside = _SLOTS.get()
        if outside.broadcaster is None:
            outside.broadcaster = _new_broadcaster(get_settings(Settings), redis=False)
        return outside.broadcaster
    slot = _SLOTS.peek()
    if slot is not None and slot.broadcaster is not None:
        return slot.broadcaster
    settings = get_settings(Settings)
    broadcaster = _new_broadcaster(settings, redis=_PROCESS.started and settings.redis.configured)
    _install(broadcaster)
    return broadcaster


async def _ensure(need_init: bool = False) -> BaseBroadcaster:
    """The running loop's broadcaster, started."""
    if need_init and not _PROCESS.started:
        slot = _SLOTS.peek()
        if slot is None or slot.broadcaster is None:
            LOG.error("Broadcast used before startup(): using a local broadcaster")
    broadcaster = _current()
    await broadcaster.start()
    return broadcaster


async def startup(app: object | None = None, *, metrics: Metrics | None = None) -> None:
    """Install the broadcaster of the running event loop: Redis when configured, else local.

    `app` is accepted for compatibility and not used. Reads `get_settings(Settings)`. When Redis is
    configured but down, startup does not fail: it logs a warning and the broadcaster keeps
    connecting in the background (`status()` shows it). Callbacks subscribed before startup move to
    the Redis broadcaster. Raises `ModuleNotFoundError` when Redis is configured and the `redis`
    extra is not installed.

    Each event loop has its own broadcaster: a process that runs several loops one after the other
    (a `TestClient` per test) gets a fresh one in each, and the one of a loop is closed on that loop
    when it ends, with or without `shutdown()`. The subscriptions belong to the process and follow.
    """
    del app
    settings = get_settings(Settings)
    redis = settings.redis.configured
    if redis:
        _load_redis_broadcaster()  # the clear error when the extra is missing
    _PROCESS.started = True
    if metrics is not None:
        _PROCESS.metrics = metrics
    slot = _SLOTS.peek()
    current = slot.broadcaster if slot is not None else None
    if current is not None and not current.closed and current.kind == ("redis" if redis else "local"):
        await current.start()
        return
    broadcaster = _new_broadcaster(settings, redis)
    previous = _install(broadcaster)
    if redis:
        await broadcaster.start()
        if previous is not None and previous.kind == "local":
            LOG.info("Broadcast: switching from the local broadcaster to Redis")
    else:
        LOG.info("Broadcast: no Redis configured, using the local (in-process) broadcaster")
    if previous is not None:
        await previous.close()
    # Under a server that stops gracefully on SIGTERM, leave the registry at once (see _signals).
    drain_on_sigterm(drain)


async def drain() -> None:
    """Stop being expected by callers while still answering: the running loop's replica leaves the registry.

    `startup()` calls it when the server receives SIGTERM (uvicorn, hypercorn: a Python handler of
    their own), so that a replica stopping gracefully is not waited for by the calls made while it
    stops, even when the lifespan never calls `shutdown()`. Bounded, never raises.
    """
    slot = _SLOTS.peek()
    if slot is not None and slot.broadcaster is not None:
        await slot.broadcaster.drain()


def get_broadcaster() -> BaseBroadcaster:
    """The running event loop's broadcaster (created, not started, if `startup()` was not called in this loop)."""
    return _current()


def status() -> BroadcasterStatus:
    """The state of the running loop's broadcaster, for a health check (`status().healthy`) or an admin page.

    Outside an event loop (a metrics scrape in a thread), the state of the most recently started one.
    """
    return _current().status()


async def shutdown() -> None:
    """Stop the running loop's broadcaster cleanly (unregister, finish or cut the running calls, close connections).

    The handlers still running get a short grace to finish; the callers of those cut after it get
    an `ErrorAnswer` (`error_type="ReplicaStoppedError"`) at once (README, *Stopping*).

    Also forgets the process's subscriptions, so that the next `startup()` starts from nothing.
    Bounded in time (a few seconds at most, even with Redis down) and never raises. Optional: when
    an event loop ends, its broadcaster is closed anyway.
    """
    _PROCESS.reset()
    restore_sigterm()
    slot = _SLOTS.forget()
    if slot is not None:
        await slot.close()


def cleanup() -> asyncio.Task[None] | None:
    """Forget the broadcaster and the subscriptions, so the next `startup()` builds a new one (as in 0.14).

    Synchronous, as in c2casgiutils 0.14. When an event loop is running, its broadcaster is closed
    in a task, which is returned (await it, or call `await shutdown()` instead, to wait for the
    end); otherwise nothing is left to close.
    """
    _PROCESS.reset()
    loop = running_loop()
    slot = _SLOTS.forget()
    if loop is None or slot is None:
        return None
    if slot.broadcaster is None:
        for pending in slot.closing:  # earlier cleanups still running: the loop's end waits for them
            _SLOTS.get().keep(pending)
        return None
    task = loop.create_task(slot.close(), name="c2c-broadcast cleanup")
    _SLOTS.get().keep(task)  # the loop's end (or shutdown()) waits for it
    return task


async def subscribe(channel: str, callback: Handler) -> None:
    """Call `callback(**params)` (sync or async) for every broadcast on `channel`, in this process.

    One callback per channel and process: a second subscription replaces the first. Its return value
    (JSON serialisable, or a pydantic model) is the payload of this replica's answer; if it raises,
    the caller gets an `ErrorAnswer`.
    """
    broadcaster = await _ensure()
    _PROCESS.subscriptions[channel] = callback
    await broadcaster.subscribe(channel, callback)


async def unsubscribe(channel: str) -> None:
    """Stop handling `channel` in this process."""
    broadcaster = await _ensure()
    _PROCESS.subscriptions.pop(channel, None)
    await broadcaster.unsubscribe(channel)


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
    when params are not JSON serialisable, `MessageTooLargeError` (a `ValueError`) when the message
    is larger than `C2C__BROADCAST__MAX_MESSAGE_SIZE` (with Redis; nothing is sent).
    """
    broadcaster = await _ensure(need_init=True)
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
    "MessageTooLargeError",
    "Metrics",
    "MissingAnswer",
    "Settings",
    "__version__",
    "add_context_carrier",
    "broadcast",
    "cleanup",
    "context_carriers",
    "decorate",
    "drain",
    "get_broadcaster",
    "remove_context_carrier",
    "shutdown",
    "startup",
    "status",
    "subscribe",
    "types",
    "unsubscribe",
]
