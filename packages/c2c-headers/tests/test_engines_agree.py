"""The python and native header engines agree byte for byte: interchangeable (differential tests, as yarl's).

Hypothesis generates whole rule sets (every `CompiledRule` field), requests and responses, and
compares the two engines' results with the nonce normalised. Path patterns come in both forms (``/``
or ``^/`` first: the path with its leading slash; any other start: without it, c2casgiutils 0.14's
form), and paths with one, two or no leading slash. Patterns come from two grammars: one
both dialects share (the native engine must accept every such pattern and match exactly like
``re``), and constructs only Python's ``re`` has (the native engine must refuse exactly those, with
``auto`` falling back in one log line and ``native`` raising).

The module needs both engines: without c2c_headers_native it is skipped with the reason, unless
``--native`` was given (then it fails); ``--no-native`` deselects it (module marker ``native``).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from c2c_headers import ArmorHeaderMiddleware, _engine
from c2c_headers._engine import (
    CSP_NONCE_PLACEHOLDER,
    CompiledRule,
    Engine,
    RequestMatch,
    UnsupportedPatternError,
    load_engine,
)
from c2c_headers._python_engine import PythonEngine

pytestmark = [pytest.mark.native, pytest.mark.usefixtures("native_required")]

PLACEHOLDER = CSP_NONCE_PLACEHOLDER.encode()
NONCE_RE = re.compile(rb"'nonce-([A-Za-z0-9+/]{22}==)'")


def native_engine(rules: tuple[CompiledRule, ...]) -> Engine:
    """The native engine as `load_engine` builds it (`c2c_headers._engine.native_engine`)."""
    import c2c_headers_native  # here: the module is skipped when it is missing

    return _engine.native_engine(c2c_headers_native, rules)


def translate(pattern: str, ignorecase: bool) -> str:
    from c2c_headers_native._translate import translate as native_translate

    return native_translate(pattern, ignorecase)


# --- patterns -------------------------------------------------------------------------------------

# Characters chosen where the dialects differ: case folding (K/Kelvin sign, s/long s, i/dotted I,
# sharp s, micro/mu), Unicode digits and spaces, newline, and the characters of hosts and paths.
SPECIAL = "kK\u212asS\u017fiI\u0130\u0131\u00df\u00b5\u03bc\u0660\u00a0\u2028\n\t_-./:é"
ALPHABET = "abc" + SPECIAL
LITERALS = st.sampled_from(ALPHABET).map(re.escape)
CLASSES = st.sampled_from(
    [".", r"\d", r"\D", r"\w", r"\W", r"\s", r"\S", "[a-c]", "[^/]", r"[\d.]", "[K-k]", r"[^\w\s]", "[ſ-ǅ]", "[0-9]"]
)


def _shared_body() -> st.SearchStrategy[str]:
    """Pattern bodies (no global flag) of constructs that all have an exact Rust form."""
    atom = st.one_of(LITERALS, LITERALS, CLASSES)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.lists(inner, min_size=2, max_size=4).map("".join),
            st.lists(inner, min_size=2, max_size=3).map(lambda alts: "(?:" + "|".join(alts) + ")"),
            inner.map(lambda body: f"({body})"),
            st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "{,2}", "*?", "+?", "??", "{2,}?"])).map(
                lambda pair: f"(?:{pair[0]}){pair[1]}"
            ),
            st.tuples(st.sampled_from(["i", "s", "a", "m", "i-s", "-i"]), inner).map(
                lambda pair: f"(?{pair[0]}:{pair[1]})"
            ),
            inner.map(lambda body: f"(?m:^{body}$)"),
        )

    return st.recursive(atom, extend, max_leaves=8)


BODY = _shared_body()
ENDS = st.sampled_from(["", "", "$", r"\Z", "(?:$)", "(?:x$|y)"])


def _shared_pattern() -> st.SearchStrategy[str]:
    """Patterns the translator must accept: every construct here has an exact Rust form."""
    return st.tuples(
        st.sampled_from(["", "", "(?i)", "(?s)", "(?a)", "(?x)", "(?m)", "(?ia)", "(?is)"]),
        st.sampled_from(["", "", "^", r"\A"]),
        BODY,
        ENDS,
    ).map("".join)


def _path_pattern() -> st.SearchStrategy[str]:
    """Path patterns of both forms: ``/`` or ``^/`` first (the path with its leading slash), or any
    other start (without it: c2casgiutils 0.14's form), including the near misses ``\\A/`` and
    ``(?i)^/``."""
    slash_form = st.tuples(st.sampled_from(["/", "^/"]), BODY, ENDS).map("".join)
    near_misses = st.tuples(st.sampled_from([r"\A/", "(?i)^/", "(?m)^/", r"\/", "^^/"]), BODY, ENDS).map("".join)
    return st.one_of(_shared_pattern(), slash_form, slash_form, near_misses)


# Constructs only Python's `re` has (or whose meaning differs): the native engine refuses them.
PYTHON_ONLY = [
    "(?=a)b",
    "(?!a)",
    "(?<=a)b",
    "(?<!a)b",
    r"(a)\1",
    "(?P<x>a)(?P=x)",
    "(a)?(?(1)b|c)",
    "a*+",
    "a++b",
    "a?+",
    "a{1,3}+",
    "(?>a*)a",
    r"\B",
    r"a\b",
    r"(?a:a\B)",
    "a$b",
    "a$$",
    "(?:a$)*",
    "(?:a$)+b",
]


def _python_only_pattern() -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(["", "x", "^", "(?i)"]), st.sampled_from(PYTHON_ONLY)).map("".join)


SHARED = _shared_pattern()
MAYBE_PATTERN = st.none() | SHARED
PATH_PATTERNS = _path_pattern()
MAYBE_PATH_PATTERN = st.none() | PATH_PATTERNS

# --- rules, requests, responses --------------------------------------------------------------------

HEADER_NAMES = [b"content-security-policy", b"x-a", b"x-b", b"server", b"cache-control", b"content-type"]
VALUES = st.one_of(
    st.none(),
    st.sampled_from([b"1", b"2", b"no-cache", b"text/html", b"script-src 'nonce'", b"'nonce' 'nonce'nonce'"]),
    st.binary(max_size=12).map(lambda value: value.replace(b"\r", b"").replace(b"\n", b"")),
)


@st.composite
def compiled_rules(
    draw: st.DrawFn,
    patterns: st.SearchStrategy[str | None] = MAYBE_PATTERN,
    path_patterns: st.SearchStrategy[str | None] = MAYBE_PATH_PATTERN,
) -> CompiledRule:
    names = draw(st.lists(st.sampled_from(HEADER_NAMES), min_size=1, max_size=4))
    edits = tuple((name, draw(VALUES)) for name in names)
    consistent = any(value is not None and PLACEHOLDER in value for _, value in edits)
    low = draw(st.sampled_from([0, 0, 200, 200, 100, 300, 400, 500]))
    return CompiledRule(
        name=draw(st.sampled_from(["default", "api", "rule 'x'", "ü"])),
        netloc_pattern=draw(patterns),
        path_pattern=draw(path_patterns),
        methods=draw(st.none() | st.frozensets(st.sampled_from(["GET", "HEAD", "POST", "get"]), min_size=1)),
        status_low=low,
        status_high=draw(st.sampled_from([low, low + 99, 999])),
        content_type_pattern=draw(
            st.none() | patterns | st.sampled_from(["text/html", "(?i)TEXT/", "application/(json|xml)"])
        ),
        edits=edits,
        # Mostly what the compiler derives; sometimes inconsistent, which both engines must treat alike.
        nonce=draw(st.sampled_from([consistent, consistent, True, False])),
        keep_existing=draw(st.booleans()),
    )


RULE_SETS = st.lists(compiled_rules(), max_size=6).map(tuple)
SUBJECTS = st.one_of(st.text(ALPHABET, max_size=8), st.text(max_size=8))
# Paths as `request_target` gives them: mostly with a leading slash (a double one too), sometimes
# without (a scope no server builds), so that both forms of a path pattern are exercised.
PATHS = st.one_of(SUBJECTS.map(lambda text: "/" + text), SUBJECTS.map(lambda text: "//" + text), SUBJECTS)
HEADER_VALUES = st.one_of(
    st.sampled_from([b"text/html; charset=utf-8", b"TEXT/HTML", b"application/json", b"max-age=1", b"\xe9\xff"]),
    st.binary(max_size=8),
)
HEADER_NAME_CASES = st.sampled_from(HEADER_NAMES).map(bytes.title) | st.sampled_from(HEADER_NAMES)
HEADERS = st.lists(st.tuples(HEADER_NAME_CASES, HEADER_VALUES), max_size=5)
REQUESTS = st.tuples(SUBJECTS, PATHS, st.sampled_from(["GET", "HEAD", "POST", "get"]))
# Out-of-range statuses too: an application can send any integer, and rules then never apply.
STATUSES = st.sampled_from([-1, 0, 99, 100, 200, 204, 299, 300, 404, 500, 599, 999, 1000])


def normalised(headers: list[tuple[bytes, bytes]], nonce: str | None) -> list[tuple[bytes, bytes]]:
    """Replace the (random) nonce by a fixed marker, wherever it appears."""
    assert all(type(item) is tuple and len(item) == 2 for item in headers)
    if nonce is None:
        return headers
    return [(name, value.replace(nonce.encode(), b"<NONCE>")) for name, value in headers]


def check_nonce(match: RequestMatch) -> None:
    if match.nonce is not None:
        assert len(match.nonce) == 24
        assert len(base64.b64decode(match.nonce, validate=True)) == 16


def agree(
    rules: tuple[CompiledRule, ...],
    requests: list[tuple[str, str, str]],
    responses: list[tuple[int, list[tuple[bytes, bytes]]]],
) -> None:
    python, native = PythonEngine(rules), native_engine(rules)
    assert native.name == "native"
    for netloc, path, method in requests:
        python_match, native_match = python.match(netloc, path, method), native.match(netloc, path, method)
        assert (python_match is None) == (native_match is None), (netloc, path, method)
        if python_match is None or native_match is None:
            event("request matched no rule")
            continue
        event(f"request matched, nonce: {native_match.nonce is not None}")
        assert (python_match.nonce is None) == (native_match.nonce is None)
        check_nonce(native_match)
        for status, headers in responses:
            python_out = python.apply(python_match, status, list(headers))
            native_out = native.apply(native_match, status, list(headers))
            event("response edited" if native_out != headers else "response unchanged")
            assert normalised(native_out, native_match.nonce) == normalised(python_out, python_match.nonce), (
                netloc,
                path,
                method,
                status,
                headers,
            )


# --- the differential properties -------------------------------------------------------------------


@given(
    rules=RULE_SETS,
    requests=st.lists(REQUESTS, min_size=1, max_size=4),
    responses=st.lists(st.tuples(STATUSES, HEADERS), min_size=1, max_size=3),
)
@example(  # the default rules' own patterns
    rules=(
        CompiledRule(
            "localhost", r"^localhost(:\d+)?$", None, None, 0, 999, r"^text/html", ((b"x-a", None),), False, False
        ),
        CompiledRule(
            "c2c", None, r"^(.*/)?c2c/?$", None, 200, 200, r"^text/html", ((b"x-b", b"'nonce'"),), True, False
        ),
    ),
    requests=[("localhost:8000", "/a/c2c/", "GET"), ("localhost:8000\n", "/c2c\n", "GET")],
    responses=[(200, [(b"Content-Type", b"text/HTML"), (b"x-a", b"1")])],
)
@example(  # both path forms, and the same text in both (`\/a` is 0.14's form, `/a` ours)
    rules=(
        CompiledRule("bare", None, r"^api/", None, 0, 999, None, ((b"x-a", b"1"),), False, False),
        CompiledRule("slash", None, r"^/api/", None, 0, 999, None, ((b"x-b", b"2"),), False, False),
        CompiledRule("escaped", None, r"\/a", None, 0, 999, None, ((b"x-a", b"3"),), False, False),
        CompiledRule("plain", None, r"/a", None, 0, 999, None, ((b"server", None),), False, False),
        CompiledRule("root", None, r"$", None, 0, 999, None, ((b"x-b", None),), False, False),
    ),
    requests=[("h", "/api/x", "GET"), ("h", "//api/", "GET"), ("h", "/", "GET"), ("h", "", "GET"), ("h", "a", "GET")],
    responses=[(200, [(b"Server", b"s")])],
)
@example(  # case folding where Python and Rust differ: 'İ' lower-cases to 'i' in Python only
    rules=(CompiledRule("fold", "(?i)i", "(?i)[a-z]", None, 0, 999, "k", ((b"x-a", b"1"),), False, False),),
    requests=[("\u0130", "\u0131", "GET"), ("I", "\u212a", "GET")],
    responses=[(200, [(b"content-type", b"\xe9")]), (200, [(b"content-type", "\u212a".encode("utf-8"))])],
)
@example(  # Unicode digits: Python's \d is any Nd character
    rules=(CompiledRule("digits", None, r"/\d+$", None, 0, 999, None, ((b"x-a", b"1"),), False, False),),
    requests=[("h", "/\u0660\u0661", "GET"), ("h", "/12\n", "GET"), ("h", "/1\n\n", "GET")],
    responses=[(200, [])],
)
def test_engines_agree(
    rules: tuple[CompiledRule, ...],
    requests: list[tuple[str, str, str]],
    responses: list[tuple[int, list[tuple[bytes, bytes]]]],
) -> None:
    agree(rules, requests, responses)


@given(rules=RULE_SETS, traffic=st.lists(st.tuples(REQUESTS, STATUSES, HEADERS), min_size=1, max_size=25))
def test_engines_agree_over_a_stream_of_requests(
    rules: tuple[CompiledRule, ...], traffic: list[tuple[tuple[str, str, str], int, list[tuple[bytes, bytes]]]]
) -> None:
    """One pair of engines serves many requests in turn: whatever they cache, each answer is its own."""
    python, native = PythonEngine(rules), native_engine(rules)
    for (netloc, path, method), status, headers in traffic:
        python_match, native_match = python.match(netloc, path, method), native.match(netloc, path, method)
        assert (python_match is None) == (native_match is None)
        if python_match is None or native_match is None:
            continue
        python_out = python.apply(python_match, status, list(headers))
        native_out = native.apply(native_match, status, list(headers))
        assert normalised(native_out, native_match.nonce) == normalised(python_out, python_match.nonce)


def _subject(data: st.DataObject, pattern: str | None, flags: int = 0) -> str:
    """A string ``re.match`` accepts for ``pattern`` (any string when there is none)."""
    if pattern is None:
        return data.draw(SUBJECTS)
    return data.draw(st.from_regex(re.compile(pattern, flags), fullmatch=True).filter(lambda text: len(text) < 40))


@given(rules=st.lists(compiled_rules(), min_size=1, max_size=6).map(tuple), data=st.data())
def test_engines_agree_on_requests_the_rules_match(rules: tuple[CompiledRule, ...], data: st.DataObject) -> None:
    """Requests and content types drawn from the rules' own patterns, so that rules do match and apply."""
    requests, responses = [], []
    for rule in rules:
        method = data.draw(st.sampled_from(sorted(rule.methods or {"GET"})))
        path = _subject(data, rule.path_pattern)
        if rule.path_pattern is not None and not rule.path_with_slash and data.draw(st.booleans()):
            path = "/" + path  # the request whose path, without its leading slash, the pattern matches
        requests.append((_subject(data, rule.netloc_pattern), path, method))
        content_type = _subject(data, rule.content_type_pattern, re.IGNORECASE)
        status = data.draw(st.integers(rule.status_low, rule.status_high))
        headers = data.draw(HEADERS)
        if content_type.isascii() or all(ord(char) < 256 for char in content_type):
            headers.insert(data.draw(st.integers(0, len(headers))), (b"Content-Type", content_type.encode("latin-1")))
        responses.append((status, headers))
    agree(rules, requests, responses)


@given(pattern=SHARED, subjects=st.lists(SUBJECTS, min_size=1, max_size=8), ignorecase=st.booleans())
@example(pattern=r"(?a)a\b", subjects=["a", "a\u00e9", "ab", "a-"], ignorecase=False)
@example(pattern=r"(?m)a$\n^b", subjects=["a\nb", "a\n\nb"], ignorecase=False)
@example(pattern="(?i)ß", subjects=["SS", "ẞ", "ß"], ignorecase=True)
def test_shared_patterns_match_like_re(pattern: str, subjects: list[str], ignorecase: bool) -> None:
    """Every pattern of the shared grammar is accepted and matches exactly where ``re.match`` does."""
    edits = ((b"x-a", b"1"),)
    compiled = re.compile(pattern, re.IGNORECASE if ignorecase else 0)
    if not ignorecase:
        # The netloc pattern: it sees the text as is (a path pattern may see it without a slash).
        engine = native_engine((CompiledRule("p", pattern, None, None, 0, 999, None, edits, False, False),))
        for subject in subjects:
            expected = compiled.match(subject) is not None
            assert (engine.match(subject, "/", "GET") is not None) == expected, (pattern, subject)
        return
    # The content-type pattern: matched case-insensitively against the latin-1 decoded header value.
    engine = native_engine((CompiledRule("p", None, None, None, 0, 999, pattern, edits, False, False),))
    match = engine.match("h", "/", "GET")
    assert match is not None
    for subject in subjects:
        value = subject.encode("latin-1", "replace")
        expected = compiled.match(value.decode("latin-1")) is not None
        headers = engine.apply(match, 200, [(b"content-type", value)])
        assert ((b"x-a", b"1") in headers) == expected, (pattern, subject)


@given(
    rules=st.lists(compiled_rules(), max_size=3).map(tuple),
    refused=compiled_rules(
        patterns=st.none() | _python_only_pattern(), path_patterns=st.none() | _python_only_pattern()
    ),
    field=st.sampled_from(["netloc_pattern", "path_pattern", "content_type_pattern"]),
    pattern=_python_only_pattern(),
)
def test_python_only_patterns_are_refused(
    rules: tuple[CompiledRule, ...], refused: CompiledRule, field: str, pattern: str
) -> None:
    """The native engine refuses a rule set exactly when the translator classifies a pattern unsupported."""
    changes: dict[str, Any] = {field: pattern}
    culprit = dataclasses.replace(refused, **changes)
    rule_set = (*rules, culprit)
    PythonEngine(rule_set)  # Python's `re` accepts all of them
    import c2c_headers_native

    with pytest.raises(c2c_headers_native.PatternNotSupported, match="^unsupported pattern ") as raised:
        native_engine(rule_set)
    message = str(raised.value)
    # The first refused pattern in rule order and field order is the one named.
    expected = next(
        (rule, name, value)
        for rule in rule_set
        for name in ("netloc_pattern", "path_pattern", "content_type_pattern")
        if (value := getattr(rule, name)) is not None and _refused(value, name == "content_type_pattern")
    )
    assert repr(expected[0].name) in message
    assert repr(expected[2]) in message
    assert expected[1] in message
    assert (raised.value.rule, raised.value.field, raised.value.pattern) == (expected[0].name, expected[1], expected[2])


def _refused(pattern: str, ignorecase: bool) -> bool:
    try:
        translate(pattern, ignorecase)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize("pattern", PYTHON_ONLY)
def test_translator_classifies_python_only_constructs(pattern: str) -> None:
    with pytest.raises(ValueError, match=".") as raised:
        translate(pattern, False)
    assert type(raised.value).__name__ == "UnsupportedPattern"


@given(pattern=SHARED, ignorecase=st.booleans())
def test_translator_accepts_the_shared_grammar(pattern: str, ignorecase: bool) -> None:
    assert translate(pattern, ignorecase).startswith(r"\A")


# --- selection: auto falls back in one log line, native raises -------------------------------------

FALLBACK_RULES = (
    CompiledRule("ok", None, "/", None, 0, 999, None, ((b"x-a", b"1"),), False, False),
    CompiledRule("lookahead", None, "/(?!admin)", None, 0, 999, None, ((b"x-b", b"2"),), False, False),
)


def test_auto_falls_back_to_python_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="c2c_headers"):
        engine = load_engine("auto", FALLBACK_RULES)
    assert engine.name == "python"
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "lookahead" in warnings[0].getMessage()
    assert "/(?!admin)" in warnings[0].getMessage()


