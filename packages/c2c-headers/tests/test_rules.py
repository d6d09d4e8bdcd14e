"""The rule compiler: rendering truth tables, validation errors, ordering, Hypothesis on untrusted values."""

from __future__ import annotations

import re
from typing import Any

import pytest
from _c2c_headers_helpers import header_values, http_scope, make_app, response_headers
from hypothesis import example, given
from hypothesis import strategies as st

from c2c_headers import CSP_NONCE, DEFAULT_HEADERS_CONFIG, ArmorHeaderMiddleware
from c2c_headers._csp import KNOWN_CSP_DIRECTIVES
from c2c_headers._rules import compile_rule, compile_rules, default_headers_config, render_value


def _render(header: str, value: Any) -> str | None:
    return render_value(header, value)


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        # str: as is
        ("X-Custom", "value", "value"),
        ("X-Empty", "", ""),
        # None: remove
        ("Server", None, None),
        # lists: "; " by default, ", " for comma-list headers
        ("Strict-Transport-Security", ["max-age=1", "includeSubDomains"], "max-age=1; includeSubDomains"),
        ("X-Custom", ("a", "b"), "a; b"),
        ("Cache-Control", ["no-cache", "no-store", "must-revalidate"], "no-cache, no-store, must-revalidate"),
        ("cache-control", ["public", "max-age=3600"], "public, max-age=3600"),
        ("Permissions-Policy", ["geolocation=()", "microphone=()"], "geolocation=(), microphone=()"),
        ("Vary", ["Accept", "Origin"], "Accept, Origin"),
        # CSP dict: "directive v1 v2" joined by "; ", no trailing separator
        (
            "Content-Security-Policy",
            {"default-src": ["'self'"], "script-src": ["'self'", "https://cdn.example.com"]},
            "default-src 'self'; script-src 'self' https://cdn.example.com",
        ),
        ("Content-Security-Policy-Report-Only", {"default-src": "'self' data:"}, "default-src 'self' data:"),
        ("Content-Security-Policy", {"upgrade-insecure-requests": []}, "upgrade-insecure-requests"),
        ("Content-Security-Policy", {"script-src": ["'self'", CSP_NONCE]}, "script-src 'self' 'nonce'"),
        # CSP str and list are validated and normalised the same way
        ("Content-Security-Policy", "default-src 'self';  img-src *; ", "default-src 'self'; img-src *"),
        ("Content-Security-Policy", ["default-src 'self'", "img-src data:"], "default-src 'self'; img-src data:"),
        # Permissions-Policy dict: structured-field allowlists (the reference rendered invalid syntax)
        (
            "Permissions-Policy",
            {"geolocation": [], "camera": ["self", "https://a.example"], "fullscreen": ["*"]},
            'geolocation=(), camera=(self "https://a.example"), fullscreen=*',
        ),
        ("Permissions-Policy", {"microphone": "()"}, "microphone=()"),
        # other dicts: key=value, True = bare key
        ("Cache-Control", {"max-age": 3600, "public": True}, "max-age=3600, public"),
        ("X-Custom", {"a": "1", "b": ["x", "y"]}, "a=1; b=x y"),
    ],
)
def test_render(header: str, value: Any, expected: str | None) -> None:
    assert _render(header, value) == expected


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        # header injection and encodings
        ("X-Custom", "a\r\nSet-Cookie: x=1", "control character"),
        ("X-Custom", "a\nb", "control character"),
        ("X-Custom", "a\x00b", "control character"),
        ("X-Custom", "caf\u00e9 \u2603", "not latin-1"),
        ("X-Custom", " padded", "whitespace"),
        ("X-Custom", ["a", "b\r"], "control character"),
        # unsupported types
        ("X-Custom", 3, "unsupported value type int"),
        ("X-Custom", b"bytes", "unsupported value type bytes"),
        ("X-Custom", ["a", 1], "unsupported value type int"),
        ("X-Custom", {"a": 1.5}, "unsupported value type float"),
        ("X-Custom", {"a b": "1"}, "not a token"),
        # CSP grammar (helmet's checks)
        ("Content-Security-Policy", {"default-src": ["self"]}, "keyword 'self' must be quoted"),
        ("Content-Security-Policy", {"default-src": ["none"]}, "keyword 'none' must be quoted"),
        ("Content-Security-Policy", {"script-src": ["nonce-abc"]}, "must be quoted"),
        ("Content-Security-Policy", {"script-src": ["sha256-abc="]}, "must be quoted"),
        ("Content-Security-Policy", {"script-src": ["unsafe-inline"]}, "must be quoted"),
        ("Content-Security-Policy", {"default-src": ["'self';script-src *"]}, "contains ';' or ','"),
        ("Content-Security-Policy", {"default-src": ["a.example,b.example"]}, "contains ';' or ','"),
        ("Content-Security-Policy", {"default src": ["'self'"]}, "invalid CSP directive name"),
        ("Content-Security-Policy", {"default-src": "'self'", "Default-Src": "'none'"}, "duplicate CSP directive"),
        ("Content-Security-Policy", "default-src 'self'; default-src *", "duplicate CSP directive"),
        ("Content-Security-Policy", "default-src 'self', img-src *", "second policy"),
        ("Content-Security-Policy", {}, "empty Content-Security-Policy"),
        ("Content-Security-Policy", "", "empty Content-Security-Policy"),
        ("Content-Security-Policy", {"default-src": 1}, "unsupported value type int"),
        # Permissions-Policy dict
        ("Permissions-Policy", {"Camera": []}, "invalid Permissions-Policy feature"),
        ("Permissions-Policy", {"camera": ['a"b']}, "invalid origin"),
        ("Permissions-Policy", {"camera": 1}, "unsupported value type int"),
    ],
)
def test_render_rejects(header: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _render(header, value)


def test_error_names_rule_and_header() -> None:
    with pytest.raises(ValueError, match=r"rule 'api', header 'X-Bad': the value contains a control character"):
        compile_rule("api", {"headers": {"X-Ok": "1", "X-Bad": "a\r\nb"}})


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({}, "rule 'r', field 'headers': is required"),
        ({"headers": "X-A: 1"}, "rule 'r', field 'headers': is required"),
        ("not a rule", "rule 'r': a rule must be a mapping, got str"),
        ({"headers": {}, "path": "/x"}, "rule 'r': unknown field(s) path; accepted:"),
        ({"headers": {"Bad Name": "1"}}, "rule 'r', header 'Bad Name': the header name is not a token"),
        ({"headers": {"X-A\r\n": "1"}}, "header 'X-A\\r\\n': the header name is not a token"),
        ({"headers": {"X-A": "1", "x-a": "2"}}, "header 'x-a': the header appears twice"),
        ({"headers": {}, "path_match": "^/api/("}, "rule 'r', field 'path_match': invalid regex"),
        ({"headers": {}, "netloc_match": "[a-"}, "field 'netloc_match': invalid regex"),
        ({"headers": {}, "content_type_match": "*html"}, "field 'content_type_match': invalid regex"),
        ({"headers": {}, "path_match": 3}, "field 'path_match': must be a regex string"),
        ({"headers": {}, "methods": "GET"}, "field 'methods': must be a list of method names"),
        ({"headers": {}, "methods": []}, "field 'methods': is empty"),
        ({"headers": {}, "methods": ["GET", "BAD METHOD"]}, "field 'methods': 'BAD METHOD' is not a method name"),
        ({"headers": {}, "status_code": "200"}, "field 'status_code': must be an int"),
        ({"headers": {}, "status_code": True}, "field 'status_code': must be an int"),
        ({"headers": {}, "status_code": (299, 200)}, "field 'status_code': range (299, 200)"),
        ({"headers": {}, "status_code": (200, 299, 300)}, "field 'status_code': must be an int"),
        ({"headers": {}, "status_code": 1000}, "field 'status_code': range (1000, 1000)"),
        ({"headers": {}, "order": "1"}, "field 'order': must be an int"),
        ({"headers": {}, "keep_existing": "yes"}, "field 'keep_existing': must be a bool"),
    ],
)
def test_rule_rejects(rule: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        compile_rule("r", rule)


def test_compile_rule_fields() -> None:
    order, rule = compile_rule(
        "api",
        {
            "netloc_match": r"^api\.",
            "path_match": r"^/api/",
            "methods": ["GET", "HEAD"],
            "status_code": (200, 299),
            "content_type_match": "^application/json",
            "order": 3,
            "keep_existing": True,
            "headers": {"Cache-Control": ["public", "max-age=60"], "Server": None, "X-Frame-Options": "DENY"},
        },
    )
    assert order == 3
    assert rule.name == "api"
    assert rule.netloc_pattern == r"^api\."
    assert rule.path_pattern == r"^/api/"
    assert rule.methods == frozenset({"GET", "HEAD"})
    assert (rule.status_low, rule.status_high) == (200, 299)
    assert rule.content_type_pattern == "^application/json"
    assert rule.keep_existing is True
    assert rule.nonce is False
    assert rule.edits == (
        (b"cache-control", b"public, max-age=60"),
        (b"server", None),
        (b"x-frame-options", b"DENY"),
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [(None, (0, 999)), (404, (404, 404)), ((200, 299), (200, 299)), ([500, 599], (500, 599))],
)
def test_status_bounds(status: Any, expected: tuple[int, int]) -> None:
    rule: dict[str, Any] = {"headers": {}}
    if status is not None:
        rule["status_code"] = status
    _, compiled = compile_rule("r", rule)
    assert (compiled.status_low, compiled.status_high) == expected


def test_nonce_flag() -> None:
    _, with_nonce = compile_rule("n", {"headers": {"Content-Security-Policy": {"script-src": [CSP_NONCE]}}})
    _, without = compile_rule("n", {"headers": {"Content-Security-Policy": {"script-src": ["'self'"]}}})
    assert with_nonce.nonce
    assert not without.nonce


def test_order_is_stable_defaults_first() -> None:
    rules = compile_rules(
        {
            "late": {"order": 5, "headers": {}},
            "user-a": {"headers": {}},
            "early": {"order": -5, "headers": {}},
            "default": {"headers": {}},  # a label only: does not replace the built-in rule
            "user-b": {"headers": {}},
        }
    )
    assert [rule.name for rule in rules] == [
        "early",
        "default",  # the built-in one, order -1
        "localhost",
        "c2c",
        "docs",
        "redoc",
        "user-a",
        "default",  # the user's, order 0, after the defaults and in insertion order
        "user-b",
        "late",
    ]


def test_no_defaults() -> None:
    assert compile_rules(None, use_default=False) == ()
    assert [rule.name for rule in compile_rules({"a": {"headers": {}}}, use_default=False)] == ["a"]


def test_config_must_be_mapping() -> None:
    with pytest.raises(ValueError, match="headers_config must map rule names to rules, got list"):
        compile_rules([{"headers": {}}])  # type: ignore[arg-type]


def test_defaults_compile_and_are_strict() -> None:
    rules = {rule.name: rule for rule in compile_rules(DEFAULT_HEADERS_CONFIG, use_default=False)}
    default = dict(rules["default"].edits)
    csp = default[b"content-security-policy"]
    assert csp is not None
    for directive in (b"default-src 'self'", b"base-uri 'self'", b"form-action 'self'", b"object-src 'none'"):
        assert directive in csp
    assert b"frame-ancestors 'none'" in csp
    assert b"expect-ct" not in default
    # the /c2c page: 'self' and nonces only, no CDN host
    c2c = dict(rules["c2c"].edits)[b"content-security-policy"]
    assert c2c is not None
    assert b"https:" not in c2c
    assert b"'unsafe-inline'" not in c2c
    assert rules["c2c"].nonce


_HEADER_NAMES = st.sampled_from(
    ["X-Custom", "Cache-Control", "Permissions-Policy", "Content-Security-Policy", "Vary", "Referrer-Policy"]
)
_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.text(),
    st.lists(st.text(), max_size=4),
    st.dictionaries(st.text(max_size=12), st.one_of(st.text(), st.lists(st.text(), max_size=3)), max_size=4),
    st.integers(),
    st.binary(max_size=8),
)
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@given(header=_HEADER_NAMES, value=_VALUES)
@example(header="X-Custom", value="a\r\nb")
@example(header="Content-Security-Policy", value={"default-src": ["self"]})
def test_render_is_valid_or_rejected(header: str, value: Any) -> None:
    """Whatever the configuration, rendering gives a valid field value or a ValueError, never else."""
    try:
        rendered = _render(header, value)
    except ValueError:
        return
    if value is None:
        assert rendered is None
        return
    assert rendered is not None
    assert not _CTL.search(rendered)
    rendered.encode("latin-1")
    assert rendered == rendered.strip(" \t")


