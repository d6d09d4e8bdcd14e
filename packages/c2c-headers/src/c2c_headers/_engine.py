"""The engine contract shared by the Python and the native (Rust) header engines, and the selector.

This module is the only place that chooses an engine: the rest of the package uses the one chosen
through this contract only. The rule compiler (`_rules.py`, shared by both engines) validates the
user configuration and renders every value to its final string once; an engine only receives the
resulting tuple of `CompiledRule` objects.

Contract (both engines implement it byte for byte; `tests/test_engines_agree.py` proves it):

Construction: ``PythonEngine(rules: Sequence[CompiledRule])``, rules already sorted (stable, by
``order``). The native engine is built by `native_engine`, which is the whole crossing of the
boundary: c2c-headers imports nothing of c2c_headers_native but its public names, and
c2c_headers_native imports nothing of c2c-headers. Each rule crosses as one typed record,
``c2c_headers_native.Rule`` (the fields of `CompiledRule` with ``path_with_slash`` resolved, in the
record's fixed order; Rust reads them by position), and ``request_target`` is handed over for the
scopes Rust does not read itself. A pattern the native engine cannot express exactly
(look-around, back-references...) raises ``c2c_headers_native.PatternNotSupported`` naming the
rule, the field and the pattern; `load_engine` catches it by type and raises
`UnsupportedPatternError` (``native``) or falls back to the python engine (``auto``).

``match(netloc, path, method) -> RequestMatch | None``: select the rules whose ``netloc_pattern``,
``path_pattern`` (both with Python ``re.match`` semantics: anchored at the start only) and
``methods`` (exact, case-sensitive) accept the request. ``path`` is the path relative to
``root_path`` with its leading slash; a path pattern sees it in one of two forms, chosen per
pattern by `CompiledRule.path_with_slash`: as is when the pattern's source starts with ``/`` or
``^/`` (the README's form, ``^/api/``), else without its leading slash (``path[1:]`` when ``path``
starts with ``/``, ``path`` otherwise: c2casgiutils 0.14's form, ``^api/``). Never both forms: a
negative pattern such as ``^(?!api/)`` would then match every path. ``None`` means no rule
matched. When at least one matched rule has ``nonce=True``, the match carries a fresh nonce: 16
bytes from the operating system's CSPRNG, standard base64 with padding (24 characters); otherwise
its nonce is ``None``.

``match_scope(scope) -> RequestMatch | None``: ``match`` applied to
``c2c_headers._scope.request_target(scope)`` (the ``Host`` header or the server address, the path
relative to ``root_path``, the method), in one call: the middleware's only call per request. An
engine may read the scope itself; it must then answer exactly as that function does, errors
included. The native engine reads every well-formed scope (what ASGI servers build) in Rust and
calls the ``request_target`` it was given for any other, so one engine call per request remains.

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
Finally, when the match has a nonce and some header value of the resulting list contains it (the
application's own headers included) and no ``cache-control`` header is present, append
``(b"cache-control", b"no-store")`` (a cached nonce is a reused nonce). The returned list is a new
list; header names emitted by rules are lower-case.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from collections.abc import Sequence
from types import ModuleType
from typing import Literal, Protocol

from c2c_headers._scope import request_target
from c2c_headers.types import Scope

EngineName = Literal["auto", "python", "native"]

# The placeholder users write in a CSP source list (`headers.CSP_NONCE`), compatible with
# c2casgiutils: the quotes are part of it.
CSP_NONCE_PLACEHOLDER = "'nonce'"

# A path pattern whose source starts with one of these sees the path with its leading slash; any
# other sees it without (see `CompiledRule.path_with_slash`).
PATH_WITH_SLASH_PREFIXES = ("/", "^/")


class UnsupportedPatternError(ValueError):
    """An engine cannot express a rule's pattern exactly (raised at construction, never per request)."""


@dataclasses.dataclass(frozen=True, slots=True)
class CompiledRule:
    """One validated, rendered rule: what an engine receives.

    Attributes:
        name: the rule's name in the user configuration (for error messages).
        netloc_pattern: a Python ``re`` pattern applied with ``re.match`` to ``host[:port]``, or None.
        path_pattern: a Python ``re`` pattern applied with ``re.match`` to the path relative to
            ``root_path``, with its leading slash when `path_with_slash`, else without it; or None.
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

    @property
    def path_with_slash(self) -> bool:
        """Whether `path_pattern` sees the path with its leading slash (``/api/x``) or without (``api/x``).

        With: the pattern's source starts with ``/`` or ``^/`` (the form of our README). Without:
        any other pattern (the form of c2casgiutils 0.14, which matched ``api/x``), so that
        ``^api/``, ``(.*/)?c2c/?$`` or ``^(?!api/)`` keep meaning what they meant there. The test is
        on the source text only: ``\\A/api`` or ``(?i)^/api`` are of the second form.
        """
        return self.path_pattern is not None and self.path_pattern.startswith(PATH_WITH_SLASH_PREFIXES)


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

    def match_scope(self, scope: Scope) -> RequestMatch | None:
        """``match(*c2c_headers._scope.request_target(scope))``: the request of an ``http`` scope."""

    def apply(self, match: RequestMatch, status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """Return the response headers after the matched rules' edits."""


