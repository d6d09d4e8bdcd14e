"""`ForwardedHeadersMiddleware`: trust ``X-Forwarded-*`` or RFC 7239 ``Forwarded`` from known proxies.

Security model (anchors: uvicorn ProxyHeadersMiddleware, werkzeug ProxyFix, Home Assistant):

- Only a peer in ``trusted_hosts`` is believed; everything else passes through untouched.
- Proxies *append* to these lists, so the leftmost values are whatever the client sent. Repeated
  header lines are merged (RFC 9110 section 5.3), then the address list is walked right to left,
  skipping trusted hops; the first untrusted address is the client, and scheme, host and port are
  taken at the same hop (never further left), so a client behind an appending proxy cannot forge
  them.
- One family only (``x-forwarded`` or ``forwarded``): accepting both would let a client inject
  through the one its proxy does not overwrite (uvicorn PR #2928).
- A malformed value is ignored (debug log), never a 500; a malformed ``trusted_hosts`` entry is an
  error at construction, not a literal that never matches.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
from collections.abc import Sequence
from typing import Final, Literal, TypeAlias

# TrustedHosts and its messages lived here: still importable from this module.
from c2c_headers._hosts import BAD_TRUSTED_HOST as BAD_TRUSTED_HOST
from c2c_headers._hosts import BAD_TRUSTED_LITERAL as BAD_TRUSTED_LITERAL
from c2c_headers._hosts import TrustedHosts as TrustedHosts
from c2c_headers._hosts import parse_trusted_hosts
from c2c_headers._scope import _DEFAULT_PORTS  # the one default-port table of c2c-headers
from c2c_headers.types import ASGIApp, Receive, Scope, Send

HeadersType: TypeAlias = Literal["x-forwarded", "forwarded", "none"]

ORIGINAL_SCOPE_KEY: Final = "c2c_headers.forwarded.original"
"""Scope key of the values before the rewrite: a dict with ``client``, ``scheme``, ``server``,
``host`` (the ``Host`` header or None), ``root_path`` and ``path``."""

HEADERS_TYPES: Final = ("x-forwarded", "forwarded", "none")
BAD_HEADERS_TYPE = "headers_type must be one of {accepted}, got {value!r}"

_LOG = logging.getLogger("c2c_headers")
_SCHEMES: Final = {
    "http": {"http": "http", "https": "https", "ws": "http", "wss": "https"},
    "websocket": {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"},
}
_HOST: Final = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._~-]+))(?::(?P<port>[0-9]{1,5}))?")
_PREFIX: Final = re.compile(r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+/?")
_PORT: Final = re.compile(r"[0-9]{1,5}")
_MAX_CACHE: Final = 4096

# The cache key: (scope type, scheme, Host header, forwarded header lines). A plain tuple: it is
# built on every request, and a tuple literal is the cheapest hashable value.
_Key: TypeAlias = tuple[str, "str | None", "bytes | None", tuple[tuple[bytes, bytes], ...]]


@dataclasses.dataclass(frozen=True, slots=True)
class _Forwarded:
    """The raw values the proxies sent at the chosen hop (each None when absent)."""

    client: str | None
    proto: str | None
    host: str | None
    port: str | None
    prefix: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Rewrite:
    """What the middleware changes in a scope (each None when unchanged), computed once per key.

    A slotted dataclass rather than a NamedTuple: read on every rewritten request, and CPython
    reads a slot as fast as it unpacks a plain tuple, a NamedTuple's fields about twice slower.
    """

    client: tuple[str, int] | None
    """The new ``scope["client"]``."""
    scheme: str | None
    """The new ``scope["scheme"]``."""
    server: tuple[str, int] | None
    """The new ``scope["server"]`` (set together with ``host_header``)."""
    host_header: bytes | None
    """The new ``Host`` header."""
    prefix: str | None
    """The prefix to put before ``root_path`` and ``path``."""
    original_host: str | None
    """The request's own ``Host`` header (latin-1), kept under `ORIGINAL_SCOPE_KEY`."""


_NO_REWRITE: Final = _Rewrite(None, None, None, None, None, None)

_XFF: Final = b"x-forwarded-for"
_XFPROTO: Final = b"x-forwarded-proto"
_XFHOST: Final = b"x-forwarded-host"
_XFPORT: Final = b"x-forwarded-port"
_XFPREFIX: Final = b"x-forwarded-prefix"
_FORWARDED: Final = b"forwarded"
_HOST_HEADER: Final = b"host"