_SOURCE = st.from_regex(
    r"'self'|'none'|https://[a-z]{1,8}\.example(/[a-z]{0,5})?|data:|\*\.[a-z]{1,6}\.org", fullmatch=True
)
_DIRECTIVE = st.sampled_from(sorted(KNOWN_CSP_DIRECTIVES))


@given(st.dictionaries(_DIRECTIVE, st.lists(_SOURCE, max_size=4), min_size=1, max_size=6))
def test_csp_dict_round_trip(policy: dict[str, list[str]]) -> None:
    """A valid CSP dict renders to a policy whose parsing gives back the dict (no injection, no loss)."""
    lowered = {key.lower() for key in policy}
    if len(lowered) != len(policy):
        return
    rendered = _render("Content-Security-Policy", policy)
    assert rendered is not None
    parsed = {}
    for part in rendered.split("; "):
        name, *sources = part.split(" ")
        parsed[name] = sources
    assert parsed == policy


_JSONISH: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 1000) | st.text(max_size=8) | st.binary(max_size=4),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
_FIELD_NAMES = st.sampled_from(
    ["headers", "path_match", "netloc_match", "methods", "status_code", "content_type_match", "order", "keep_existing"]
)


@given(
    st.dictionaries(
        st.text(max_size=5),
        st.one_of(_JSONISH, st.dictionaries(_FIELD_NAMES, _JSONISH, max_size=4)),
        max_size=3,
    )
)
@example({"r": {"headers": {"X-A": {"k": None}}}})
@example({"r": {"headers": {"X-A": "1"}, "status_code": [None, 1]}})
@example({"r": {"headers": {"X-A": "1"}, "methods": {"GET": 1}}})
def test_any_configuration_compiles_or_raises_value_error(config: dict[str, Any]) -> None:
    """Whatever users write, construction gives compiled rules or a ValueError (never another error)."""
    try:
        rules = compile_rules(config, use_default=False)
    except ValueError as error:
        assert str(error)
        return
    assert len(rules) == len(config)


