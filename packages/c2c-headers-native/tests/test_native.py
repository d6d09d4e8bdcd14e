"""c2c_headers_native alone (without c2c-headers): the translator, the engine's surface, its errors.

The differential suite against the python engine lives in c2c-headers
(``packages/c2c-headers/tests/test_engines_agree.py``); here the reference is Python's ``re``.
"""

from __future__ import annotations

import base64
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import c2c_headers_native
from c2c_headers_native import Match, PatternNotSupported, RuleEngine, ScopeNotSupported
from c2c_headers_native._translate import UnsupportedPattern, translate

# The same profiles as c2c-headers' conftest (registering twice is harmless: the last one wins).
settings.register_profile("dev", max_examples=40, deadline=None)
settings.register_profile(
    "ci", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def rule(
    name: str = "rule",
    netloc_pattern: str | None = None,
    path_pattern: str | None = None,
    # c2c-headers derives it from the pattern; here every pattern sees the path as given, as `re.match` would.
    path_with_slash: bool = True,
    methods: frozenset[str] | None = None,
    status_low: int = 0,
    status_high: int = 999,
    content_type_pattern: str | None = None,
    edits: tuple[tuple[bytes, bytes | None], ...] = ((b"x-hit", b"1"),),
    nonce: bool = False,
    keep_existing: bool = False,
) -> c2c_headers_native.Rule:
    """A `c2c_headers_native.Rule` with defaults: any request, any response, one header set."""
    return c2c_headers_native.Rule(
        name,
        netloc_pattern,
        path_pattern,
        path_with_slash,
        methods,
        status_low,
        status_high,
        content_type_pattern,
        edits,
        nonce,
        keep_existing,
    )


def path_matches(pattern: str, path: str) -> bool:
    return RuleEngine([rule(path_pattern=pattern)]).match("h", path, "GET") is not None


# --- the translator -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "translated"),
    [
        ("", r"\A(?:)"),
        ("ab", r"\A(?:ab)"),
        (r"/a\.b", r"\A(?:\x{2F}a\x{2E}b)"),
        (r"^a", r"\A(?:\Aa)"),
        (r"a\Z", r"\A(?:a\z)"),
        (r"a$", r"\A(?:a(?:\n?\z))"),
        (r"(?m)^a$", r"\A(?:(?m:^)a(?m:$))"),
        ("a*?b{2,}", r"\A(?:(?:a){0,}?(?:b){2,})"),
        (".", r"\A(?:[\x{0}-\x{9}\x{B}-\x{D7FF}\x{E000}-\x{10FFFF}])"),
        ("(?s).", r"\A(?:[\x{0}-\x{D7FF}\x{E000}-\x{10FFFF}])"),
        ("(?i)k", r"\A(?:[Kk\x{212A}])"),
        ("(?a)[^\\W\\d_]", r"\A(?:[A-Za-z])"),
        (r"(?a)a\b", r"\A(?:a(?-u:\b))"),
        ("[^\\s\\S]", r"\A(?:[^\x{0}-\x{10FFFF}])"),
    ],
)
def test_translations(pattern: str, translated: str) -> None:
    assert translate(pattern) == translated


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?=a)", "look-ahead or look-behind"),
        ("(?<!a)b", "negative look-ahead or look-behind"),
        (r"(a)\1", "back reference"),
        ("(a)?(?(1)b)", "conditional"),
        ("a*+", "possessive"),
        ("(?>a)", "atomic"),
        (r"a\b", r"Unicode '\b'"),
        (r"(?a)\B", r"'\B'"),
        ("a$b", "'$' followed by more pattern"),
        ("(?:a$)*", "'$' followed by more pattern"),
        ("(", "invalid Python pattern"),
    ],
)
def test_refusals(pattern: str, reason: str) -> None:
    with pytest.raises(UnsupportedPattern, match=re.escape(reason)):
        translate(pattern)


def test_ignorecase_is_python_case_folding() -> None:
    # Python folds 'İ' (U+0130) to 'i' and the Kelvin sign to 'k'; Rust's (?i) does only the latter.
    assert translate("i", ignorecase=True) == r"\A(?:[Ii\x{130}-\x{131}])"
    assert translate("(?-i:i)", ignorecase=True) == r"\A(?:(?:i))"


