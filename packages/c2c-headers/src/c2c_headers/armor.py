"""`ArmorHeaderMiddleware`: rule-based security headers with CSP nonces, as pure ASGI."""

from __future__ import annotations

import logging
from typing import Final

from c2c_headers._engine import Engine, load_engine
from c2c_headers._rules import HeadersConfig, compile_rules
from c2c_headers.types import ASGIApp, Message, Receive, Scope, Send

_LOG = logging.getLogger("c2c_headers")
_HOST: Final = b"host"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def request_netloc(scope: Scope) -> str:
    """``host[:port]`` as the client addressed it: the ``Host`` header, else the server address."""
    for name, value in scope.get("headers", ()):
        if name == _HOST:
            return str(value.decode("latin-1"))
    server = scope.get("server")
    if server is None:
        return ""
    host, port = server
    if port is None or _DEFAULT_PORTS.get(scope.get("scheme", "http")) == port:
        return str(host)
    return f"{host}:{port}"


def request_path(scope: Scope) -> str:
    """The request path relative to ``root_path``, with its leading slash (``/`` at the very root)."""
    path: str = scope.get("path", "/")
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        # Strip a prefix only at a segment boundary ("/app" is not the root of "/apple").
        if not rest:
            return "/"
        if rest[0] == "/":
            return rest
    return path


class ArmorHeaderMiddleware:
    """Set, replace or remove response headers by rules (drop-in for ``c2casgiutils.headers``).

    Rules match on the request (``netloc_match``, ``path_match``, ``methods``) and then on the
    response (``status_code``, ``content_type_match``); see `HeaderMatcher` and the README. The
    headers are edited in the ``http.response.start`` message only: bodies stream untouched, and
    ``websocket`` and ``lifespan`` scopes pass through.

    When a matching rule's CSP holds `CSP_NONCE`, a fresh nonce is put in
    ``scope["state"]["nonce"]`` before the application runs (``request.state.nonce``) and
    substituted in the header; such a response gets ``Cache-Control: no-store`` unless it has its
    own ``Cache-Control``.
    """

    def __init__(
        self,
        app: ASGIApp,
        headers_config: HeadersConfig | None = None,
        use_default: bool = True,
        engine: str | None = None,
    ) -> None:
        """Validate and compile the rules, and choose the engine.

        Args:
            app: the ASGI application to wrap.
            headers_config: rule name -> rule (see `HeaderMatcher`); added after the defaults.
            use_default: start from `DEFAULT_HEADERS_CONFIG`.
            engine: ``"auto"``, ``"python"`` or ``"native"``; None reads the ``C2C_HEADERS_ENGINE``
                environment variable (default ``"auto"``: native when installed).

        Raises:
            ValueError: invalid configuration (the message names the rule and the header), or an
                unknown engine name.
            ModuleNotFoundError: ``engine="native"`` without c2c-headers-native installed.
        """
        self.app = app
        self.rules = compile_rules(headers_config, use_default)
        self._engine: Engine = load_engine(engine, self.rules)
        self.engine_name: str = self._engine.name
        _LOG.debug("ArmorHeaderMiddleware: %d rules, %s engine", len(self.rules), self.engine_name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the application, editing the headers of its ``http.response.start`` message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        engine = self._engine
        match = engine.match(request_netloc(scope), request_path(scope), scope["method"])
        if match is None:
            await self.app(scope, receive, send)
            return
        nonce = match.nonce
        if nonce is not None:
            # A copy: the server may share the lifespan state dict between requests.
            scope["state"] = {**scope.get("state", {}), "nonce": nonce}
        apply = engine.apply

        # Per-request state lives in this closure only (never on the middleware instance).
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                message["headers"] = apply(
                    match, message["status"], headers if type(headers) is list else list(headers)
                )
            await send(message)

        await self.app(scope, receive, send_with_headers)
