"""ForwardedHeadersMiddleware: trust matcher, x-forwarded and RFC 7239 parsing, spoofing, Hypothesis."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx
import pytest
from _c2c_headers_helpers import call, http_scope
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import c2c_headers
from c2c_headers import ORIGINAL_SCOPE_KEY, ArmorHeaderMiddleware, ForwardedHeadersMiddleware, parse_trusted_hosts
from c2c_headers.forwarded import TrustedHosts, parse_forwarded
from c2c_headers.types import Message, Receive, Scope, Send


@pytest.mark.parametrize(
    ("trusted", "host", "expected"),
    [
        # exact IPv4 / IPv6 addresses (compared as addresses, not strings)
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("::1", "::1", True),
        ("::1", "0:0:0:0:0:0:0:1", True),
        ("127.0.0.1", "::ffff:127.0.0.1", True),
        # networks
        ("10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("192.168.1.7/24", "192.168.1.200", True),  # host bits allowed
        ("2001:db8::/32", "2001:db8::5", True),
        ("2001:db8::/32", "2001:db9::5", False),
        # lists: a comma string, a list of strings (each may hold commas), spaces ignored
        ("127.0.0.1, 10.0.0.0/8", "10.0.0.9", True),
        (["127.0.0.1", "10.0.0.0/8, ::1"], "::1", True),
        (["*"], "203.0.113.9", True),
        # wildcard
        ("*", "203.0.113.9", True),
        ("*", "anything", True),
        # literals: unix sockets, test clients
        ("testclient", "testclient", True),
        ("/tmp/app.sock", "/tmp/app.sock", True),
        ("unix:/run/app.sock", "unix:/run/app.sock", True),
        ("testclient", "127.0.0.1", False),
        # not an address
        ("127.0.0.1", "not-an-ip", False),
        ("127.0.0.1", "", False),
        ("127.0.0.1", None, False),
        # scoped IPv6 (link-local): the zone is part of the address, as uvicorn reports the peer
        ("fe80::1%eth0", "fe80::1%eth0", True),
        ("fe80::1%eth0", "fe80::1%eth1", False),
        ("fe80::1%eth0", "fe80::1", False),
        ("fe80::1%br-lan", "fe80::1%br-lan", True),
        ("fe80::/10", "fe80::1%eth0", True),
        ("10.0.0.0/255.0.0.0", "10.9.9.9", True),
    ],
)
def test_trusted_hosts(trusted: Any, host: Any, expected: bool) -> None:
    assert (host in TrustedHosts(trusted)) is expected


@pytest.mark.parametrize(
    "entry",
    [
        "10.0.0.300",
        "10.0.0.0/33",
        "1.2.3",
        "::1/129",
        "fe80::zz",
        "2001:db8:::1",
        "10.0.0.0/8/9",
        "256.1.1.1",
        "10.0.0.0/abc",
        "10.0.0.0/",
        "fe80::%eth0/64",
        "fe80::1%eth0/64",
        "::1%",
    ],
)
def test_malformed_trusted_entry_is_an_error(entry: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"trusted host {entry!r} is not a valid ")):
        ForwardedHeadersMiddleware(_echo, trusted_hosts=f"127.0.0.1,{entry}")


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("10.0.0.0/abc", "after '/' comes a prefix length (0-32 for IPv4, 0-128 for IPv6) or an IPv4 netmask"),
        ("fe80::%eth0/64", "a network cannot carry a zone"),
        ("10.0.0.300", "is not a valid IP address: "),
    ],
)
def test_malformed_trusted_entry_says_why(entry: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_trusted_hosts(entry)


def test_trusted_hosts_parser_is_public() -> None:
    assert c2c_headers.parse_trusted_hosts is parse_trusted_hosts
    assert c2c_headers.TrustedHosts is TrustedHosts
    assert isinstance(ForwardedHeadersMiddleware(_echo, trusted_hosts="10.0.0.0/8").trusted_hosts, TrustedHosts)


def test_literal_with_space_is_an_error() -> None:
    with pytest.raises(ValueError, match="is not a valid entry"):
        TrustedHosts(["my host"])


def test_bad_headers_type() -> None:
    with pytest.raises(
        ValueError, match="headers_type must be one of x-forwarded, forwarded, none, got 'x-forwarded-for'"
    ):
        ForwardedHeadersMiddleware(_echo, headers_type="x-forwarded-for")


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Records nothing: the tests read the scope the app received (the same object)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _run(
    headers: list[tuple[bytes, bytes]],
    *,
    client: tuple[str, int] = ("127.0.0.1", 50000),
    scope_type: str = "http",
    host: str | None = "internal:8000",
    **options: Any,
) -> dict[str, Any]:
    middleware = ForwardedHeadersMiddleware(_echo, **options)
    scope = http_scope("/x", host=host, headers=headers, client=client)
    scope["type"] = scope_type
    if scope_type == "websocket":
        scope["scheme"] = "ws"
    await call(middleware, scope)
    return scope


def _host(scope: dict[str, Any]) -> list[bytes]:
    return [value for name, value in scope["headers"] if name == b"host"]


# Each row: headers, expected (scheme, Host header, server, client)
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # the usual single proxy
        (
            [(b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"example.com"), (b"x-forwarded-for", b"1.2.3.4")],
            ("https", b"example.com", ("example.com", 443), ("1.2.3.4", 0)),
        ),
        # explicit port in the host; a non-default port is kept in Host
        (
            [(b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"example.com:8443")],
            ("https", b"example.com:8443", ("example.com", 8443), ("127.0.0.1", 50000)),
        ),
        # X-Forwarded-Port with the host
        (
            [(b"x-forwarded-host", b"example.com"), (b"x-forwarded-port", b"8080")],
            ("http", b"example.com:8080", ("example.com", 8080), ("127.0.0.1", 50000)),
        ),
        # X-Forwarded-Port alone: the request's own host with the public port
        (
            [(b"x-forwarded-proto", b"https"), (b"x-forwarded-port", b"443")],
            ("https", b"internal", ("internal", 443), ("127.0.0.1", 50000)),
        ),
        # IPv6 host
        (
            [(b"x-forwarded-host", b"[2001:db8::1]:8080")],
            ("http", b"[2001:db8::1]:8080", ("2001:db8::1", 8080), ("127.0.0.1", 50000)),
        ),
        # scheme case-insensitive; the default port is dropped from Host
        (
            [(b"x-forwarded-proto", b"HTTPS"), (b"x-forwarded-host", b"example.com:443")],
            ("https", b"example.com", ("example.com", 443), ("127.0.0.1", 50000)),
        ),
        # invalid values are ignored one by one (never a 500; the reference crashed on a bad port)
        (
            [(b"x-forwarded-host", b"example.com:abc")],
            ("http", b"internal:8000", ("127.0.0.1", 8000), ("127.0.0.1", 50000)),
        ),
        (
            [(b"x-forwarded-host", b"example.com:99999")],
            ("http", b"internal:8000", ("127.0.0.1", 8000), ("127.0.0.1", 50000)),
        ),
        (
            [(b"x-forwarded-host", b"example.com:\xb2")],
            ("http", b"internal:8000", ("127.0.0.1", 8000), ("127.0.0.1", 50000)),
        ),
        (
            [(b"x-forwarded-host", b"evil.com/path")],
            ("http", b"internal:8000", ("127.0.0.1", 8000), ("127.0.0.1", 50000)),
        ),
        (
            [(b"x-forwarded-host", b"user@evil.com")],
            ("http", b"internal:8000", ("127.0.0.1", 8000), ("127.0.0.1", 50000)),
        ),
        ([(b"x-forwarded-host", b"a b")], ("http", b"internal:8000", ("127.0.0.1", 8000), ("127.0.0.1", 50000))),
        ([(b"x-forwarded-host", b"evil\\x")], ("http", b"internal:8000", ("127.0.0.1", 8000), ("127.0.0.1", 50000))),
        ([(b"x-forwarded-host", b"[::zz]")], ("http", b"internal:8000", ("127.0.0.1", 8000), ("127.0.0.1", 50000))),
        ([(b"x-forwarded-proto", b"ftp")], ("http", b"internal:8000", ("127.0.0.1", 8000), ("127.0.0.1", 50000))),
        ([(b"x-forwarded-port", b"0")], ("http", b"internal:8000", ("127.0.0.1", 8000), ("127.0.0.1", 50000))),
        ([(b"x-forwarded-for", b"unknown")], ("http", b"internal:8000", ("127.0.0.1", 8000), ("127.0.0.1", 50000))),
        # the other family is ignored
        (
            [(b"forwarded", b"for=1.2.3.4;proto=https;host=example.com")],
            ("http", b"internal:8000", ("127.0.0.1", 8000), ("127.0.0.1", 50000)),
        ),
    ],
)
async def test_x_forwarded(headers: list[tuple[bytes, bytes]], expected: tuple[Any, ...]) -> None:
    scope = await _run(headers)
    scheme, host, server, client = expected
    assert (scope["scheme"], _host(scope), scope["server"], scope["client"]) == (scheme, [host], server, client)


async def test_client_behind_an_appending_proxy_cannot_forge() -> None:
    """client 1.2.3.4 -> proxy A 10.0.0.1 (appends) -> proxy B 127.0.0.1 (appends) -> app."""
    headers = [
        (b"x-forwarded-for", b"6.6.6.6, 1.2.3.4, 10.0.0.1"),
        (b"x-forwarded-proto", b"http, https, http"),
        (b"x-forwarded-host", b"evil.com, public.example, internal"),
        (b"x-forwarded-port", b"1, 443, 8000"),
    ]
    scope = await _run(headers, trusted_hosts="127.0.0.1, 10.0.0.1")
    assert scope["client"] == ("1.2.3.4", 0)
    assert scope["scheme"] == "https"
    assert _host(scope) == [b"public.example"]
    assert scope["server"] == ("public.example", 443)


async def test_only_the_nearest_proxy_is_trusted() -> None:
    """The same request when only proxy B is trusted: A's address is the client, B's values are used."""
    headers = [
        (b"x-forwarded-for", b"6.6.6.6, 1.2.3.4, 10.0.0.1"),
        (b"x-forwarded-proto", b"http, https, http"),
        (b"x-forwarded-host", b"evil.com, public.example, internal"),
    ]
    scope = await _run(headers)
    assert scope["client"] == ("10.0.0.1", 0)
    assert (scope["scheme"], _host(scope)) == ("http", [b"internal"])


async def test_repeated_lines_are_merged() -> None:
    """A client line followed by the proxy's line: the proxy's (rightmost) entry wins."""
    headers = [
        (b"x-forwarded-for", b"6.6.6.6"),
        (b"X-Forwarded-For", b"1.2.3.4"),
        (b"x-forwarded-host", b"evil.com"),
        (b"x-forwarded-host", b"public.example"),
    ]
    scope = await _run(headers)
    assert scope["client"] == ("1.2.3.4", 0)
    assert _host(scope) == [b"public.example"]


async def test_replacing_proxy_short_list() -> None:
    """Two trusted hops but a single proto value (a proxy that replaces): the value is used."""
    headers = [(b"x-forwarded-for", b"1.2.3.4, 10.0.0.1"), (b"x-forwarded-proto", b"https")]
    scope = await _run(headers, trusted_hosts="127.0.0.1,10.0.0.1")
    assert (scope["client"], scope["scheme"]) == (("1.2.3.4", 0), "https")


async def test_wildcard_takes_the_leftmost() -> None:
    headers = [(b"x-forwarded-for", b"1.2.3.4, 10.0.0.1"), (b"x-forwarded-proto", b"https, http")]
    scope = await _run(headers, trusted_hosts="*")
    assert (scope["client"], scope["scheme"]) == (("1.2.3.4", 0), "https")


async def test_untrusted_peer_is_ignored() -> None:
    headers = [(b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"example.com")]
    scope = await _run(headers, client=("203.0.113.5", 4000))
    assert (scope["scheme"], _host(scope), scope["client"]) == ("http", [b"internal:8000"], ("203.0.113.5", 4000))
    assert ORIGINAL_SCOPE_KEY not in scope


async def test_no_client_is_ignored() -> None:
    middleware = ForwardedHeadersMiddleware(_echo)
    scope = http_scope(headers=[(b"x-forwarded-proto", b"https")], client=None)
    await call(middleware, scope)
    assert scope["scheme"] == "http"


async def test_originals_are_kept() -> None:
    headers = [
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"example.com"),
        (b"x-forwarded-for", b"1.2.3.4"),
    ]
    scope = await _run(headers)
    assert scope[ORIGINAL_SCOPE_KEY] == {
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "host": "internal:8000",
        "root_path": "",
        "path": "/x",
    }


@pytest.mark.parametrize(("proto", "scheme"), [(b"https", "wss"), (b"http", "ws"), (b"wss", "wss")])
async def test_websocket_scheme(proto: bytes, scheme: str) -> None:
    scope = await _run([(b"x-forwarded-proto", proto)], scope_type="websocket")
    assert scope["scheme"] == scheme


@pytest.mark.parametrize(
    ("trust_prefix", "prefix", "root_path", "path"),
    [
        (True, b"/app", "/app", "/app/x"),
        (True, b"/app/", "/app", "/app/x"),
        (True, b"/a/b", "/a/b", "/a/b/x"),
        (False, b"/app", "", "/x"),  # opt-in
        (True, b"app", "", "/x"),  # must be absolute
        (True, b"//evil.com", "", "/x"),
        (True, b"/a b", "", "/x"),
        # no climbing above the prefix, no encoded separator or dot
        (True, b"/..", "", "/x"),
        (True, b"/a/../..", "", "/x"),
        (True, b"/.", "", "/x"),
        (True, b"/a/./b", "", "/x"),
        (True, b"/%2F%2Fevil.com", "", "/x"),
        (True, b"/a%2fb", "", "/x"),
        (True, b"/a%5Cb", "", "/x"),
        (True, b"/%2e%2e", "", "/x"),
        (True, b"/a%00", "", "/x"),
        (True, b"/...", "/...", "/.../x"),  # three dots is a name
        (True, b"/v1.2/app", "/v1.2/app", "/v1.2/app/x"),
        (True, b"/caf%C3%A9", "/caf%C3%A9", "/caf%C3%A9/x"),
    ],
)
async def test_prefix(trust_prefix: bool, prefix: bytes, root_path: str, path: str) -> None:
    scope = await _run([(b"x-forwarded-prefix", prefix)], trust_prefix=trust_prefix)
    assert (scope["root_path"], scope["path"]) == (root_path, path)
    if root_path:
        assert scope["raw_path"] == path.encode()


async def test_none_passes_through() -> None:
    scope = await _run([(b"x-forwarded-proto", b"https"), (b"forwarded", b"proto=https")], headers_type="none")
    assert scope["scheme"] == "http"


async def test_lifespan_passes_through() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope: dict[str, Any] = {"type": "lifespan"}
    await ForwardedHeadersMiddleware(app)(scope, _never_receive, _never_send)
    assert seen == [{"type": "lifespan"}]


async def _never_receive() -> dict[str, Any]:
    raise AssertionError("not called")


async def _never_send(message: Any) -> None:
    raise AssertionError("not called")


# --- RFC 7239 ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=1.2.3.4", [{"for": "1.2.3.4"}]),
        ('For="[2001:db8::1]:4711";Proto=HTTPS', [{"for": "[2001:db8::1]:4711", "proto": "HTTPS"}]),
        ("for=1.2.3.4, for=5.6.7.8;host=a", [{"for": "1.2.3.4"}, {"for": "5.6.7.8", "host": "a"}]),
        ('host="a,b";for=x', [{"host": "a,b", "for": "x"}]),  # a quoted comma is not a separator
        # read from the right: a malformed element drops itself and everything to its left
        ('host="a\\"b"', []),  # no escapes in the values proxies write
        ('for=6.6.6.6;host="a\\"b", for=1.2.3.4', [{"for": "1.2.3.4"}]),
        ("for=a;for=b", []),  # a repeated parameter voids the element
        ("for=a;for=b, for=1.2.3.4", [{"for": "1.2.3.4"}]),
        ("garbage;;=;x", []),
        ("", []),
        (", for=1.2.3.4", [{"for": "1.2.3.4"}]),  # an appending proxy after an absent header
        ("for=1.2.3.4;;proto=https ;", [{"for": "1.2.3.4", "proto": "https"}]),  # empty pairs, spaces
        ('host=evil.com;proto=https;for=", for=1.2.3.4', [{"for": "1.2.3.4"}]),  # issue 14 item 5
        ('for=", for="[2001:db8::1]:4711"', [{"for": "[2001:db8::1]:4711"}]),
        ('for="x, for=1.2.3.4;proto=https', [{"for": "1.2.3.4", "proto": "https"}]),
    ],
)
def test_parse_forwarded(value: str, expected: list[dict[str, str]]) -> None:
    assert parse_forwarded(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=1.2.3.4;proto=https;host=example.org", ("https", b"example.org", ("1.2.3.4", 0))),
        ('for="[2001:db8::1]:4711";proto=https', ("https", b"internal:8000", ("2001:db8::1", 4711))),
        # a forged element on the left is never used
        (
            "for=6.6.6.6;proto=http;host=evil, for=1.2.3.4;proto=https;host=public.example",
            ("https", b"public.example", ("1.2.3.4", 0)),
        ),
        # a trusted hop is skipped; a field missing at the chosen hop comes from the nearest trusted hop
        ("for=1.2.3.4;host=public.example, for=10.0.0.1;proto=https", ("https", b"public.example", ("1.2.3.4", 0))),
        ("for=unknown;proto=https", ("https", b"internal:8000", ("127.0.0.1", 50000))),
        ("for=_hidden;host=bad/host", ("http", b"internal:8000", ("127.0.0.1", 50000))),
    ],
)
async def test_forwarded(value: str, expected: tuple[Any, ...]) -> None:
    scope = await _run(
        [(b"forwarded", value.encode()), (b"x-forwarded-host", b"ignored.example")],
        headers_type="forwarded",
        trusted_hosts="127.0.0.1,10.0.0.1",
    )
    scheme, host, client = expected
    assert (scope["scheme"], _host(scope), scope["client"]) == (scheme, [host], client)


async def test_forwarded_repeated_lines() -> None:
    headers = [(b"forwarded", b"for=6.6.6.6;host=evil"), (b"forwarded", b"for=1.2.3.4;host=public.example")]
    scope = await _run(headers, headers_type="forwarded")
    assert (_host(scope), scope["client"]) == ([b"public.example"], ("1.2.3.4", 0))


_NAMES = st.sampled_from(
    [
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"forwarded",
    ]
)
_HOST_RE = re.compile(rb"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._~-]+)(:[0-9]{1,5})?")


@given(
    headers=st.lists(st.tuples(_NAMES, st.binary(max_size=40)), max_size=6),
    headers_type=st.sampled_from(["x-forwarded", "forwarded"]),
    trusted=st.sampled_from(["127.0.0.1", "*", "127.0.0.1,10.0.0.0/8"]),
)
@example(headers=[(b"x-forwarded-host", b"a:\xb2")], headers_type="x-forwarded", trusted="*")
@example(headers=[(b"forwarded", b'for="[::1]:\xb9";host=[::1]:0')], headers_type="forwarded", trusted="*")
async def test_arbitrary_header_bytes_never_fail(
    headers: list[tuple[bytes, bytes]], headers_type: str, trusted: str
) -> None:
    scope = await _run(headers, headers_type=headers_type, trusted_hosts=trusted, trust_prefix=True)
    assert scope["scheme"] in ("http", "https")
    (host,) = _host(scope)
    assert host == b"internal:8000" or _HOST_RE.fullmatch(host)
    client_host, client_port = scope["client"]
    assert isinstance(client_host, str)
    assert 0 <= client_port < 65536
    assert scope["path"].endswith("/x")


_PREFIX_TEXT = st.text(alphabet=st.sampled_from(list("/.%2eEfF5cC0aA~-_ b\\")), max_size=16)


@given(
    prefix=st.one_of(_PREFIX_TEXT, st.lists(st.sampled_from(["", ".", "..", "a", "%2e", "%2F", "..."])).map("/".join))
)
@example(prefix="/a/..")
@example(prefix="/%2e%2E/")
async def test_an_accepted_prefix_never_climbs_or_leaves(prefix: str) -> None:
    """Whatever prefix a client sends, an applied one is absolute, with no empty, dot or encoded-separator segment."""
    scope = await _run([(b"x-forwarded-prefix", prefix.encode())], trust_prefix=True)
    applied = scope["root_path"]
    if not applied:
        assert scope["path"] == "/x"
        return
    assert scope["path"] == applied + "/x"
    assert applied.startswith("/") and not applied.endswith("/") and "//" not in applied
    segments = applied[1:].split("/")
    assert "." not in segments and ".." not in segments
    assert not any(encoded in applied.lower() for encoded in ("%2f", "%5c", "%2e", "%00"))
    assert "\\" not in applied and " " not in applied


async def test_url_for_gives_the_public_https_url() -> None:
    async def home(request: Request) -> Response:
        return JSONResponse({"url": str(request.url_for("home")), "client": request.client and request.client.host})

    app = ForwardedHeadersMiddleware(Starlette(routes=[Route("/", home, name="home")]), trusted_hosts="10.0.0.0/8")
    transport = httpx.ASGITransport(app=app, client=("10.1.1.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as client:
        response = await client.get(
            "/",
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "www.example.com", "X-Forwarded-For": "1.2.3.4"},
        )
        direct = await client.get("/")
    assert response.json() == {"url": "https://www.example.com/", "client": "1.2.3.4"}
    assert direct.json() == {"url": "http://internal:8000/", "client": "10.1.1.1"}


async def test_invalid_values_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    headers = [(b"x-forwarded-proto", b"gopher"), (b"x-forwarded-host", b"evil.com/x"), (b"x-forwarded-port", b"http")]
    with caplog.at_level(logging.DEBUG, logger="c2c_headers"):
        scope = await _run(headers)
    assert (scope["scheme"], _host(scope)) == ("http", [b"internal:8000"])
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.DEBUG]
    assert "forwarded headers: ignoring the invalid scheme 'gopher'" in messages
    assert "forwarded headers: ignoring the invalid host 'evil.com/x'" in messages
    assert "forwarded headers: ignoring the invalid port 'http'" in messages


async def test_websocket_through_both_middlewares(engine: str) -> None:
    """A real Starlette websocket behind both middlewares: the public wss URL, untouched frames."""

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"url": str(websocket.url), "client": websocket.client and websocket.client.host})
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    stack = ForwardedHeadersMiddleware(ArmorHeaderMiddleware(app, engine=engine), trusted_hosts="testclient")
    scope = http_scope(
        "/ws",
        host="internal:8000",
        client=("testclient", 50000),
        headers=[
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"public.example"),
            (b"x-forwarded-for", b"192.0.2.1"),
        ],
    )
    scope.update(type="websocket", scheme="ws", subprotocols=[])
    del scope["method"]
    incoming: list[Message] = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "echo"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await stack(scope, receive, send)
    assert [message["type"] for message in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.send",
        "websocket.close",
    ]
    assert json.loads(sent[1]["text"]) == {"url": "wss://public.example/ws", "client": "192.0.2.1"}
    assert sent[2]["text"] == "echo"


async def test_mixed_case_names_are_understood() -> None:
    """ASGI recommends but does not require lower-case names: a "Host" line is replaced, not doubled."""
    headers = [(b"X-Forwarded-Host", b"public.example"), (b"X-Forwarded-Proto", b"https")]
    without_host = await _run(headers, host=None)
    assert _host(without_host) == [b"public.example"]  # a request without Host gets one
    scope = await _run([*headers, (b"Host", b"internal:8000")], host=None)
    assert [value for name, value in scope["headers"] if name.lower() == b"host"] == [b"public.example"]
    assert scope[ORIGINAL_SCOPE_KEY]["host"] == "internal:8000"
    assert scope["scheme"] == "https"


def test_the_engine_falls_back_to_python_without_the_native_rewriter(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` without c2c-headers-native (or with one older than the rewriter) is the Python path;
    ``native`` without it is an error that says what to install."""
    import sys
    import types

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not called")

    monkeypatch.delenv("C2C_HEADERS_ENGINE", raising=False)
    monkeypatch.setitem(sys.modules, "c2c_headers_native", None)  # any import of it fails
    assert ForwardedHeadersMiddleware(app).engine_name == "python"
    with pytest.raises(ModuleNotFoundError, match=re.escape("c2c-headers[native]")):
        ForwardedHeadersMiddleware(app, engine="native")
    monkeypatch.setitem(sys.modules, "c2c_headers_native", types.ModuleType("c2c_headers_native"))  # no rewriter
    assert ForwardedHeadersMiddleware(app).engine_name == "python"


