"""The local broadcaster and the module API without Redis: the embedded default."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import sys
import time
from typing import Any, assert_type

import pydantic
import pytest

import c2c_broadcast
from c2c_broadcast import BroadcastResponse, ErrorAnswer, LocalBroadcaster, MissingAnswer, Settings
from c2c_config import reload_settings

HOST = socket.gethostname()
PID = os.getpid()


class Item(pydantic.BaseModel):
    name: str
    count: int = 0


class Echo(pydantic.BaseModel):
    text: str
    items: list[Item] = []


async def test_startup_without_redis_is_local(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "c2c_broadcast")
    await c2c_broadcast.startup()
    assert isinstance(c2c_broadcast.get_broadcaster(), LocalBroadcaster)
    status = c2c_broadcast.status()
    assert (status.kind, status.state, status.healthy) == ("local", "local", True)
    assert "local (in-process) broadcaster" in caplog.text


async def test_subscribe_broadcast_unsubscribe() -> None:
    await c2c_broadcast.startup()
    calls: list[dict[str, Any]] = []

    async def handler(**params: Any) -> dict[str, Any]:
        calls.append(params)
        return {"got": params}

    await c2c_broadcast.subscribe("chan", handler)
    # Without answers: None, and the call already ran when broadcast() returns.
    assert await c2c_broadcast.broadcast("chan", {"a": 1}) is None  # type: ignore[func-returns-value]
    assert calls == [{"a": 1}]
    answers = await c2c_broadcast.broadcast("chan", {"b": [1, 2]}, expect_answers=True)
    assert answers == [BroadcastResponse[Any](hostname=HOST, pid=PID, payload={"got": {"b": [1, 2]}})]
    await c2c_broadcast.unsubscribe("chan")
    assert await c2c_broadcast.broadcast("chan", {"a": 1}, expect_answers=True) == []
    assert len(calls) == 2
    await c2c_broadcast.unsubscribe("chan")  # twice: no error


async def test_second_subscription_replaces_the_first() -> None:
    async def first() -> str:
        return "first"

    async def second() -> str:
        return "second"

    await c2c_broadcast.subscribe("chan", first)
    await c2c_broadcast.subscribe("chan", second)
    answers = await c2c_broadcast.broadcast("chan", expect_answers=True)
    assert [a.payload for a in answers if isinstance(a, BroadcastResponse)] == ["second"]


async def test_params_and_payload_make_the_json_round_trip() -> None:
    """The local broadcaster hands handlers what Redis would: JSON values, models as dicts."""
    received: list[Any] = []

    async def handler(value: Any) -> Any:
        received.append(value)
        return (Item(name="x"), (1, 2))

    await c2c_broadcast.subscribe("chan", handler)
    answers = await c2c_broadcast.broadcast("chan", {"value": (Item(name="a", count=2), 1.5)}, expect_answers=True)
    assert received == [[{"name": "a", "count": 2}, 1.5]]
    assert isinstance(answers[0], BroadcastResponse)
    assert answers[0].payload == [{"name": "x", "count": 0}, [1, 2]]


async def test_params_must_be_json() -> None:
    async def handler(**params: Any) -> None:
        raise AssertionError("must not run")

    await c2c_broadcast.subscribe("chan", handler)
    with pytest.raises(TypeError, match="JSON serialisable"):
        await c2c_broadcast.broadcast("chan", {"value": object()})
    with pytest.raises(TypeError, match="JSON serialisable"):
        await c2c_broadcast.broadcast("chan", {"value": float("nan")})
    with pytest.raises(TypeError, match="mapping"):
        await c2c_broadcast.broadcast("chan", [("a", 1)])  # type: ignore[call-overload]


async def test_handler_error_is_an_error_answer(caplog: pytest.LogCaptureFixture) -> None:
    """Same as with Redis: the error comes back as an item, it is not raised, and it is logged."""

    async def broken(**params: Any) -> None:
        raise ValueError("broken handler")

    await c2c_broadcast.subscribe("chan", broken)
    answers = await c2c_broadcast.broadcast("chan", expect_answers=True)
    assert answers == [ErrorAnswer(hostname=HOST, pid=PID, error_type="ValueError", message="broken handler")]
    assert isinstance(answers[0], MissingAnswer)  # 0.14-style code sees "no payload"
    assert not isinstance(answers[0], BroadcastResponse)
    assert "The broadcast handler of 'chan' raised" in caplog.text
    (record,) = [r for r in caplog.records if "The broadcast handler of" in r.getMessage()]
    assert record.exc_info is not None  # with its traceback
    # Without answers, the error is not raised. Logged at most once per channel every 10 s (anyone
    # who may publish can make a handler fail): counted, not logged again.
    caplog.clear()
    for _ in range(5):
        assert await c2c_broadcast.broadcast("chan") is None  # type: ignore[func-returns-value]
    assert "broken handler" not in caplog.text
    assert c2c_broadcast.status().counters["handler_errors"] == 6
    await c2c_broadcast.subscribe("other", broken)
    assert await c2c_broadcast.broadcast("other") is None  # type: ignore[func-returns-value]
    assert "The broadcast handler of 'other' raised" in caplog.text


async def test_result_not_json_is_an_error_answer() -> None:
    async def handler() -> object:
        return object()

    await c2c_broadcast.subscribe("chan", handler)
    (answer,) = await c2c_broadcast.broadcast("chan", expect_answers=True)
    assert isinstance(answer, ErrorAnswer)
    assert answer.error_type == "TypeError"


async def test_slow_handler_gives_missing_answer_within_timeout() -> None:
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(30)
        return "late"

    await c2c_broadcast.subscribe("chan", slow)
    begin = time.monotonic()
    answers = await c2c_broadcast.broadcast("chan", expect_answers=True, timeout=0.2)
    assert time.monotonic() - begin < 5  # generous bound: it did not wait for the handler
    assert answers == [MissingAnswer(hostname=HOST, pid=PID)]
    assert started.is_set()
    status = c2c_broadcast.status()
    assert status.pending_handlers == 1
    assert status.counters["answers_missing"] == 1
    # shutdown cancels it and does not hang.
    await asyncio.wait_for(c2c_broadcast.shutdown(), timeout=5)


async def test_a_caller_still_waiting_at_shutdown_gets_an_error_answer() -> None:
    """close() cancels the handler: its caller gets an ErrorAnswer saying so, not the handler's CancelledError."""
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(30)
        return "late"

    await c2c_broadcast.subscribe("chan", slow)
    call = asyncio.create_task(c2c_broadcast.broadcast("chan", expect_answers=True, timeout=20))
    await asyncio.wait_for(started.wait(), timeout=5)
    await asyncio.wait_for(c2c_broadcast.shutdown(), timeout=5)
    answers = await asyncio.wait_for(call, timeout=5)
    message = "the broadcaster stopped before the handler on 'chan' finished"
    assert answers == [ErrorAnswer(hostname=HOST, pid=PID, error_type="ReplicaStoppedError", message=message)]


