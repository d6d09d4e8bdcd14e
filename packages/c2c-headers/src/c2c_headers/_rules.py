"""The rule compiler: validates a ``headers_config`` and renders every value once, at construction.

Both engines receive the result (a sorted tuple of `CompiledRule`); validation, rendering and the
error messages live here only, so that both engines accept and refuse the same configurations with
the same messages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Required, TypeAlias, TypedDict

from c2c_headers._csp import CSPError, extra_directives, has_default_src, render_csp
from c2c_headers._engine import CSP_NONCE_PLACEHOLDER, CompiledRule

_LOG = logging.getLogger("c2c_headers")

HeaderValue: TypeAlias = str | Sequence[str] | Mapping[str, Any] | None
"""A rule's header value: str as is, list joined, dict rendered (CSP, Permissions-Policy...), None removes."""

Header: TypeAlias = HeaderValue
"""c2casgiutils 0.14's name for `HeaderValue` (``c2casgiutils.headers.Header``): the same type."""


class HeaderMatcher(TypedDict, total=False):
    """One rule of ``headers_config`` (every field optional except ``headers``).

    Attributes:
        netloc_match: regex matched (``re.match``, anchored at the start only) against the
            request's ``host[:port]`` (the ``Host`` header, else the server address).
        path_match: regex matched (``re.match``) against the request path relative to ``root_path``.
            A pattern whose source starts with ``/`` or ``^/`` sees the path with its leading slash
            (``r"^/api/"`` matches ``/api/x``); any other sees it without, as c2casgiutils 0.14 did
            (``r"^api/"`` matches ``/api/x``, ``r"^(?!api/)"`` every path outside ``/api/``; at
            the root the path is ``/``, or ``""`` without its slash).
        methods: the request methods the rule applies to (exact, case-sensitive), e.g. ``["GET"]``.
        status_code: a response status, or an inclusive ``(low, high)`` range.
        content_type_match: regex matched case-insensitively against the response ``Content-Type``.
        order: rules are stably sorted by ``order`` (default 0); later rules win.
        headers: header name -> value (str, list, dict, or None to remove the header).
        keep_existing: when true, a header the response already has (set by the application or an
            earlier rule) is left as is instead of being replaced; removals (None) still apply.
    """

    netloc_match: str
    path_match: str
    methods: Sequence[str]
    status_code: int | tuple[int, int]
    content_type_match: str
    order: int
    # `Any` rather than `HeaderValue`: mypy cannot infer `{...} if x else {}` against the union, and
    # every value is validated at construction anyway.
    headers: Required[Mapping[str, Any]]
    keep_existing: bool


HeadersConfig: TypeAlias = Mapping[str, HeaderMatcher | Mapping[str, Any]]
"""``headers_config``: rule name -> rule (a `HeaderMatcher` or a plain dict; names label error messages)."""

CSP_NONCE: Final = CSP_NONCE_PLACEHOLDER
"""Placeholder to write in a CSP source list; replaced by ``'nonce-<value>'`` on each response."""

DEFAULT_DOCS_URL: Final = "/docs"
"""FastAPI's default ``docs_url``: the page the default ``docs`` rule applies to."""
DEFAULT_REDOC_URL: Final = "/redoc"
"""FastAPI's default ``redoc_url``: the page the default ``redoc`` rule applies to."""

# Error message templates (Starlette style: constants at module top).
RULE_NOT_MAPPING = "headers_config rule {rule!r}: a rule must be a mapping, got {type}"
RULE_UNKNOWN_FIELDS = "headers_config rule {rule!r}: unknown field(s) {fields}; accepted: {accepted}"
RULE_FIELD_ERROR = "headers_config rule {rule!r}, field {field!r}: {problem}"
RULE_HEADER_ERROR = "headers_config rule {rule!r}, header {header!r}: {problem}"

_FIELDS: Final = frozenset(HeaderMatcher.__annotations__)
_CSP_HEADERS: Final = frozenset({"content-security-policy", "content-security-policy-report-only"})
_PERMISSIONS_POLICY: Final = "permissions-policy"
# Headers whose list syntax is comma-separated (RFC 9110 lists); every other list joins with "; ".
COMMA_LIST_HEADERS: Final = frozenset(
    {
        "access-control-allow-headers",
        "access-control-allow-methods",
        "access-control-expose-headers",
        "allow",
        "cache-control",
        "clear-site-data",
        "permissions-policy",
        "referrer-policy",
        "vary",
        "x-robots-tag",
    }
)
# RFC 9110 section 5.6.2 token.
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters are never allowed in a field value (RFC 9110 section 5.5), except HTAB.
_CTL_RE: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PP_FEATURE_RE: Final = re.compile(r"[a-z*][a-z0-9_.*-]*")
_PP_BARE_ITEMS: Final = frozenset({"self", "src", "*"})