# Each row: path_match, whether it sees the path with its leading slash.
@pytest.mark.parametrize(
    ("pattern", "with_slash"),
    [
        ("/", True),
        ("/api", True),
        ("^/", True),
        ("^/api/", True),
        ("^/(?!api/)", True),
        # any other start: c2casgiutils 0.14's form
        ("", False),
        ("^", False),
        ("api/", False),
        ("^api/", False),
        ("^(?!api/)", False),
        (r"(.*/)?c2c/?$", False),
        (r"\A/api", False),
        ("(?i)^/api", False),
        ("(/api)", False),
        (r"\/api", False),
        ("^^/api", False),
        (" /api", False),
    ],
)
def test_path_form_follows_the_source_text(pattern: str, with_slash: bool) -> None:
    _, rule = compile_rule("r", {"path_match": pattern, "headers": {"X-A": "1"}})
    assert rule.path_with_slash is with_slash


def test_a_rule_without_path_pattern_has_no_slash_form() -> None:
    _, rule = compile_rule("r", {"headers": {"X-A": "1"}})
    assert rule.path_with_slash is False


DEFAULT_PATH_PATTERNS = sorted({rule["path_match"] for rule in DEFAULT_HEADERS_CONFIG.values() if "path_match" in rule})


def test_the_default_path_patterns() -> None:
    """c2c keeps 0.14's form; docs and redoc are FastAPI's own pages only (issue 14, item 13)."""
    assert DEFAULT_PATH_PATTERNS == [r"^(.*/)?c2c/?$", r"^/docs/?$", r"^/redoc/?$"]


