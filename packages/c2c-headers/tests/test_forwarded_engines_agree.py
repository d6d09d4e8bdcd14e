"""ForwardedHeadersMiddleware: the native rewriter writes exactly what the Python path writes.

With c2c-headers-native, a request whose forwarded headers were resolved before is rewritten by
``c2c_headers_native.ForwardedRewriter`` (in Rust) from the middleware's cache; a first request, or
one the rewriter cannot read, takes the Python path. Hypothesis generates header lists (mixed-case
names, several or no ``Host`` lines, lines as lists, arbitrary bytes) and scopes (missing keys,
both scope types, a prefix), runs each twice through a python-engine and a native-engine middleware,
and compares what the application receives, key order included; and it checks the rewriter's own
answer: done exactly when the list is one of 2-tuples with bytes names (bytes values on the lines
it reads) with one ``Host`` line, or has no forwarded line; the scope untouched otherwise.

The module needs c2c-headers-native: without it, it is skipped with the reason (module marker
``native``; ``--native`` makes a missing package a failure).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from c2c_headers import ForwardedHeadersMiddleware
from c2c_headers.forwarded import _valid_host
from c2c_headers.types import Receive, Scope, Send

pytestmark = [pytest.mark.native, pytest.mark.usefixtures("native_required")]


class _Capture:
    """The application: keeps a deep copy of the scope it receives."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(copy.deepcopy(scope))


_NAMES = st.sampled_from(
    [
        b"host",
        b"Host",
        b"x-forwarded-for",
        b"X-Forwarded-For",
        b"x-forwarded-proto",
        b"X-FORWARDED-PROTO",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"forwarded",
        b"Forwarded",
        b"user-agent",
        b"X-Forwarded-For\xff",
        b"x-forwarded-for ",
    ]
)
_VALUES = st.one_of(
    st.sampled_from(
        [
            b"203.0.113.7",
            b"10.0.0.1, 203.0.113.9",
            b"[2001:db8::1]:80",
            b"https",
            b"http",
            b"wss",
            b"public.example",
            b"public.example:8443",
            b"internal:8000",
            b"443",
            b"/prefix",
            b"for=198.51.100.1;proto=https;host=example.org",
        ]
    ),
    st.binary(max_size=16),
)
_LINE = st.one_of(
    st.tuples(_NAMES, _VALUES),
    st.tuples(_NAMES, _VALUES).map(list),  # ASGI allows any two-item iterable
)
_OTHER_LINE = st.tuples(_NAMES.filter(lambda name: name.lower() != b"host"), _VALUES)


def _with_one_host(host: tuple[bytes, bytes], others: list[tuple[bytes, bytes]], at: int) -> list[Any]:
    return [*others[:at], host, *others[at:]]


# What servers send: tuples, one Host line, somewhere in the list (the rewriter's own case).
_WELL_FORMED = st.builds(
    _with_one_host,
    st.tuples(st.sampled_from([b"host", b"Host"]), _VALUES),
    st.lists(_OTHER_LINE, min_size=1, max_size=5),
    st.integers(0, 5),
)
_MISSING = object()


def _scope(
    scope_type: str,
    headers: list[Any],
    client: tuple[str, int] | None,
    scheme: Any,
    server: Any,
    root_path: Any,
    raw_path: Any,
) -> Scope:
    scope: Scope = {"type": scope_type, "method": "GET", "path": "/x", "query_string": b"", "headers": headers}
    for key, value in (("client", client), ("scheme", scheme), ("server", server), ("root_path", root_path)):
        if value is not _MISSING:
            scope[key] = value
    if raw_path is not _MISSING:
        scope["raw_path"] = raw_path
    return scope


def _native_takes(scope: Scope, names: set[bytes], headers_type: str) -> bool | None:
    """What `ForwardedRewriter.rewrite` must answer once the key is known: True, False, or None when
    it depends on the cache only (a well-formed list with forwarded lines and one Host line).

    Never cached, so always the Python path's: a key of more than 2,048 header bytes, and in
    ``forwarded`` mode a Host that is not a ``host[:port]`` (refused with 400)."""
    headers = scope["headers"]
    if type(headers) is not list or any(
        type(line) is not tuple or len(line) != 2 or type(line[0]) is not bytes for line in headers
    ):
        return False
    read = [line for line in headers if line[0].isascii() and line[0].lower() in names]
    if any(type(line[1]) is not bytes for line in read):
        return False
    kinds = [line[0].lower() for line in read]
    if all(kind == b"host" for kind in kinds):
        return True  # no forwarded line: nothing to do
    if kinds.count(b"host") != 1:
        return False
    # An empty Host (granian's for a request without one) counts as none: the Python key holds the
    # server address then, which the rewriter's key never does, so the rewriter hands it over
    # (unless there is no server address: the keys are the same).
    host = next(line[1] for line in read if line[0].lower() == b"host")
    if sum(len(line[1]) for line in read) > 2048:
        return False
    if headers_type == "forwarded" and host and _valid_host(host.decode("latin-1")) is None:
        return False
    empty_host = host == b""
    return False if empty_host and scope.get("server") is not None else None