# Internal: a problem with one header value, completed with the rule and header names.
_RuleError = CSPError


def _validate_value(value: str) -> str:
    if _CTL_RE.search(value):
        raise _RuleError("the value contains a control character (CR, LF, NUL...): header injection")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise _RuleError("the value is not latin-1 (HTTP header values are bytes; percent-encode it)") from None
    if value != value.strip(" \t"):
        raise _RuleError("the value has leading or trailing whitespace")
    return value


def _str_items(items: Iterable[object], what: str) -> list[str]:
    result = []
    for item in items:
        if not isinstance(item, str):
            raise _RuleError(f"unsupported value type {type(item).__name__} in {what} (expected str)")
        result.append(item)
    return result


def _render_pp_allowlist(feature: str, allowlist: object) -> str:
    if isinstance(allowlist, str):
        return allowlist
    if not isinstance(allowlist, list | tuple):
        raise _RuleError(f"unsupported value type {type(allowlist).__name__} for Permissions-Policy {feature!r}")
    items = _str_items(allowlist, f"Permissions-Policy {feature!r}")
    if items == ["*"]:
        return "*"
    rendered = []
    for item in items:
        if item in _PP_BARE_ITEMS or (len(item) >= 2 and item[0] == item[-1] == '"'):
            rendered.append(item)
        elif '"' in item or "\\" in item or " " in item:
            raise _RuleError(f"Permissions-Policy {feature!r}: invalid origin {item!r}")
        else:
            rendered.append(f'"{item}"')
    return "(" + " ".join(rendered) + ")"


def _render_dict(header: str, value: Mapping[object, object]) -> str:
    parts = []
    for key, item in value.items():
        if not isinstance(key, str) or not _TOKEN_RE.fullmatch(key):
            raise _RuleError(f"dict key {key!r} is not a token")
        if header == _PERMISSIONS_POLICY:
            if not _PP_FEATURE_RE.fullmatch(key):
                raise _RuleError(f"invalid Permissions-Policy feature {key!r} (lower-case token)")
            parts.append(f"{key}={_render_pp_allowlist(key, item)}")
        elif item is True:
            parts.append(key)
        elif isinstance(item, str) or (isinstance(item, int) and not isinstance(item, bool)):
            parts.append(f"{key}={item}")
        elif isinstance(item, list | tuple):
            parts.append(f"{key}={' '.join(_str_items(item, f'dict key {key!r}'))}")
        else:
            raise _RuleError(f"unsupported value type {type(item).__name__} for dict key {key!r}")
    return (", " if header in COMMA_LIST_HEADERS else "; ").join(parts)


def render_value(header: str, value: object, extra_csp_directives: frozenset[str] = frozenset()) -> str | None:
    """Render one header value to its final string (None = remove); raise ValueError when invalid.

    Args:
        header: the header name (any case).
        value: str, list/tuple of str, dict, or None.
        extra_csp_directives: CSP directive names accepted besides the known ones.
    """
    lower = header.lower()
    if value is None:
        return None
    if lower in _CSP_HEADERS and isinstance(value, str | list | tuple | Mapping):
        return _validate_value(render_csp(value, extra_csp_directives))
    if isinstance(value, str):
        return _validate_value(value)
    if isinstance(value, list | tuple):
        separator = ", " if lower in COMMA_LIST_HEADERS else "; "
        return _validate_value(separator.join(_str_items(value, "the list")))
    if isinstance(value, Mapping):
        return _validate_value(_render_dict(lower, value))
    raise _RuleError(f"unsupported value type {type(value).__name__} (expected str, list, dict or None)")