@given(path=st.text(st.sampled_from("/acdeors2x\n"), max_size=12).map(lambda text: "/" + text))
@example(path="/c2c")
@example(path="/docs/")
@example(path="/a/redoc\n")
@example(path="/")
@example(path="//c2c")
def test_the_default_path_patterns_match_what_they_matched_with_the_slash(path: str) -> None:
    """Seen without the leading slash (0.14's form), the defaults match exactly the paths they matched with it."""
    pattern = DEFAULT_HEADERS_CONFIG["c2c"]["path_match"]
    assert bool(re.match(pattern, path[1:])) == bool(re.match(pattern, path)), (pattern, path)


def test_header_is_0_14s_name_for_header_value() -> None:
    """``c2casgiutils.headers.Header`` (0.14): the union of the values a rule accepts, our `HeaderValue`."""
    import c2c_headers

    assert c2c_headers.Header is c2c_headers.HeaderValue
    assert "Header" in c2c_headers.__all__
    value: c2c_headers.Header = {"default-src": ["'self'"]}  # mypy: a dict value is a Header
    assert render_value("Content-Security-Policy", value) == "default-src 'self'"


HTML = ((b"content-type", b"text/html; charset=utf-8"),)


def _page_rule(csp: bytes) -> str | None:
    found = {"docs": b"swagger-ui" in csp, "redoc": b"redoc@" in csp}
    names: list[str | None] = [name for name, present in found.items() if present]
    (name,) = names or [None]
    return name


