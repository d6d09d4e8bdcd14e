"""The Rust extension of c2c_headers_native (stubs written by hand; checked by mypy.stubtest)."""

from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Any, Protocol, final

from c2c_headers_native._contract import Rule

__all__ = ["ForwardedRewriter", "Match", "RuleEngine", "__version__"]

__version__: str

class _RequestMatch(Protocol):
    """Any request match handle (``apply`` raises TypeError unless it is a `Match` of this engine)."""

    @property
    def nonce(self) -> str | None: ...

@final
class Match:
    """The rules a request matched, and its nonce; made by `RuleEngine.match` only."""

    @property
    def nonce(self) -> str | None:
        """The request's nonce (base64 of 16 random bytes) when a matched rule needs one."""

@final
class RuleEngine:
    """The native rule engine: the contract of ``c2c_headers._engine`` (``Engine``), in Rust."""

    def __new__(
        cls,
        rules: Iterable[Rule],
        request_target: Callable[[MutableMapping[str, Any]], tuple[str, str, str]] | None = None,
    ) -> RuleEngine:
        """Build the engine from validated, rendered `Rule` records (read once, by position).

        ``request_target(scope) -> (netloc, path, method)`` reads the scopes ``match_scope`` does not
        read itself (c2c-headers passes ``c2c_headers._scope.request_target``).

        Raises `PatternNotSupported` (a ValueError naming the rule, the field and the pattern) when a
        pattern has no exact Rust equivalent; TypeError when an item is not a `Rule`.
        """

    @property
    def name(self) -> str:
        """Always ``"native"``."""

    def match(self, netloc: str, path: str, method: str) -> Match | None:
        """Select the rules matching the request; None when none does.

        ``path`` has its leading slash; a rule's path pattern sees it without that slash unless the
        rule's ``path_with_slash`` is true. When a matched rule has ``nonce``, the match carries a
        fresh nonce.
        """

    def match_scope(self, scope: MutableMapping[str, Any]) -> Match | None:
        """``match(*request_target(scope))`` for an ASGI ``http`` scope, in one call.

        Reads a well-formed scope itself (the ``Host`` header, else the server address without the
        scheme's default port; the path relative to ``root_path``; the method) and hands any other to
        the ``request_target`` given at construction (same answer, same errors); without one, raises
        `ScopeNotSupported`.
        """

    def apply(self, match: _RequestMatch, status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """Return the response headers after the matched rules' edits (a new list)."""

@final
class ForwardedRewriter:
    """The per-request part of c2c-headers' ``ForwardedHeadersMiddleware``: known rewrites, in Rust.

    ``cache`` maps the middleware's key ``(scope type, scheme, Host value, ((name, value), ...),
    None)`` to None (nothing to rewrite) or ``(updates, host_line, prefix, original_host)``; the
    Python side fills it, the rewriter only reads it.
    """

    def __new__(
        cls,
        names: Sequence[bytes],
        cache: dict[Any, Any],
        peer_key: str,
        original_key: str,
    ) -> ForwardedRewriter:
        """``names``: the lower-case header names read (``b"host"`` among them); ``peer_key`` and
        ``original_key``: the scope keys of the real peer and of the original values."""

    def rewrite(self, scope: dict[str, Any], client: Any) -> bool:
        """Apply the cached rewrite of a trusted peer's scope; True when done (rewritten, or no
        forwarded header), False with the scope untouched when the key is unknown or the scope not
        a list of ``(bytes, bytes)`` tuples with one ``Host`` line."""