def _compile_pattern(rule: str, field: str, pattern: object, flags: int = 0) -> str:
    if not isinstance(pattern, str):
        raise ValueError(RULE_FIELD_ERROR.format(rule=rule, field=field, problem="must be a regex string"))
    try:
        re.compile(pattern, flags)
    except re.error as error:
        raise ValueError(RULE_FIELD_ERROR.format(rule=rule, field=field, problem=f"invalid regex: {error}")) from None
    return pattern


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _compile_status(rule: str, status: object) -> tuple[int, int]:
    if isinstance(status, int) and not isinstance(status, bool):
        low = high = status
    elif isinstance(status, list | tuple) and len(status) == 2 and all(_is_int(s) for s in status):
        low, high = status
    else:
        problem = "must be an int or an inclusive (low, high) pair of ints"
        raise ValueError(RULE_FIELD_ERROR.format(rule=rule, field="status_code", problem=problem))
    if not 0 <= low <= high <= 999:
        problem = f"range ({low}, {high}) must satisfy 0 <= low <= high <= 999"
        raise ValueError(RULE_FIELD_ERROR.format(rule=rule, field="status_code", problem=problem))
    return low, high


def _compile_methods(rule: str, methods: object) -> frozenset[str]:
    if isinstance(methods, str) or not isinstance(methods, Iterable):
        problem = 'must be a list of method names, e.g. ["GET", "HEAD"]'
        raise ValueError(RULE_FIELD_ERROR.format(rule=rule, field="methods", problem=problem))
    result = []
    for method in methods:
        if not isinstance(method, str) or not _TOKEN_RE.fullmatch(method):
            problem = f"{method!r} is not a method name (token)"
            raise ValueError(RULE_FIELD_ERROR.format(rule=rule, field="methods", problem=problem))
        result.append(method)
    if not result:
        problem = "is empty: the rule would never apply (omit it to match every method)"
        raise ValueError(RULE_FIELD_ERROR.format(rule=rule, field="methods", problem=problem))
    return frozenset(result)


def compile_rule(
    name: str, rule: object, extra_csp_directives: frozenset[str] = frozenset()
) -> tuple[int, CompiledRule]:
    """Validate and render one rule; return ``(order, CompiledRule)``.

    A CSP without ``default-src`` is logged as a warning (everything it does not name is allowed).

    Args:
        name: the rule's name (in error messages).
        rule: the rule (see `HeaderMatcher`).
        extra_csp_directives: CSP directive names accepted besides the known ones.

    Raises:
        ValueError: naming the rule and the header or field at fault.
    """
    if not isinstance(rule, Mapping):
        raise ValueError(RULE_NOT_MAPPING.format(rule=name, type=type(rule).__name__))
    unknown = sorted(str(key) for key in rule if key not in _FIELDS)
    if unknown:
        raise ValueError(
            RULE_UNKNOWN_FIELDS.format(rule=name, fields=", ".join(unknown), accepted=", ".join(sorted(_FIELDS)))
        )
    headers = rule.get("headers")
    if not isinstance(headers, Mapping):
        problem = "is required and must map header names to values"
        raise ValueError(RULE_FIELD_ERROR.format(rule=name, field="headers", problem=problem))
    order = rule.get("order", 0)
    if not _is_int(order):
        raise ValueError(RULE_FIELD_ERROR.format(rule=name, field="order", problem="must be an int"))
    keep_existing = rule.get("keep_existing", False)
    if not isinstance(keep_existing, bool):
        raise ValueError(RULE_FIELD_ERROR.format(rule=name, field="keep_existing", problem="must be a bool"))

    edits: list[tuple[bytes, bytes | None]] = []
    seen: set[str] = set()
    for header, value in headers.items():
        if not isinstance(header, str) or not _TOKEN_RE.fullmatch(header):
            problem = "the header name is not a token (RFC 9110: letters, digits and !#$%&'*+-.^_`|~)"
            raise ValueError(RULE_HEADER_ERROR.format(rule=name, header=header, problem=problem))
        if header.lower() in seen:
            problem = "the header appears twice in this rule (names are case-insensitive)"
            raise ValueError(RULE_HEADER_ERROR.format(rule=name, header=header, problem=problem))
        seen.add(header.lower())
        try:
            rendered = render_value(header, value, extra_csp_directives)
        except _RuleError as error:
            raise ValueError(RULE_HEADER_ERROR.format(rule=name, header=header, problem=error)) from None
        if rendered is not None and header.lower() in _CSP_HEADERS and not has_default_src(rendered):
            _LOG.warning(
                "headers_config rule %r, header %r: the CSP has no default-src: every fetch directive it "
                "does not name allows any source",
                name,
                header,
            )
        edits.append(
            (header.lower().encode("latin-1"), None if rendered is None else rendered.encode("latin-1")),
        )

    netloc = rule.get("netloc_match")
    path = rule.get("path_match")
    content_type = rule.get("content_type_match")
    methods = rule.get("methods")
    status = rule.get("status_code")
    low, high = (0, 999) if status is None else _compile_status(name, status)
    compiled = CompiledRule(
        name=name,
        netloc_pattern=None if netloc is None else _compile_pattern(name, "netloc_match", netloc),
        path_pattern=None if path is None else _compile_pattern(name, "path_match", path),
        methods=None if methods is None else _compile_methods(name, methods),
        status_low=low,
        status_high=high,
        content_type_pattern=(
            None if content_type is None else _compile_pattern(name, "content_type_match", content_type, re.IGNORECASE)
        ),
        edits=tuple(edits),
        nonce=any(value is not None and CSP_NONCE_PLACEHOLDER.encode() in value for _, value in edits),
        keep_existing=keep_existing,
    )
    return order, compiled


