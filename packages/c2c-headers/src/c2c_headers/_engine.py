"""The engine contract shared by the Python and the native (Rust) header engines, and the selector.

This module is the only place that chooses an engine (CONVENTIONS.md E). The rule compiler
(`_rules.py`, shared by both engines) validates the user configuration and renders every value to
its final string once; an engine only receives the resulting tuple of `CompiledRule` objects.

Contract (both engines implement it byte for byte; `tests/test_engines_agree.py` proves it):

Construction: ``Engine(rules: Sequence[CompiledRule])``, rules already sorted (stable, by
``order``). An engine that cannot express a rule exactly raises `UnsupportedPatternError` naming
the rule and the pattern (the native engine for look-around, back-references...).

``match(netloc, path, method) -> RequestMatch | None``: select the rules whose ``netloc_pattern``,
``path_pattern`` (both with Python ``re.match`` semantics: anchored at the start only) and
``methods`` (exact, case-sensitive) accept the request. ``None`` means no rule matched. When at
least one matched rule has ``nonce=True``, the match carries a fresh nonce: 16 bytes from the
operating system's CSPRNG, standard base64 with padding (24 characters); otherwise its nonce is
``None``.

``apply(match, status, headers) -> list[tuple[bytes, bytes]]``: ``headers`` is the ASGI
``http.response.start`` header list (names in any case). For each matched rule, in order: skip it
unless ``status_low <= status <= status_high``; skip it when it has a ``content_type_pattern`` and
the response has no ``content-type`` header or the pattern does not ``re.match`` the first
``content-type`` value (decoded as latin-1, case-insensitively). Otherwise, for each edit of the
rule in order:
  - value ``None``: remove every header of that name (names compared case-insensitively);
  - ``keep_existing`` true and a header of that name is present: leave it;
  - else remove every header of that name and append ``(name, value)`` at the end, with every
    occurrence of the placeholder ``CSP_NONCE_PLACEHOLDER`` (bytes) in the value replaced by
    ``b"'nonce-" + nonce + b"'"``.
Finally, when the match has a nonce and some emitted header value contains it and no
``cache-control`` header is present, append ``(b"cache-control", b"no-store")`` (a cached nonce
is a reused nonce). The returned list is a new list; header names emitted by rules are lower-case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal, Protocol

EngineName = Literal["auto", "python", "native"]

# The placeholder users write in a CSP source list (`headers.CSP_NONCE`), compatible with
# c2casgiutils: the quotes are part of it.
CSP_NONCE_PLACEHOLDER = "'nonce'"


class UnsupportedPatternError(ValueError):
    """An engine cannot express a rule's pattern exactly (raised at construction, never per request)."""


@dataclasses.dataclass(frozen=True, slots=True)
class CompiledRule:
    """One validated, rendered rule: what an engine receives.

    Attributes:
        name: the rule's name in the user configuration (for error messages).
        netloc_pattern: a Python ``re`` pattern applied with ``re.match`` to ``host[:port]``, or None.
        path_pattern: a Python ``re`` pattern applied with ``re.match`` to the path relative to
            ``root_path``, with its leading slash, or None.
        methods: the accepted request methods (exact), or None for any.
        status_low: the lowest accepted response status (inclusive).
        status_high: the highest accepted response status (inclusive).
        content_type_pattern: a Python ``re`` pattern matched case-insensitively with ``re.match``
            against the response content type, or None.
        edits: ``(lower-case header name, final value or None to remove)`` in application order.
        nonce: whether a value holds the nonce placeholder.
        keep_existing: leave a header the response already has instead of replacing it.
    """

    name: str
    netloc_pattern: str | None
    path_pattern: str | None
    methods: frozenset[str] | None
    status_low: int
    status_high: int
    content_type_pattern: str | None
    edits: tuple[tuple[bytes, bytes | None], ...]
    nonce: bool
    keep_existing: bool


class RequestMatch(Protocol):
    """What `Engine.match` returns: an opaque handle that exposes the request's nonce."""

    @property
    def nonce(self) -> str | None:
        """The request's nonce (base64 of 16 random bytes) when a matched rule needs one."""


class Engine(Protocol):
    """The interface both engines satisfy (see the module docstring for the exact semantics)."""

    @property
    def name(self) -> str:
        """``"python"`` or ``"native"``."""

    def match(self, netloc: str, path: str, method: str) -> RequestMatch | None:
        """Select the rules matching the request; None when none does."""

    def apply(self, match: RequestMatch, status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """Return the response headers after the matched rules' edits."""
