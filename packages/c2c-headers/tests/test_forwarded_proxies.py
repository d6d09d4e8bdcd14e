"""ForwardedHeadersMiddleware against what clients and real proxy chains send (issue 14 items 5, 6, 16).

- RFC 7239 is read from the right, line by line: client bytes before a trusted proxy's element
  (an unterminated quote included) never change the scheme, host, port or client taken from it.
- Only an IP address becomes the client; at anything else the walk stops at the last trusted one.
- A unix-socket peer (no address) is trusted through a socket literal or ``*``; an
  ``X-Forwarded-For`` socket entry (``unix:``) is a trusted hop when listed, never a client.
- ``trust_host=False`` ignores the forwarded host and port; ``X-Forwarded-Port`` applies to the
  server address when the request has no ``Host``.

The same behaviours through a real nginx and real uvicorn processes: test_forwarded_chain.py.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from _c2c_headers_helpers import call, http_scope
from hypothesis import example, given
from hypothesis import strategies as st

from c2c_headers import ForwardedHeadersMiddleware, parse_trusted_hosts
from c2c_headers.forwarded import parse_forwarded
from c2c_headers.types import Receive, Scope, Send


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _run(
    headers: list[tuple[bytes, bytes]],
    *,
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    host: str | None = "internal:8000",
    server: tuple[str, int | None] | None = ("127.0.0.1", 8000),
    **options: Any,
) -> dict[str, Any]:
    scope = http_scope("/x", host=host, headers=headers, client=client, server=server)
    await call(ForwardedHeadersMiddleware(_echo, **options), scope)
    return scope


def _host(scope: dict[str, Any]) -> list[bytes]:
    return [value for name, value in scope["headers"] if name == b"host"]


# --- item 5: RFC 7239, the trusted proxy's element wins -------------------------------------------

_IPV4 = st.ip_addresses(v=4).filter(lambda address: not address.is_loopback).map(str)


def _plain_ipv6(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None and not address.is_loopback


_IPV6: st.SearchStrategy[str] = st.ip_addresses(v=6).filter(_plain_ipv6).map(str)


@st.composite
def _proxy_elements(draw: st.DrawFn) -> tuple[str, tuple[str, int], str | None, str | None]:
    """An element a proxy appends: (text, client, proto, host), the client quoted when IPv6."""
    if draw(st.booleans()):
        address = draw(_IPV4)
        port = draw(st.sampled_from([None, 4711]))
        node = address if port is None else f"{address}:{port}"
    else:
        address = draw(_IPV6)
        port = draw(st.sampled_from([None, 4711]))
        node = f'"[{address}]"' if port is None else f'"[{address}]:{port}"'
    proto = draw(st.sampled_from([None, "http", "https"]))
    host = draw(st.sampled_from([None, "public.example", "public.example:8443"]))
    pairs = [f"for={node}", *([f"proto={proto}"] if proto else []), *([f"host={host}"] if host else [])]
    order = draw(st.permutations(pairs))
    return ";".join(order), (address, port or 0), proto, host


_CLIENT_TEXT = st.one_of(
    st.binary(max_size=60).map(lambda value: value.decode("latin-1")),
    st.lists(
        st.sampled_from(['"', "host=evil.com", "proto=https", "for=", "for=6.6.6.6", ";", ",", "\\", " ", "=", '"[']),
        max_size=12,
    ).map("".join),
)


def _expected(proto: str | None, host: str | None) -> tuple[str, bytes]:
    scheme = proto or "http"
    if host is None:
        return scheme, b"internal:8000"
    return scheme, host.encode()


@given(client_text=_CLIENT_TEXT, proxy=_proxy_elements(), separate_line=st.booleans())
@example(
    client_text='host=evil.com;proto=https;for="',
    proxy=("for=1.2.3.4", ("1.2.3.4", 0), None, None),
    separate_line=False,
)
@example(
    client_text='host=evil.com;proto=https;for="', proxy=("for=1.2.3.4", ("1.2.3.4", 0), None, None), separate_line=True
)
@example(
    client_text='for="x',
    proxy=('for="[2001:db8::1]:4711"', ("2001:db8::1", 4711), None, None),
    separate_line=False,
)
async def test_client_bytes_before_the_proxy_element_change_nothing(
    client_text: str, proxy: tuple[str, tuple[str, int], str | None, str | None], separate_line: bool
) -> None:
    element, client, proto, host = proxy
    if separate_line:  # a proxy adding its own header line after the client's
        headers = [(b"forwarded", client_text.encode("latin-1")), (b"forwarded", element.encode())]
    else:  # an appending proxy (nginx "$http_forwarded, for=...")
        headers = [(b"forwarded", f"{client_text}, {element}".encode("latin-1"))]
    scope = await _run(headers, headers_type="forwarded")
    scheme, host_header = _expected(proto, host)
    assert (scope["client"], scope["scheme"], _host(scope)) == (client, scheme, [host_header])


@given(client_text=_CLIENT_TEXT, proxy=_proxy_elements())
def test_parse_forwarded_reads_the_appended_element_as_written(
    client_text: str, proxy: tuple[str, tuple[str, int], str | None, str | None]
) -> None:
    element, _, _, _ = proxy
    expected = {key: value.strip('"') for key, _, value in (pair.partition("=") for pair in element.split(";"))}
    assert parse_forwarded(f"{client_text}, {element}")[-1] == expected


@given(client_text=_CLIENT_TEXT)
@example(client_text='for="<script>", for=unknown;proto=https')
async def test_forwarded_client_is_always_an_address(client_text: str) -> None:
    """Behind a trusted proxy (10.0.0.7) the client's elements are read, but only an IP becomes the client."""
    headers = [(b"forwarded", f"{client_text}, for=10.0.0.7".encode("latin-1"))]
    scope = await _run(headers, headers_type="forwarded", trusted_hosts="127.0.0.1, 10.0.0.0/8")
    ipaddress.ip_address(scope["client"][0])  # raises for anything but an IP


