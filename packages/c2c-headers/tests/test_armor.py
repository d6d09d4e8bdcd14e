"""ArmorHeaderMiddleware: matching and application truth tables, nonce, pure-ASGI behaviour, engines."""

from __future__ import annotations

import base64
import contextlib
import contextvars
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _c2c_headers_helpers import call, header_values, http_scope, make_app, make_receive, response_headers
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from c2c_headers import CSP_NONCE, ArmorHeaderMiddleware, UnsupportedPatternError
from c2c_headers.types import Message, Receive, Scope, Send

HTML = ((b"content-type", b"text/html; charset=utf-8"),)
JSON = ((b"content-type", b"application/json"),)


def _hit(rule: dict[str, Any]) -> dict[str, Any]:
    return {"rule": {**rule, "headers": {"X-Hit": "1"}}}


# Each row: rule fields, request (path, method, host, root_path), response (status, headers), applied?
@pytest.mark.parametrize(
    ("rule", "request_", "response", "applied"),
    [
        # no condition: always
        ({}, ("/", "GET", "example.com", ""), (200, ()), True),
        # path_match sees the leading slash (the reference's README examples now work)
        ({"path_match": r"^/api/.*"}, ("/api/items", "GET", "example.com", ""), (200, ()), True),
        ({"path_match": r"^/api/.*"}, ("/other/api/x", "GET", "example.com", ""), (200, ()), False),
        ({"path_match": r"^/api/.*"}, ("/api", "GET", "example.com", ""), (200, ()), False),
        # re.match: anchored at the start only
        ({"path_match": "/admin"}, ("/administrator", "GET", "example.com", ""), (200, ()), True),
        ({"path_match": "/admin$"}, ("/administrator", "GET", "example.com", ""), (200, ()), False),
        # relative to root_path, at a segment boundary only
        ({"path_match": r"^/api/"}, ("/prefix/api/x", "GET", "example.com", "/prefix"), (200, ()), True),
        ({"path_match": r"^/$"}, ("/prefix", "GET", "example.com", "/prefix"), (200, ()), True),
        ({"path_match": r"^/prefixed"}, ("/prefixed", "GET", "example.com", "/prefix"), (200, ()), True),
        ({"path_match": r"^/api/"}, ("/api/x", "GET", "example.com", "/prefix"), (200, ()), True),
        # netloc: host[:port] from the Host header
        ({"netloc_match": r"^admin\."}, ("/", "GET", "admin.example.com", ""), (200, ()), True),
        ({"netloc_match": r"^admin\."}, ("/", "GET", "www.example.com", ""), (200, ()), False),
        ({"netloc_match": r"^example\.com:8080$"}, ("/", "GET", "example.com:8080", ""), (200, ()), True),
        ({"netloc_match": r"^localhost(:\d+)?$"}, ("/", "GET", "localhost:8000", ""), (200, ()), True),
        # methods: exact
        ({"methods": ["GET", "HEAD"]}, ("/", "HEAD", "example.com", ""), (200, ()), True),
        ({"methods": ["GET", "HEAD"]}, ("/", "POST", "example.com", ""), (200, ()), False),
        ({"methods": ["GET"]}, ("/", "get", "example.com", ""), (200, ()), False),
        # status: single and inclusive range
        ({"status_code": 200}, ("/", "GET", "example.com", ""), (200, ()), True),
        ({"status_code": 200}, ("/", "GET", "example.com", ""), (201, ()), False),
        ({"status_code": (200, 299)}, ("/", "GET", "example.com", ""), (299, ()), True),
        ({"status_code": (200, 299)}, ("/", "GET", "example.com", ""), (300, ()), False),
        ({"status_code": (400, 599)}, ("/", "GET", "example.com", ""), (404, ()), True),
        # content type: re.match, case-insensitive, absent = no match
        ({"content_type_match": "^text/html"}, ("/", "GET", "example.com", ""), (200, HTML), True),
        (
            {"content_type_match": "^text/html"},
            ("/", "GET", "example.com", ""),
            (200, ((b"Content-Type", b"TEXT/HTML"),)),
            True,
        ),
        ({"content_type_match": "^text/html"}, ("/", "GET", "example.com", ""), (200, JSON), False),
        ({"content_type_match": "^text/html"}, ("/", "GET", "example.com", ""), (200, ()), False),
        # everything together
        (
            {"netloc_match": "^api", "path_match": "^/v1/", "methods": ["POST"], "status_code": (200, 299)},
            ("/v1/x", "POST", "api.example.com", ""),
            (201, JSON),
            True,
        ),
        (
            {"netloc_match": "^api", "path_match": "^/v1/", "methods": ["POST"], "status_code": (200, 299)},
            ("/v1/x", "POST", "api.example.com", ""),
            (500, JSON),
            False,
        ),
    ],
)
async def test_matching(
    engine: str,
    rule: dict[str, Any],
    request_: tuple[str, str, str, str],
    response: tuple[int, tuple[tuple[bytes, bytes], ...]],
    applied: bool,
) -> None:
    path, method, host, root_path = request_
    status, headers = response
    middleware = ArmorHeaderMiddleware(make_app(status, headers), _hit(rule), use_default=False, engine=engine)
    result = await response_headers(middleware, http_scope(path, method, host, root_path))
    assert header_values(result, b"x-hit") == ([b"1"] if applied else [])