def compile_rules(
    headers_config: HeadersConfig | None,
    use_default: bool = True,
    *,
    docs_url: str | None = DEFAULT_DOCS_URL,
    redoc_url: str | None = DEFAULT_REDOC_URL,
    extra_csp_directives: Iterable[str] | None = None,
) -> tuple[CompiledRule, ...]:
    """Compile the default rules (if ``use_default``) then ``headers_config``, stably sorted by ``order``.

    Args:
        headers_config: rule name -> rule.
        use_default: start from the default rules (`default_headers_config`).
        docs_url: the Swagger UI page of the default ``docs`` rule (FastAPI's ``app.docs_url``,
            relative to ``root_path``); None drops the rule.
        redoc_url: the same for the ReDoc page (``app.redoc_url``) and the ``redoc`` rule.
        extra_csp_directives: CSP directive names accepted besides the known ones.

    Raises:
        ValueError: naming the rule and the header or field at fault.
    """
    if headers_config is not None and not isinstance(headers_config, Mapping):
        raise ValueError(f"headers_config must map rule names to rules, got {type(headers_config).__name__}")
    extras = extra_directives(extra_csp_directives)
    compiled: list[tuple[int, CompiledRule]] = []
    if use_default:
        # From DEFAULT_HEADERS_CONFIG as it is now: an application may have edited it (as with 0.14).
        defaults = _with_page_urls(DEFAULT_HEADERS_CONFIG, docs_url, redoc_url)
        compiled.extend(compile_rule(name, rule, extras) for name, rule in defaults.items())
    for name, rule in (headers_config or {}).items():
        if not isinstance(name, str):
            raise ValueError(f"headers_config rule names must be str, got {name!r}")
        compiled.append(compile_rule(name, rule, extras))
    compiled.sort(key=lambda item: item[0])  # stable: defaults first, then insertion order
    return tuple(rule for _, rule in compiled)


CSP_HARDENING: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "base-uri": ("'self'",),
        "form-action": ("'self'",),
        "object-src": ("'none'",),
        "frame-ancestors": ("'none'",),
    }
)
"""The directives the default policies add to `default-src` (read-only): `base-uri` and `form-action`
do not fall back to `default-src`, so without them an injected `<base>` redirects the page's
relative scripts (nonce included) and an injected form posts anywhere; no plugins, no framing.
Spread it into a rule's own policy: ``{"default-src": ["'self'"], ..., **CSP_HARDENING}``."""
_CSP_HARDENING: Final[dict[str, list[str]]] = {name: list(sources) for name, sources in CSP_HARDENING.items()}
_SWAGGER_CDN: Final = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"
_REDOC_CDN: Final = "https://cdn.jsdelivr.net/npm/redoc@2/"


def _page_pattern(argument: str, url: object) -> str:
    """``^<url>/?$``: exactly one page, relative to ``root_path`` (a pattern that sees the leading slash)."""
    if not isinstance(url, str) or not url.startswith("/") or _CTL_RE.search(url) or len(url.rstrip("/")) < 2:
        raise ValueError(f"{argument} must be a path such as {DEFAULT_DOCS_URL!r} (or None), got {url!r}")
    return "^" + re.escape(url.rstrip("/")) + "/?$"