@given(
    client_text=st.binary(max_size=60),
    address=st.one_of(_IPV4, st.just("10.0.0.7")),
    proto=st.sampled_from(["http", "https"]),
)
@example(client_text=b"<script>alert(1)</script>", address="10.0.0.7", proto="https")
async def test_client_bytes_before_the_proxy_address_change_nothing(
    client_text: bytes, address: str, proto: str
) -> None:
    """The same for X-Forwarded-For (nginx ``$proxy_add_x_forwarded_for``) and a proxy-set proto.

    An untrusted address appended by the proxy is the client whatever came before; after a trusted
    one (10.0.0.7, another proxy) the client is an IP address, never the client's other bytes.
    """
    headers = [(b"x-forwarded-for", client_text + b", " + address.encode()), (b"x-forwarded-proto", proto.encode())]
    scope = await _run(headers, trusted_hosts="127.0.0.1, 10.0.0.0/8")
    assert scope["scheme"] == proto
    if address != "10.0.0.7":
        assert scope["client"] == (address, 0)
    else:
        ipaddress.ip_address(scope["client"][0])  # raises for anything but an IP


# --- item 6: client addresses are IP addresses ---------------------------------------------------


@pytest.mark.parametrize(
    "forged",
    [
        "<script>alert(1)</script>",
        "unknown",
        "_hidden",
        "example.com",
        "fe80::1%<script>",
        "1.2.3.4.5",
        "[::1]x",
        "",
        "unix",
    ],
)
async def test_x_forwarded_for_stops_at_a_non_address(forged: str) -> None:
    """The walk stops at anything that is not an IP: the last trusted address is kept."""
    headers = [(b"x-forwarded-for", f"{forged}, 10.0.0.7".encode())]
    scope = await _run(headers, trusted_hosts="127.0.0.1, 10.0.0.0/8")
    assert scope["client"] == ("10.0.0.7", 0)
    # Alone (the trusted peer passed the client's header through): the peer stays the client.
    scope = await _run([(b"x-forwarded-for", forged.encode())], trusted_hosts="127.0.0.1, 10.0.0.0/8")
    assert scope["client"] == ("127.0.0.1", 50000)


@pytest.mark.parametrize("node", ["unknown", "_hidden", "_hidden:_port", '"<script>"', '"[fe80::1%<x>]"'])
async def test_forwarded_for_stops_at_a_non_address(node: str) -> None:
    value = f"for={node};proto=http;host=evil.example, for=10.0.0.7;proto=https"
    scope = await _run(
        [(b"forwarded", value.encode())], headers_type="forwarded", trusted_hosts="127.0.0.1, 10.0.0.0/8"
    )
    # the element at the stop was written by the trusted 10.0.0.7: its values are believed
    assert (scope["client"], scope["scheme"], _host(scope)) == (("10.0.0.7", 0), "http", [b"evil.example"])