# Each row: path_match, root_path, request path, applied? The form of the path a pattern sees is
# chosen per pattern, from its source text (issue 13): with the leading slash when the pattern
# starts with "/" or "^/", else without it, as c2casgiutils 0.14 matched.
@pytest.mark.parametrize(
    ("pattern", "root_path", "path", "applied"),
    [
        # "/" or "^/" first: the path with its leading slash (our README's form)
        (r"^/api/", "", "/api/x", True),
        (r"/api/", "", "/api/x", True),
        (r"^/api/", "", "/apix", False),
        (r"^/api/", "", "/other/api/x", False),
        (r"^/$", "", "/", True),
        (r"/", "", "/", True),
        (r"^/?$", "", "/", True),
        # anything else: the path without its leading slash (c2casgiutils 0.14's form)
        (r"^api/", "", "/api/x", True),
        (r"api/", "", "/api/x", True),
        (r"api", "", "/api", True),
        (r"^api/", "", "/other/api/x", False),
        (r"^api/", "", "/apix", False),
        (r"(?i)^api", "", "/API/x", True),
        (r".*\.js$", "", "/static/app.js", True),
        (r"static/", "", "/static/x", True),
        # the test is on the source text only: a flag or \A first is 0.14's form
        (r"(?i)^/api", "", "/api/x", False),
        (r"\A/api", "", "/api/x", False),
        (r"\/api", "", "/api/x", False),
        (r"\/api", "", "//api/x", True),
        # the root: "/" with its slash, "" without
        (r"^$", "", "/", True),
        (r"^$", "", "/x", False),
        (r"^/$", "", "/x", False),
        (r"", "", "/", True),
        (r"", "", "/anything", True),
        # the default rules' form: both forms agree on it
        (r"^(.*/)?c2c/?$", "", "/c2c", True),
        (r"^(.*/)?c2c/?$", "", "/c2c/", True),
        (r"^(.*/)?c2c/?$", "", "/a/b/c2c", True),
        (r"^(.*/)?c2c/?$", "", "/xc2c", False),
        (r"^(.*/)?c2c/?$", "", "/c2c/x", False),
        # negative patterns keep their meaning: never "either form matches", which would match
        # every path (look-ahead: the native engine refuses it, auto falls back to python)
        (r"^(?!api/)", "", "/api/x", False),
        (r"^(?!api/)", "", "/docs", True),
        (r"^(?!api/)", "", "/", True),
        (r"^(?!api/|admin/)", "", "/admin/x", False),
        (r"^/(?!api/)", "", "/api/x", False),
        (r"^/(?!api/)", "", "/docs", True),
        # relative to root_path first, then the form
        (r"^api/", "/app", "/app/api/x", True),
        (r"^/api/", "/app", "/app/api/x", True),
        (r"^app/", "/app", "/app/api/x", False),
        (r"^$", "/app", "/app", True),
        (r"^$", "/app", "/app/", True),
        (r"^/$", "/app", "/app", True),
        (r"^(?!api/)", "/app", "/app/api/x", False),
        (r"^(?!api/)", "/app", "/app/docs", True),
        # not under root_path (a segment boundary is needed): the whole path
        (r"^apple", "/app", "/apple", True),
        (r"^/apple", "/app", "/apple", True),
        # an empty path (no server sends one) is seen as is by both forms
        (r"^$", "", "", True),
        (r"^/", "", "", False),
        (r"", "", "", True),
    ],
)
async def test_path_match_forms(engine: str, pattern: str, root_path: str, path: str, applied: bool) -> None:
    config = _hit({"path_match": pattern})
    if engine == "native" and "(?!" in pattern:
        with pytest.raises(UnsupportedPatternError, match="look-ahead"):
            ArmorHeaderMiddleware(make_app(), config, use_default=False, engine="native")
        engine = "auto"
    middleware = ArmorHeaderMiddleware(make_app(), config, use_default=False, engine=engine)
    assert middleware.engine_name == ("python" if "(?!" in pattern else engine)
    result = await response_headers(middleware, http_scope(path, root_path=root_path))
    assert header_values(result, b"x-hit") == ([b"1"] if applied else [])