ATOMS = st.sampled_from(
    ["a", "K", "ſ", "İ", "é", "/", "\\.", "\\n", ".", "\\d", "\\w", "\\s", "\\W", "[a-f]", "[^a]", "[\\d_]", "٣"]
)
SUFFIXES = st.sampled_from(["", "*", "+", "?", "{1,2}", "*?"])
PIECES = st.tuples(ATOMS, SUFFIXES).map(lambda pair: f"(?:{pair[0]}){pair[1]}")
PATTERNS = st.tuples(
    st.sampled_from(["", "(?i)", "(?a)", "(?s)", "(?m)", "(?ai)"]),
    st.lists(PIECES, max_size=4).map("".join),
    st.sampled_from(["", "$", "\\Z", "|b", "(?m:$)"]),
).map("".join)
SUBJECTS = st.text(st.sampled_from("aAbKkſsSİiıé/.\n_٣9 "), max_size=6) | st.text(max_size=6)


@given(pattern=PATTERNS, subjects=st.lists(SUBJECTS, min_size=1, max_size=10))
@example(pattern="(?i)i", subjects=["İ", "ı", "I", "i"])
@example(pattern=r"\d$", subjects=["٣", "٣\n", "٣\n\n", "³"])
@example(pattern=r"(?s).", subjects=["\n"])
def test_native_matches_like_re(pattern: str, subjects: list[str]) -> None:
    compiled = re.compile(pattern)
    engine = RuleEngine([rule(path_pattern=pattern)])
    for subject in subjects:
        assert (engine.match("h", subject, "GET") is not None) == (compiled.match(subject) is not None), (
            pattern,
            subject,
        )


# --- the engine's surface -----------------------------------------------------------------------


def test_version_and_name() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", c2c_headers_native.__version__)
    engine = RuleEngine([])
    assert engine.name == "native"
    assert engine.match("h", "/", "GET") is None


def test_match_and_apply() -> None:
    engine = RuleEngine(
        [
            rule("csp", edits=((b"content-security-policy", b"script-src 'nonce'"),), nonce=True),
            rule("api", path_pattern="/api", methods=frozenset({"GET"}), edits=((b"server", None),)),
        ]
    )
    match = engine.match("example.com", "/api/x", "GET")
    assert isinstance(match, Match)
    assert match.nonce is not None
    assert len(base64.b64decode(match.nonce, validate=True)) == 16
    original = [(b"Server", b"x"), (b"date", b"d")]
    headers = engine.apply(match, 200, original)
    assert headers == [
        (b"date", b"d"),
        (b"content-security-policy", f"script-src 'nonce-{match.nonce}'".encode()),
        (b"cache-control", b"no-store"),
    ]
    assert headers[0] is original[1]  # untouched headers are passed through, not copied
    assert original == [(b"Server", b"x"), (b"date", b"d")]  # the input list is not modified
    assert engine.match("example.com", "/api/x", "GET").nonce != match.nonce  # type: ignore[union-attr]


# Each row: pattern, whether it sees the leading slash, path, matches?
@pytest.mark.parametrize(
    ("pattern", "with_slash", "path", "matches"),
    [
        # with the slash: the path as given
        ("^/api/", True, "/api/x", True),
        ("^api/", True, "/api/x", False),
        # without: the path minus its leading slash (c2casgiutils 0.14)
        ("^api/", False, "/api/x", True),
        ("^/api/", False, "/api/x", False),
        ("^/api/", False, "//api/x", True),
        ("^$", False, "/", True),
        ("^$", True, "/", False),
        (r"^(.*/)?c2c/?$", False, "/c2c", True),
        (r"^(.*/)?c2c/?$", False, "/x/c2c/", True),
        (r"^(.*/)?c2c/?$", False, "/xc2c", False),
        # a path without a leading slash (no server sends one) is seen as is by both forms
        ("^api", False, "api", True),
        ("^api", True, "api", True),
        ("^$", False, "", True),
    ],
)
def test_path_with_slash_chooses_the_form_of_the_path(pattern: str, with_slash: bool, path: str, matches: bool) -> None:
    engine = RuleEngine([rule(path_pattern=pattern, path_with_slash=with_slash)])
    assert (engine.match("h", path, "GET") is not None) is matches