@pytest.mark.parametrize(
    ("value", "client"),
    [
        ("1.2.3.4:8080", ("1.2.3.4", 8080)),
        ("[2001:db8::1]:8080", ("2001:db8::1", 8080)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        ("fe80::1%eth0", ("fe80::1%eth0", 0)),
        ("1.2.3.4:_obf", ("1.2.3.4", 0)),
        ("2001:DB8:0:0::1", ("2001:db8::1", 0)),  # one spelling per address
        ("[::FFFF:1.2.3.4]:80", ("::ffff:1.2.3.4", 80)),
    ],
)
async def test_address_forms(value: str, client: tuple[str, int]) -> None:
    scope = await _run([(b"x-forwarded-for", value.encode())])
    assert scope["client"] == client


# --- item 16: unix sockets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "believed"),
    [
        ("unix:", True),
        ("unix:/run/app.sock", True),
        ("/run/app.sock", True),
        ("*", True),
        ("127.0.0.1", False),
        ("127.0.0.1, testclient", False),
    ],
)
async def test_unix_socket_peer(trusted: str, believed: bool) -> None:
    """``uvicorn --uds``: scope["client"] is None; a socket literal (or ``*``) trusts that peer."""
    assert parse_trusted_hosts(trusted).sockets is believed
    headers = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]
    scope = await _run(headers, client=None, trusted_hosts=trusted)
    expected = (("203.0.113.7", 0), "https") if believed else (None, "http")
    assert (scope["client"], scope["scheme"]) == expected
    if believed:
        assert scope["c2c_headers.forwarded.original"]["client"] is None


@pytest.mark.parametrize(
    ("trusted", "client"),
    [
        ("127.0.0.1, unix:", ("203.0.113.7", 0)),  # nginx on a socket wrote "unix:": a trusted hop
        ("127.0.0.1, unix:/run/front.sock", ("127.0.0.1", 50000)),  # not that socket: stop at it
        ("127.0.0.1", ("127.0.0.1", 50000)),
    ],
)
async def test_socket_entry_in_x_forwarded_for(trusted: str, client: tuple[str, int]) -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.7, unix:")]
    scope = await _run(headers, trusted_hosts=trusted)
    assert scope["client"] == client


async def test_socket_path_entry_in_x_forwarded_for() -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.7, unix:/run/front.sock")]
    scope = await _run(headers, trusted_hosts="127.0.0.1, unix:/run/front.sock")
    assert scope["client"] == ("203.0.113.7", 0)


# --- item 16: trust_host, X-Forwarded-Port without Host -------------------------------------------


@pytest.mark.parametrize("trust_host", [True, False])
async def test_trust_host_x_forwarded(trust_host: bool) -> None:
    headers = [
        (b"x-forwarded-for", b"203.0.113.7"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"client-chosen.example"),
        (b"x-forwarded-port", b"8443"),
    ]
    scope = await _run(headers, trust_host=trust_host)
    assert (scope["client"], scope["scheme"]) == (("203.0.113.7", 0), "https")
    if trust_host:
        assert (_host(scope), scope["server"]) == ([b"client-chosen.example:8443"], ("client-chosen.example", 8443))
    else:
        assert (_host(scope), scope["server"]) == ([b"internal:8000"], ("127.0.0.1", 8000))


@pytest.mark.parametrize("trust_host", [True, False])
async def test_trust_host_forwarded(trust_host: bool) -> None:
    headers = [(b"forwarded", b"for=203.0.113.7;proto=https;host=public.example")]
    scope = await _run(headers, headers_type="forwarded", trust_host=trust_host)
    assert scope["scheme"] == "https"
    assert _host(scope) == ([b"public.example"] if trust_host else [b"internal:8000"])


@pytest.mark.parametrize(
    ("server", "host", "expected_server"),
    [
        (("127.0.0.1", 8000), b"127.0.0.1:8443", ("127.0.0.1", 8443)),
        (("::1", 8000), b"[::1]:8443", ("::1", 8443)),
    ],
)
async def test_forwarded_port_without_host_header(
    server: tuple[str, int], host: bytes, expected_server: tuple[str, int]
) -> None:
    scope = await _run([(b"x-forwarded-port", b"8443")], host=None, server=server)
    assert (_host(scope), scope["server"]) == ([host], expected_server)
    # the server address is part of the cache key: another server, another answer
    middleware = ForwardedHeadersMiddleware(_echo)
    for address in ("127.0.0.1", "127.0.0.2"):
        scope = http_scope("/x", host=None, headers=[(b"x-forwarded-port", b"8443")], server=(address, 8000))
        await call(middleware, scope)
        assert scope["server"] == (address, 8443)
    # neither a Host nor a server address (a unix socket under some servers): nothing to apply it to
    scope = await _run([(b"x-forwarded-port", b"8443")], host=None, server=None)
    assert (_host(scope), scope["server"]) == ([], None)