def _split_node(node: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port); the port None if absent/bad."""
    if node.startswith("["):
        end = node.find("]")
        if end < 0:
            return node, None
        host, rest = node[1:end], node[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    elif node.count(":") == 1:
        host, port_text = node.split(":")
    else:
        return node, None  # a bare IPv6 address, or no port
    return host, _port(port_text)


def _port(text: str) -> int | None:
    """A TCP port (1-65535) written in ASCII digits, else None (``"²".isdigit()`` is true: not used)."""
    if _PORT.fullmatch(text) is None:
        return None
    port = int(text)
    return port if 0 < port < 65536 else None


def _unquote(value: str) -> str:
    """Decode an RFC 7230 quoted-string (or return a token as is)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """Parse an RFC 7239 ``Forwarded`` value into its elements (one dict per hop, keys lower-case).

    Malformed pairs are dropped; a duplicated parameter makes its whole element empty (RFC 7239
    section 4: each parameter at most once per element).
    """
    elements = []
    for element_text in _split_outside_quotes(value, ","):
        element: dict[str, str] = {}
        for pair in _split_outside_quotes(element_text, ";"):
            key, equals, raw = pair.strip().partition("=")
            key = key.strip().lower()
            if not equals or not key:
                continue
            if key in element:
                element = {}
                break
            element[key] = _unquote(raw.strip())
        elements.append(element)
    return elements


def _valid_host(value: str) -> tuple[str, int | None] | None:
    """(host, port) of a forwarded host value, or None when it is not a plain ``host[:port]``."""
    match = _HOST.fullmatch(value)
    if match is None:
        return None
    host = match["name"]
    if host is None:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            return None
        host = match["ipv6"]
    port_text = match["port"]
    if port_text is None:
        return host, None
    port = _port(port_text)
    return None if port is None else (host, port)


def _new_client(forwarded_for: str | None) -> tuple[str, int] | None:
    """The client address of a ``for`` value; None when absent, obfuscated (``_x``) or ``unknown``."""
    if not forwarded_for:
        return None
    address, port = _split_node(forwarded_for)
    if not address or address == "unknown" or address.startswith("_"):
        return None
    return (address, port or 0)


def _new_scheme(scope_type: str, proto: str | None) -> str | None:
    """The scheme of a forwarded proto for this scope type (``https`` -> ``wss`` for a websocket)."""
    if proto is None:
        return None
    scheme = _SCHEMES[scope_type].get(proto.strip().lower())
    if scheme is None:
        _LOG.debug("forwarded headers: ignoring the invalid scheme %r", proto)
    return scheme


def _new_host(
    scheme: str, host_value: str | None, port_value: str | None, original_host: str | None
) -> tuple[tuple[str, int] | None, bytes | None]:
    """``(server, Host header)`` from a forwarded host and port, or ``(None, None)`` when unchanged."""
    host: tuple[str, int | None] | None = None
    if host_value is not None:
        host = _valid_host(host_value)
        if host is None:
            _LOG.debug("forwarded headers: ignoring the invalid host %r", host_value)
    forwarded_port: int | None = None
    if port_value is not None:
        forwarded_port = _port(port_value)
        if forwarded_port is None:
            _LOG.debug("forwarded headers: ignoring the invalid port %r", port_value)
    if host is None and forwarded_port is not None and original_host is not None:
        # Only the port was forwarded: the request's host name with the public port.
        own = _valid_host(original_host)
        host = None if own is None else (own[0], None)
    if host is None:
        return None, None
    host_name, port = host
    port = port or forwarded_port
    default_port = _DEFAULT_PORTS[scheme]
    display = f"[{host_name}]" if ":" in host_name else host_name
    if port is not None and port != default_port:
        display = f"{display}:{port}"
    return (host_name, port or default_port), display.encode("latin-1")


def _new_prefix(prefix: str | None) -> str | None:
    """A forwarded prefix without its trailing slash; None when absent or not a plain path."""
    if prefix is None:
        return None
    if _PREFIX.fullmatch(prefix) and "//" not in prefix:
        return prefix.rstrip("/")
    _LOG.debug("forwarded headers: ignoring the invalid prefix %r", prefix)
    return None