# Each row: request path, root_path, the default rule whose CSP the HTML page gets (None: "default").
@pytest.mark.parametrize(
    ("path", "root_path", "rule"),
    [
        ("/c2c", "", "c2c"),
        ("/c2c/", "", "c2c"),
        ("/api/c2c", "", "c2c"),
        ("/app/c2c", "/app", "c2c"),
        ("/app/x/c2c/", "/app", "c2c"),
        ("/xc2c", "", None),
        ("/c2c/x", "", None),
        ("/docs", "", "docs"),
        ("/docs/", "", "docs"),
        ("/v1/docs", "", None),  # FastAPI's own page only (issue 14, item 13)
        ("/app/docs", "/app", "docs"),
        ("/mydocs", "", None),
        ("/redoc", "", "redoc"),
        ("/app/redoc/", "/app", "redoc"),
        ("/", "", None),
        ("/app", "/app", None),
    ],
)
async def test_default_path_rules_match_as_before(engine: str, path: str, root_path: str, rule: str | None) -> None:
    """The default rules are of 0.14's form: they match the pages they matched with the slash."""
    middleware = ArmorHeaderMiddleware(make_app(headers=HTML), engine=engine)
    scope = http_scope(path, root_path=root_path)
    (csp,) = header_values(await response_headers(middleware, scope), b"content-security-policy")
    found = {"c2c": b"'nonce-" in csp, "docs": b"swagger-ui" in csp, "redoc": b"redoc@" in csp}
    assert [name for name, present in found.items() if present] == ([] if rule is None else [rule])


async def test_netloc_without_host_header(engine: str) -> None:
    middleware = ArmorHeaderMiddleware(
        make_app(), _hit({"netloc_match": r"^10\.0\.0\.1:8080$"}), use_default=False, engine=engine
    )
    result = await response_headers(middleware, http_scope(host=None, server=("10.0.0.1", 8080)))
    assert header_values(result, b"x-hit") == [b"1"]


DEFAULT_HEADERS = {
    b"x-frame-options": b"DENY",
    b"strict-transport-security": b"max-age=31536000; includeSubDomains; preload",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"permissions-policy": b"geolocation=(), microphone=()",
    b"x-dns-prefetch-control": b"off",
    b"origin-agent-cluster": b"?1",
    b"x-permitted-cross-domain-policies": b"none",
    b"cross-origin-embedder-policy": b"require-corp",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
    b"content-security-policy": (
        b"default-src 'self'; base-uri 'self'; form-action 'self'; object-src 'none'; frame-ancestors 'none'"
    ),
}


async def test_defaults(engine: str) -> None:
    middleware = ArmorHeaderMiddleware(make_app(headers=HTML), engine=engine)
    result = await response_headers(middleware, http_scope("/page"))
    assert result[0] == (b"content-type", b"text/html; charset=utf-8")
    assert dict(result[1:]) == DEFAULT_HEADERS
    assert len(result) == 1 + len(DEFAULT_HEADERS)  # no duplicate, no Cache-Control, no Expect-CT