# --- a Host that forges the proxy's element; header bytes kept in the cache ---------------------

_HOST_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)


@given(host=_HOST_TEXT.filter(lambda text: any(char in text for char in ',;="\\ ()<>@')))
async def test_forwarded_mode_refuses_a_host_that_is_no_host(engine: str, host: str) -> None:
    """In ``forwarded`` mode a proxied request whose Host is not ``host[:port]`` is answered 400 and
    never reaches the application: written into the proxy's element (``host=$host``), such a host
    (``a,for=203.0.113.9;proto=https``) carries an element of its own."""
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    middleware = ForwardedHeadersMiddleware(app, headers_type="forwarded", engine=engine)
    forwarded = f"for=198.51.100.2;proto=https;host={host}".encode("latin-1")
    for _ in range(2):  # never cached: the second request too
        messages = await call(middleware, http_scope("/x", host=host, headers=[(b"forwarded", forwarded)]))
        assert [message.get("status") for message in messages] == [400, None]
        assert messages[1]["body"] == b"Invalid Host header"
    assert seen == []
    # Not proxied (an untrusted peer), or no Forwarded line: the request goes on untouched.
    untrusted = http_scope("/x", host=host, headers=[(b"forwarded", forwarded)], client=("203.0.113.5", 1))
    assert await call(middleware, untrusted) == []
    assert await call(middleware, http_scope("/x", host=host)) == []
    assert len(seen) == 2


async def test_a_refused_host_closes_a_websocket_and_x_forwarded_mode_is_unchanged() -> None:
    forged = "app.example,for=203.0.113.9;proto=https;host=app.example"
    forwarded = f"for=198.51.100.2;proto=https;host={forged}".encode()
    middleware = ForwardedHeadersMiddleware(_echo, headers_type="forwarded")
    scope = http_scope("/x", host=forged, headers=[(b"forwarded", forwarded)])
    scope["type"] = "websocket"
    assert await call(middleware, scope) == [{"type": "websocket.close", "code": 1008, "reason": "Invalid Host header"}]
    # x-forwarded mode: X-Forwarded-For is appended by the proxy, not built from the Host: believed.
    scope = await _run([(b"x-forwarded-for", b"198.51.100.2")], host=forged)
    assert scope["client"] == ("198.51.100.2", 0)


async def test_long_header_values_are_resolved_not_kept(engine: str) -> None:
    """4,096 combinations of several kilobytes each would be 100 MB and more per worker: a
    combination of more than 2,048 header bytes is resolved each time instead, and a node longer
    than any address is not an address (nor kept in the address cache)."""
    from c2c_headers.forwarded import _address_of

    middleware = ForwardedHeadersMiddleware(_echo, engine=engine)
    _address_of.cache_clear()
    for n in range(20):
        padding = f"{n}-" + "x" * 3000
        scope = http_scope("/x", headers=[(b"x-forwarded-for", f"{padding}, 198.51.100.{n}".encode())])
        await call(middleware, scope)
        assert scope["client"] == (f"198.51.100.{n}", 0)
    assert middleware._cache == {}
    assert middleware._native_cache == {}
    assert _address_of.cache_info().currsize == 20  # the 20 addresses
    # A node walked over that is longer than any address: not one, and not kept.
    scope = http_scope("/x", headers=[(b"x-forwarded-for", b"198.51.100.9, " + b"1" * 3000)])
    await call(middleware, scope)
    assert scope["client"] == ("127.0.0.1", 50000)
    assert _address_of.cache_info().currsize == 20
    short = http_scope("/x", headers=[(b"x-forwarded-for", b"198.51.100.77")])
    await call(middleware, short)
    assert len(middleware._cache) == 1


@pytest.mark.parametrize(
    "host", ["example.org:", "[::1]:8000", "[::1]", "EXAMPLE.org.", "a_b:80", "[::ffff:1.2.3.4]:80"]
)
async def test_forwarded_mode_keeps_every_valid_host(host: str) -> None:
    """RFC 3986 hosts, an empty port included (`port = *DIGIT`), are never refused."""
    scope = await _run([(b"forwarded", b"for=198.51.100.2;proto=https")], host=host, headers_type="forwarded")
    assert scope["client"] == ("198.51.100.2", 0)
    assert scope["scheme"] == "https"