def test_both_path_forms_in_one_engine_and_from_the_scope() -> None:
    """Rules of both forms share one engine; ``match_scope`` cuts root_path first, then the form applies."""
    engine = RuleEngine(
        [
            rule("slash", path_pattern="/api/", edits=((b"x-slash", b"1"),)),
            rule("bare", path_pattern="api/", path_with_slash=False, edits=((b"x-bare", b"1"),)),
            rule("same text", path_pattern="/api/", path_with_slash=False, edits=((b"x-same", b"1"),)),
            rule("root", path_pattern="$", path_with_slash=False, edits=((b"x-root", b"1"),)),
        ]
    )

    def emitted(path: str, root_path: str = "") -> list[bytes]:
        scope = {"type": "http", "method": "GET", "path": path, "root_path": root_path, "headers": []}
        match = engine.match_scope(scope)
        return [] if match is None else [name for name, _ in engine.apply(match, 200, [])]

    assert emitted("/api/x") == [b"x-slash", b"x-bare"]
    assert emitted("/app/api/x", "/app") == [b"x-slash", b"x-bare"]
    assert emitted("//api/x") == [b"x-same"]
    assert emitted("/app", "/app") == [b"x-root"]
    assert emitted("/app/", "/app") == [b"x-root"]
    assert emitted("/") == [b"x-root"]


def test_apply_refuses_foreign_handles() -> None:
    engine, other = RuleEngine([rule()]), RuleEngine([rule()])
    match = other.match("h", "/", "GET")
    assert match is not None
    with pytest.raises(ValueError, match="another engine"):
        engine.apply(match, 200, [])

    class Foreign:
        nonce = None

    with pytest.raises(TypeError):
        engine.apply(Foreign(), 200, [])


def test_unsupported_pattern_is_a_typed_error_naming_rule_field_and_pattern() -> None:
    with pytest.raises(PatternNotSupported) as raised:
        RuleEngine([rule("fine"), rule("admin only", path_pattern="/(?!admin)")])
    error = raised.value
    assert isinstance(error, ValueError)
    assert str(error) == (
        "unsupported pattern '/(?!admin)' in rule 'admin only' (path_pattern): "
        "negative look-ahead or look-behind assertion"
    )
    assert (error.rule, error.field, error.pattern) == ("admin only", "path_pattern", "/(?!admin)")
    assert error.reason == "negative look-ahead or look-behind assertion"
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own object)
    assert (type(copy), str(copy), copy.rule) == (PatternNotSupported, str(error), "admin only")


def test_a_pattern_too_large_for_rust_is_refused() -> None:
    with pytest.raises(
        PatternNotSupported,
        match=r"^unsupported pattern '\(\?:\\\\w\{1000\}\)\{1000\}' in rule 'huge' \(netloc_pattern\): the translated",
    ):
        RuleEngine([rule("huge", netloc_pattern=r"(?:\w{1000}){1000}")])


def test_rules_are_read_once() -> None:
    edits = [(b"x-a", b"1")]
    engine = RuleEngine([rule(edits=edits)])  # type: ignore[arg-type]  # a list: mutable, on purpose
    edits[:] = [(b"x-b", b"2")]
    match = engine.match("h", "/", "GET")
    assert match is not None
    assert engine.apply(match, 200, []) == [(b"x-a", b"1")]


@pytest.mark.parametrize(
    ("rules", "error"),
    [
        (
            [("rule", None, None)],
            "rule 0: expected a c2c_headers_native.Rule (a tuple of 11 fields), got ('rule', None, None)",
        ),
        ([rule(), object()], "rule 1: expected a c2c_headers_native.Rule"),
    ],
    ids=["short tuple", "not a tuple"],
)
def test_rules_must_be_rule_records(rules: list[object], error: str) -> None:
    """Rules cross as `Rule` records read by position: anything else is refused, never read by name."""
    with pytest.raises(TypeError, match=re.escape(error)):
        RuleEngine(rules)  # type: ignore[arg-type]


def test_a_field_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError):
        RuleEngine([rule()._replace(nonce="yes")])  # type: ignore[arg-type]


def test_one_engine_serves_many_threads() -> None:
    """Searches share the engine (each takes its own lazy DFA cache): answers stay per request."""
    from concurrent.futures import ThreadPoolExecutor

    engine = RuleEngine(
        [
            rule(f"r{index}", path_pattern=rf"/r{index}/", edits=((b"x-rule", str(index).encode()),))
            for index in range(200)
        ]
    )

    def hit(index: int) -> list[tuple[bytes, bytes]]:
        match = engine.match("h", f"/r{index}/x", "GET")
        assert match is not None
        return engine.apply(match, 200, [])

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(hit, [index % 200 for index in range(4000)]))
    assert results == [[(b"x-rule", str(index % 200).encode())] for index in range(4000)]


