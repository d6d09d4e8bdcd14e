"""`ForwardedHeadersMiddleware`: trust ``X-Forwarded-*`` or RFC 7239 ``Forwarded`` from known proxies.

Security model (anchors: uvicorn ProxyHeadersMiddleware, werkzeug ProxyFix, Home Assistant):

- Only a peer in ``trusted_hosts`` is believed; everything else passes through untouched. A peer on
  a unix socket (the server reports no address: ``scope["client"]`` is None under uvicorn, an empty
  host ``("", "0")`` under granian) is trusted when
  ``trusted_hosts`` holds ``*`` or a socket literal (``unix:...`` or an absolute path).
- Proxies *append* to these lists, so the leftmost values are whatever the client sent. The hops
  are read right to left, as the proxies wrote them, skipping trusted hops; the first untrusted
  address is the client, and scheme, host and port are taken at the same hop (never further left).
  ``Forwarded`` is parsed from the right, line by line (the last line first), element by element:
  an unterminated quote or any other malformed text sent by the client stops the reading where it
  starts and never swallows the element a proxy appended after it.
- A client address is an IP address: at anything else (``unknown``, an obfuscated ``_x``, garbage)
  the walk stops and the last trusted address is kept. A trusted socket hop (``unix:`` in
  ``X-Forwarded-For``, what nginx writes for a unix-socket peer) is walked over.
- A value the nearest proxy passes through untouched is the client's: ``X-Forwarded-Host`` and
  ``-Port`` are believed only when the proxy sets or strips them (``trust_host=False`` ignores them).
- One family only (``x-forwarded`` or ``forwarded``): accepting both would let a client inject
  through the one its proxy does not overwrite (uvicorn PR #2928).
- A malformed value is ignored (debug log), never a 500; a malformed ``trusted_hosts`` entry is an
  error at construction, not a literal that never matches.
- In ``forwarded`` mode a proxied request whose ``Host`` is not ``host[:port]`` is answered 400: a
  proxy that writes the client's host into its element (``host=$host``) would otherwise carry a
  whole element forged with ``,`` ``;`` ``=`` in it.
- What is kept per combination of headers is bounded in count and in size: clients choose them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import ipaddress
import logging
import operator
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, Literal, TypeAlias

from c2c_headers._chain import ChainedMiddleware
from c2c_headers._engine import NATIVE_MISSING, resolve_engine_name

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

PEER_SCOPE_KEY: Final = "c2c.peer"
"""Scope key of the real peer (``scope["client"]`` as the server reported it, None for a unix
socket), set when the middleware rewrites the scope and kept by a later one; absent, the peer is
``scope["client"]``. `RequestIdMiddleware` judges its trusted proxies on it."""

HEADERS_TYPES: Final = ("x-forwarded", "forwarded", "none")
BAD_HEADERS_TYPE = "headers_type must be one of {accepted}, got {value!r}"

__all__ = [
    "BAD_HEADERS_TYPE",
    "BAD_TRUSTED_HOST",
    "BAD_TRUSTED_LITERAL",
    "HEADERS_TYPES",
    "ORIGINAL_SCOPE_KEY",
    "PEER_SCOPE_KEY",
    "ForwardedHeadersMiddleware",
    "TrustedHosts",
    "parse_forwarded",
]

_LOG = logging.getLogger("c2c_headers")
_SCHEMES: Final = {
    "http": {"http": "http", "https": "https", "ws": "http", "wss": "https"},
    "websocket": {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"},
}
# A host and an optional port; the port may be empty (`example.org:`, RFC 3986's `port = *DIGIT`).
_HOST: Final = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._~-]+))(?::(?P<port>[0-9]{0,5}))?")
_PREFIX: Final = re.compile(r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+/?")
_DOT_SEGMENTS: Final = frozenset({".", ".."})
_ENCODED_SEPARATORS: Final = ("%2f", "%5c", "%2e", "%00")
_PORT: Final = re.compile(r"[0-9]{1,5}")
_MAX_CACHE: Final = 4096

# An IP address as a forwarded node may spell it (a zone limited to RFC 6874's unreserved characters:
# `ipaddress` accepts anything after "%", "<script>" included).
_IP_TEXT: Final = re.compile(r"[0-9A-Fa-f:.]+(?:%[0-9A-Za-z._~-]+)?")
# One RFC 7239 pair and its separator, matched on the *reversed* line (so read from the right):
# optional whitespace, the value (a quoted-string without escapes, or a token also allowing ":",
# "[", "]" and "/", as proxies write ``for=1.2.3.4:80`` unquoted), "=", the key (a token), optional
# whitespace, then ";" (next pair), "," (next element) or the start of the line. Every step is
# deterministic, so the elements a proxy appended are read exactly as it wrote them whatever the
# client put before them.
_PAIR_REVERSED: Final = re.compile(
    r"""[ \t]*(?:(?:"(?P<quoted>[^"\\\x00-\x08\x0a-\x1f\x7f]*)"|(?P<token>[^\x00-\x20\x7f-\xff",;=\\]+))"""
    r"""=(?P<key>[0-9A-Za-z!#$%&'*+.^_`|~-]+)[ \t]*)?(?P<sep>[;,]|\Z)"""
)

# The cache key: (scope type, scheme, Host header, forwarded header lines, and the server address
# when there is no Host header or an empty one). A plain tuple: it is built on every request, and a
# tuple literal is the cheapest hashable value.
_Key: TypeAlias = tuple[str, "str | None", "bytes | None", tuple[tuple[bytes, bytes], ...], "tuple[Any, ...] | None"]

# What the native rewriter reads for a key: None (nothing to rewrite), or the scope updates, the new
# Host line, the prefix (text and latin-1 bytes) and the original Host value (see
# `c2c_headers_native.ForwardedRewriter`).
_NativeEntry: TypeAlias = (
    "tuple[dict[str, Any], tuple[bytes, bytes] | None, tuple[str, bytes] | None, str | None] | None"
)
# The native rewriter's bound `rewrite(scope, client) -> done`.
_NativeRewrite: TypeAlias = Callable[[Scope, Any], bool]


@dataclasses.dataclass(frozen=True, slots=True)
class _Forwarded:
    """The values the proxies sent at the chosen hop (each None when absent)."""

    client: tuple[str, int] | None
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
    updates: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    """``client``, ``scheme`` and ``server`` as they change: one ``scope.update`` per request."""

    def __post_init__(self) -> None:
        new = {"client": self.client, "scheme": self.scheme}
        if self.host_header is not None:
            new["server"] = self.server
        self.updates.update({key: value for key, value in new.items() if value is not None})


_NO_REWRITE: Final = _Rewrite(None, None, None, None, None, None)
_BAD_HOST: Final = _Rewrite(None, None, None, None, None, None)
"""A ``Forwarded`` request whose own ``Host`` is not a ``host[:port]``: answered 400 (`BAD_HOST_MESSAGE`)."""

BAD_HOST_MESSAGE: Final = "Invalid Host header"
"""The body of the 400 answered, in ``forwarded`` mode, to a proxied request whose ``Host`` is not a
plain ``host[:port]``: a proxy that writes the client's host into its ``Forwarded`` element lets
``,`` ``;`` ``=`` ``"`` in that host forge a whole element, the client address included."""
_BAD_HOST_BODY: Final = BAD_HOST_MESSAGE.encode()
_MAX_CACHED_KEY_BYTES: Final = 2048
"""Header bytes beyond which a combination is resolved every time rather than kept: the cache holds
4,096 combinations, and a client could otherwise make each one a few kilobytes."""
_MAX_NODE: Final = 100
"""The longest forwarded node read as an address (a bracketed IPv6 with a zone and a port fits)."""

_XFF: Final = b"x-forwarded-for"
_XFPROTO: Final = b"x-forwarded-proto"
_XFHOST: Final = b"x-forwarded-host"
_XFPORT: Final = b"x-forwarded-port"
_XFPREFIX: Final = b"x-forwarded-prefix"
_FORWARDED: Final = b"forwarded"
_HOST_HEADER: Final = b"host"


def _split_node(node: str) -> tuple[str, int | None] | None:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port); the port None if absent/bad.

    A bare IPv6 address (``X-Forwarded-For``'s form) has no port; text after ``]`` other than
    ``:port`` makes the whole node invalid (None).
    """
    if node.startswith("["):
        end = node.find("]")
        if end < 0:
            return None
        host, rest = node[1:end], node[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        return host, _port(rest[1:])
    if node.count(":") == 1:
        host, port_text = node.split(":")
        return host, _port(port_text)
    return node, None  # a bare IPv6 address, or no port


def _address(node: str) -> tuple[str, int] | None:
    """``(IP, port)`` of a forwarded node (the IP canonical, the port 0 when absent or obfuscated); None unless an IP.

    ``unknown``, obfuscated identifiers (``_hidden``), socket names (``unix:``), host names and any
    other text are not client addresses; neither is a node longer than any address (`_MAX_NODE`).
    """
    return None if len(node) > _MAX_NODE else _address_of(node)


@functools.lru_cache(maxsize=4096)
def _address_of(node: str) -> tuple[str, int] | None:
    """`_address` of a short node. Cached (bounded, the values come from headers): the `ipaddress`
    check is the slow part, and a proxy repeats the same few client addresses."""
    split = _split_node(node.strip())
    if split is None or _IP_TEXT.fullmatch(split[0]) is None:
        return None
    try:
        address = ipaddress.ip_address(split[0])
    except ValueError:
        return None
    # The canonical spelling: one client, one string (``2001:DB8:0::1`` is ``2001:db8::1``), so
    # whatever is keyed on the client address (a rate limit) cannot be dodged by re-spelling it.
    mapped = getattr(address, "ipv4_mapped", None)  # written the same on every Python version
    return (str(address) if mapped is None else f"::ffff:{mapped}"), split[1] or 0


def _is_socket(node: str) -> bool:
    """Whether a forwarded node names a unix socket (``unix:``, ``unix:/run/app.sock``, ``/run/app.sock``)."""
    return node.startswith(("unix:", "/"))


def _port(text: str) -> int | None:
    """A TCP port (1-65535) written in ASCII digits, else None (``"²".isdigit()`` is true: not used)."""
    if _PORT.fullmatch(text) is None:
        return None
    port = int(text)
    return port if 0 < port < 65536 else None


def _line_from_right(line: str) -> tuple[list[dict[str, str]], bool]:
    """The elements of one ``Forwarded`` line, rightmost first, and whether the whole line parsed.

    Reading stops at the first malformed element (an unterminated quote, a pair without ``=``, a
    quoted-string with an escape, a duplicated parameter): that element and everything to its left
    are dropped. Empty elements (``, for=1.2.3.4`` as an appending proxy writes it after an absent
    header) are skipped.
    """
    reversed_line = line[::-1]
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    position = 0
    while True:
        match = _PAIR_REVERSED.match(reversed_line, position)
        if match is None:
            return elements, False
        key = match["key"]
        if key is not None:
            key = key[::-1].lower()
            if key in element:  # RFC 7239 section 4: each parameter at most once per element
                return elements, False
            value = match["quoted"]
            element[key] = (match["token"] if value is None else value)[::-1]
        separator = match["sep"]
        position = match.end()
        if separator != ";":
            if element:
                elements.append(element)
                element = {}
            if not separator:  # the start of the line
                return elements, True


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """Parse an RFC 7239 ``Forwarded`` value into its elements (one dict per hop, keys lower-case).

    The value is read from the right, as proxies append: an element is taken only when it and
    everything to its right are well formed, so a malformed element (an unterminated quote, a pair
    without ``=``, a quoted-string with a backslash escape, a duplicated parameter) drops itself
    and everything to its left, and client text can never swallow an element a proxy appended.
    Empty elements are skipped. Returned in header order (leftmost first).
    """
    elements, _ = _line_from_right(value)
    elements.reverse()
    return elements


def _forwarded_from_right(lines: list[bytes]) -> list[dict[str, str]]:
    """The elements of all ``Forwarded`` lines, rightmost first (the last line first), up to the first malformed one."""
    elements: list[dict[str, str]] = []
    for line in reversed(lines):
        found, complete = _line_from_right(line.decode("latin-1"))
        elements.extend(found)
        if not complete:
            break
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
    if not port_text:  # none, or empty
        return host, None
    port = _port(port_text)
    return None if port is None else (host, port)


def _new_scheme(scope_type: str, proto: str | None) -> str | None:
    """The scheme of a forwarded proto for this scope type (``https`` -> ``wss`` for a websocket)."""
    if proto is None:
        return None
    scheme = _SCHEMES[scope_type].get(proto.strip().lower())
    if scheme is None:
        _LOG.debug("forwarded headers: ignoring the invalid scheme %r", proto)
    return scheme


def _new_host(
    scheme: str, host_value: str | None, port_value: str | None, own_host: str | None
) -> tuple[tuple[str, int] | None, bytes | None]:
    """``(server, Host header)`` from a forwarded host and port, or ``(None, None)`` when unchanged.

    ``own_host`` is the request's own host (its ``Host`` header, else the server address), which a
    forwarded port alone applies to.
    """
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
    if host is None and forwarded_port is not None and own_host is not None:
        # Only the port was forwarded: the request's host name with the public port.
        own = _valid_host(own_host)
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
    """A forwarded prefix without its trailing slash; None when absent or not a plain path.

    A plain path: absolute, no empty segment (``//``), no ``.`` or ``..`` segment and no encoded
    separator or dot (``%2F``, ``%5C``, ``%2E``) or NUL (``%00``): the application's links start
    with it, and a client must not be able to make them climb above it or leave the site.
    """
    if prefix is None:
        return None
    if (
        _PREFIX.fullmatch(prefix)
        and "//" not in prefix
        and not _DOT_SEGMENTS.intersection(prefix.rstrip("/").split("/"))
        and not any(encoded in prefix.lower() for encoded in _ENCODED_SEPARATORS)
    ):
        return prefix.rstrip("/")
    _LOG.debug("forwarded headers: ignoring the invalid prefix %r", prefix)
    return None


# The scope values kept under ORIGINAL_SCOPE_KEY, read in one C call when the server sent them all.
_ORIGINAL_VALUES: Final = operator.itemgetter("scheme", "server", "root_path", "path")


def _apply(
    scope: Scope,
    client: tuple[str, int] | None,
    headers: Sequence[tuple[bytes, bytes]],
    rewrite: _Rewrite,
    host_line: tuple[bytes, bytes] | None,
    host_lines: int,
) -> None:
    """Write ``rewrite`` into ``scope``, keeping the original values under `ORIGINAL_SCOPE_KEY`.

    ``host_line`` is the request's first ``Host`` line and ``host_lines`` how many it has. A
    function, not a method (a cheaper call): it runs on every rewritten request.
    """
    scope.setdefault(PEER_SCOPE_KEY, client)
    try:
        scheme, server, root_path, path = _ORIGINAL_VALUES(scope)
    except KeyError:  # a server leaving optional keys out
        scheme, server, root_path, path = (
            scope.get("scheme"),
            scope.get("server"),
            scope.get("root_path", ""),
            scope.get("path"),
        )
    scope[ORIGINAL_SCOPE_KEY] = {
        "client": client,
        "scheme": scheme,
        "server": server,
        "host": rewrite.original_host,
        "root_path": root_path,
        "path": path,
    }
    scope.update(rewrite.updates)
    if rewrite.host_header is not None:
        new_line = (_HOST_HEADER, rewrite.host_header)
        if host_lines == 1 and type(headers) is list:
            # The one Host line replaced where it stands (the other lines are other headers).
            rewritten = headers.copy()
            rewritten[rewritten.index(host_line)] = new_line
        else:  # no Host line, or several: drop them all and add the forwarded one
            rewritten = [line for line in headers if line[0].lower() != _HOST_HEADER]
            rewritten.append(new_line)
        scope["headers"] = rewritten
    prefix = rewrite.prefix
    if prefix is not None:
        scope["root_path"] = prefix + scope.get("root_path", "")
        scope["path"] = prefix + scope.get("path", "")
        if isinstance(scope.get("raw_path"), bytes):
            scope["raw_path"] = prefix.encode("latin-1") + scope["raw_path"]


class ForwardedHeadersMiddleware(ChainedMiddleware):
    """Apply the scheme, host, port, client address (and optionally prefix) forwarded by trusted proxies.

    Rewrites ``scope["scheme"]``, ``scope["server"]``, the ``Host`` header (so ``request.url_for``
    gives the public URL), ``scope["client"]`` (from ``X-Forwarded-For`` / ``for=``) and, when
    ``trust_prefix`` is set, ``root_path`` and ``path`` from ``X-Forwarded-Prefix``. The original
    values stay readable under ``scope[ORIGINAL_SCOPE_KEY]``. ``http`` and ``websocket`` scopes
    only; ``lifespan`` passes through.

    Only IP addresses become ``scope["client"]``; the hops are read right to left as the proxies
    wrote them (``Forwarded`` line by line, element by element), so client text before a trusted
    proxy's value never changes the scheme, host, port or client taken from it.
    """

    def __init__(
        self,
        app: ASGIApp,
        trusted_hosts: str | Sequence[str] = "127.0.0.1",
        headers_type: str = "x-forwarded",
        trust_prefix: bool = False,
        trust_host: bool = True,
        *,
        engine: str | None = None,
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
            trust_host: believe the forwarded host and port (``X-Forwarded-Host``/``-Port``,
                ``Forwarded: host=``), as c2casgiutils 0.14 did. Only safe when the nearest proxy
                sets or strips them: a value it passes through untouched is the client's. False
                ignores them (``url_for`` then uses the request's own ``Host``).
            engine: who applies a known rewrite per request: ``"auto"`` (c2c-headers-native when
                installed), ``"python"`` or ``"native"``; None reads ``C2C_HEADERS_ENGINE`` like
                `ArmorHeaderMiddleware`. Parsing and decisions are Python's in every case; the native
                rewriter repeats them faster on the requests whose headers were seen before. Checked
                whatever ``headers_type`` (with ``"none"`` too).

        Raises:
            ValueError: an unknown ``headers_type``, a malformed ``trusted_hosts`` entry or an
                unknown engine name.
            ModuleNotFoundError: ``engine="native"`` without c2c-headers-native installed.
        """
        if headers_type not in HEADERS_TYPES:
            raise ValueError(BAD_HEADERS_TYPE.format(accepted=", ".join(HEADERS_TYPES), value=headers_type))
        self.app = app
        self.trusted_hosts = parse_trusted_hosts(trusted_hosts)
        self.headers_type = headers_type
        self.trust_prefix = trust_prefix
        self.trust_host = trust_host
        self._active = headers_type != "none"
        if headers_type == "x-forwarded":
            wanted = [
                _XFF,
                _XFPROTO,
                *([_XFHOST, _XFPORT] if trust_host else []),
                *([_XFPREFIX] if trust_prefix else []),
            ]
        else:
            wanted = [_FORWARDED]
        # lower-case name -> the same bytes object (compared by identity for Host in the hot loop)
        self._kinds: dict[bytes, bytes] = {name: name for name in [*wanted, _HOST_HEADER]}
        # Resolved rewrites by (scope type, scheme, Host, forwarded header lines): a proxy sends the
        # same few combinations again and again; the parsing and validation then run once.
        self._cache: dict[_Key, _Rewrite] = {}
        self._trust_all = self.trusted_hosts.always
        self._trusted_peers = self.trusted_hosts.cache
        # A unix-socket peer: servers report no address for it (`uvicorn --uds`: client None).
        self._trust_socket_peer = self.trusted_hosts.sockets
        # The native rewriter's view of `_cache` (filled and cleared with it).
        self._native_cache: dict[_Key, _NativeEntry] = {}
        # Resolved even when inactive (``headers_type="none"``): a bad engine name or a missing
        # native package is a configuration error whatever the headers type.
        native_rewrite = _native_rewriter(engine, list(self._kinds), self._native_cache)
        self._native_rewrite = native_rewrite if self._active else None
        self.engine_name: str = "python" if self._native_rewrite is None else "native"
        """``"native"`` when c2c-headers-native applies the known rewrites, else ``"python"``."""

    # One function, every branch inline: it runs on every request (a helper call costs more than its branch).
    def _enter(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # noqa: C901
        """Rewrite the scope when the peer is trusted, then return the application's run.

        A plain method (`ChainedMiddleware`): ``__call__`` awaits it, and a c2c middleware wrapping
        this one calls it directly.
        """
        if self._active and scope["type"] in _SCHEMES:
            client = scope.get("client")
            # The peer check, through the matcher's bounded cache without a method call per request.
            # A unix-socket peer has no address: None (uvicorn) or an empty host (granian: ("", "0")).
            if (
                self._trust_socket_peer
                if client is None or not client[0]
                else self._trust_all or self._trusted_peers.get(client[0]) or client[0] in self.trusted_hosts
            ):
                native = self._native_rewrite
                # The native rewriter answers False, the scope untouched, for anything it has not
                # seen resolved (or cannot read): the Python path below then takes the request.
                if native is None or not native(scope, client):
                    pairs: list[tuple[bytes, bytes]] = []
                    host_line: tuple[bytes, bytes] | None = None  # the first Host line
                    host_lines = 0
                    kinds = self._kinds
                    headers = scope["headers"]
                    for line in headers:
                        name = line[0]
                        kind = kinds.get(name)
                        if kind is None:
                            # Servers send lower-case names, but ASGI does not require it.
                            if name.islower() or not name.isascii():
                                continue
                            kind = kinds.get(name.lower())
                            if kind is None:
                                continue
                        if kind is _HOST_HEADER:
                            # The first, as `request_target` (the header rules) and Starlette read it.
                            host_line = line if host_line is None else host_line
                            host_lines += 1
                        else:
                            pairs.append((kind, line[1]))
                    if pairs:
                        host = None if host_line is None else host_line[1]
                        # Without a Host header (or with an empty one: granian adds ``host: ""`` to a request
                        # that has none) a forwarded port applies to the server address: part of the key.
                        server = None if host else _server_key(scope)
                        key = (scope["type"], scope.get("scheme"), host, tuple(pairs), server)
                        rewrite = self._cache.get(key)
                        if rewrite is None:
                            rewrite = self._remember(key)
                        if rewrite is not _NO_REWRITE:
                            if rewrite is _BAD_HOST:
                                return _refuse_bad_host(scope, send)
                            _apply(scope, client, headers, rewrite, host_line, host_lines)
        return self._next(scope, receive, send)

    def _remember(self, key: _Key) -> _Rewrite:
        """Resolve a combination not seen yet and cache it (bounded: keys come from headers; a long
        one, or a refused Host, is resolved again each time)."""
        rewrite = self._resolve(key)
        if rewrite is _BAD_HOST or len(key[2] or b"") + sum(len(value) for _, value in key[3]) > _MAX_CACHED_KEY_BYTES:
            return rewrite
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
            self._native_cache.clear()
        self._cache[key] = rewrite
        if self._native_rewrite is not None:
            self._native_cache[key] = _native_entry(rewrite)
        return rewrite

    def _resolve(self, key: _Key) -> _Rewrite:
        """Compute the rewrite for one combination of scope type, scheme, Host and forwarded headers."""
        scope_type, current_scheme, host_header, pairs, server_address = key
        found: dict[bytes, list[bytes]] = {}
        for name, value in pairs:
            found.setdefault(name, []).append(value)
        sent = self._from_x_forwarded(found) if self.headers_type == "x-forwarded" else self._from_forwarded(found)
        original_host = None if host_header is None else host_header.decode("latin-1")
        if self.headers_type == "forwarded" and original_host and _valid_host(original_host) is None:
            # nginx (and others) pass `,` `;` `=` `"` in a Host; a proxy that writes it into its own
            # Forwarded element (`host=$host` after `for=`) then carries a forged element.
            _LOG.info(
                "forwarded headers: refusing a proxied request whose Host is not a host[:port]: %r", original_host[:100]
            )
            return _BAD_HOST
        own_host = original_host
        if not own_host and server_address and isinstance(server_address[0], str):
            own_host = f"[{server_address[0]}]" if ":" in server_address[0] else server_address[0]

        new_scheme = _new_scheme(scope_type, sent.proto)
        scheme = new_scheme or current_scheme or ("http" if scope_type == "http" else "ws")
        server, new_host = _new_host(scheme, sent.host, sent.port, own_host)
        new_prefix = _new_prefix(sent.prefix)
        if (sent.client, new_scheme, new_host, new_prefix) == (None, None, None, None):
            return _NO_REWRITE
        return _Rewrite(sent.client, new_scheme, server, new_host, new_prefix, original_host)

    def _walk(self, nodes: Iterable[str | None]) -> tuple[tuple[str, int] | None, int]:
        """``(client, hop)`` from the forwarded nodes, rightmost first.

        A trusted IP is a proxy: walk on. The first untrusted IP is the client. At anything that is
        not an IP (absent, ``unknown``, ``_hidden``, garbage) the walk stops and keeps the last
        trusted address (None: the peer stays the client); a trusted socket node (``unix:``) is a
        proxy on a unix socket, walked over but never a client. ``hop`` is the position, from the
        right, where the walk ended: the values (scheme, host, port) are taken there.
        """
        trusted = self.trusted_hosts
        client = None
        hop = 0
        for hop, node in enumerate(nodes):  # noqa: B007 (hop, where the walk ended, is the result)
            if node is None:
                break
            address = _address(node)
            if address is None:
                if _is_socket(node) and node in trusted:
                    continue
                break
            client = address
            if address[0] not in trusted:
                break
        return client, hop

    def _from_x_forwarded(self, found: dict[bytes, list[bytes]]) -> _Forwarded:
        def merged(name: bytes) -> list[str]:
            lines = found.get(name)
            if not lines:
                return []
            return [item.strip() for item in b",".join(lines).decode("latin-1").split(",")]

        addresses = merged(_XFF)
        client, hop = self._walk(reversed(addresses))

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
        elements = _forwarded_from_right(found[_FORWARDED])  # rightmost first
        client, hop = self._walk(element.get("for") for element in elements)

        def field(key: str) -> str | None:
            # The chosen hop's value, else the nearest trusted hop's (to its right) that has one.
            for index in range(min(hop, len(elements) - 1), -1, -1):
                if key in elements[index]:
                    return elements[index][key]
            return None

        host = field("host") if self.trust_host else None
        return _Forwarded(client, field("proto"), host, None, None)


def _refuse_bad_host(scope: Scope, send: Send) -> Awaitable[None]:
    """The 400 answer (an HTTP request) or the refused handshake (a websocket) of `_BAD_HOST`."""

    async def refuse() -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": BAD_HOST_MESSAGE})
            return
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(_BAD_HOST_BODY))]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": _BAD_HOST_BODY})

    return refuse()


def _native_entry(rewrite: _Rewrite) -> _NativeEntry:
    """What the native rewriter reads for `rewrite`."""
    if rewrite is _NO_REWRITE:
        return None
    host_line = None if rewrite.host_header is None else (_HOST_HEADER, rewrite.host_header)
    prefix = None if rewrite.prefix is None else (rewrite.prefix, rewrite.prefix.encode("latin-1"))
    return (rewrite.updates, host_line, prefix, rewrite.original_host)


def _native_rewriter(engine: str | None, names: list[bytes], cache: dict[_Key, _NativeEntry]) -> _NativeRewrite | None:
    """``c2c_headers_native.ForwardedRewriter(...).rewrite`` when the engine is native, else None.

    ``auto`` falls back to Python when c2c-headers-native is not installed or predates the rewriter.
    """
    engine_name, source = resolve_engine_name(engine)
    if engine_name == "python":
        return None
    try:
        native = importlib.import_module("c2c_headers_native")
    except ModuleNotFoundError as error:
        if error.name != "c2c_headers_native":
            raise  # a broken build must not look like "not installed"
        if engine_name == "native":
            raise ModuleNotFoundError(NATIVE_MISSING.format(source=source), name=error.name) from error
        return None
    rewriter_class = getattr(native, "ForwardedRewriter", None)
    if rewriter_class is None:  # a c2c-headers-native older than the rewriter: its rule engine only
        _LOG.debug("c2c_headers: c2c-headers-native has no ForwardedRewriter; forwarded headers in Python")
        return None
    rewrite: _NativeRewrite = rewriter_class(names, cache, PEER_SCOPE_KEY, ORIGINAL_SCOPE_KEY).rewrite
    return rewrite


def _server_key(scope: Scope) -> tuple[Any, ...] | None:
    """``scope["server"]`` as a hashable cache-key part (a server may send a list)."""
    server = scope.get("server")
    return None if server is None else tuple(server)