ENGINE_ENV_VAR = "C2C_HEADERS_ENGINE"
ENGINE_NAMES: tuple[EngineName, ...] = ("auto", "python", "native")
UNKNOWN_ENGINE = "unknown header engine {name!r} (from {source}); accepted: {accepted}"
NATIVE_MISSING = (
    "the native header engine was requested ({source}) but c2c_headers_native is not installed: "
    "install c2c-headers[native], or use engine='python' / 'auto'"
)
FALLBACK_WARNING = "native header engine cannot run this configuration (%s); falling back to the python engine"

_LOG = logging.getLogger("c2c_headers")


def resolve_engine_name(name: str | None) -> tuple[EngineName, str]:
    """Return the engine name to use and where it came from (argument, environment or default).

    Order: explicit ``name``, else the ``C2C_HEADERS_ENGINE`` environment variable (read now), else
    ``"auto"``. Raises ValueError for a value that is not one of ``auto``, ``python``, ``native``.
    """
    if name is not None:
        value, source = name, "engine= argument"
    elif os.environ.get(ENGINE_ENV_VAR):
        value, source = os.environ[ENGINE_ENV_VAR].strip().lower(), f"environment variable {ENGINE_ENV_VAR}"
    else:
        value, source = "auto", "default"
    for accepted in ENGINE_NAMES:
        if value == accepted:
            return accepted, source
    raise ValueError(UNKNOWN_ENGINE.format(name=value, source=source, accepted=", ".join(ENGINE_NAMES)))


def load_engine(name: str | None, rules: Sequence[CompiledRule]) -> Engine:
    """Build the engine for ``rules``: ``python``, ``native``, or ``auto`` (native when importable).

    ``name`` None reads ``C2C_HEADERS_ENGINE`` (default ``auto``). With ``auto``, a missing native
    module or a pattern the native engine cannot express exactly falls back to the python engine (one
    warning line for the latter); with ``native`` both raise.

    Raises:
        ValueError: unknown engine name.
        ModuleNotFoundError: ``native`` requested but c2c-headers-native is not installed.
        UnsupportedPatternError: ``native`` requested and a rule pattern is not supported by it.
    """
    from c2c_headers._python_engine import PythonEngine  # here: _python_engine imports this module

    engine_name, source = resolve_engine_name(name)
    if engine_name == "python":
        return PythonEngine(rules)
    try:
        native = importlib.import_module("c2c_headers_native")
    except ModuleNotFoundError as error:
        if error.name != "c2c_headers_native":
            raise  # a broken build (a dependency of the module missing) must not look like "not installed"
        if engine_name == "native":
            raise ModuleNotFoundError(NATIVE_MISSING.format(source=source), name=error.name) from error
        return PythonEngine(rules)
    try:
        engine = native_engine(native, rules)
    except native.PatternNotSupported as error:  # by type: the native package's own error
        message = str(error)  # names the pattern, the rule and the field
        if engine_name == "native":
            raise UnsupportedPatternError(f"native header engine: {message}") from error
        _LOG.warning(FALLBACK_WARNING, message)
        return PythonEngine(rules)
    _LOG.debug("c2c_headers: using the native header engine (%s)", source)
    return engine


def native_engine(native: ModuleType, rules: Sequence[CompiledRule]) -> Engine:
    """Build ``native.RuleEngine`` (``native`` is the module ``c2c_headers_native``) for ``rules``.

    The whole crossing of the boundary: each rule as the native package's own typed record
    (``c2c_headers_native.Rule``, fields in its order), and `request_target` for the scopes the
    Rust side does not read itself. Raises ``native.PatternNotSupported`` (a ValueError).
    """
    records = [
        native.Rule(
            rule.name,
            rule.netloc_pattern,
            rule.path_pattern,
            rule.path_with_slash,
            rule.methods,
            rule.status_low,
            rule.status_high,
            rule.content_type_pattern,
            rule.edits,
            rule.nonce,
            rule.keep_existing,
        )
        for rule in rules
    ]
    engine: Engine = native.RuleEngine(records, request_target)
    return engine