async def test_addressing_by_hostname_and_pid() -> None:
    async def handler() -> int:
        return 1

    await c2c_broadcast.subscribe("chan", handler)
    assert len(await c2c_broadcast.broadcast("chan", expect_answers=True, hostnames=HOST)) == 1
    assert len(await c2c_broadcast.broadcast("chan", expect_answers=True, pids=[PID])) == 1
    assert await c2c_broadcast.broadcast("chan", expect_answers=True, hostnames=["elsewhere"]) == []
    assert await c2c_broadcast.broadcast("chan", expect_answers=True, pids=PID + 1) == []
    with pytest.raises(TypeError):
        await c2c_broadcast.broadcast("chan", pids=[True])


async def test_broadcast_before_startup_logs_an_error(caplog: pytest.LogCaptureFixture) -> None:
    assert await c2c_broadcast.broadcast("chan", expect_answers=True) == []
    assert "Broadcast used before startup()" in caplog.text
    assert isinstance(c2c_broadcast.get_broadcaster(), LocalBroadcaster)


async def test_default_timeout_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__BROADCAST__DEFAULT_TIMEOUT", "0.1")
    reload_settings(Settings)
    await c2c_broadcast.startup()

    async def slow() -> None:
        await asyncio.sleep(30)

    await c2c_broadcast.subscribe("chan", slow)
    begin = time.monotonic()
    assert await c2c_broadcast.broadcast("chan", expect_answers=True) == [MissingAnswer(hostname=HOST, pid=PID)]
    assert time.monotonic() - begin < 5  # 0.1 s, not the usual 10 s


# -- decorate --------------------------------------------------------------------------