def _apply(
    scope: Scope,
    client: tuple[str, int],
    headers: Sequence[tuple[bytes, bytes]],
    rewrite: _Rewrite,
    host_lower_case: bool,
) -> None:
    """Write ``rewrite`` into ``scope``, keeping the original values under `ORIGINAL_SCOPE_KEY`.

    A function, not a method (a cheaper call): it runs on every rewritten request.
    """
    scope[ORIGINAL_SCOPE_KEY] = {
        "client": client,
        "scheme": scope.get("scheme"),
        "server": scope.get("server"),
        "host": rewrite.original_host,
        "root_path": scope.get("root_path", ""),
        "path": scope.get("path"),
    }
    if rewrite.client is not None:
        scope["client"] = rewrite.client
    if rewrite.scheme is not None:
        scope["scheme"] = rewrite.scheme
    if rewrite.host_header is not None:
        scope["server"] = rewrite.server
        if host_lower_case:
            rewritten = [header for header in headers if header[0] != _HOST_HEADER]
        else:
            rewritten = [header for header in headers if header[0].lower() != _HOST_HEADER]
        rewritten.append((_HOST_HEADER, rewrite.host_header))
        scope["headers"] = rewritten
    prefix = rewrite.prefix
    if prefix is not None:
        scope["root_path"] = prefix + scope.get("root_path", "")
        scope["path"] = prefix + scope.get("path", "")
        if isinstance(scope.get("raw_path"), bytes):
            scope["raw_path"] = prefix.encode("latin-1") + scope["raw_path"]