def test_a_match_without_nonce_is_one_shared_handle() -> None:
    """Immutable without a nonce, a match is built once per set of rules; a nonce makes it per request."""
    engine = RuleEngine([rule("plain", path_pattern="/p"), rule("csp", path_pattern="/c", nonce=True)])
    first, second = engine.match("h", "/p", "GET"), engine.match("h", "/p", "GET")
    assert first is not None
    assert first is second
    assert first.nonce is None
    paged, again = engine.match("h", "/c", "GET"), engine.match("h", "/c", "GET")
    assert paged is not None and again is not None
    assert paged is not again
    assert paged.nonce != again.nonce


def test_more_rule_sets_than_the_plan_cache_holds() -> None:
    """Past 1024 distinct sets of matched rules, plans are built per request: still right."""
    engine = RuleEngine(
        [
            rule(f"r{index}", path_pattern=rf"/r{index}/", edits=((b"x-rule", str(index).encode()),))
            for index in range(1100)
        ]
    )
    for _ in range(2):
        for index in range(1100):
            match = engine.match("h", f"/r{index}/", "GET")
            assert match is not None
            assert engine.apply(match, 200, [(b"date", b"d")]) == [(b"date", b"d"), (b"x-rule", str(index).encode())]


@pytest.mark.parametrize(
    "shape",
    [list, tuple, lambda headers: [list(header) for header in headers], lambda headers: iter(list(headers))],
    ids=["list of tuples", "tuple", "list of lists", "iterator"],
)
@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"date", b"d"), (b"content-type", b"text/html")],
        [(b"X-A", b"old"), (b"date", b"d")],  # a header a rule replaces
        [(b"server", b"s"), (b"x-a", b"old"), (b"SERVER", b"t")],  # and one it removes, twice
    ],
)
def test_every_shape_of_header_list_gets_the_same_edits(shape: object, headers: list[tuple[bytes, bytes]]) -> None:
    """A list of (bytes, bytes) tuples takes the copy-and-append path; other shapes the general one."""
    engine = RuleEngine([rule(edits=((b"x-a", b"1"), (b"server", None)))])
    match = engine.match("h", "/", "GET")
    assert match is not None
    expected = [header for header in headers if header[0].lower() not in (b"x-a", b"server")] + [(b"x-a", b"1")]
    result = engine.apply(match, 200, shape(headers))  # type: ignore[operator]
    assert [tuple(header) for header in result] == expected
    assert type(result) is list


def test_apply_status_outside_every_range_applies_nothing() -> None:
    """Any rule accepts 0..999; an application may still send another int, and then none applies."""
    engine = RuleEngine([rule(), rule("ok", status_low=200, status_high=299, edits=((b"x-ok", b"1"),))])
    match = engine.match("h", "/", "GET")
    assert match is not None
    assert engine.apply(match, 200, []) == [(b"x-hit", b"1"), (b"x-ok", b"1")]
    assert engine.apply(match, 404, []) == [(b"x-hit", b"1")]
    assert engine.apply(match, 1000, []) == []
    assert engine.apply(match, -1, []) == []


def test_match_scope_reads_a_well_formed_scope() -> None:
    """Host header, else the server address (default port dropped); path relative to root_path."""
    engine = RuleEngine(
        [
            rule("host", netloc_pattern=r"h:8000$", edits=((b"x-host", b"1"),)),
            rule("bare", netloc_pattern=r"h$", edits=((b"x-bare", b"1"),)),
            rule("root", path_pattern=r"/$", edits=((b"x-root", b"1"),)),
            rule("get", methods=frozenset({"GET"}), edits=((b"x-get", b"1"),)),
        ]
    )

    def emitted(scope: dict[str, object]) -> list[bytes]:
        match = engine.match_scope(scope)
        return [] if match is None else [name for name, _ in engine.apply(match, 200, [])]

    base: dict[str, object] = {"type": "http", "method": "GET", "path": "/", "root_path": ""}
    assert emitted({**base, "headers": [(b"accept", b"*/*"), (b"host", b"h:8000")]}) == [b"x-host", b"x-root", b"x-get"]
    assert emitted({**base, "headers": [], "server": ("h", 80), "scheme": "http"}) == [b"x-bare", b"x-root", b"x-get"]
    assert emitted({**base, "headers": [], "server": ("h", 443), "scheme": "http"}) == [b"x-root", b"x-get"]
    assert emitted({**base, "server": ("h", 8000)}) == [b"x-host", b"x-root", b"x-get"]
    assert emitted({**base, "path": "/app/", "root_path": "/app", "method": "POST"}) == [b"x-root"]
    assert emitted({**base, "path": "/apple", "root_path": "/app", "method": "POST"}) == []
    assert emitted({**base, "path": "/app", "root_path": "/app", "method": "POST"}) == [b"x-root"]


