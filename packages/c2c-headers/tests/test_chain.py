"""Stacked c2c middlewares run as one coroutine (`c2c_headers._chain`), with the same behaviour."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from _c2c_headers_helpers import call, header_values, http_scope, make_app, response_headers

from c2c_headers import ORIGINAL_SCOPE_KEY, ArmorHeaderMiddleware, ForwardedHeadersMiddleware
from c2c_headers._chain import ChainedMiddleware, entry
from c2c_headers.types import Message, Receive, Scope, Send


@pytest.fixture(autouse=True)
def _unpatched(monkeypatch: pytest.MonkeyPatch) -> None:
    """The classes as c2c-headers defines them: in the whole-workspace run, an earlier test's
    `sentry_sdk.init` has replaced their ``__call__`` (its Starlette integration wraps every
    middleware class added with ``Middleware(...)``), which turns the shortcut off (tested below)."""
    for cls in (ArmorHeaderMiddleware, ForwardedHeadersMiddleware):
        if "__call__" in vars(cls):
            monkeypatch.delattr(cls, "__call__")


FORWARDED = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"public")]


def _stack(app: Any) -> ForwardedHeadersMiddleware:
    return ForwardedHeadersMiddleware(ArmorHeaderMiddleware(app, engine="python"), trusted_hosts="127.0.0.1")


def test_an_outer_c2c_middleware_calls_the_inner_one_s_enter() -> None:
    app = make_app()
    armor = ArmorHeaderMiddleware(app, engine="python")
    forwarded = ForwardedHeadersMiddleware(armor, trusted_hosts="127.0.0.1")
    assert forwarded._next == armor._enter  # bound methods: equal, not identical
    assert armor._next is app  # a plain application is called as it is
    assert forwarded.app is armor
    assert entry(app) is app


async def test_the_fused_stack_runs_as_one_coroutine_and_does_both_jobs() -> None:
    depths: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        frame: Any = sys._getframe()
        depth = 0
        while frame is not None:  # the middleware coroutines between the caller and here
            depth += frame.f_code is ChainedMiddleware.__call__.__code__
            frame = frame.f_back
        depths.append(depth)
        assert scope["scheme"] == "https"
        assert dict(scope["headers"])[b"host"] == b"public"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    headers = await response_headers(_stack(app), http_scope(headers=FORWARDED))
    assert header_values(headers, b"x-frame-options") == [b"DENY"]
    assert depths == [1]  # ForwardedHeadersMiddleware.__call__ only: ArmorHeaderMiddleware's is skipped


async def test_the_host_line_is_replaced_where_it_stands() -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(list(scope["headers"]))
        await make_app()(scope, receive, send)

    scope = http_scope(headers=[(b"accept", b"*/*"), *FORWARDED])
    original = list(scope["headers"])
    await call(ForwardedHeadersMiddleware(app, trusted_hosts="127.0.0.1"), scope)
    assert seen[0][0] == (b"host", b"public")
    assert seen[0][1:] == original[1:]
    assert scope[ORIGINAL_SCOPE_KEY]["host"] == "example.com"
    assert original[0] == (b"host", b"example.com")  # the server's list is not edited in place


@pytest.mark.parametrize(
    "host_lines",
    [[], [(b"host", b"a"), (b"host", b"b")], [(b"Host", b"a")]],
    ids=["no Host", "two Host lines", "upper-case Host"],
)
async def test_without_exactly_one_lower_case_host_line_every_host_line_is_replaced_by_one(
    host_lines: list[tuple[bytes, bytes]],
) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(list(scope["headers"]))
        await make_app()(scope, receive, send)

    scope = http_scope(host=None, headers=[*host_lines, *FORWARDED])
    await call(ForwardedHeadersMiddleware(app, trusted_hosts="127.0.0.1"), scope)
    assert [line for line in seen[0] if line[0].lower() == b"host"] == [(b"host", b"public")]
    assert [line for line in seen[0] if line[0].lower() != b"host"] == FORWARDED


async def test_with_two_host_lines_the_first_is_the_host_as_the_rules_and_starlette_read_it() -> None:
    """A forwarded port applies to the first `Host` line, the one `request_target` and Starlette read."""
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(list(scope["headers"]))
        await make_app()(scope, receive, send)

    headers = [(b"host", b"a.example"), (b"host", b"b.example"), (b"x-forwarded-port", b"8443")]
    scope = http_scope(host=None, headers=headers)
    await call(ForwardedHeadersMiddleware(app, trusted_hosts="127.0.0.1"), scope)
    assert [line for line in seen[0] if line[0] == b"host"] == [(b"host", b"a.example:8443")]
    assert scope[ORIGINAL_SCOPE_KEY]["host"] == "a.example"


async def test_a_subclass_overriding_call_is_called_through_it() -> None:
    calls: list[str] = []

    class Audited(ArmorHeaderMiddleware):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            calls.append(scope["path"])
            await super().__call__(scope, receive, send)

    audited = Audited(make_app(), engine="python")
    forwarded = ForwardedHeadersMiddleware(audited, trusted_hosts="127.0.0.1")
    assert forwarded._next is audited
    headers = await response_headers(forwarded, http_scope(path="/x", headers=FORWARDED))
    assert calls == ["/x"]
    assert header_values(headers, b"x-frame-options") == [b"DENY"]


async def test_a_patched_call_turns_the_shortcut_off_and_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    # What an instrumentation does (Sentry's Starlette integration: a span per middleware class).
    spans: list[str] = []
    original = ChainedMiddleware.__call__

    async def traced(self: ArmorHeaderMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
        spans.append(type(self).__name__)
        await original(self, scope, receive, send)

    monkeypatch.setattr(ArmorHeaderMiddleware, "__call__", traced)
    armor = ArmorHeaderMiddleware(make_app(), engine="python")
    forwarded = ForwardedHeadersMiddleware(armor, trusted_hosts="127.0.0.1")
    assert forwarded._next is armor
    headers = await response_headers(forwarded, http_scope(headers=FORWARDED))
    assert spans == ["ArmorHeaderMiddleware"]
    assert header_values(headers, b"x-frame-options") == [b"DENY"]


async def test_replacing_app_replaces_the_next_step() -> None:
    forwarded = ForwardedHeadersMiddleware(make_app(body=b"first"), trusted_hosts="127.0.0.1")
    forwarded.app = ArmorHeaderMiddleware(make_app(body=b"second"), engine="python")
    messages = await call(forwarded, http_scope(headers=FORWARDED))
    assert messages[-1]["body"] == b"second"
    start: Message = messages[0]
    assert header_values(start["headers"], b"x-frame-options") == [b"DENY"]


async def test_an_exception_of_the_application_goes_through_the_fused_stack() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await call(_stack(failing), http_scope(headers=FORWARDED))


async def test_lifespan_goes_through_the_fused_stack_untouched() -> None:
    received: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(scope["type"])

    scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await _stack(app)(scope, make_receive_none, make_send_none)
    assert received == ["lifespan"]
    assert scope == {"type": "lifespan", "asgi": {"version": "3.0"}}


async def make_receive_none() -> Message:
    return {"type": "lifespan.startup"}


async def make_send_none(message: Message) -> None:
    return None


def test_the_base_class_has_no_work_of_its_own() -> None:
    with pytest.raises(NotImplementedError):
        ChainedMiddleware()._enter({}, make_receive_none, make_send_none)


async def test_request_id_middleware_calls_a_chained_middleware_s_enter() -> None:
    from c2c_headers import RequestIdMiddleware

    armor = ArmorHeaderMiddleware(make_app(), engine="python")
    request_id = RequestIdMiddleware(armor)
    assert request_id._next == armor._enter
    headers = await response_headers(request_id, http_scope())
    assert header_values(headers, b"x-frame-options") == [b"DENY"]
    assert len(header_values(headers, b"x-request-id")) == 1