def default_headers_config(
    *, docs_url: str | None = DEFAULT_DOCS_URL, redoc_url: str | None = DEFAULT_REDOC_URL
) -> dict[str, HeaderMatcher]:
    """The default rules, with the ``docs`` and ``redoc`` rules on FastAPI's own pages only.

    Args:
        docs_url: the Swagger UI page (FastAPI's ``app.docs_url``, relative to ``root_path``): the
            ``docs`` rule matches that path, with or without a trailing slash, and no other; None
            leaves the rule out.
        redoc_url: the same for the ReDoc page (``app.redoc_url``) and the ``redoc`` rule.

    Raises:
        ValueError: a URL that is not an absolute path.
    """
    rules: dict[str, HeaderMatcher] = {
        "default": {
            "order": -1,
            "headers": {
                "Content-Security-Policy": {"default-src": ["'self'"], **_CSP_HARDENING},
                "X-Frame-Options": "DENY",
                "Strict-Transport-Security": "max-age=31536000; includeSubDomains; preload",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Permissions-Policy": ["geolocation=()", "microphone=()"],
                "X-DNS-Prefetch-Control": "off",
                "Origin-Agent-Cluster": "?1",
                "X-Permitted-Cross-Domain-Policies": "none",
                "Cross-Origin-Embedder-Policy": "require-corp",
                "Cross-Origin-Opener-Policy": "same-origin",
                "Cross-Origin-Resource-Policy": "same-origin",
            },
        },
        # HSTS on http://localhost pins the browser to https for every local project: drop it for pages.
        "localhost": {
            "netloc_match": r"^localhost(:\d+)?$",
            "content_type_match": r"^text/html",
            "headers": {"Strict-Transport-Security": None},
        },
        # The /c2c index page is self-contained: its own scripts and styles, carried by nonces.
        "c2c": {
            "path_match": r"^(.*/)?c2c/?$",
            "content_type_match": r"^text/html",
            "status_code": 200,
            "headers": {
                "Content-Security-Policy": {
                    "default-src": ["'self'"],
                    "script-src": ["'self'", CSP_NONCE],
                    "style-src": ["'self'", CSP_NONCE],
                    **_CSP_HARDENING,
                },
            },
        },
        # FastAPI's Swagger UI page: CDN script and style, one inline script, the FastAPI favicon.
        "docs": {
            "path_match": r"^/docs/?$",
            "content_type_match": r"^text/html",
            "headers": {
                "Content-Security-Policy": {
                    "default-src": ["'self'"],
                    "script-src-elem": ["'self'", "'unsafe-inline'", _SWAGGER_CDN],
                    "style-src-elem": ["'self'", _SWAGGER_CDN],
                    "img-src": ["'self'", "data:", "https://fastapi.tiangolo.com/img/"],
                    **_CSP_HARDENING,
                },
                "Cross-Origin-Embedder-Policy": None,
            },
        },
        # FastAPI's ReDoc page: CDN script, Google Fonts, inline styles, blob: workers.
        "redoc": {
            "path_match": r"^/redoc/?$",
            "content_type_match": r"^text/html",
            "headers": {
                "Content-Security-Policy": {
                    "default-src": ["'self'"],
                    "script-src-elem": ["'self'", "'unsafe-inline'", _REDOC_CDN],
                    "style-src": ["'self'", "'unsafe-inline'", "https://fonts.googleapis.com/"],
                    "font-src": ["'self'", "https://fonts.gstatic.com/"],
                    "img-src": ["'self'", "data:", "https://cdn.redoly.com/", "https://fastapi.tiangolo.com/img/"],
                    "worker-src": ["'self'", "blob:"],
                    **_CSP_HARDENING,
                },
                "Cross-Origin-Embedder-Policy": None,
            },
        },
    }
    return _with_page_urls(rules, docs_url, redoc_url)


def _with_page_urls(
    rules: Mapping[str, HeaderMatcher], docs_url: str | None, redoc_url: str | None
) -> dict[str, HeaderMatcher]:
    """A copy of ``rules`` whose ``docs`` / ``redoc`` rules match these URLs (None: left out)."""
    result = dict(rules)
    for name, argument, url in (("docs", "docs_url", docs_url), ("redoc", "redoc_url", redoc_url)):
        if name not in result:
            continue
        if url is None:
            del result[name]
        else:
            rule = result[name].copy()
            rule["path_match"] = _page_pattern(argument, url)
            result[name] = rule
    return result


DEFAULT_HEADERS_CONFIG: Final[dict[str, HeaderMatcher]] = default_headers_config()
"""The default rules (applied first when ``use_default`` is true); see the README for the table."""
