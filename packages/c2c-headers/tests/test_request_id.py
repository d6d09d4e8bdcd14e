"""RequestIdMiddleware, the request-id context and RequestIdFilter, in process (issue 15 item 2)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from _c2c_headers_helpers import call, http_scope, make_app
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import c2c_headers
from c2c_headers import (
    PEER_SCOPE_KEY,
    ForwardedHeadersMiddleware,
    RequestIdFilter,
    RequestIdMiddleware,
    current_request_id,
    is_valid_request_id,
    request_id_context,
)
from c2c_headers.request_id import new_request_id
from c2c_headers.types import Message, Receive, Scope, Send

GENERATED = re.compile(r"[0-9a-f]{32}")
SAFE = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")
PROXY = ("10.0.0.5", 40000)
CLIENT = ("203.0.113.9", 50000)


class Seen:
    """An app that records the id it sees (state and context) and answers 200."""

    def __init__(self, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.state: list[Any] = []
        self.context: list[str | None] = []
        self.headers = headers or [(b"content-type", b"text/plain")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.state.append(scope.get("state", {}).get("request_id"))
        self.context.append(current_request_id())
        await send({"type": "http.response.start", "status": 200, "headers": list(self.headers)})
        await send({"type": "http.response.body", "body": b"ok"})


async def answer(app: Any, scope: dict[str, Any]) -> list[bytes]:
    """The response's X-Request-ID values."""
    messages = await call(app, scope)
    start = next(message for message in messages if message["type"] == "http.response.start")
    return [value for name, value in start["headers"] if name.lower() == b"x-request-id"]


def scope_with(value: bytes | None, client: tuple[str, int] | None = PROXY, **kwargs: Any) -> dict[str, Any]:
    headers = [] if value is None else [(b"x-request-id", value)]
    return http_scope(headers=headers, client=client, **kwargs)


# --- the middleware -------------------------------------------------------------------------------


async def test_trusted_proxy_id_is_kept_everywhere() -> None:
    seen = Seen()
    app = RequestIdMiddleware(seen, trusted_hosts="10.0.0.0/8")
    assert await answer(app, scope_with(b"abc-123")) == [b"abc-123"]
    assert seen.state == seen.context == ["abc-123"]
    assert current_request_id() is None  # reset after the request


async def test_untrusted_peer_gets_a_generated_id() -> None:
    seen = Seen()
    app = RequestIdMiddleware(seen, trusted_hosts="10.0.0.0/8")
    values = await answer(app, scope_with(b"abc-123", client=CLIENT))
    assert len(values) == 1
    assert GENERATED.fullmatch(values[0].decode())
    assert seen.state == seen.context == [values[0].decode()]


async def test_generated_ids_are_distinct_and_128_bits() -> None:
    app = RequestIdMiddleware(Seen(), trusted_hosts="")
    values = {(await answer(app, scope_with(None)))[0] for _ in range(600)}  # more than one batch
    assert len(values) == 600
    assert all(GENERATED.fullmatch(value.decode()) for value in values)
    assert GENERATED.fullmatch(new_request_id())


@pytest.mark.parametrize(
    "value",
    [b"", b"a" * 129, b"has space", b"a\r\nSet-Cookie: x=1", b"<script>", b"caf\xc3\xa9", b"a,b", b"a;b", b'"a"'],
)
async def test_malformed_ids_are_replaced(value: bytes) -> None:
    app = RequestIdMiddleware(Seen(), trusted_hosts="10.0.0.0/8")
    values = await answer(app, scope_with(value))
    assert len(values) == 1
    assert GENERATED.fullmatch(values[0].decode())


@pytest.mark.parametrize("value", [b"a", b"a" * 128, b"0f8fad5b-d9cb-469f-a165-70867728950e", b"Root=1-5e:a.b_c+d/e"])
async def test_well_formed_ids_are_kept(value: bytes) -> None:
    app = RequestIdMiddleware(Seen(), trusted_hosts="10.0.0.0/8")
    assert await answer(app, scope_with(value)) == [value]


