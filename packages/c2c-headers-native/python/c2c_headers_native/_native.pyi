"""The Rust extension of c2c_headers_native (stubs written by hand; checked by mypy.stubtest)."""

from collections.abc import MutableMapping, Sequence
from typing import Any, Protocol, final

__all__ = ["Match", "RuleEngine", "__version__"]

__version__: str

class _CompiledRule(Protocol):
    """What the engine reads from each rule: the attributes of ``c2c_headers._engine.CompiledRule``."""

    @property
    def name(self) -> str: ...
    @property
    def netloc_pattern(self) -> str | None: ...
    @property
    def path_pattern(self) -> str | None: ...
    @property
    def path_with_slash(self) -> bool:
        """Whether ``path_pattern`` sees the path with its leading slash (``/api/x``), else without (``api/x``)."""
    @property
    def methods(self) -> frozenset[str] | None: ...
    @property
    def status_low(self) -> int: ...
    @property
    def status_high(self) -> int: ...
    @property
    def content_type_pattern(self) -> str | None: ...
    @property
    def edits(self) -> tuple[tuple[bytes, bytes | None], ...]: ...
    @property
    def nonce(self) -> bool: ...
    @property
    def keep_existing(self) -> bool: ...

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

    def __new__(cls, rules: Sequence[_CompiledRule]) -> RuleEngine:
        """Build the engine from validated, rendered rules, read once.

        Raises ValueError starting with ``"unsupported pattern"`` (naming the rule, the field and the
        pattern) when a pattern has no exact Rust equivalent.
        """

    @property
    def name(self) -> str:
        """Always ``"native"``."""

    def match(self, netloc: str, path: str, method: str) -> Match | None:
        """Select the rules matching the request; None when none does.

        ``path`` has its leading slash; a rule's path pattern sees it without that slash unless the
        rule's ``path_with_slash`` is true.
        """

    def match_scope(self, scope: MutableMapping[str, Any]) -> Match | None:
        """``match`` on the netloc, relative path and method of an ASGI ``http`` scope, in one call.

        Reads a well-formed scope itself and hands any other to ``c2c_headers._scope.request_target``
        (same answer, same errors; ModuleNotFoundError when c2c-headers is not installed).
        """

    def apply(self, match: _RequestMatch, status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """Return the response headers after the matched rules' edits (a new list)."""