def test_native_raises_on_an_unsupported_pattern(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="c2c_headers"), pytest.raises(UnsupportedPatternError) as raised:
        load_engine("native", FALLBACK_RULES)
    assert "'lookahead'" in str(raised.value)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_auto_uses_native_when_it_can() -> None:
    assert load_engine("auto", FALLBACK_RULES[:1]).name == "native"


async def _app(scope: Any, receive: Any, send: Any) -> None:  # never called: construction fails first
    raise AssertionError


@pytest.mark.parametrize(
    "config",
    [
        {"bad regex": {"path_match": "(", "headers": {"X-A": "1"}}},
        {"crlf": {"headers": {"X-A": "a\r\nb"}}},
        {"not latin-1": {"headers": {"X-A": "\u20ac"}}},
        {"bad status": {"status_code": 1000, "headers": {"X-A": "1"}}},
    ],
    ids=["regex", "crlf", "latin1", "status"],
)
def test_invalid_configuration_same_error_on_both(config: dict[str, Any]) -> None:
    messages: dict[str, str] = {}
    for engine in ("python", "native"):
        with pytest.raises(ValueError, match=".") as raised:
            ArmorHeaderMiddleware(_app, headers_config=config, engine=engine)
        messages[engine] = str(raised.value)
    assert messages["python"] == messages["native"]