@given(
    headers=st.one_of(st.lists(_LINE, max_size=6), _WELL_FORMED),
    headers_type=st.sampled_from(["x-forwarded", "forwarded"]),
    trust_prefix=st.booleans(),
    trust_host=st.booleans(),
    scope_type=st.sampled_from(["http", "websocket"]),
    client=st.sampled_from([("127.0.0.1", 5000), None]),
    scheme=st.sampled_from(["http", "https", "ws", _MISSING]),
    server=st.sampled_from([("internal", 8000), None, _MISSING]),
    root_path=st.sampled_from(["", "/app", _MISSING]),
    raw_path=st.sampled_from([b"/x", _MISSING]),
)
@example(  # an empty Host, as granian reports a request without one: the Python path
    headers=[(b"host", b""), (b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-port", b"8443")],
    headers_type="x-forwarded",
    trust_prefix=False,
    trust_host=True,
    scope_type="http",
    client=("127.0.0.1", 5000),
    scheme="http",
    server=("internal", 8000),
    root_path="",
    raw_path=b"/x",
)
@example(
    headers=[(b"host", b"internal:8000"), (b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")],
    headers_type="x-forwarded",
    trust_prefix=False,
    trust_host=True,
    scope_type="http",
    client=("127.0.0.1", 5000),
    scheme="http",
    server=("internal", 8000),
    root_path="",
    raw_path=b"/x",
)
@example(
    headers=[(b"Host", b"internal"), (b"X-Forwarded-Prefix", b"/prefix"), (b"x-forwarded-host", b"public.example")],
    headers_type="x-forwarded",
    trust_prefix=True,
    trust_host=True,
    scope_type="websocket",
    client=None,
    scheme=_MISSING,
    server=_MISSING,
    root_path=_MISSING,
    raw_path=b"/x",
)
async def test_the_native_rewriter_writes_what_python_writes(
    headers: list[Any],
    headers_type: str,
    trust_prefix: bool,
    trust_host: bool,
    scope_type: str,
    client: tuple[str, int] | None,
    scheme: Any,
    server: Any,
    root_path: Any,
    raw_path: Any,
) -> None:
    options: dict[str, Any] = {
        "trusted_hosts": "127.0.0.1,unix:/run/proxy.sock",
        "headers_type": headers_type,
        "trust_prefix": trust_prefix,
        "trust_host": trust_host,
    }
    python_app, native_app = _Capture(), _Capture()
    python = ForwardedHeadersMiddleware(python_app, engine="python", **options)
    native = ForwardedHeadersMiddleware(native_app, engine="native", **options)
    assert (python.engine_name, native.engine_name) == ("python", "native")
    scope = _scope(scope_type, headers, client, scheme, server, root_path, raw_path)

    async def receive() -> dict[str, Any]:
        raise AssertionError("not called")

    sent: dict[str, list[Any]] = {"python": [], "native": []}

    def sender(engine: str) -> Send:
        async def send(message: Any) -> None:
            sent[engine].append(message)

        return send

    for _ in range(2):  # the first request resolves (Python), the second may be the rewriter's
        await python(copy.deepcopy(scope), receive, sender("python"))
        await native(copy.deepcopy(scope), receive, sender("native"))
    for python_scope, native_scope in zip(python_app.scopes, native_app.scopes, strict=True):
        assert list(native_scope.items()) == list(python_scope.items())
    # Only the middleware's own answer (a refused Host) is sent here: the same from both engines.
    assert sent["native"] == sent["python"]
    assert not sent["python"] or sent["python"][0].get("status") == 400 or sent["python"][0]["code"] == 1008

    # The rewriter's own answer, on a fresh copy, now that the key (if any) was resolved.
    rewrite = native._native_rewrite
    assert rewrite is not None
    fresh = copy.deepcopy(scope)
    expected = _native_takes(fresh, set(native._kinds), headers_type)
    done = rewrite(fresh, client)
    event(f"rewriter: {'known key' if expected is None else expected}")
    if expected is None:
        assert done  # a known key of a well-formed list
        assert list(fresh.items()) == list(python_app.scopes[-1].items())
    else:
        assert done is expected
        if not done:
            assert fresh == scope  # untouched: the Python path takes the request whole


async def test_a_known_request_is_rewritten_by_the_native_rewriter() -> None:
    """The second request with the same forwarded headers is rewritten in Rust, the same way."""
    app = _Capture()
    middleware = ForwardedHeadersMiddleware(app, trusted_hosts="127.0.0.1", engine="native")
    headers = [(b"host", b"internal:8000"), (b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]
    scope = _scope("http", headers, ("127.0.0.1", 5000), "http", ("internal", 8000), "", b"/x")

    fresh = copy.deepcopy(scope)
    assert middleware._native_rewrite is not None
    assert middleware._native_rewrite(fresh, fresh["client"]) is False  # not resolved yet: untouched
    assert fresh == scope

    await middleware(copy.deepcopy(scope), None, None)  # type: ignore[arg-type]  # resolved in Python
    assert middleware._native_rewrite(fresh, fresh["client"]) is True
    assert fresh["client"] == ("203.0.113.7", 0)
    assert fresh["scheme"] == "https"
    assert fresh["c2c_headers.forwarded.original"]["host"] == "internal:8000"
    assert fresh["c2c.peer"] == ("127.0.0.1", 5000)
    assert headers == scope["headers"]  # the request's own list is never written to


def test_the_engine_is_chosen_like_the_armors(monkeypatch: pytest.MonkeyPatch) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not called")

    monkeypatch.setenv("C2C_HEADERS_ENGINE", "python")
    assert ForwardedHeadersMiddleware(app).engine_name == "python"
    monkeypatch.setenv("C2C_HEADERS_ENGINE", "native")
    assert ForwardedHeadersMiddleware(app).engine_name == "native"
    monkeypatch.delenv("C2C_HEADERS_ENGINE")
    assert ForwardedHeadersMiddleware(app).engine_name == "native"  # auto: installed
    assert ForwardedHeadersMiddleware(app, engine="python").engine_name == "python"
    assert ForwardedHeadersMiddleware(app, headers_type="none").engine_name == "python"  # nothing to rewrite
    with pytest.raises(ValueError, match="rust"):
        ForwardedHeadersMiddleware(app, engine="rust")
