"""Content-Security-Policy validation and rendering, at construction (the rule compiler's CSP part).

A policy is refused, rather than rendered wider than written, when a browser would read it
differently from its author: a directive name that browsers ignore (camelCase, a typo, a trailing
dash), a directive name among the sources (a missing ``;``), a control character or a whitespace
other than the space inside a source, an unknown quoted keyword (``'unsafe-inlin'``), an unquoted
keyword (``self`` is a host name), a ``;`` or ``,`` inside a source, a duplicate directive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from c2c_headers._engine import CSP_NONCE_PLACEHOLDER

KNOWN_CSP_DIRECTIVES: Final = frozenset(
    {
        # CSP 3 fetch directives
        "default-src",
        "child-src",
        "connect-src",
        "fenced-frame-src",
        "font-src",
        "frame-src",
        "img-src",
        "manifest-src",
        "media-src",
        "object-src",
        "script-src",
        "script-src-attr",
        "script-src-elem",
        "style-src",
        "style-src-attr",
        "style-src-elem",
        "worker-src",
        # document, navigation and reporting directives
        "base-uri",
        "sandbox",
        "form-action",
        "frame-ancestors",
        "report-to",
        "report-uri",
        "webrtc",
        # Trusted Types, Upgrade Insecure Requests
        "require-trusted-types-for",
        "trusted-types",
        "upgrade-insecure-requests",
        # deprecated or experimental, still deployed
        "block-all-mixed-content",
        "navigate-to",
        "plugin-types",
        "prefetch-src",
        "referrer",
        "reflected-xss",
        "require-sri-for",
        "disown-opener",
        "treat-as-public-address",
    }
)
"""The directive names accepted without ``extra_csp_directives``: CSP 3 plus deprecated names still in use."""

# Source keywords: only meaningful quoted (matched case-insensitively, as browsers do).
QUOTED_KEYWORDS: Final = frozenset(
    {
        "'self'",
        "'none'",
        "'unsafe-inline'",
        "'unsafe-eval'",
        "'strict-dynamic'",
        "'unsafe-hashes'",
        "'report-sample'",
        "'wasm-unsafe-eval'",
        "'inline-speculation-rules'",
        "'unsafe-allow-redirects'",
    }
)
# Quoted values that belong to one directive's own grammar.
_DIRECTIVE_QUOTED: Final[Mapping[str, frozenset[str]]] = {
    "require-trusted-types-for": frozenset({"'script'"}),
    "trusted-types": frozenset({"'allow-duplicates'"}),
    "webrtc": frozenset({"'allow'", "'block'"}),
}
_QUOTED_NONCE_OR_HASH_RE: Final = re.compile(r"'(?:nonce|sha256|sha384|sha512)-[A-Za-z0-9+/_-]+={0,2}'", re.IGNORECASE)
# Keywords that only mean something quoted: unquoted, the browser reads them as host names.
_UNQUOTED_KEYWORDS: Final = frozenset(keyword.strip("'") for keyword in QUOTED_KEYWORDS) | {"nonce"}
_UNQUOTED_NONCE_OR_HASH_RE: Final = re.compile(r"(?:nonce|sha256|sha384|sha512)-", re.IGNORECASE)
# Lower-case dash-case: what browsers recognise (they ignore any other name, silently).
DIRECTIVE_NAME_RE: Final = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
# A control character, or any whitespace other than the space that separates sources.
_BAD_CHAR_RE: Final = re.compile(r"[\x00-\x1f\x7f]|[^\S ]")
_CAMEL_HUMP_RE: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class CSPError(ValueError):
    """One problem with a header value (completed with the rule and header names by the compiler)."""


def extra_directives(names: Iterable[str] | None) -> frozenset[str]:
    """Validate ``extra_csp_directives`` (lower-case dash-case names) and return them as a set.

    Raises:
        ValueError: a name that is not lower-case dash-case, or a single str instead of a list.
    """
    value: object = names  # checked at run time: the argument comes from user code
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError('extra_csp_directives must be a list of directive names, e.g. ["fenced-frame-src"]')
    result = set()
    for name in value:
        if not isinstance(name, str) or not DIRECTIVE_NAME_RE.fullmatch(name):
            raise ValueError(f"extra_csp_directives: {name!r} is not a lower-case dash-case directive name")
        result.add(name)
    return frozenset(result)


def _suggestion(name: str) -> str | None:
    """The dash-case name a browser would need, when ``name`` is a known directive written otherwise."""
    for candidate in (_CAMEL_HUMP_RE.sub("-", name).lower(), name.lower()):
        candidate = re.sub(r"[-_]+", "-", candidate).strip("-")
        if candidate in KNOWN_CSP_DIRECTIVES:
            return candidate
    return None


def _check_name(directive: object, extras: frozenset[str]) -> str:
    if not isinstance(directive, str):
        raise CSPError(f"CSP directive names must be str, got {type(directive).__name__}")
    if DIRECTIVE_NAME_RE.fullmatch(directive):
        if directive in KNOWN_CSP_DIRECTIVES or directive in extras:
            return directive
        import difflib  # only on this error path: the package's import stays cheap

        close = difflib.get_close_matches(directive, sorted(KNOWN_CSP_DIRECTIVES | extras), n=1, cutoff=0.8)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise CSPError(
            f"unknown CSP directive {directive!r}: browsers ignore it ({hint}declare a newer directive "
            "with extra_csp_directives=[...])"
        )
    suggestion = _suggestion(directive)
    if suggestion is not None:
        raise CSPError(
            f"CSP directive name {directive!r} is not lower-case dash-case, which browsers ignore: write {suggestion!r}"
        )
    raise CSPError(f"invalid CSP directive name {directive!r} (lower-case dash-case, e.g. 'default-src')")


def _check_quoted(directive: str, token: str) -> None:
    lower = token.lower()
    if (
        lower in QUOTED_KEYWORDS
        or token == CSP_NONCE_PLACEHOLDER
        or _QUOTED_NONCE_OR_HASH_RE.fullmatch(token)
        or lower in _DIRECTIVE_QUOTED.get(directive, ())
    ):
        return
    raise CSPError(
        f"CSP directive {directive!r}: unknown quoted keyword {token!r} (known: 'self', 'none', "
        "'unsafe-inline', 'strict-dynamic', 'nonce-…', 'sha256-…'...; CSP_NONCE for the nonce)"
    )


def _check_token(directive: str, token: str, names: frozenset[str]) -> None:
    if ";" in token or "," in token:
        raise CSPError(f"CSP directive {directive!r}: source {token!r} contains ';' or ','")
    if token.startswith("'"):
        _check_quoted(directive, token)
        return
    lower = token.lower()
    if lower in _UNQUOTED_KEYWORDS or _UNQUOTED_NONCE_OR_HASH_RE.match(token):
        raise CSPError(f"CSP directive {directive!r}: keyword {token!r} must be quoted: \"'{token}'\"")
    if lower in names:
        raise CSPError(
            f"CSP directive {directive!r}: source {token!r} is a directive name (a missing ';' between directives?)"
        )


def _sources(directive: str, items: list[str], names: frozenset[str]) -> list[str]:
    tokens: list[str] = []
    for item in items:
        if _BAD_CHAR_RE.search(item):
            raise CSPError(
                f"CSP directive {directive!r}: {item!r} has a control character or a whitespace other than "
                "the space inside a source"
            )
        tokens.extend(item.split(" "))
    tokens = [token for token in tokens if token]
    for token in tokens:
        _check_token(directive, token, names)
    return tokens


def _render_directives(directives: list[tuple[object, list[str]]], extras: frozenset[str]) -> str:
    names = KNOWN_CSP_DIRECTIVES | extras
    seen: dict[object, object] = {}
    parts = []
    for directive, items in directives:
        key = (_suggestion(directive) or directive.lower()) if isinstance(directive, str) else directive
        if key in seen:
            raise CSPError(f"duplicate CSP directive {directive!r} (the same as {seen[key]!r})")
        seen[key] = directive
        name = _check_name(directive, extras)
        parts.append(" ".join([name, *_sources(name, items, names)]))
    if not parts:
        raise CSPError("empty Content-Security-Policy (use None to remove the header)")
    return "; ".join(parts)


def _parse_policy(policy: str) -> list[tuple[object, list[str]]]:
    if "," in policy:
        raise CSPError("a ',' in a CSP value starts a second policy; write one policy per rule")
    if _BAD_CHAR_RE.search(policy):
        raise CSPError("the CSP has a control character or a whitespace other than the space")
    directives: list[tuple[object, list[str]]] = []
    for part in policy.split(";"):
        words = part.split(" ")
        words = [word for word in words if word]
        if words:
            directives.append((words[0], [" ".join(words[1:])]))
    return directives


def _str_items(items: Iterable[object], what: str) -> list[str]:
    result = []
    for item in items:
        if not isinstance(item, str):
            raise CSPError(f"unsupported value type {type(item).__name__} in {what} (expected str)")
        result.append(item)
    return result


def render_csp(value: object, extras: frozenset[str] = frozenset()) -> str:
    """Validate a CSP (str, list of str, or dict directive -> str or list of str) and render it.

    Args:
        value: the configured policy.
        extras: directive names accepted besides `KNOWN_CSP_DIRECTIVES`.

    Raises:
        CSPError: (a ValueError) what is wrong, naming the directive.
    """
    if isinstance(value, str):
        return _render_directives(_parse_policy(value), extras)
    if isinstance(value, Mapping):
        directives: list[tuple[object, list[str]]] = []
        for directive, sources in value.items():
            if isinstance(sources, str):
                directives.append((directive, [sources]))
            elif isinstance(sources, list | tuple):
                directives.append((directive, _str_items(sources, f"CSP directive {directive!r}")))
            else:
                raise CSPError(f"unsupported value type {type(sources).__name__} for CSP directive {directive!r}")
        return _render_directives(directives, extras)
    if not isinstance(value, list | tuple):
        raise CSPError(f"unsupported value type {type(value).__name__} for a CSP")
    parsed: list[tuple[object, list[str]]] = []
    for item in _str_items(value, "the CSP list"):
        parsed.extend(_parse_policy(item))
    return _render_directives(parsed, extras)


def has_default_src(rendered: str) -> bool:
    """Whether a policy rendered by `render_csp` has a ``default-src`` directive."""
    return "default-src" in _directive_names(rendered)


NO_FALLBACK_DIRECTIVES = ("base-uri", "form-action")
"""Directives that do not fall back to ``default-src`` and whose absence leaves an injection open:
``<base href>`` (relative scripts, nonce included, loaded from elsewhere) and ``<form action>``."""


def missing_no_fallback(rendered: str) -> list[str]:
    """The `NO_FALLBACK_DIRECTIVES` a policy rendered by `render_csp` lacks (none: ``[]``)."""
    names = _directive_names(rendered)
    return [name for name in NO_FALLBACK_DIRECTIVES if name not in names]


def _directive_names(rendered: str) -> set[str]:
    return {part.split(" ", 1)[0] for part in rendered.split("; ")}
