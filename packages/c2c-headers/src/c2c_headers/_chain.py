"""Stacked c2c middlewares run as one coroutine.

Every pure-ASGI layer costs a coroutine per request: created, started, finished, and resumed
through whenever the application suspends. `ArmorHeaderMiddleware` and `ForwardedHeadersMiddleware`
do all their work before the application runs (the response is edited by a plain send wrapper), so
each is written as `_enter`: a plain method doing that work and returning the awaitable of the
application it wraps. Their ``__call__`` awaits `_enter`; and a c2c middleware whose inner
application is such a middleware calls the inner one's `_enter` directly (`entry`), so a stack
``Forwarded -> Armor -> app`` runs as one coroutine instead of two, with the same behaviour: the
same work in the same order, exceptions raised through the same ``await``.

A subclass that overrides ``__call__`` is called through it, never skipped; so is a class whose
``__call__`` an instrumentation replaced before the stack was built (Sentry's Starlette integration
wraps the class of every middleware added with ``Middleware(...)``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from c2c_headers.types import ASGIApp, Receive, Scope, Send

Entry = Callable[[Scope, Receive, Send], Awaitable[None]]


class Wrapping:
    """A middleware that calls the application it wraps through ``self._next``.

    ``self._next`` is `entry` of ``self.app``, kept in step when ``app`` is assigned.
    """

    _app: ASGIApp
    _next: Entry

    @property
    def app(self) -> ASGIApp:
        """The wrapped ASGI application."""
        return self._app

    @app.setter
    def app(self, app: ASGIApp) -> None:
        self._app = app
        self._next = entry(app)


class ChainedMiddleware(Wrapping):
    """Base of a middleware whose per-request work before the application is synchronous.

    Subclasses implement `_enter`, which returns ``self._next(...)``.
    """

    def _enter(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Do the middleware's work on `scope` and return the awaitable that runs the application."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the middleware and the application (ASGI 3)."""
        await self._enter(scope, receive, send)


def entry(app: ASGIApp) -> Entry:
    """How to call `app` from another middleware: its `_enter` when it is a `ChainedMiddleware`
    whose ``__call__`` is not overridden, else `app` itself."""
    if isinstance(app, ChainedMiddleware) and type(app).__call__ is ChainedMiddleware.__call__:
        return app._enter
    return app


__all__ = ["ChainedMiddleware", "Entry", "Wrapping", "entry"]