@pytest.mark.parametrize(
    ("host", "headers", "hsts"),
    [
        ("localhost", HTML, False),
        ("localhost:8000", HTML, False),
        ("localhost:8000", JSON, True),  # only pages: an API client is not a browser tab
        ("localhost.example.com", HTML, True),
        ("example.com", HTML, True),
    ],
)
async def test_localhost_drops_hsts_for_pages(engine: str, host: str, headers: Any, hsts: bool) -> None:
    middleware = ArmorHeaderMiddleware(make_app(headers=headers), engine=engine)
    result = await response_headers(middleware, http_scope("/", host=host))
    assert bool(header_values(result, b"strict-transport-security")) is hsts


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/redoc/", "/docs/"])
async def test_docs_pages_relax_csp_and_coep(engine: str, path: str) -> None:
    middleware = ArmorHeaderMiddleware(make_app(headers=HTML), engine=engine)
    result = await response_headers(middleware, http_scope(path))
    (csp,) = header_values(result, b"content-security-policy")
    assert b"https://cdn.jsdelivr.net/npm/" in csp
    assert b"frame-ancestors 'none'" in csp
    assert header_values(result, b"cross-origin-embedder-policy") == []


async def test_docs_json_keeps_the_strict_policy(engine: str) -> None:
    middleware = ArmorHeaderMiddleware(make_app(headers=JSON), engine=engine)
    result = await response_headers(middleware, http_scope("/docs"))
    assert header_values(result, b"content-security-policy") == [DEFAULT_HEADERS[b"content-security-policy"]]
    assert header_values(result, b"cross-origin-embedder-policy") == [b"require-corp"]


@pytest.mark.parametrize(("path", "status", "nonce"), [("/c2c", 200, True), ("/c2c/", 200, True), ("/c2c", 404, False)])
async def test_c2c_page_nonce(engine: str, path: str, status: int, nonce: bool) -> None:
    middleware = ArmorHeaderMiddleware(make_app(status=status, headers=HTML), engine=engine)
    scope = http_scope(path)
    result = await response_headers(middleware, scope)
    (csp,) = header_values(result, b"content-security-policy")
    assert (b"'nonce-" + scope["state"]["nonce"].encode() + b"'" in csp) is nonce
    assert b"https:" not in csp
    assert header_values(result, b"cache-control") == ([b"no-store"] if nonce else [])


# Each row: rules, app headers, expected headers (in order) after the application.
@pytest.mark.parametrize(
    ("rules", "app_headers", "expected"),
    [
        # later rules win; the rule wins over the app by default (compatibility)
        (
            {"a": {"headers": {"X-A": "1"}}, "b": {"headers": {"X-A": "2"}}},
            [(b"x-a", b"app")],
            [(b"x-a", b"2")],
        ),
        # order sorts (stable); equal orders keep insertion order
        (
            {"a": {"order": 2, "headers": {"X-A": "1"}}, "b": {"order": 1, "headers": {"X-A": "2"}}},
            [],
            [(b"x-a", b"1")],
        ),
        # None removes, whatever the case of the app's name
        ({"a": {"headers": {"Server": None}}}, [(b"Server", b"uvicorn"), (b"x-k", b"v")], [(b"x-k", b"v")]),
        # a replaced header moves to the end; the others keep their order
        (
            {"a": {"headers": {"X-A": "new"}}},
            [(b"X-A", b"old"), (b"x-b", b"b"), (b"x-a", b"old2")],
            [(b"x-b", b"b"), (b"x-a", b"new")],
        ),
        # keep_existing: the app's own value stays
        (
            {"a": {"keep_existing": True, "headers": {"Cache-Control": "public, max-age=60", "X-New": "1"}}},
            [(b"Cache-Control", b"no-cache")],
            [(b"Cache-Control", b"no-cache"), (b"x-new", b"1")],
        ),
        # keep_existing also keeps what an earlier rule set
        (
            {"a": {"headers": {"X-A": "first"}}, "b": {"keep_existing": True, "headers": {"X-A": "second"}}},
            [],
            [(b"x-a", b"first")],
        ),
        # keep_existing does not stop removals
        ({"a": {"keep_existing": True, "headers": {"Server": None}}}, [(b"server", b"x")], []),
        # a later plain rule overrides a kept value
        (
            {"a": {"keep_existing": True, "headers": {"X-A": "rule"}}, "b": {"headers": {"X-A": "b"}}},
            [(b"x-a", b"app")],
            [(b"x-a", b"b")],
        ),
        # a removal then a keep_existing rule: the header is absent, so it is set
        (
            {"a": {"headers": {"X-A": None}}, "b": {"keep_existing": True, "headers": {"X-A": "b"}}},
            [(b"x-a", b"app")],
            [(b"x-a", b"b")],
        ),
    ],
)
async def test_application(
    engine: str, rules: dict[str, Any], app_headers: list[tuple[bytes, bytes]], expected: list[tuple[bytes, bytes]]
) -> None:
    middleware = ArmorHeaderMiddleware(make_app(headers=app_headers), rules, use_default=False, engine=engine)
    assert await response_headers(middleware, http_scope()) == expected


