"""Request ids: `RequestIdMiddleware`, the `RequestIdFilter` log filter and the context helpers.

Standard library only. One id per request (http and websocket scopes):

- An ``X-Request-ID`` header is kept when the *real peer* is a trusted proxy and the value is well
  formed (`is_valid_request_id`: 1 to ``max_length`` characters, each one of ``A-Z a-z 0-9 . _ :
  + / = -``); otherwise a new id is generated (32 lowercase hex digits, 128 random bits from
  OpenSSL's generator, read in batches). The real peer is ``scope["client"]`` unless
  `ForwardedHeadersMiddleware` rewrote it: that middleware records the peer it saw under
  `PEER_SCOPE_KEY` first.
- The id is put in ``scope["state"]["request_id"]`` (``request.state.request_id`` in Starlette),
  in a context variable for the time of the request (`current_request_id`), and on the response
  (the same header, appended: the application must not set it too).
- `RequestIdFilter` copies the context variable into every log record (``record.request_id``,
  ``"-"`` outside a request): installed on a *handler*, it sees the records of every logger that
  reaches the handler, the server's access log included.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import struct
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final

from c2c_headers._chain import Wrapping
from c2c_headers._hosts import parse_trusted_hosts
from c2c_headers.forwarded import PEER_SCOPE_KEY
from c2c_headers.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_HEADER: Final = "X-Request-ID"
DEFAULT_MAX_LENGTH: Final = 128
MAX_MAX_LENGTH: Final = 1024
STATE_KEY: Final = "request_id"
"""Key of the id in ``scope["state"]`` (``request.state.request_id``)."""
NO_REQUEST_ID: Final = "-"
"""What `RequestIdFilter` writes outside a request."""
ID_CHARACTERS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:+/=-"
"""The characters a kept id may hold: ASCII letters and digits, ``.``, ``_``, ``:``, ``+``, ``/``, ``=``, ``-``."""
BAD_MAX_LENGTH = "max_length must be between 1 and {limit}, got {value!r}"
BAD_HEADER = "header must be a non-empty HTTP header name (letters, digits, '-', '_'), got {value!r}"

_HEADER_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
# Every allowed byte to "a", any other to "!": an id is well formed when its translation is all letters.
_ID_TABLE: Final = bytes(ord("a") if chr(byte) in ID_CHARACTERS else ord("!") for byte in range(256))
_REQUEST_ID: Final[contextvars.ContextVar[str | None]] = contextvars.ContextVar("c2c_request_id", default=None)
_POOL_IDS: Final = 256  # ids drawn from one call to the random source
_UNPACK_BATCH: Final = struct.Struct("32s" * _POOL_IDS).unpack

try:  # OpenSSL's CSPRNG: seeded by the OS, reseeded after fork, ~9 x cheaper per byte than getrandom here
    from ssl import RAND_bytes as _random_bytes
except ImportError:  # pragma: no cover (a Python built without OpenSSL)
    _random_bytes = os.urandom


class _IdPool:
    """New ids (and their header bytes), 128 random bits each, the random bytes read in batches.

    One call to the random source (``ssl.RAND_bytes``, else ``os.urandom``) serves `_POOL_IDS` ids:
    one ``os.urandom(16)`` per request cost about as much as the rest of the middleware. The ids
    are handed out by ``next()`` on an iterator made of C iterators only (``zip``, ``map``,
    ``bytes.decode``), which one thread at a time runs, so no id is given twice; a forked child
    drops the batch it inherited (`os.register_at_fork`), so two workers never share ids.
    """

    def __init__(self) -> None:
        self.ids: Iterator[tuple[str, bytes]] = iter(())

    def reset(self) -> None:
        """Forget the current batch (in a forked child)."""
        self.ids = iter(())

    def next_id(self) -> tuple[str, bytes]:
        """The next id and its ASCII bytes."""
        try:
            return next(self.ids)
        except StopIteration:
            chunks: tuple[bytes, ...] = _UNPACK_BATCH(_random_bytes(16 * _POOL_IDS).hex().encode("ascii"))
            ids = zip(map(bytes.decode, chunks), chunks, strict=True)
            self.ids = ids
            return next(ids)


_POOL: Final = _IdPool()
_ABSENT: Final = object()
if hasattr(os, "register_at_fork"):  # pragma: no branch (POSIX)
    os.register_at_fork(after_in_child=_POOL.reset)


def _with_bytes(value: str) -> tuple[str, bytes]:
    return value, value.encode("latin-1")


def new_request_id() -> str:
    """A new id: 32 lowercase hex digits, 128 random bits (``ssl.RAND_bytes``, else `os.urandom`)."""
    return _POOL.next_id()[0]


def is_valid_request_id(value: str | bytes, max_length: int = DEFAULT_MAX_LENGTH) -> bool:
    """Whether ``value`` is a well-formed id: 1 to ``max_length`` characters of `ID_CHARACTERS`.

    What the middleware keeps from a trusted proxy; also meant for ids arriving by other channels
    (a broadcast message) before `request_id_context` installs them.
    """
    if isinstance(value, str):
        if not value.isascii():
            return False
        value = value.encode("ascii")
    return _well_formed(value, _checked_max_length(max_length))


def _well_formed(value: bytes, max_length: int) -> bool:
    # bytes.isalnum (ASCII only) answers hex ids at once; the table answers the rest.
    return 0 < len(value) <= max_length and (value.isalnum() or value.translate(_ID_TABLE).isalpha())


def _checked_max_length(max_length: int) -> int:
    if not 1 <= max_length <= MAX_MAX_LENGTH:
        raise ValueError(BAD_MAX_LENGTH.format(limit=MAX_MAX_LENGTH, value=max_length))
    return max_length


def current_request_id() -> str | None:
    """The id of the request being handled in this context, None outside a request."""
    return _REQUEST_ID.get()


@contextlib.contextmanager
def request_id_context(value: str | None) -> Iterator[None]:
    """Make ``value`` the current request id inside the ``with`` block (None: no id), then restore.

    For work done on behalf of a request outside the middleware (a broadcast handler running the
    caller's request, a background job); the value is used as given: check ids that come from
    outside with `is_valid_request_id` first.
    """
    token = _REQUEST_ID.set(value)
    try:
        yield
    finally:
        _REQUEST_ID.reset(token)


class RequestIdFilter(logging.Filter):
    """Add ``record.request_id`` (the current request id, or ``"-"``) to every record; drop none.

    Install it on the handlers (``handler.addFilter(RequestIdFilter())``, or ``filters:`` of a
    handler in a ``dictConfig``): a handler's filters see the records of every logger that reaches
    it (uvicorn's access log, the application's loggers, libraries), whereas a logger's filters
    only see the records logged on that very logger. A record that already has a ``request_id``
    (``extra={"request_id": ...}``) keeps it.
    """

    def __init__(self, name: str = "", default: str = NO_REQUEST_ID) -> None:
        """``default`` is written outside a request; ``name`` is `logging.Filter`'s."""
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        """Set ``record.request_id`` unless it is already set; always keep the record."""
        if getattr(record, "request_id", None) is None:
            record.request_id = _REQUEST_ID.get() or self.default
        return True


class RequestIdMiddleware(Wrapping):
    """Give every http and websocket request an id: kept from a trusted proxy, else generated.

    The id goes to ``scope["state"]["request_id"]``, to `current_request_id` (and so to every log
    record through `RequestIdFilter`) and to the response header (``websocket.accept`` headers for
    a websocket). ``lifespan`` passes through. The proxy is judged on the real peer: place
    `ForwardedHeadersMiddleware` *before* (outside) this middleware, it records the peer under
    `PEER_SCOPE_KEY` when it rewrites ``scope["client"]``.

    When the application raises, the id stays set in the request's context, so that the server's
    own error log of that request carries it (servers run each request in its own task or context).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header: str = DEFAULT_HEADER,
        trusted_hosts: str | Sequence[str] = "127.0.0.1",
        max_length: int = DEFAULT_MAX_LENGTH,
        generator: Callable[[], str] = new_request_id,
    ) -> None:
        """Check and store the configuration.

        Args:
            app: the ASGI application to wrap.
            header: the request and response header (case-insensitive).
            trusted_hosts: the peers whose header is kept, with `parse_trusted_hosts`'s syntax (the
                same as `ForwardedHeadersMiddleware`'s): IPs, networks, socket literals, ``*``.
                An empty string trusts nobody (every id is generated).
            max_length: the longest id kept, 1 to 1024 (128 by default).
            generator: makes a new id; it must return a well-formed id (it is not checked).

        Raises:
            ValueError: a bad header name, ``max_length`` or ``trusted_hosts`` entry.
        """
        if _HEADER_NAME.fullmatch(header) is None:
            raise ValueError(BAD_HEADER.format(value=header))
        self.app = app
        self.header = header
        self.trusted_hosts = parse_trusted_hosts(trusted_hosts)
        self.max_length = _checked_max_length(max_length)
        self.generator = generator
        self._pooled = generator is new_request_id
        # A C iterator calling the custom generator (the sentinel never comes): one next() per id.
        self._generated: Iterator[tuple[str, bytes]] = map(_with_bytes, iter(generator, _ABSENT))
        self._name = header.lower().encode("ascii")
        trusted = self.trusted_hosts
        self._trust_all = trusted.always
        self._trusted_peers = trusted.cache
        self._trust_socket_peer = trusted.sockets
        self._someone_trusted = bool(trusted.always or trusted.addresses or trusted.networks or trusted.literals)

    def _new_id(self) -> tuple[str, bytes]:
        """A new id and its bytes when the iterator of `__call__` stopped: a new pool batch, or the generator."""
        if self._pooled:
            return _POOL.next_id()
        return _with_bytes(self.generator())

    def _from_proxy(self, headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
        """The well-formed id in ``headers`` (exactly one line of the header), else None.

        Servers send lower-case names (uvicorn, hypercorn, daphne, granian) but ASGI does not
        require it: the names are compared as they are (fast), and only when no line matched, once
        more without case. (`__call__` runs the case-sensitive scan inline and calls this method
        when it found nothing, or to judge a line it found.)
        """
        wanted = self._name
        found: bytes | None = None
        for name, value in headers:
            if name == wanted:
                if found is not None:
                    return None  # several lines: ambiguous, generate
                found = value
        if found is None:
            lines = [value for name, value in headers if name.lower() == wanted]
            if len(lines) != 1:
                return None
            found = lines[0]
        return found if _well_formed(found, self.max_length) else None

    def _trusted(self, peer: Sequence[Any] | None) -> bool:
        """Whether the real peer is a trusted proxy (the cache missed).

        A unix-socket peer has no address: None (uvicorn) or an empty host (granian: ``("", "0")``).
        """
        return self._trust_socket_peer if peer is None or not peer[0] else peer[0] in self.trusted_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Choose the id, publish it (state, context, response), then run the application.

        The per-request path is written out in this one function (a Python call costs about as
        much as any one of its steps): the real peer, the header scan, the checks, the state, the
        send wrapper and the context variable.
        """
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self._next(scope, receive, send)
            return
        found = b""  # empty: no id to keep (a kept id has at least one character)
        if self._someone_trusted:
            # The real peer: the one ForwardedHeadersMiddleware saw, else the client.
            peer = scope[PEER_SCOPE_KEY] if PEER_SCOPE_KEY in scope else scope.get("client")
            trusted = None if peer is None else self._trusted_peers.get(peer[0])
            if trusted or (trusted is None and self._trusted(peer)):
                wanted, lines = self._name, 0
                for name, value in scope["headers"]:
                    if name == wanted:
                        found, lines = value, lines + 1
                # Exactly one line, at most max_length bytes, every byte in ID_CHARACTERS (the
                # checks of _well_formed, inlined); no line spelt this way: the case-less scan.
                if lines != 1 or len(found) > self.max_length or not found.translate(_ID_TABLE).isalpha():
                    found = (self._from_proxy(scope["headers"]) or b"") if lines == 0 else b""
        if found:
            request_id, raw = found.decode(), found
        else:
            try:  # the pool's next id, or the custom generator's, without a Python call
                request_id, raw = next(_POOL.ids if self._pooled else self._generated)
            except StopIteration:  # the pool's batch is used up (or a custom generator stopped)
                request_id, raw = self._new_id()
        try:
            scope["state"]["request_id"] = request_id  # STATE_KEY
        except KeyError:
            scope["state"] = {STATE_KEY: request_id}

        # A plain function returning the downstream send's awaitable (one coroutine less per
        # message), its inputs bound as defaults (no closure cells to build per request).
        def send_with_id(
            message: Message,
            send: Send = send,
            start: str = "http.response.start" if kind == "http" else "websocket.accept",
            pair: tuple[bytes, bytes] = (self._name, raw),
        ) -> Awaitable[None]:
            if message["type"] == start:
                message["headers"] = [*message.get("headers", ()), pair]
            return send(message)

        token = _REQUEST_ID.set(request_id)
        await self._next(scope, receive, send_with_id)
        # Reset only on success: on an exception the server logs the failure in this same context.
        _REQUEST_ID.reset(token)


__all__ = [
    "DEFAULT_HEADER",
    "ID_CHARACTERS",
    "NO_REQUEST_ID",
    "PEER_SCOPE_KEY",
    "STATE_KEY",
    "RequestIdFilter",
    "RequestIdMiddleware",
    "current_request_id",
    "is_valid_request_id",
    "new_request_id",
    "request_id_context",
]