async def test_max_length_and_header_options() -> None:
    app = RequestIdMiddleware(Seen(), trusted_hosts="10.0.0.5", max_length=8, header="Request-Id")
    scope = http_scope(headers=[(b"request-id", b"12345678")], client=PROXY)
    messages = await call(app, scope)
    assert (b"request-id", b"12345678") in messages[0]["headers"]
    scope = http_scope(headers=[(b"request-id", b"123456789")], client=PROXY)
    messages = await call(app, scope)
    assert dict(messages[0]["headers"])[b"request-id"] != b"123456789"
    # a header line spelt in another case (ASGI allows it)
    scope = http_scope(headers=[(b"Request-ID", b"1a2b")], client=PROXY)
    assert dict((await call(app, scope))[0]["headers"])[b"request-id"] == b"1a2b"


async def test_several_lines_are_ambiguous() -> None:
    app = RequestIdMiddleware(Seen(), trusted_hosts="10.0.0.0/8")
    scope = http_scope(headers=[(b"x-request-id", b"client"), (b"x-request-id", b"proxy")], client=PROXY)
    values = await answer(app, scope)
    assert len(values) == 1
    assert GENERATED.fullmatch(values[0].decode())


async def test_custom_generator() -> None:
    app = RequestIdMiddleware(Seen(), trusted_hosts="", generator=lambda: "custom-1")
    assert await answer(app, scope_with(b"ignored")) == [b"custom-1"]


async def test_custom_generator_called_once_per_request() -> None:
    """The generator is called lazily, once per generated id, never for a kept one."""
    calls: list[int] = []

    def numbered() -> str:
        calls.append(len(calls))
        return f"gen-{len(calls)}"

    app = RequestIdMiddleware(Seen(), trusted_hosts="10.0.0.0/8", generator=numbered)
    assert await answer(app, scope_with(None)) == [b"gen-1"]
    assert await answer(app, scope_with(b"kept-1")) == [b"kept-1"]
    assert await answer(app, scope_with(b"bad id")) == [b"gen-2"]
    assert calls == [0, 1]


KEPT_ID = b"0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.mark.parametrize(
    ("client", "peer", "headers", "refused"),
    [
        (PROXY, None, [(b"x-request-id", KEPT_ID)], False),  # the baseline: kept
        (CLIENT, None, [(b"x-request-id", KEPT_ID)], True),  # untrusted peer
        (PROXY, [CLIENT], [(b"x-request-id", KEPT_ID)], True),  # the recorded real peer is untrusted
        (CLIENT, [PROXY], [(b"x-request-id", KEPT_ID)], False),  # ... and the recorded one decides
        (PROXY, [None], [(b"x-request-id", KEPT_ID)], True),  # a socket peer, no socket literal trusted
        (PROXY, None, [(b"x-request-id", KEPT_ID + b"0")], True),  # one byte over max_length
        (PROXY, None, [(b"x-request-id", b"!" + KEPT_ID[1:])], True),  # a bad first byte
        (PROXY, None, [(b"x-request-id", KEPT_ID[:17] + b" " + KEPT_ID[18:])], True),  # a bad middle byte
        (PROXY, None, [(b"x-request-id", KEPT_ID[:-1] + b"\x80")], True),  # a bad (non-ASCII) last byte
        (PROXY, None, [(b"x-request-id", KEPT_ID)] * 2, True),  # two lines, even equal
        (PROXY, None, [(b"X-Request-Id", KEPT_ID)], False),  # another case: kept by the case-less scan
        (PROXY, None, [(b"X-Request-Id", KEPT_ID), (b"X-REQUEST-ID", KEPT_ID)], True),  # ... two lines
        (PROXY, None, [(b"X-Request-Id", KEPT_ID[:-1] + b";")], True),  # ... a bad byte
    ],
)
async def test_each_check_refuses_on_its_own(
    client: tuple[str, int], peer: list[Any] | None, headers: list[tuple[bytes, bytes]], refused: bool
) -> None:
    """Every check (trusted real peer, one line, length, each byte) refuses with all the others passing."""
    seen = Seen()
    app = RequestIdMiddleware(seen, trusted_hosts="10.0.0.5", max_length=len(KEPT_ID))
    scope = http_scope(headers=headers, client=client)
    if peer is not None:
        scope[PEER_SCOPE_KEY] = peer[0]
    values = await answer(app, scope)
    assert len(values) == 1
    if refused:
        assert GENERATED.fullmatch(values[0].decode())
    else:
        assert values == [KEPT_ID]
    assert seen.state == seen.context == [values[0].decode()]


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="max_length"):
        RequestIdMiddleware(Seen(), max_length=0)
    with pytest.raises(ValueError, match="max_length"):
        RequestIdMiddleware(Seen(), max_length=5000)
    with pytest.raises(ValueError, match="header"):
        RequestIdMiddleware(Seen(), header="X Request ID")
    with pytest.raises(ValueError, match="10.0.0.300"):
        RequestIdMiddleware(Seen(), trusted_hosts="10.0.0.300")