NONCE_RULES = {
    "page": {
        "path_match": r"^/page",
        "headers": {"Content-Security-Policy": {"default-src": ["'self'"], "script-src": ["'self'", CSP_NONCE]}},
    }
}


async def test_nonce(engine: str) -> None:
    middleware = ArmorHeaderMiddleware(make_app(headers=HTML), NONCE_RULES, engine=engine)
    scope = http_scope("/page")
    result = await response_headers(middleware, scope)
    nonce = scope["state"]["nonce"]
    assert len(base64.b64decode(nonce, validate=True)) == 16
    assert header_values(result, b"content-security-policy") == [
        b"default-src 'self'; script-src 'self' 'nonce-" + nonce.encode() + b"'"
    ]
    assert header_values(result, b"cache-control") == [b"no-store"]
    # unique per request
    nonces = set()
    for _ in range(20):
        scope = http_scope("/page")
        await call(middleware, scope)
        nonces.add(scope["state"]["nonce"])
    assert len(nonces) == 20


async def test_nonce_keeps_the_apps_cache_control(engine: str) -> None:
    app = make_app(headers=[*HTML, (b"cache-control", b"private, max-age=0")])
    middleware = ArmorHeaderMiddleware(app, NONCE_RULES, engine=engine)
    result = await response_headers(middleware, http_scope("/page"))
    assert header_values(result, b"cache-control") == [b"private, max-age=0"]


async def test_nonce_report_only_and_state_preserved(engine: str) -> None:
    rules = {"ro": {"headers": {"Content-Security-Policy-Report-Only": {"script-src": [CSP_NONCE]}}}}
    middleware = ArmorHeaderMiddleware(make_app(), rules, use_default=False, engine=engine)
    shared_state = {"lifespan": "value"}
    scope = http_scope()
    scope["state"] = shared_state
    result = await response_headers(middleware, scope)
    nonce = scope["state"]["nonce"]
    assert scope["state"]["lifespan"] == "value"
    assert "nonce" not in shared_state  # the server's (possibly shared) dict is not modified
    assert header_values(result, b"content-security-policy-report-only") == [
        b"script-src 'nonce-" + nonce.encode() + b"'"
    ]


async def test_no_nonce_when_no_rule_needs_one(engine: str) -> None:
    middleware = ArmorHeaderMiddleware(make_app(headers=HTML), NONCE_RULES, engine=engine)
    scope = http_scope("/other")
    result = await response_headers(middleware, scope)
    assert "state" not in scope
    assert header_values(result, b"cache-control") == []


async def test_nonce_on_a_response_the_rule_skips(engine: str) -> None:
    """The nonce exists as soon as the request matches (the app needs it before responding)."""
    rules = {"page": {**NONCE_RULES["page"], "status_code": 200}}
    middleware = ArmorHeaderMiddleware(make_app(status=404, headers=HTML), rules, engine=engine)
    scope = http_scope("/page")
    result = await response_headers(middleware, scope)
    assert scope["state"]["nonce"]
    assert header_values(result, b"content-security-policy") == [DEFAULT_HEADERS[b"content-security-policy"]]
    assert header_values(result, b"cache-control") == []  # nothing carries the nonce