def test_native_engine_satisfies_the_engine_protocol() -> None:
    """Typing-only at heart: mypy checks these assignments against the `Engine` protocol."""
    from c2c_headers._scope import request_target
    from c2c_headers_native import Match, Rule, RuleEngine

    rule = Rule("ok", None, "/", True, None, 0, 999, None, ((b"x-a", b"1"),), False, False)
    engine: Engine = RuleEngine([rule], request_target)
    match: RequestMatch | None = engine.match("h", "/", "GET")
    assert isinstance(match, Match)
    apply: Callable[[RequestMatch, int, list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]] = engine.apply
    assert apply(match, 200, []) == [(b"x-a", b"1")]


# --- the request read from the ASGI scope -----------------------------------------------------------

# One rule per condition, each emitting its own header, so that the result names the matched rules.
SCOPE_RULES = tuple(
    CompiledRule(f"r{index}", netloc, path, methods, 0, 999, None, ((f"x-r{index}".encode(), b"1"),), False, False)
    for index, (netloc, path, methods) in enumerate(
        [
            (r"^h(:\d+)?$", None, None),
            (r"^localhost", None, None),
            (r"^$", None, None),
            ("^\xe9", None, None),
            (r".*:8000$", None, None),
            ("^\xfc", None, None),
            (None, r"^/$", None),
            (None, r"^/a", frozenset({"GET"})),
            (None, r"^/ap", None),
            (None, r"^p", None),
            (None, r"^/a/?$", None),
            (r"^h", r"^/", frozenset({"POST", "get"})),
            (None, r"^a", None),  # c2casgiutils 0.14's form: the path without its leading slash
            (None, r"^$", None),
            (None, None, None),
        ]
    )
)
HOST_VALUES = st.sampled_from([b"h", b"h:8000", b"localhost", b"localhost:80", b"\xe9x", b"", b"\xfc"]) | st.binary(
    max_size=6
)
SCOPE_HEADER_NAMES = st.sampled_from([b"host", b"host", b"Host", b"accept", b"x-forwarded-host", "host"])