@pytest.mark.parametrize("headers_type", ["x-forwarded", "forwarded", "none"])
def test_the_engine_name_is_checked_whatever_the_headers_type(
    monkeypatch: pytest.MonkeyPatch, headers_type: str
) -> None:
    """A bad engine is a configuration error even when the middleware reads no header."""
    import sys

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not called")

    monkeypatch.delenv("C2C_HEADERS_ENGINE", raising=False)
    with pytest.raises(ValueError, match="unknown header engine 'turbo'"):
        ForwardedHeadersMiddleware(app, headers_type=headers_type, engine="turbo")
    monkeypatch.setenv("C2C_HEADERS_ENGINE", "turbo")
    with pytest.raises(ValueError, match="environment variable C2C_HEADERS_ENGINE"):
        ForwardedHeadersMiddleware(app, headers_type=headers_type)
    monkeypatch.delenv("C2C_HEADERS_ENGINE")
    monkeypatch.setitem(sys.modules, "c2c_headers_native", None)
    with pytest.raises(ModuleNotFoundError, match=re.escape("c2c-headers[native]")):
        ForwardedHeadersMiddleware(app, headers_type=headers_type, engine="native")
    assert ForwardedHeadersMiddleware(app, headers_type=headers_type, engine="auto").engine_name == "python"
