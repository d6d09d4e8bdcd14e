"""Context carriers: the caller's context travels with a call and the handler runs inside it (real redis-server)."""

# mypy: disallow-untyped-calls=False
# (redis-py leaves pub/sub methods unannotated)

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from _broadcast_helpers import start_on_redis
from hypothesis import given
from hypothesis import strategies as st

import c2c_broadcast
from c2c_broadcast._context import applied_context, capture_context
from c2c_broadcast._wire import (
    CONTEXT_FIELD,
    EXTENSIONS,
    LEGACY_REQUEST_FIELDS,
    MAX_CONTEXT_ENTRIES,
    MAX_CONTEXT_VALUE_LENGTH,
    DroppedMessage,
    decode_request,
    encode_request,
)
from c2c_broadcast._wire._message import CONTEXT_NAME
from c2c_testing import RedisServer

try:
    import redis.asyncio as aioredis
except ModuleNotFoundError:
    aioredis = None  # type: ignore[assignment]

TRACE: contextvars.ContextVar[str | None] = contextvars.ContextVar("test_trace", default=None)
SECRET = b"s" * 32


@contextlib.contextmanager
def _set_trace(value: str | None) -> Iterator[None]:
    token = TRACE.set(value)
    try:
        yield
    finally:
        TRACE.reset(token)


@pytest.fixture(autouse=True)
def _no_carriers() -> Iterator[None]:
    for name in c2c_broadcast.context_carriers():
        c2c_broadcast.remove_context_carrier(name)
    yield
    for name in c2c_broadcast.context_carriers():
        c2c_broadcast.remove_context_carrier(name)


# -- Registration, capture, apply (in process) ----------------------------------------------------


def test_registration_is_validated_and_idempotent() -> None:
    c2c_broadcast.add_context_carrier("trace", TRACE.get, _set_trace)
    c2c_broadcast.add_context_carrier("trace", TRACE.get, _set_trace)
    assert c2c_broadcast.context_carriers() == ("trace",)
    for bad in ("", "Trace", "a b", "x" * 65, "1abc"):
        with pytest.raises(ValueError, match="context carrier name"):
            c2c_broadcast.add_context_carrier(bad, TRACE.get, _set_trace)
    for index in range(MAX_CONTEXT_ENTRIES - 1):
        c2c_broadcast.add_context_carrier(f"c{index}", TRACE.get, _set_trace)
    with pytest.raises(ValueError, match="at most 16"):
        c2c_broadcast.add_context_carrier("one_too_many", TRACE.get, _set_trace)
    c2c_broadcast.remove_context_carrier("c0")
    c2c_broadcast.remove_context_carrier("never-registered")
    assert "c0" not in c2c_broadcast.context_carriers()


def test_capture_keeps_only_values_that_may_travel(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> str | None:
        raise RuntimeError("boom")

    c2c_broadcast.add_context_carrier("trace", TRACE.get, _set_trace)
    c2c_broadcast.add_context_carrier("broken", broken, _set_trace)
    c2c_broadcast.add_context_carrier("long", lambda: "x" * (MAX_CONTEXT_VALUE_LENGTH + 1), _set_trace)
    c2c_broadcast.add_context_carrier("newline", lambda: "a\nforged log line", _set_trace)
    c2c_broadcast.add_context_carrier("number", lambda: 7, _set_trace)  # type: ignore[arg-type,return-value]
    with caplog.at_level(logging.WARNING, "c2c_broadcast"):
        assert capture_context() is None  # nothing valid, and TRACE unset
        with _set_trace("abc-123"):
            assert capture_context() == {"trace": "abc-123"}
    messages = caplog.text
    assert "'broken' failed to capture" in messages
    assert "'long' captured a value that cannot travel (a str)" in messages
    assert "'number' captured a value that cannot travel (a int)" in messages


def test_apply_enters_every_carrier_and_survives_a_broken_one(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, str | None]] = []

    @contextlib.contextmanager
    def record(value: str | None) -> Iterator[None]:
        seen.append(("enter", value))
        yield
        seen.append(("exit", value))

    def broken(value: str | None) -> contextlib.AbstractContextManager[None]:
        raise RuntimeError("cannot apply")

    c2c_broadcast.add_context_carrier("trace", TRACE.get, _set_trace)
    c2c_broadcast.add_context_carrier("record", TRACE.get, record)
    c2c_broadcast.add_context_carrier("broken", TRACE.get, broken)
    with caplog.at_level(logging.ERROR, "c2c_broadcast"), applied_context({"trace": "t-1", "unknown": "u"}):
        assert TRACE.get() == "t-1"
        assert seen == [("enter", None)]
    assert TRACE.get() is None
    assert seen == [("enter", None), ("exit", None)]
    assert "'broken' failed to apply" in caplog.text
    with applied_context(None):
        assert TRACE.get() is None


# -- The wire field ---------------------------------------------------------------------------------


def _request(context: Any, secret: bytes | None = None) -> str:
    return encode_request(
        "broadcast_api_ch",
        {"a": 1},
        answer_channel=None,
        request_id="r" * 32,
        hostname="h",
        pid=1,
        now=1000.0,
        secret=secret,
        extensions={CONTEXT_FIELD: context},
    )