async def _echo(*, text: str, item: Item | None = None) -> Echo:
    return Echo(text=text, items=[item] if item is not None else [])


async def test_decorate_with_answers_round_trips_models() -> None:
    await c2c_broadcast.startup()
    echo = await c2c_broadcast.decorate(_echo, expect_answers=True)
    answers = await echo(text="hi", item=Item(name="n", count=3))
    assert len(answers) == 1
    answer = answers[0]
    assert isinstance(answer, BroadcastResponse)
    assert answer.payload == Echo(text="hi", items=[Item(name="n", count=3)])
    assert isinstance(answer.payload, Echo)  # validated from the return annotation
    assert (answer.hostname, answer.pid) == (HOST, PID)
    assert f"c2c_decorated_{__name__}._echo" in c2c_broadcast.get_broadcaster().get_subscribers()


async def test_decorate_receiving_side_validates_arguments() -> None:
    seen: list[Any] = []

    async def handler(*, item: Item, when: float) -> None:
        seen.append((item, when))

    call = await c2c_broadcast.decorate(handler, channel="typed")
    assert await call(item=Item(name="m"), when=2) is None  # type: ignore[func-returns-value]
    assert seen == [(Item(name="m"), 2.0)]
    assert isinstance(seen[0][0], Item)
    # A raw broadcast with a bad argument: the handler sees a validation error, reported as an ErrorAnswer.
    (answer,) = await c2c_broadcast.broadcast("typed", {"item": {"nom": 1}, "when": 1}, expect_answers=True)
    assert isinstance(answer, ErrorAnswer)
    assert answer.error_type == "ValidationError"
    assert len(seen) == 1


async def test_decorated_call_refuses_positional_arguments() -> None:
    """A real TypeError (the reference used assert, gone under python -O)."""
    calls: list[str] = []

    async def handler(*, text: str) -> None:
        calls.append(text)

    call = await c2c_broadcast.decorate(handler)
    with pytest.raises(TypeError, match="keyword arguments only"):
        await call("positional")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'other'"):
        await call(text="x", other="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing a required (keyword-only )?argument"):  # 3.12 says keyword-only
        await call()  # type: ignore[call-arg]
    assert calls == []


async def test_decorate_sync_function_runs_off_the_event_loop() -> None:
    import threading

    main = threading.get_ident()
    threads: list[int] = []

    def blocking(*, value: int) -> int:
        threads.append(threading.get_ident())
        time.sleep(0.05)
        return value * 2

    call = await c2c_broadcast.decorate(blocking, expect_answers=True)
    answers = await call(value=21)
    assert [a.payload for a in answers if isinstance(a, BroadcastResponse)] == [42]
    assert threads and threads[0] != main


async def test_decorate_payload_not_matching_a_model_return_type_is_an_error_answer() -> None:
    async def liar() -> Echo:
        return {"text": 1, "unexpected": True}  # type: ignore[return-value]

    call = await c2c_broadcast.decorate(liar, expect_answers=True)
    (answer,) = await call()
    assert isinstance(answer, ErrorAnswer)
    assert answer.error_type == "ValidationError"