async def test_unix_socket_peer_trusted_only_with_a_socket_literal() -> None:
    kept = RequestIdMiddleware(Seen(), trusted_hosts="unix:")
    assert await answer(kept, scope_with(b"via-socket", client=None)) == [b"via-socket"]
    generated = RequestIdMiddleware(Seen(), trusted_hosts="127.0.0.1")
    assert await answer(generated, scope_with(b"via-socket", client=None)) != [b"via-socket"]


async def test_state_is_created_or_extended() -> None:
    seen = Seen()
    app = RequestIdMiddleware(seen, trusted_hosts="10.0.0.0/8")
    scope = scope_with(b"one")
    scope["state"] = {"other": 1}
    await call(app, scope)
    assert scope["state"] == {"other": 1, "request_id": "one"}


async def test_lifespan_passes_through() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)

    await RequestIdMiddleware(app)({"type": "lifespan"}, make_receive_none, send_none)
    assert scopes == [{"type": "lifespan"}]


async def make_receive_none() -> Message:
    return {"type": "lifespan.startup"}


async def send_none(message: Message) -> None:
    return None


async def test_response_without_headers_gets_the_id() -> None:
    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body", "body": b""})

    assert await answer(RequestIdMiddleware(bare, trusted_hosts="10.0.0.0/8"), scope_with(b"x1")) == [b"x1"]


async def test_an_exception_keeps_the_id_for_the_server_log() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    app = RequestIdMiddleware(failing, trusted_hosts="10.0.0.0/8")

    async def request() -> str | None:
        with pytest.raises(RuntimeError):
            await app(scope_with(b"failed-1"), make_receive_none, send_none)
        return current_request_id()  # what the server's error log would carry

    assert await asyncio.create_task(request()) == "failed-1"
    assert current_request_id() is None  # the task's context, not ours


# --- the real peer: ForwardedHeadersMiddleware before RequestIdMiddleware --------------------------


async def test_forwarded_rewrite_records_the_peer() -> None:
    seen = Seen()
    app = ForwardedHeadersMiddleware(RequestIdMiddleware(seen, trusted_hosts="10.0.0.5"), trusted_hosts="10.0.0.5")
    scope = http_scope(headers=[(b"x-forwarded-for", b"198.51.100.7"), (b"x-request-id", b"from-proxy")], client=PROXY)
    assert await answer(app, scope) == [b"from-proxy"]
    assert scope[PEER_SCOPE_KEY] == PROXY
    assert scope["client"] == ("198.51.100.7", 0)


async def test_forwarded_client_cannot_make_itself_trusted() -> None:
    """A client naming a trusted address in X-Forwarded-For is judged on its real address."""
    app = ForwardedHeadersMiddleware(RequestIdMiddleware(Seen(), trusted_hosts="10.0.0.5"), trusted_hosts="*")
    scope = http_scope(headers=[(b"x-forwarded-for", b"10.0.0.5"), (b"x-request-id", b"forged")], client=CLIENT)
    assert scope_values(await call(app, scope)) != [b"forged"]
    assert scope[PEER_SCOPE_KEY] == CLIENT


def scope_values(messages: list[Message]) -> list[bytes]:
    return [value for name, value in messages[0]["headers"] if name == b"x-request-id"]


