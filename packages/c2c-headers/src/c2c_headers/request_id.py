"""Request ids: `RequestIdMiddleware`, the `RequestIdFilter` log filter and the context helpers.

Standard library only. One id per request (http and websocket scopes):

- An ``X-Request-ID`` header is kept when the *real peer* is a trusted proxy and the value is well
  formed (`is_valid_request_id`: 1 to ``max_length`` characters, each one of ``A-Z a-z 0-9 . _ :
  + / = -``); otherwise a new id is generated (32 lowercase hex digits, 128 random bits from
  `os.urandom`). The real peer is ``scope["client"]`` unless `ForwardedHeadersMiddleware` rewrote
  it: that middleware records the peer it saw under `PEER_SCOPE_KEY` first.
- The id is put in ``scope["state"]["request_id"]`` (``request.state.request_id`` in Starlette),
  in a context variable for the time of the request (`current_request_id`), and on the response
  (the same header; an application's own value is replaced).
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
from collections.abc import Callable, Iterator, Sequence
from typing import Final

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
ID_CHARACTERS: Final = "A-Za-z0-9._:+/=-"
"""The characters a kept id may hold (a regular-expression character class body)."""
BAD_MAX_LENGTH = "max_length must be between 1 and {limit}, got {value!r}"
BAD_HEADER = "header must be a non-empty HTTP header name (letters, digits, '-', '_'), got {value!r}"

_HEADER_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
_DEFAULT_ID: Final = re.compile(f"[{ID_CHARACTERS}]{{1,{DEFAULT_MAX_LENGTH}}}".encode("ascii"))
_REQUEST_ID: Final[contextvars.ContextVar[str | None]] = contextvars.ContextVar("c2c_request_id", default=None)
_HANDLED: Final = frozenset(("http", "websocket"))
_START: Final = {"http": "http.response.start", "websocket": "websocket.accept"}


def new_request_id() -> str:
    """A new id: 32 lowercase hex digits, 128 random bits from the operating system."""
    return os.urandom(16).hex()


def is_valid_request_id(value: str | bytes, max_length: int = DEFAULT_MAX_LENGTH) -> bool:
    """Whether ``value`` is a well-formed id: 1 to ``max_length`` characters of `ID_CHARACTERS`.

    What the middleware keeps from a trusted proxy; also meant for ids arriving by other channels
    (a broadcast message) before `request_id_context` installs them.
    """
    if isinstance(value, str):
        if not value.isascii():
            return False
        value = value.encode("ascii")
    pattern = _DEFAULT_ID if max_length == DEFAULT_MAX_LENGTH else _id_pattern(max_length)
    return pattern.fullmatch(value) is not None


def _id_pattern(max_length: int) -> re.Pattern[bytes]:
    if not 1 <= max_length <= MAX_MAX_LENGTH:
        raise ValueError(BAD_MAX_LENGTH.format(limit=MAX_MAX_LENGTH, value=max_length))
    return re.compile(f"[{ID_CHARACTERS}]{{1,{max_length}}}".encode("ascii"))


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


class RequestIdMiddleware:
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
        self.max_length = max_length
        self.generator = generator
        self._pattern = _DEFAULT_ID if max_length == DEFAULT_MAX_LENGTH else _id_pattern(max_length)
        self._name = header.lower().encode("ascii")
        self._trust_all = self.trusted_hosts.always
        self._trusted_peers = self.trusted_hosts.cache
        self._trust_socket_peer = self.trusted_hosts.sockets
        self._nobody = not (
            self.trusted_hosts.always
            or self.trusted_hosts.addresses
            or self.trusted_hosts.networks
            or self.trusted_hosts.literals
        )

    def _from_proxy(self, scope: Scope) -> str | None:
        """The well-formed id the trusted peer sent (exactly one header line), else None."""
        peer = scope[PEER_SCOPE_KEY] if PEER_SCOPE_KEY in scope else scope.get("client")
        if not (
            self._trust_socket_peer
            if peer is None
            else self._trust_all or self._trusted_peers.get(peer[0]) or peer[0] in self.trusted_hosts
        ):
            return None
        wanted = self._name
        found: bytes | None = None
        for name, value in scope["headers"]:
            if name == wanted or (not name.islower() and name.lower() == wanted):
                if found is not None:
                    return None  # several lines: ambiguous, generate
                found = value
        if found is None or self._pattern.fullmatch(found) is None:
            return None
        return found.decode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Choose the id, publish it (state, context, response), then run the application."""
        scope_type = scope["type"]
        if scope_type not in _HANDLED:
            await self.app(scope, receive, send)
            return
        request_id = None if self._nobody else self._from_proxy(scope)
        if request_id is None:
            request_id = self.generator()
        state = scope.get("state")
        if state is None:
            scope["state"] = state = {}
        state[STATE_KEY] = request_id
        start = _START[scope_type]
        wanted = self._name
        pair = (wanted, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == start:
                headers = message.get("headers")
                if headers:
                    message["headers"] = [item for item in headers if item[0].lower() != wanted]
                    message["headers"].append(pair)
                else:
                    message["headers"] = [pair]
            await send(message)

        token = _REQUEST_ID.set(request_id)
        await self.app(scope, receive, send_with_id)
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
