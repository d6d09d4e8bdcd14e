"""The typed records of the engine contract: the rule `RuleEngine` reads and the errors it raises.

Plain Python, no dependency: c2c-headers builds a `Rule` per compiled rule and catches the errors by
type; anyone else can do the same without c2c-headers installed.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

__all__ = ["PatternNotSupported", "Rule", "ScopeNotSupported"]


class Rule(NamedTuple):
    """One validated, rendered rule, as `RuleEngine` reads it: by position, in this field order.

    Attributes:
        name: the rule's name (for error messages).
        netloc_pattern: a Python ``re`` pattern, ``re.match``-ed against ``host[:port]``, or None.
        path_pattern: a Python ``re`` pattern, ``re.match``-ed against the request path, or None.
        path_with_slash: whether ``path_pattern`` sees the path with its leading slash (``/api/x``),
            else without it (``api/x``).
        methods: the accepted request methods (exact, case-sensitive), or None for any.
        status_low: the lowest response status the rule applies to (inclusive).
        status_high: the highest response status the rule applies to (inclusive).
        content_type_pattern: a Python ``re`` pattern, ``re.match``-ed case-insensitively against the
            response's first ``content-type`` value (latin-1), or None.
        edits: ``(lower-case header name, final value or None to remove)``, in application order;
            ``'nonce'`` in a value is the nonce placeholder.
        nonce: whether a match of this rule gets a fresh nonce.
        keep_existing: leave a header the response already has instead of replacing it.
    """

    name: str
    netloc_pattern: str | None
    path_pattern: str | None
    path_with_slash: bool
    methods: Collection[str] | None
    status_low: int
    status_high: int
    content_type_pattern: str | None
    edits: tuple[tuple[bytes, bytes | None], ...]
    nonce: bool
    keep_existing: bool


class PatternNotSupported(ValueError):
    """A rule's pattern has no exact equivalent in the Rust ``regex`` dialect (raised by `RuleEngine`).

    The message names the pattern, the rule and the field; the parts are attributes too.
    """

    def __init__(self, rule: str, field: str, pattern: str, reason: str) -> None:
        super().__init__(f"unsupported pattern {pattern!r} in rule {rule!r} ({field}): {reason}")
        self.rule = rule
        self.field = field
        self.pattern = pattern
        self.reason = reason

    def __reduce__(self) -> tuple[type[PatternNotSupported], tuple[str, str, str, str]]:
        return type(self), (self.rule, self.field, self.pattern, self.reason)


class ScopeNotSupported(TypeError):
    """`RuleEngine.match_scope` got a scope it does not read itself, and no ``request_target`` to hand it to."""