async def test_outer_forwarded_peer_is_kept_by_an_inner_one() -> None:
    inner = ForwardedHeadersMiddleware(RequestIdMiddleware(Seen(), trusted_hosts="10.0.0.5"), trusted_hosts="*")
    app = ForwardedHeadersMiddleware(inner, trusted_hosts="10.0.0.5")
    scope = http_scope(headers=[(b"x-forwarded-for", b"198.51.100.7"), (b"x-request-id", b"kept")], client=PROXY)
    assert await answer(app, scope) == [b"kept"]
    assert scope[PEER_SCOPE_KEY] == PROXY


def test_starlette_and_websocket() -> None:
    async def home(request: Request) -> JSONResponse:
        return JSONResponse({"state": request.state.request_id, "context": current_request_id()})

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"state": websocket.state.request_id, "context": current_request_id()})
        await websocket.close()

    inner = Starlette(routes=[Route("/", home), WebSocketRoute("/ws", socket)])
    app = RequestIdMiddleware(inner, trusted_hosts="testclient")
    with TestClient(app) as client:
        response = client.get("/", headers={"X-Request-ID": "starlette-1"})
        assert response.json() == {"state": "starlette-1", "context": "starlette-1"}
        assert response.headers["x-request-id"] == "starlette-1"
        with client.websocket_connect("/ws", headers={"X-Request-ID": "ws-1"}) as websocket:
            assert websocket.receive_json() == {"state": "ws-1", "context": "ws-1"}


async def test_httpx_asgi_transport() -> None:
    async def home(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.state.request_id})

    app = RequestIdMiddleware(Starlette(routes=[Route("/", home)]), trusted_hosts="127.0.0.1")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 123))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/", headers={"X-Request-ID": "httpx-1"})
    assert response.json() == {"id": "httpx-1"}
    assert response.headers.get_list("x-request-id") == ["httpx-1"]


# --- Hypothesis: any header bytes, trusted or not ---------------------------------------------------

HEADER_BYTES = st.one_of(
    st.binary(max_size=140),
    st.text(alphabet="abcXYZ019._:+/=-", min_size=0, max_size=140).map(str.encode),
)


@given(value=HEADER_BYTES, trusted=st.booleans(), lines=st.integers(min_value=0, max_value=2))
@example(value=b"a\r\nx: y", trusted=True, lines=1)
@example(value=b"ok-id", trusted=True, lines=1)
@example(value=b"a" * 128, trusted=True, lines=1)
@example(value=b"a" * 129, trusted=True, lines=1)
def test_kept_iff_well_formed_and_trusted(value: bytes, trusted: bool, lines: int) -> None:
    seen = Seen()
    app = RequestIdMiddleware(seen, trusted_hosts="10.0.0.0/8")
    scope = http_scope(headers=[(b"x-request-id", value)] * lines, client=PROXY if trusted else CLIENT)
    values = asyncio.run(answer(app, scope))
    assert len(values) == 1
    assert SAFE.fullmatch(values[0])  # never reflected unsafely
    if trusted and lines == 1 and SAFE.fullmatch(value) is not None:
        assert values[0] == value
    else:
        assert GENERATED.fullmatch(values[0].decode())
    assert seen.state == seen.context == [values[0].decode()]
    assert is_valid_request_id(value) is (SAFE.fullmatch(value) is not None)


@given(value=st.text(max_size=140))
def test_is_valid_request_id_on_text(value: str) -> None:
    expected = value.isascii() and SAFE.fullmatch(value.encode("ascii")) is not None
    assert is_valid_request_id(value) is expected
    assert is_valid_request_id(value, max_length=4) is (expected and len(value) <= 4)


# --- the context and the filter ---------------------------------------------------------------------


def test_request_id_context_nests_and_restores() -> None:
    assert current_request_id() is None
    with request_id_context("outer"):
        assert current_request_id() == "outer"
        with request_id_context(None):
            assert current_request_id() is None
        with pytest.raises(KeyError), request_id_context("inner"):
            raise KeyError("x")
        assert current_request_id() == "outer"
    assert current_request_id() is None