def test_match_scope_hands_other_scopes_to_request_target() -> None:
    """A scope Rust does not read goes to the ``request_target`` given at construction, else is refused."""
    scope = {"type": "http", "headers": [[b"host", b"h"]], "path": "/", "method": "GET"}  # a list item
    seen: list[object] = []

    def request_target(scope: object) -> tuple[str, str, str]:
        seen.append(scope)
        return "h", "/", "GET"

    engine = RuleEngine([rule(netloc_pattern="h$")], request_target)
    assert engine.match_scope(scope) is not None
    assert seen == [scope]
    # A well-formed scope is read in Rust: the function is not called.
    assert engine.match_scope({**scope, "headers": [(b"host", b"h")]}) is not None
    assert seen == [scope]
    # Its errors are the engine's errors.
    with pytest.raises(KeyError):
        RuleEngine([rule()], lambda scope: scope["method"]).match_scope({"type": "http", "path": b"/"})
    # Without one, a typed refusal.
    with pytest.raises(ScopeNotSupported, match="no request_target was given"):
        RuleEngine([rule()]).match_scope(scope)


# Every call of the contract, in a fresh interpreter where c2c_headers cannot be imported.
WITHOUT_C2C_HEADERS = """
import sys

sys.modules["c2c_headers"] = None  # any import of c2c_headers (or a submodule) now fails
import c2c_headers_native as native

engine = native.RuleEngine(
    [
        native.Rule("csp", None, None, True, None, 0, 999, None, ((b"content-security-policy", b"x 'nonce'"),), True,
                    False),
        native.Rule("api", r"h$", "api/", False, frozenset({"GET"}), 200, 299, r"text/", ((b"x-api", b"1"),), False,
                    False),
    ]
)
assert engine.name == "native"
match = engine.match("h", "/api/x", "GET")
assert match is not None and len(match.nonce) == 24
headers = engine.apply(match, 200, [(b"content-type", b"text/html")])
assert headers == [
    (b"content-type", b"text/html"),
    (b"content-security-policy", f"x 'nonce-{match.nonce}'".encode()),
    (b"x-api", b"1"),
    (b"cache-control", b"no-store"),
], headers
scope = {"type": "http", "headers": [(b"host", b"h")], "path": "/app/api/x", "root_path": "/app", "method": "GET"}
assert engine.match_scope(scope) is not None
try:
    engine.match_scope({**scope, "headers": [[b"host", b"h"]]})
except native.ScopeNotSupported:
    pass
else:
    raise AssertionError("ScopeNotSupported expected")
try:
    native.RuleEngine([native.Rule("la", None, "(?=a)", True, None, 0, 999, None, (), False, False)])
except native.PatternNotSupported as error:
    assert error.rule == "la", error
else:
    raise AssertionError("PatternNotSupported expected")
cache = {}
rewriter = native.ForwardedRewriter([b"x-forwarded-proto", b"host"], cache, "peer", "original")
scope = {"type": "http", "scheme": "http", "headers": [(b"host", b"h"), (b"x-forwarded-proto", b"https")]}
assert rewriter.rewrite(scope, ("10.0.0.1", 1)) is False and scope["scheme"] == "http"
cache[("http", "http", b"h", ((b"x-forwarded-proto", b"https"),), None)] = ({"scheme": "https"}, None, None, "h")
assert rewriter.rewrite(scope, ("10.0.0.1", 1)) is True and scope["scheme"] == "https"
assert "c2c_headers" not in {name.partition(".")[0] for name, module in sys.modules.items() if module is not None}
print("ok")
"""


def test_every_call_of_the_contract_without_c2c_headers() -> None:
    """The package is self-contained: it imports nothing of c2c-headers (issue 17).

    In this package's isolation run c2c-headers is not even installed; the subprocess blocks it
    anyway, so the proof holds in the whole workspace too.
    """
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_C2C_HEADERS], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_no_source_names_c2c_headers() -> None:
    """Neither the Python part nor the Rust part refers to a module of c2c-headers."""
    package = Path(__file__).resolve().parents[1]
    sources = [*(package / "python").rglob("*.py"), *(package / "src").rglob("*.rs")]
    assert sources
    for source in sources:
        found = re.findall(r"(?:import|from)\s+c2c_headers\b(?!_native)|\"c2c_headers\.", source.read_text("utf-8"))
        assert not found, (source, found)