async def test_decorate_payload_not_matching_another_return_type_is_returned_as_received(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler whose annotation is loose (`-> int` answering text, `-> bool` answering None) answers
    what it returned, as with c2casgiutils 0.14 (which validated pydantic model annotations only),
    with one WARNING per process; a payload that fits is converted."""

    async def liar(*, answer: Any) -> int:
        return answer  # type: ignore[no-any-return]

    call = await c2c_broadcast.decorate(liar, expect_answers=True)
    with caplog.at_level(logging.WARNING, logger="c2c_broadcast"):
        (first,) = await call(answer="not a number")
        (second,) = await call(answer=None)
        (third,) = await call(answer="42")
    assert isinstance(first, BroadcastResponse) and first.payload == "not a number"
    assert isinstance(second, BroadcastResponse) and second.payload is None
    assert isinstance(third, BroadcastResponse) and third.payload == 42
    assert type(first) is BroadcastResponse  # the plain class, as 0.14's `type(answer) is BroadcastResponse`
    warnings = [record.getMessage() for record in caplog.records if "return annotation" in record.getMessage()]
    assert len(warnings) == 1
    assert "returned as received" in warnings[0]


async def test_decorate_argument_not_matching_its_hint_is_passed_as_received(caplog: pytest.LogCaptureFixture) -> None:
    """A loose argument hint (`source: str` given a number): the handler runs with the value as
    received, as with 0.14, with one WARNING; a pydantic model hint stays strict (ErrorAnswer)."""
    seen: list[Any] = []

    async def handler(*, source: str, when: datetime.datetime | None = None) -> None:
        seen.append((source, when))

    await c2c_broadcast.decorate(handler, channel="loose")
    with caplog.at_level(logging.WARNING, logger="c2c_broadcast"):
        await c2c_broadcast.broadcast("loose", {"source": 42}, expect_answers=True)
        await c2c_broadcast.broadcast("loose", {"source": "s", "when": "2026-12-07T10:00:00"}, expect_answers=True)
        await c2c_broadcast.broadcast("loose", {"source": 43, "when": "soon"}, expect_answers=True)
    assert seen == [(42, None), ("s", datetime.datetime(2026, 12, 7, 10)), (43, "soon")]
    warnings = [record.getMessage() for record in caplog.records if "does not fit its type hint" in record.getMessage()]
    assert len(warnings) == 2  # one for `source`, one for `when`: once each per process
    assert all("passed as received" in warning for warning in warnings)


async def test_decorate_without_answers_returns_none_after_running() -> None:
    done: list[str] = []

    async def handler(*, text: str) -> str:
        done.append(text)
        return text

    call = await c2c_broadcast.decorate(handler, expect_answers=False, timeout=3)
    assert await call(text="x") is None  # type: ignore[func-returns-value]
    assert done == ["x"]


async def test_decorate_unresolvable_hints_fail_at_decoration() -> None:
    async def handler(*, value: Unknown) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    with pytest.raises(TypeError, match="type hints do not resolve"):
        await c2c_broadcast.decorate(handler)


async def test_decorate_static_types() -> None:
    """mypy checks these `assert_type`s: the overloads give typed answers."""

    async def typed(*, text: str) -> Echo:
        return Echo(text=text)

    def sync_typed(*, number: int) -> int:
        return number

    with_answers = await c2c_broadcast.decorate(typed, expect_answers=True)
    answers = await with_answers(text="t")
    assert_type(answers, list[BroadcastResponse[Echo] | MissingAnswer])
    sync_answers = await (await c2c_broadcast.decorate(sync_typed, expect_answers=True))(number=1)
    assert_type(sync_answers, list[BroadcastResponse[int] | MissingAnswer])
    without = await c2c_broadcast.decorate(typed, channel="other")
    assert_type(await without(text="t"), None)
    assert isinstance(answers[0], BroadcastResponse) and answers[0].payload.text == "t"
    assert sync_answers[0] == BroadcastResponse[int](hostname=HOST, pid=PID, payload=1)


# -- life cycle ------------------------------------------------------------------------


async def test_cleanup_forgets_and_closes() -> None:
    await c2c_broadcast.startup()
    first = c2c_broadcast.get_broadcaster()
    task = c2c_broadcast.cleanup()
    assert task is not None
    await asyncio.wait_for(task, timeout=5)
    assert first.status().state == "stopped"
    assert c2c_broadcast.get_broadcaster() is not first
    assert c2c_broadcast.cleanup() is not None
    assert c2c_broadcast.cleanup() is None  # nothing left


def test_cleanup_without_event_loop() -> None:
    c2c_broadcast.get_broadcaster()
    assert c2c_broadcast.cleanup() is None


# -- the Redis extra missing -----------------------------------------------------------


async def test_redis_configured_without_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The "not installed" path: a clear message naming the extra (simulated when redis is installed)."""
    if "redis" in sys.modules or _redis_installed():
        monkeypatch.setitem(sys.modules, "redis", None)
        monkeypatch.setitem(sys.modules, "redis.asyncio", None)
        monkeypatch.delitem(sys.modules, "c2c_broadcast._redis", raising=False)
        monkeypatch.delitem(sys.modules, "c2c_config.redis", raising=False)
    monkeypatch.setenv("C2C__REDIS__URL", "redis://127.0.0.1:1/0")
    reload_settings(Settings)
    with pytest.raises(ModuleNotFoundError, match=r"install c2c-broadcast\[redis\]"):
        await c2c_broadcast.startup()


def _redis_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("redis") is not None
