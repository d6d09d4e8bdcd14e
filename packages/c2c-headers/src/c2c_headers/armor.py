"""`ArmorHeaderMiddleware`: rule-based security headers with CSP nonces, as pure ASGI."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable

from c2c_headers._chain import ChainedMiddleware
from c2c_headers._engine import Engine, RequestMatch, load_engine
from c2c_headers._rules import DEFAULT_DOCS_URL, DEFAULT_REDOC_URL, HeadersConfig, compile_rules
from c2c_headers.types import ASGIApp, Message, Receive, Scope, Send

_LOG = logging.getLogger("c2c_headers")
_INSTANCES: weakref.WeakSet[ArmorHeaderMiddleware] = weakref.WeakSet()
# An engine's apply(match, status, headers) -> headers.
Apply = Callable[[RequestMatch, int, list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]]

__all__ = ["ArmorHeaderMiddleware", "live_instances"]


def live_instances() -> list[ArmorHeaderMiddleware]:
    """The `ArmorHeaderMiddleware` instances alive in this process (weakly held), in no particular order."""
    return list(_INSTANCES)


class ArmorHeaderMiddleware(ChainedMiddleware):
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
        *,
        docs_url: str | None = DEFAULT_DOCS_URL,
        redoc_url: str | None = DEFAULT_REDOC_URL,
        extra_csp_directives: Iterable[str] | None = None,
    ) -> None:
        """Validate and compile the rules, and choose the engine.

        Args:
            app: the ASGI application to wrap.
            headers_config: rule name -> rule (see `HeaderMatcher`); added after the defaults.
            use_default: start from `DEFAULT_HEADERS_CONFIG`.
            engine: ``"auto"``, ``"python"`` or ``"native"``; None reads the ``C2C_HEADERS_ENGINE``
                environment variable (default ``"auto"``: native when installed).
            docs_url: the page the default ``docs`` rule (Swagger UI's CSP) applies to, relative to
                ``root_path``: pass FastAPI's ``app.docs_url``; None drops the rule.
            redoc_url: the same for the ``redoc`` rule: pass ``app.redoc_url``.
            extra_csp_directives: CSP directive names to accept besides the known ones (CSP 3
                and deprecated names still deployed), e.g. a directive newer than this package.

        Raises:
            ValueError: invalid configuration (the message names the rule and the header; it is
                also logged at ERROR on the ``c2c_headers`` logger), or an unknown engine name.
            ModuleNotFoundError: ``engine="native"`` without c2c-headers-native installed.
        """
        self.app = app
        try:
            self.rules = compile_rules(
                headers_config,
                use_default,
                docs_url=docs_url,
                redoc_url=redoc_url,
                extra_csp_directives=extra_csp_directives,
            )
        except ValueError as error:
            # Logged as well as raised: an ASGI server may report a failed startup only at INFO
            # (uvicorn's `--lifespan auto`) or not at all; the message names the rule, the header
            # and the reason.
            _LOG.error("ArmorHeaderMiddleware refused its configuration: %s", error)
            raise
        self._engine: Engine = load_engine(engine, self.rules)
        self.engine_name: str = self._engine.name
        _INSTANCES.add(self)
        # Bound once: the two calls of every request.
        self._match_scope = self._engine.match_scope
        self._apply = self._engine.apply
        _LOG.debug("ArmorHeaderMiddleware: %d rules, %s engine", len(self.rules), self.engine_name)

    def _enter(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Match the request, then return the application's run with the headers edited on the way out.

        A plain method (`ChainedMiddleware`): ``__call__`` awaits it, and a c2c middleware wrapping
        this one calls it directly.
        """
        if scope["type"] != "http":
            return self._next(scope, receive, send)
        match = self._match_scope(scope)
        if match is None:
            return self._next(scope, receive, send)
        nonce = match.nonce
        if nonce is not None:
            # A copy: the server may share the lifespan state dict between requests.
            state = scope.get("state")
            scope["state"] = {**state, "nonce": nonce} if state else {"nonce": nonce}

        # Per-request state lives in this function only (never on the middleware instance), bound
        # as defaults (no closure cells); a plain function returning the downstream send's
        # awaitable: no coroutine of its own per message.
        def send_with_headers(
            message: Message, send: Send = send, match: RequestMatch = match, apply: Apply = self._apply
        ) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                message["headers"] = apply(
                    match, message["status"], headers if type(headers) is list else list(headers)
                )
            return send(message)

        return self._next(scope, receive, send_with_headers)