# Each row: request path, root_path, middleware arguments, the default rule whose CSP the page gets.
@pytest.mark.parametrize(
    ("path", "root_path", "arguments", "rule"),
    [
        ("/docs", "", {}, "docs"),
        ("/docs/", "", {}, "docs"),
        ("/redoc", "", {}, "redoc"),
        ("/redoc/", "", {}, "redoc"),
        ("/app/docs", "/app", {}, "docs"),
        ("/app/redoc", "/app", {}, "redoc"),
        # any other page whose path ends in docs / redoc keeps the strict policy
        ("/user/docs", "", {}, None),
        ("/user/redoc", "", {}, None),
        ("/v1/docs", "", {}, None),
        ("/c2c/docs", "", {}, None),
        ("/docs/x", "", {}, None),
        ("/docsx", "", {}, None),
        ("/app/user/docs", "/app", {}, None),
        ("/docs", "/app", {}, "docs"),  # the root_path is not in this path: it is relative already
        # other URLs, as FastAPI(docs_url=..., redoc_url=...) serves them
        ("/api/swagger", "", {"docs_url": "/api/swagger"}, "docs"),
        ("/api/swagger/", "", {"docs_url": "/api/swagger/"}, "docs"),
        ("/docs", "", {"docs_url": "/api/swagger"}, None),
        ("/api/re.doc", "", {"redoc_url": "/api/re.doc"}, "redoc"),
        ("/api/reXdoc", "", {"redoc_url": "/api/re.doc"}, None),  # escaped, not a regex
        ("/docs", "", {"docs_url": None}, None),
        ("/redoc", "", {"redoc_url": None}, None),
    ],
)
async def test_docs_rules_match_fastapis_pages_only(
    engine: str, path: str, root_path: str, arguments: dict[str, Any], rule: str | None
) -> None:
    middleware = ArmorHeaderMiddleware(make_app(headers=HTML), engine=engine, **arguments)
    result = await response_headers(middleware, http_scope(path, root_path=root_path))
    (csp,) = header_values(result, b"content-security-policy")
    assert _page_rule(csp) == rule
    assert bool(header_values(result, b"cross-origin-embedder-policy")) is (rule is None)


def test_docs_rules_are_compiled_once_at_construction() -> None:
    rules = {rule.name: rule for rule in compile_rules(None, docs_url="/api/docs", redoc_url=None)}
    assert rules["docs"].path_pattern == r"^/api/docs/?$"
    assert rules["docs"].path_with_slash
    assert "redoc" not in rules
    assert default_headers_config() == DEFAULT_HEADERS_CONFIG


@pytest.mark.parametrize("url", ["docs", "", "/", "//", "/docs\r\n", 3])
def test_docs_url_must_be_a_path(url: Any) -> None:
    with pytest.raises(ValueError, match="docs_url must be a path"):
        compile_rules(None, docs_url=url)


def test_docs_urls_keep_an_edited_default_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """An application that edited DEFAULT_HEADERS_CONFIG (as with 0.14) keeps its edit under other URLs."""
    edited = {**DEFAULT_HEADERS_CONFIG["docs"], "headers": {"X-Docs": "1"}}
    monkeypatch.setitem(DEFAULT_HEADERS_CONFIG, "docs", edited)
    rules = {rule.name: rule for rule in compile_rules(None, docs_url="/api/docs")}
    assert rules["docs"].path_pattern == r"^/api/docs/?$"
    assert rules["docs"].edits == ((b"x-docs", b"1"),)
    assert DEFAULT_HEADERS_CONFIG["docs"]["path_match"] == r"^/docs/?$"  # not changed in place