def mostly(good: st.SearchStrategy[Any], *odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``good``, else one of ``odd`` (what no ASGI server sends).

    The odd branch is one value in the middle of the range: Hypothesis favours the bounds, and
    shrinks towards 0, that is towards a well-formed scope.
    """
    return st.integers(0, 15).flatmap(lambda draw: st.one_of(*odd) if draw == 11 else good)


GOOD_ITEMS = st.tuples(SCOPE_HEADER_NAMES, HOST_VALUES)
SCOPE_ITEMS = mostly(
    GOOD_ITEMS,
    GOOD_ITEMS.map(list),  # Python unpacks a list as well
    st.tuples(SCOPE_HEADER_NAMES, st.just("h")),  # a str value: no .decode
    st.tuples(SCOPE_HEADER_NAMES, HOST_VALUES, st.just(b"x")),  # three items: no unpacking
)
SCOPE_HEADERS = st.lists(SCOPE_ITEMS, max_size=4) | st.lists(SCOPE_ITEMS, max_size=3).map(tuple)
GOOD_SERVERS = st.tuples(
    st.sampled_from(["h", "\xfc", "127.0.0.1", "", "localhost"]),
    st.none() | st.sampled_from([80, 443, 8000]) | st.integers(-1, 70000),
)
SERVERS = mostly(
    GOOD_SERVERS | st.none(),
    st.tuples(st.just("h"), st.just(2**70) | st.just(True)),  # ints a native int64 or exact int is not
    st.tuples(st.just("h"), st.just(8000)).map(list),
    st.just(("h",)),
)
SCHEMES = mostly(st.sampled_from(["http", "https", "ws", "wss", "ftp"]), st.just(b"http"))
PATH_TEXT = st.text("/ap\xe9\u212a", max_size=6)
SCOPE_PATHS = mostly(PATH_TEXT, st.just(b"/a"))
ROOT_PATHS = mostly(st.sampled_from(["", "/", "/a", "/a/", "/ap"]) | PATH_TEXT, st.just(b"/a"))
SCOPE_METHODS = mostly(st.sampled_from(["GET", "POST", "get"]), st.just(b"GET"))


@st.composite
def http_scopes(draw: st.DrawFn) -> dict[str, Any]:
    """Scopes as servers build them, and some no server builds (missing keys, wrong types)."""
    scope: dict[str, Any] = {"type": "http"}
    for key, values, weight in (
        ("headers", SCOPE_HEADERS, 9),
        ("server", SERVERS, 8),
        ("scheme", SCHEMES, 8),
        ("path", SCOPE_PATHS, 9),
        ("root_path", ROOT_PATHS, 7),
        ("method", SCOPE_METHODS, 19),
    ):
        if draw(st.integers(0, 9 if weight < 10 else 19)) < weight:
            scope[key] = draw(values)
    return scope


def scope_outcome(engine: Engine, scope: Any) -> object:
    """The headers the matched rules emit, None when none matched, or the type of the error."""
    try:
        match = engine.match_scope(scope)
    except Exception as error:  # the error type is what is compared
        return type(error)
    return None if match is None else engine.apply(match, 200, [])


@given(scope=http_scopes(), proxy=st.booleans())
@example(scope={"type": "http", "headers": [(b"host", b"h:8000")], "path": "/a", "method": "GET"}, proxy=False)
@example(scope={"type": "http", "server": ("h", 8000), "scheme": "https", "path": "/", "method": "GET"}, proxy=False)
@example(scope={"type": "http", "path": "/ap", "root_path": "/a", "method": "GET"}, proxy=False)
@example(scope={"type": "http", "path": "/a", "root_path": "/a", "method": "POST"}, proxy=False)
@example(scope={"type": "http", "headers": [(b"accept", b"x"), (b"host", b"\xe9x")], "method": "GET"}, proxy=True)
def test_engines_read_the_scope_alike(scope: dict[str, Any], proxy: bool) -> None:
    """``match_scope``: the native engine reads well-formed scopes itself, the others through Python.

    Both engines give the same rules or raise the same error; and the native answer is its ``match``
    on `request_target`, the one definition of netloc, path and method.
    """
    from types import MappingProxyType

    from c2c_headers._scope import request_target

    python, native = PythonEngine(SCOPE_RULES), native_engine(SCOPE_RULES)
    subject: Any = MappingProxyType(scope) if proxy else scope  # not a dict: the native slow path
    expected = scope_outcome(python, subject)
    event(f"outcome: {expected if isinstance(expected, type) else 'matched' if expected else 'no rule'}")
    assert scope_outcome(native, subject) == expected, scope
    try:
        target = request_target(subject)
    except Exception as error:  # the same error as the engines
        assert expected is type(error)
        return
    direct = native.match(*target)
    assert (None if direct is None else native.apply(direct, 200, [])) == expected


def test_native_reads_a_well_formed_scope_without_python() -> None:
    """The fast path is taken: no Python function runs for a scope as uvicorn builds it."""
    import sys

    native = native_engine(SCOPE_RULES)
    scopes: list[dict[str, Any]] = [
        {"type": "http", "headers": [(b"host", b"h:8000")], "path": "/a", "root_path": "", "method": "GET"},
        {"type": "http", "headers": [], "server": ("h", 443), "scheme": "https", "path": "/", "method": "GET"},
        {"type": "http", "headers": ((b"host", b"\xe9x"),), "path": "/a/ap", "root_path": "/a", "method": "POST"},
    ]
    calls: list[str] = []

    def profile(frame: Any, event: str, arg: object) -> None:
        if event == "call":
            calls.append(frame.f_code.co_qualname)

    matches = []
    sys.setprofile(profile)
    try:
        for scope in scopes:  # a loop: a comprehension is a call of its own before Python 3.12
            matches.append(native.match_scope(scope))
    finally:
        sys.setprofile(None)
    assert calls == []
    assert all(match is not None for match in matches)
    # A scope no server builds goes through `request_target`, with its error.
    with pytest.raises(TypeError, match="path and method must be str"):
        native.match_scope({"type": "http", "path": b"/", "method": "GET"})