def make_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(request_id)s %(name)s %(message)s"))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_filter_on_a_handler_sees_every_logger() -> None:
    logger, stream = make_logger("c2c_test_rid")
    child = logging.getLogger("c2c_test_rid.child")  # no filter of its own: the handler's runs
    logger.info("outside")
    with request_id_context("req-7"):
        child.info("inside")
        logger.info("explicit", extra={"request_id": "given"})
    assert stream.getvalue().splitlines() == [
        "- c2c_test_rid outside",
        "req-7 c2c_test_rid.child inside",
        "given c2c_test_rid explicit",
    ]


def test_filter_default_and_name() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert RequestIdFilter(default="none").filter(record) is True
    assert getattr(record, "request_id", None) == "none"


async def test_filter_in_the_middleware_and_a_thread() -> None:
    logger, stream = make_logger("c2c_test_rid_app")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        logger.info("in the app")
        await asyncio.to_thread(logger.info, "in a thread")
        await make_app()(scope, receive, send)

    await call(RequestIdMiddleware(app, trusted_hosts="10.0.0.0/8"), scope_with(b"log-1"))
    assert stream.getvalue().splitlines() == ["log-1 c2c_test_rid_app in the app", "log-1 c2c_test_rid_app in a thread"]


def test_exports_are_lazy_and_documented() -> None:
    for name in (
        "RequestIdMiddleware",
        "RequestIdFilter",
        "current_request_id",
        "request_id_context",
        "PEER_SCOPE_KEY",
    ):
        assert name in c2c_headers.__all__
    assert c2c_headers.PEER_SCOPE_KEY == "c2c.peer"


def test_pool_reset_drops_the_batch() -> None:
    """What the fork hook runs: the ids after a reset come from a new batch, not the old one's next."""
    from c2c_headers.request_id import _POOL

    _POOL.ids = iter(())
    new_request_id()  # a fresh batch, 255 ids left in it
    left = list(_POOL.ids)
    _POOL.ids = iter(left)
    _POOL.reset()
    assert len(left) == 255
    assert new_request_id() not in {value for value, _ in left}  # without the reset: left[0]


def test_forked_child_draws_new_ids() -> None:
    new_request_id()  # a batch in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent = new_request_id()
    assert GENERATED.fullmatch(child)
    assert child != parent  # without the fork hook the child hands out the parent's next id


# --- the README's examples, run as written --------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(marker: str, language: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None, marker
    return match[1]


async def test_readme_example_order_and_state() -> None:
    namespace: dict[str, Any] = {"__name__": "readme_request_id"}
    exec(compile(readme_block("request-id-example", "python"), "README.md", "exec"), namespace)  # noqa: S102 (our README)
    app = namespace["app"]
    # nginx (10.0.0.5) forwards client 198.51.100.7 with its own id: ForwardedHeaders rewrites the
    # client, RequestId still sees nginx as the peer and keeps the id.
    transport = httpx.ASGITransport(app=app, client=PROXY)
    headers = {"X-Forwarded-For": "198.51.100.7", "X-Request-ID": "nginx-id-1"}
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        kept = await client.get("/", headers=headers)
    assert kept.json() == {"state": "nginx-id-1", "context": "nginx-id-1"}
    assert kept.headers["x-request-id"] == "nginx-id-1"
    transport = httpx.ASGITransport(app=app, client=CLIENT)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        generated = await client.get("/", headers={"X-Request-ID": "forged"})
    assert GENERATED.fullmatch(generated.headers["x-request-id"])


def test_readme_logging_configuration() -> None:
    """The YAML block configures logging as it says (in a child: dictConfig changes the process)."""
    code = (
        "import logging, logging.config, sys, yaml\n"
        "from c2c_headers import request_id_context\n"
        "logging.config.dictConfig(yaml.safe_load(sys.stdin.read()))\n"
        "logging.getLogger('uvicorn.access').info('access line')\n"
        "with request_id_context('abc-1'):\n"
        "    logging.getLogger('uvicorn.access').info('access line')\n"
        "    logging.getLogger('myapp').warning('app line')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        input=readme_block("request-id-logging", "yaml"),
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    )
    lines = completed.stderr.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "INFO [-] uvicorn.access: access line",
        "INFO [abc-1] uvicorn.access: access line",
        "WARNING [abc-1] myapp: app line",
    ]