class ForwardedHeadersMiddleware:
    """Apply the scheme, host, port, client address (and optionally prefix) forwarded by trusted proxies.

    Rewrites ``scope["scheme"]``, ``scope["server"]``, the ``Host`` header (so ``request.url_for``
    gives the public URL), ``scope["client"]`` (from ``X-Forwarded-For`` / ``for=``) and, when
    ``trust_prefix`` is set, ``root_path`` and ``path`` from ``X-Forwarded-Prefix``. The original
    values stay readable under ``scope[ORIGINAL_SCOPE_KEY]``. ``http`` and ``websocket`` scopes
    only; ``lifespan`` passes through.
    """

    def __init__(
        self,
        app: ASGIApp,
        trusted_hosts: str | Sequence[str] = "127.0.0.1",
        headers_type: str = "x-forwarded",
        trust_prefix: bool = False,
    ) -> None:
        """Parse the configuration.

        Args:
            app: the ASGI application to wrap.
            trusted_hosts: the proxies to believe: IPs, IPv4/IPv6 networks (CIDR), literals (unix
                socket paths, ``testclient``) or ``*`` (anyone: the client can then forge
                everything); a comma-separated string or a list.
            headers_type: ``"x-forwarded"`` (``X-Forwarded-For/-Proto/-Host/-Port``),
                ``"forwarded"`` (RFC 7239) or ``"none"`` (pass through).
            trust_prefix: also apply ``X-Forwarded-Prefix`` to ``root_path`` (x-forwarded only).

        Raises:
            ValueError: an unknown ``headers_type`` or a malformed ``trusted_hosts`` entry.
        """
        if headers_type not in HEADERS_TYPES:
            raise ValueError(BAD_HEADERS_TYPE.format(accepted=", ".join(HEADERS_TYPES), value=headers_type))
        self.app = app
        self.trusted_hosts = parse_trusted_hosts(trusted_hosts)
        self.headers_type = headers_type
        self.trust_prefix = trust_prefix
        self._active = headers_type != "none"
        if headers_type == "x-forwarded":
            wanted = [_XFF, _XFPROTO, _XFHOST, _XFPORT, *([_XFPREFIX] if trust_prefix else [])]
        else:
            wanted = [_FORWARDED]
        # lower-case name -> the same bytes object (compared by identity for Host in the hot loop)
        self._kinds: dict[bytes, bytes] = {name: name for name in [*wanted, _HOST_HEADER]}
        # Resolved rewrites by (scope type, scheme, Host, forwarded header lines): a proxy sends the
        # same few combinations again and again; the parsing and validation then run once.
        self._cache: dict[_Key, _Rewrite] = {}
        self._trust_all = self.trusted_hosts.always
        self._trusted_peers = self.trusted_hosts.cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite the scope when the peer is trusted, then run the application."""
        if self._active and scope["type"] in _SCHEMES:
            client = scope.get("client")
            # The peer check, through the matcher's bounded cache without a method call per request.
            if client is not None and (
                self._trust_all or self._trusted_peers.get(client[0]) or client[0] in self.trusted_hosts
            ):
                pairs: list[tuple[bytes, bytes]] = []
                host: bytes | None = None
                host_lower_case = True  # every Host line is spelt "host" (then compare without lower())
                kinds = self._kinds
                headers = scope["headers"]
                for name, value in headers:
                    kind = kinds.get(name)
                    if kind is None:
                        # Servers send lower-case names, but ASGI does not require it.
                        if name.islower() or not name.isascii():
                            continue
                        kind = kinds.get(name.lower())
                        if kind is None:
                            continue
                        if kind is _HOST_HEADER:
                            host_lower_case = False
                    if kind is _HOST_HEADER:
                        host = value
                    else:
                        pairs.append((kind, value))
                if pairs:
                    key = (scope["type"], scope.get("scheme"), host, tuple(pairs))
                    rewrite = self._cache.get(key)
                    if rewrite is None:
                        rewrite = self._remember(key)
                    if rewrite is not _NO_REWRITE:
                        _apply(scope, client, headers, rewrite, host_lower_case)
        await self.app(scope, receive, send)

    def _remember(self, key: _Key) -> _Rewrite:
        """Resolve a combination not seen yet and cache it (bounded: keys come from headers)."""
        rewrite = self._resolve(key)
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
        self._cache[key] = rewrite
        return rewrite

    def _resolve(self, key: _Key) -> _Rewrite:
        """Compute the rewrite for one combination of scope type, scheme, Host and forwarded headers."""
        scope_type, current_scheme, host_header, pairs = key
        found: dict[bytes, list[bytes]] = {}
        for name, value in pairs:
            found.setdefault(name, []).append(value)
        sent = self._from_x_forwarded(found) if self.headers_type == "x-forwarded" else self._from_forwarded(found)
        original_host = None if host_header is None else host_header.decode("latin-1")

        new_client = _new_client(sent.client)
        new_scheme = _new_scheme(scope_type, sent.proto)
        scheme = new_scheme or current_scheme or ("http" if scope_type == "http" else "ws")
        server, new_host = _new_host(scheme, sent.host, sent.port, original_host)
        new_prefix = _new_prefix(sent.prefix)
        if (new_client, new_scheme, new_host, new_prefix) == (None, None, None, None):
            return _NO_REWRITE
        return _Rewrite(new_client, new_scheme, server, new_host, new_prefix, original_host)

    def _walk(self, addresses: list[str]) -> int:
        """Index (from the left) of the client: the first untrusted address from the right."""
        trusted = self.trusted_hosts
        for index in range(len(addresses) - 1, -1, -1):
            if _split_node(addresses[index])[0] not in trusted:
                return index
        return 0

    def _from_x_forwarded(self, found: dict[bytes, list[bytes]]) -> _Forwarded:
        def merged(name: bytes) -> list[str]:
            lines = found.get(name)
            if not lines:
                return []
            return [item.strip() for item in b",".join(lines).decode("latin-1").split(",")]

        addresses = merged(_XFF)
        hop = 0  # position of the chosen hop counted from the right (0 = added by the peer itself)
        client = None
        if addresses:
            index = self._walk(addresses)
            client = addresses[index]
            hop = len(addresses) - 1 - index

        def at_hop(name: bytes) -> str | None:
            # Entries further left than the chosen hop come from the client: never use them. A
            # shorter list (a proxy that replaces instead of appending) is all trusted: take its
            # leftmost entry.
            items = merged(name)
            if not items:
                return None
            return items[max(0, len(items) - 1 - hop)]

        prefix = at_hop(_XFPREFIX) if self.trust_prefix else None
        return _Forwarded(client, at_hop(_XFPROTO), at_hop(_XFHOST), at_hop(_XFPORT), prefix)

    def _from_forwarded(self, found: dict[bytes, list[bytes]]) -> _Forwarded:
        elements = parse_forwarded(b",".join(found[_FORWARDED]).decode("latin-1"))
        index = self._walk([element.get("for", "") for element in elements])

        def field(key: str) -> str | None:
            # The chosen hop's value, else the nearest trusted hop's (to its right) that has one.
            for element in elements[index:]:
                if key in element:
                    return element[key]
            return None

        return _Forwarded(field("for"), field("proto"), field("host"), None, None)