def _decode(data: str, secret: bytes | None = None) -> Any:
    return decode_request(
        data, "broadcast_api_ch", prefix="broadcast_api_", max_size=100_000, now=1000.0, secret=secret
    )


def test_context_is_an_optional_signed_request_field_ignored_by_014() -> None:
    assert EXTENSIONS[CONTEXT_FIELD].kinds == {"request"}
    assert CONTEXT_FIELD not in LEGACY_REQUEST_FIELDS  # a 0.14 replica reads params and answer_channel only
    data = _request({"request_id": "abc"}, SECRET)
    message = json.loads(data)
    assert message["context"] == {"request_id": "abc"}
    assert message["params"] == {"a": 1}  # the handler's params are untouched
    assert _decode(data, SECRET).extensions[CONTEXT_FIELD] == {"request_id": "abc"}
    # Without context, no field at all (the message is what it was).
    assert CONTEXT_FIELD not in json.loads(_request(None))
    assert CONTEXT_FIELD not in _decode(_request(None)).extensions
    # Covered by the signature: a changed or added context is refused.
    message["context"]["request_id"] = "forged"
    with pytest.raises(DroppedMessage, match="forged"):
        _decode(json.dumps(message), SECRET)
    unsigned_with_added = json.loads(_request(None, SECRET))
    unsigned_with_added["context"] = {"request_id": "added"}
    with pytest.raises(DroppedMessage, match="forged"):
        _decode(json.dumps(unsigned_with_added), SECRET)


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=20),
        st.lists(st.text(max_size=5), max_size=3),
        st.dictionaries(
            st.text(max_size=70),
            st.one_of(st.text(max_size=300), st.integers(), st.none(), st.lists(st.integers(), max_size=2)),
            max_size=40,
        ),
    )
)
def test_any_received_context_is_accepted_and_reduced_to_valid_entries(value: Any) -> None:
    """A malformed context never drops the call: the well-formed entries are kept, at most 16."""
    message = json.loads(_request(None))
    message["context"] = value
    request = _decode(json.dumps(message))
    kept = request.extensions.get(CONTEXT_FIELD, {})
    assert len(kept) <= MAX_CONTEXT_ENTRIES
    for name, item in kept.items():
        assert isinstance(value, dict) and value[name] == item
        assert isinstance(item, str) and 0 < len(item) <= MAX_CONTEXT_VALUE_LENGTH and item.isprintable()
        assert CONTEXT_NAME.fullmatch(name)
    assert request.params == {"a": 1}


# -- Across a real Redis ----------------------------------------------------------------------------


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.mark.skipif(aioredis is None, reason="needs the redis extra: c2c-broadcast[redis]")
@pytest.mark.parametrize("signed", [False, True])
async def test_the_handler_runs_in_the_callers_context(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, signed: bool
) -> None:
    extra = {"C2C__BROADCAST__SECRET": "k" * 32} if signed else {}
    await start_on_redis(monkeypatch, redis_server.url, **extra)
    c2c_broadcast.add_context_carrier("trace", TRACE.get, _set_trace)
    seen: list[str | None] = []
    done = asyncio.Event()

    async def handler() -> str | None:
        seen.append(TRACE.get())
        done.set()
        return TRACE.get()

    await c2c_broadcast.subscribe("ctx", handler)
    with _set_trace("caller-42"):
        answers = await c2c_broadcast.broadcast("ctx", expect_answers=True, timeout=10)
    assert [getattr(answer, "payload", "missing") for answer in answers] == ["caller-42"]
    # Without answers too; and a caller without a value: the handler gets None, not a leftover.
    with _set_trace("fire-and-forget"):
        await c2c_broadcast.broadcast("ctx", expect_answers=False, timeout=10)
    async with asyncio.timeout(10):
        while len(seen) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    answers = await c2c_broadcast.broadcast("ctx", expect_answers=True, timeout=10)
    assert [getattr(answer, "payload", "missing") for answer in answers] == [None]
    assert seen == ["caller-42", "fire-and-forget", None]
    assert TRACE.get() is None


@pytest.mark.skipif(aioredis is None, reason="needs the redis extra: c2c-broadcast[redis]")
async def test_014_and_malformed_contexts_run_the_handler_without_it(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    await start_on_redis(monkeypatch, redis_server.url)
    c2c_broadcast.add_context_carrier("trace", TRACE.get, _set_trace)
    seen: list[tuple[int, str | None]] = []

    async def handler(n: int) -> None:
        seen.append((n, TRACE.get()))

    await c2c_broadcast.subscribe("ctx", handler)
    await asyncio.sleep(0)
    # What a 0.14 sender publishes (no context), then malformed contexts from a careless sender.
    for n, context in enumerate([None, "not an object", {"trace": 5}, {"trace": "a\nb"}, {"trace": "ok-1"}]):
        message: dict[str, Any] = {"params": {"n": n}}
        if context is not None:
            message["context"] = context
        await raw.publish("broadcast_api_ctx", json.dumps(message))
    async with asyncio.timeout(10):
        while len(seen) < 5:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert sorted(seen) == [(0, None), (1, None), (2, None), (3, None), (4, "ok-1")]