async def test_headers_as_lists_and_no_headers(engine: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body", "body": b""})

    middleware = ArmorHeaderMiddleware(app, {"a": {"headers": {"X-A": "1"}}}, use_default=False, engine=engine)
    assert await response_headers(middleware, http_scope()) == [(b"x-a", b"1")]


async def test_no_match_passes_through(engine: str) -> None:
    middleware = ArmorHeaderMiddleware(make_app(), _hit({"path_match": "^/x"}), use_default=False, engine=engine)
    assert await response_headers(middleware, http_scope("/y")) == [(b"content-type", b"text/plain")]
    empty = ArmorHeaderMiddleware(make_app(), {}, use_default=False, engine=engine)
    assert await response_headers(empty, http_scope("/y")) == [(b"content-type", b"text/plain")]


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_other_scopes_pass_through_untouched(engine: str, scope_type: str) -> None:
    seen: list[tuple[Scope, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, send))

    async def receive() -> Message:
        return {"type": f"{scope_type}.connect"}

    async def send(message: Message) -> None:
        pass

    middleware = ArmorHeaderMiddleware(app, NONCE_RULES, engine=engine)
    scope = {"type": scope_type, "path": "/page", "headers": []}
    await middleware(scope, receive, send)
    assert seen == [(scope, send)]  # same scope object, unwrapped send
    assert "state" not in scope


async def test_streaming_body_passes_through(engine: str) -> None:
    chunks: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        for index in range(3):
            # the middleware has already forwarded the previous chunk when the next one is made
            assert len(chunks) == index
            yield f"chunk{index}".encode()

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(body(), media_type="text/plain")

    app = Starlette(routes=[Route("/", endpoint)])
    middleware = ArmorHeaderMiddleware(app, engine=engine)
    started: list[Message] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.append(message)
        elif message.get("body"):
            chunks.append(message["body"])

    await middleware(http_scope("/"), make_receive(), send)
    assert chunks == [b"chunk0", b"chunk1", b"chunk2"]
    assert header_values(started[0]["headers"], b"x-frame-options") == [b"DENY"]


async def test_background_task_runs(engine: str) -> None:
    done: list[str] = []

    async def task(name: str) -> None:
        done.append(name)

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("ok", background=BackgroundTask(task, "ran"))

    app = ArmorHeaderMiddleware(Starlette(routes=[Route("/", endpoint)]), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://example.com") as client:
        response = await client.get("/")
    assert response.text == "ok"
    assert response.headers["x-frame-options"] == "DENY"
    assert done == ["ran"]


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def test_contextvars_flow_both_ways(engine: str) -> None:
    """Pure ASGI: no task boundary, so a variable set inside the app is visible outside (and back)."""
    seen_inside: list[str] = []

    async def endpoint(request: Request) -> Response:
        seen_inside.append(REQUEST_ID.get())
        REQUEST_ID.set("set-by-endpoint")
        return PlainTextResponse("ok")

    inner = ArmorHeaderMiddleware(Starlette(routes=[Route("/", endpoint)]), engine=engine)

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        REQUEST_ID.set("set-by-outer")
        await inner(scope, receive, send)
        seen_inside.append(REQUEST_ID.get())

    await call(outer, http_scope("/"))
    assert seen_inside == ["set-by-outer", "set-by-endpoint"]


@given(
    path=st.text(max_size=30).map(lambda text: "/" + text),
    host=st.text(max_size=20),
    method=st.text(min_size=1, max_size=8),
)
async def test_arbitrary_requests_never_fail(engine: str, path: str, host: str, method: str) -> None:
    middleware = ArmorHeaderMiddleware(make_app(headers=HTML), NONCE_RULES, engine=engine)
    scope = http_scope(path, method, host=None)
    scope["headers"] = [(b"host", host.encode("utf-8"))]
    result = await response_headers(middleware, scope)
    (csp,) = header_values(result, b"content-security-policy")
    if path.startswith("/page"):
        assert b"'nonce-" + scope["state"]["nonce"].encode() + b"'" in csp


@pytest.mark.parametrize("status", [100, 200, 301, 404, 500, 599])
async def test_every_status(engine: str, status: int) -> None:
    middleware = ArmorHeaderMiddleware(make_app(status=status), engine=engine)
    result = await response_headers(middleware, http_scope())
    assert header_values(result, b"x-content-type-options") == [b"nosniff"]


def test_invalid_configuration_is_rejected_at_construction(engine: str) -> None:
    with pytest.raises(ValueError, match=r"rule 'bad', header 'X-A': the value contains a control character"):
        ArmorHeaderMiddleware(make_app(), {"bad": {"headers": {"X-A": "a\r\nb"}}}, engine=engine)


# --- engine selection (made in one place only, `c2c_headers._engine`) ---


def test_engine_name_attribute(engine: str) -> None:
    assert ArmorHeaderMiddleware(make_app(), engine=engine).engine_name == engine


def test_engine_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C_HEADERS_ENGINE", "python")
    assert ArmorHeaderMiddleware(make_app()).engine_name == "python"


def test_explicit_engine_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C_HEADERS_ENGINE", "native")
    assert ArmorHeaderMiddleware(make_app(), engine="python").engine_name == "python"


@pytest.mark.parametrize(("argument", "env"), [("rust", None), (None, "fast")])
def test_unknown_engine(monkeypatch: pytest.MonkeyPatch, argument: str | None, env: str | None) -> None:
    if env is not None:
        monkeypatch.setenv("C2C_HEADERS_ENGINE", env)
    with pytest.raises(ValueError, match=r"unknown header engine '(rust|fast)' .*accepted: auto, python, native"):
        ArmorHeaderMiddleware(make_app(), engine=argument)


def test_native_missing(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Without the native module: ``native`` is an actionable error, ``auto`` quietly uses python."""
    monkeypatch.setitem(sys.modules, "c2c_headers_native", None)  # makes the import fail as if not installed
    monkeypatch.delenv("C2C_HEADERS_ENGINE", raising=False)
    with pytest.raises(ModuleNotFoundError, match=r"install c2c-headers\[native\]"):
        ArmorHeaderMiddleware(make_app(), engine="native")
    with caplog.at_level(logging.DEBUG, logger="c2c_headers"):
        assert ArmorHeaderMiddleware(make_app(), engine="auto").engine_name == "python"
        assert ArmorHeaderMiddleware(make_app()).engine_name == "python"
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert "python engine" in caplog.text


@pytest.mark.parametrize("name", ["auto", "native"])
def test_broken_native_build_is_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A native module that is there but fails to import (a missing dependency) raises, never falls back."""
    package = tmp_path / "c2c_headers_native"
    package.mkdir()
    (package / "__init__.py").write_text("import c2c_headers_native_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "c2c_headers_native", raising=False)
    with pytest.raises(ModuleNotFoundError, match="c2c_headers_native_missing_dependency"):
        ArmorHeaderMiddleware(make_app(), engine=name)


async def test_covers_the_responses_of_middlewares_added_before(engine: str) -> None:
    """As the README says: added after TrustedHostMiddleware, the armor also covers its 400."""
    app = FastAPI()
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["good.example"])
    app.add_middleware(ArmorHeaderMiddleware, engine=engine)

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"ok": "yes"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://evil.example") as client:
        rejected = await client.get("/")
        accepted = await client.get("/", headers={"Host": "good.example"})
    assert rejected.status_code == 400
    assert rejected.headers["x-frame-options"] == "DENY"
    assert accepted.json() == {"ok": "yes"}
    assert accepted.headers["x-frame-options"] == "DENY"


def test_wrapping_the_whole_application_covers_the_500_page() -> None:
    """Added with `add_middleware`, the armor sits inside Starlette's `ServerErrorMiddleware`: its 500 has no
    headers. Wrapping the application (the README's way) covers it; the lifespan passes through."""
    started: list[bool] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        started.append(True)
        yield

    api = FastAPI(lifespan=lifespan)

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(api, raise_server_exceptions=False) as client:
        assert "x-frame-options" not in client.get("/boom").headers  # `add_middleware` cannot reach it
    with TestClient(ArmorHeaderMiddleware(api), raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert started == [True, True]  # the lifespan reached the application through the wrapper too
