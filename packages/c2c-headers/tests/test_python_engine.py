"""The Python engine against a naive model of the contract (its plan cache and regex blocks are optimisations).

The model below is the `c2c_headers._engine` docstring written as directly as possible: every rule
tested one by one with ``re.match``, every edit applied to the list in turn. Hypothesis generates
rule sets (including patterns that cannot go in an alternation: back-references, inline global
flags, duplicate group names), requests and responses; both must give the same bytes.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from c2c_headers import CSP_NONCE
from c2c_headers._engine import CompiledRule
from c2c_headers._python_engine import PythonEngine
from c2c_headers._rules import compile_rules

PLACEHOLDER = CSP_NONCE.encode()


def model_match(rules: tuple[CompiledRule, ...], netloc: str, path: str, method: str) -> list[CompiledRule]:
    # A path pattern that does not start with "/" or "^/" sees the path without its leading slash.
    bare = path.removeprefix("/")
    return [
        rule
        for rule in rules
        if (rule.netloc_pattern is None or re.match(rule.netloc_pattern, netloc))
        and (rule.path_pattern is None or re.match(rule.path_pattern, path if rule.path_with_slash else bare))
        and (rule.methods is None or method in rule.methods)
    ]


def model_apply(
    matched: list[CompiledRule], nonce: str | None, status: int, headers: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    content_types = [value.decode("latin-1") for name, value in headers if name.lower() == b"content-type"]
    result = list(headers)
    for rule in matched:
        if not rule.status_low <= status <= rule.status_high:
            continue
        if rule.content_type_pattern is not None and (
            not content_types or not re.match(rule.content_type_pattern, content_types[0], re.IGNORECASE)
        ):
            continue
        for name, value in rule.edits:
            present = any(key.lower() == name for key, _ in result)
            if value is not None and rule.keep_existing and present:
                continue
            result = [(key, old) for key, old in result if key.lower() != name]
            if value is not None:
                if nonce is not None:
                    value = value.replace(PLACEHOLDER, b"'nonce-" + nonce.encode() + b"'")
                result.append((name, value))
    if (
        nonce is not None
        and any(nonce.encode() in value for _, value in result)
        and not any(key.lower() == b"cache-control" for key, _ in result)
    ):
        result.append((b"cache-control", b"no-store"))
    return result


PATHS = [
    "/",
    "/api/x",
    "/API/x",
    "/aa",
    "/ab",
    "/admin",
    "/administrator",
    "/c2c",
    "/docs",
    "/a/b/docs",
    "/x/y",
    "//api/x",
    "",  # no server sends these two: seen as is by both forms
    "api/x",
]
PATH_PATTERNS = [
    # c2casgiutils 0.14's form (no leading "/" or "^/"): the path without its leading slash
    r"^api/",
    r"^(?!api/)",
    r"api",
    r"^$",
    r"(?i)^api",
    r"(?i)^/api",  # inline global flag (tested alone); a flag first is 0.14's form: only "//api..." matches
    r"(a)\1",
    r"^(?P<x>a)",
    r"\/",
    r".*docs$",
    r"^(.*/)?c2c/?$",
    # ours (leading "/" or "^/"): the path as is
    r"^/api/",
    r"^/(api|admin)",
    r"/admin$",
    r"^/(a)\1",  # a back-reference: never in an alternation
    r"^/(?P<x>a)",  # named groups, twice: duplicate names in an alternation
    r"^/(?P<x>a)b",
    r"^/(?P<y>a)(?P=y)",
    r"^/",
    r"^/x/",
    r"^/nothing",
]
NETLOCS = ["example.com", "localhost:8000", "admin.example.com"]
HEADER_NAMES = ["X-A", "X-B", "Cache-Control", "Content-Security-Policy", "Server"]
APP_HEADERS = st.lists(
    st.tuples(
        st.sampled_from([b"x-a", b"X-B", b"content-type", b"Cache-Control", b"server", b"x-other"]),
        st.sampled_from([b"app", b"text/html", b"application/json", b"v"]),
    ),
    max_size=5,
)


@st.composite
def rule_sets(draw: st.DrawFn) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for index in range(draw(st.integers(0, 40))):
        rule: dict[str, Any] = {}
        if draw(st.booleans()):
            rule["path_match"] = draw(st.sampled_from(PATH_PATTERNS))
        if draw(st.integers(0, 5)) == 0:
            rule["netloc_match"] = draw(st.sampled_from([r"^localhost(:\d+)?$", r"^admin\.", r"example"]))
        if draw(st.integers(0, 5)) == 0:
            rule["methods"] = draw(st.lists(st.sampled_from(["GET", "POST", "HEAD"]), min_size=1, max_size=2))
        if draw(st.integers(0, 4)) == 0:
            low = draw(st.integers(100, 599))
            rule["status_code"] = draw(st.sampled_from([low, (low, min(999, low + 99))]))
        if draw(st.integers(0, 4)) == 0:
            rule["content_type_match"] = draw(st.sampled_from(["^text/html", "application/", "TEXT"]))
        if draw(st.integers(0, 4)) == 0:
            rule["keep_existing"] = True
        rule["order"] = draw(st.integers(-1, 2))
        headers: dict[str, Any] = {}
        for name in draw(st.lists(st.sampled_from(HEADER_NAMES), unique=True, max_size=3)):
            if name == "Content-Security-Policy":
                headers[name] = draw(st.sampled_from([{"script-src": [CSP_NONCE]}, "default-src 'self'", None]))
            else:
                headers[name] = draw(st.sampled_from(["v1", "v2", None, f"x {CSP_NONCE}"]))
        rule["headers"] = headers
        config[f"rule{index}"] = rule
    return config


@given(
    config=rule_sets(),
    use_default=st.booleans(),
    netloc=st.sampled_from(NETLOCS),
    path=st.sampled_from(PATHS),
    method=st.sampled_from(["GET", "POST"]),
    status=st.sampled_from([200, 204, 404, 500]),
    headers=APP_HEADERS,
)
@example(
    config={f"r{i}": {"path_match": "^/api/", "headers": {"X-A": str(i)}} for i in range(20)},
    use_default=False,
    netloc="example.com",
    path="/api/x",
    method="GET",
    status=200,
    headers=[],
)
def test_engine_equals_model(
    config: dict[str, Any],
    use_default: bool,
    netloc: str,
    path: str,
    method: str,
    status: int,
    headers: list[tuple[bytes, bytes]],
) -> None:
    rules = compile_rules(config, use_default)
    engine = PythonEngine(rules)
    expected_rules = model_match(rules, netloc, path, method)
    for _ in range(2):  # the second time through the plan caches
        match = engine.match(netloc, path, method)
        if not expected_rules:
            assert match is None
            continue
        assert match is not None
        assert (match.nonce is not None) == any(rule.nonce for rule in expected_rules)
        assert engine.apply(match, status, list(headers)) == model_apply(
            expected_rules, match.nonce, status, list(headers)
        )


def test_blocks_keep_rule_order_and_find_every_match() -> None:
    config = {
        f"r{i:02}": {"path_match": "^/" if i % 7 == 0 else f"^/p{i}/", "headers": {"X-A": str(i)}} for i in range(40)
    }
    rules = compile_rules(config, use_default=False)
    engine = PythonEngine(rules)
    match = engine.match("h", "/p20/x", "GET")
    assert match is not None
    # r35 (order 0, "^/") is the last matching rule: it wins
    assert engine.apply(match, 200, []) == [(b"x-a", b"35")]
    assert engine.apply(engine.match("h", "/p36/", "GET") or pytest.fail("no match"), 200, []) == [(b"x-a", b"36")]


def test_blocks_of_both_path_forms_keep_rule_order() -> None:
    """Runs of 0.14-form and slash-form patterns, interleaved with rules without a path pattern."""
    config: dict[str, Any] = {}
    for i in range(60):
        kind = (i // 7) % 3  # runs of seven rules of one kind
        pattern = {0: f"^/p{i % 5}/", 1: f"^p{i % 5}/", 2: None}[kind]
        rule: dict[str, Any] = {"headers": {f"X-R{i}": "1"}}  # one header per rule: the result lists them all
        config[f"r{i:02}"] = rule | ({} if pattern is None else {"path_match": pattern})
    rules = compile_rules(config, use_default=False)
    engine = PythonEngine(rules)
    for path in ["/p1/x", "/p4/", "/x", "/", "", "p2/"]:
        expected = model_match(rules, "h", path, "GET")
        match = engine.match("h", path, "GET")
        assert match is not None
        result = engine.apply(match, 200, [])
        assert result == model_apply(expected, None, 200, [])
        assert len(result) == len(expected) >= 18  # the 18 rules without a path pattern at least


def test_netloc_rules_and_lone_patterns_interleaved_keep_rule_order() -> None:
    """Rules visited grouped by kind (netloc only, either path form, a back-reference tested alone)
    still give the model's result for every host, and the per-netloc answers stay bounded."""
    config: dict[str, Any] = {}
    for i in range(24):
        kind = i % 4
        rule: dict[str, Any] = {"headers": {f"X-R{i}": "1"}}
        if kind == 0:
            rule["netloc_match"] = rf"^h{i % 3}(:\d+)?$"
        elif kind == 1:
            rule["path_match"] = f"^/p{i % 3}"
            rule["netloc_match"] = r"^h1"
        elif kind == 2:
            rule["path_match"] = f"^p{i % 3}"
        else:
            rule["path_match"] = r"^/(a)\1"  # a back-reference: never in an alternation
        config[f"r{i:02}"] = rule
    rules = compile_rules(config, use_default=False)
    engine = PythonEngine(rules)
    for host in ("h0", "h1:80", "h2", "other"):
        for path in ("/p0/x", "/p1", "/aa", "/", "/p2aa"):
            expected = model_match(rules, host, path, "GET")
            match = engine.match(host, path, "GET")
            if not expected:
                assert match is None
                continue
            assert match is not None
            assert engine.apply(match, 200, []) == model_apply(expected, None, 200, [])
    assert set(engine._hosts) == {"h0", "h1:80", "h2", "other"}
    for number in range(5000):  # a client choosing Host headers empties the answers, never grows them
        engine.match(f"host{number}", "/", "GET")
    assert len(engine._hosts) <= 4096


def test_apply_rejects_a_foreign_match() -> None:
    engine = PythonEngine(())
    with pytest.raises(TypeError, match="not a match of this engine"):
        engine.apply(object(), 200, [])


def test_match_cache_is_keyed_by_everything_a_rule_reads() -> None:
    """Requests differing only in netloc, only in path or only in method never share a cached match."""
    config: dict[str, Any] = {
        "host": {"netloc_match": r"^admin\.", "headers": {"X-A": "host"}},
        "path": {"path_match": r"^/api/", "headers": {"X-B": "path"}},
        "method": {"methods": ["POST"], "headers": {"Server": "method"}},
        "page": {"path_match": r"^/page$", "headers": {"Content-Security-Policy": {"script-src": [CSP_NONCE]}}},
    }
    rules = compile_rules(config, use_default=False)
    engine = PythonEngine(rules)
    requests = [
        (netloc, path, method)
        for netloc in ["example.com", "admin.example.com", "ADMIN.example.com"]
        for path in ["/api/x", "/apix", "/page", "/page/"]
        for method in ["GET", "POST", "post"]
    ]
    for _ in range(3):  # first through the matching, then through the cache, twice
        for netloc, path, method in requests:
            match = engine.match(netloc, path, method)
            expected = model_match(rules, netloc, path, method)
            assert (match is None) == (not expected)
            if match is not None:
                assert engine.apply(match, 200, []) == model_apply(expected, match.nonce, 200, [])
    assert len(engine._matches) == len(requests)


def test_match_cache_never_shares_a_nonce() -> None:
    engine = PythonEngine(compile_rules({"page": {"headers": {"Content-Security-Policy": f"script-src {CSP_NONCE}"}}}))
    nonces = set()
    for _ in range(100):
        match = engine.match("example.com", "/", "GET")
        assert match is not None
        assert match.nonce is not None
        nonces.add(match.nonce)
    assert len(nonces) == 100


def test_match_cache_is_bounded() -> None:
    """Distinct targets (chosen by clients) never grow the cache past its bound; long ones skip it."""
    from c2c_headers import _python_engine

    rules = compile_rules({f"r{i}": {"path_match": f"^/s{i}/", "headers": {"X-A": str(i)}} for i in range(5)})
    engine = PythonEngine(rules)
    for number in range(_python_engine._MAX_MATCHES * 2 + 10):
        match = engine.match("example.com", f"/s{number % 7}/{number}", "GET")
        assert match is not None  # the default rule matches everything
        assert len(engine._matches) <= _python_engine._MAX_MATCHES
    engine._matches.clear()
    long_path = "/s1/" + "x" * _python_engine._MAX_TARGET
    assert engine.match("example.com", long_path, "GET") is not None
    assert engine._matches == {}


def test_blocks_larger_than_one_alternation() -> None:
    """More path rules than one block holds, several matching in each block, in order."""
    from c2c_headers import _python_engine

    count = _python_engine._BLOCK * 2 + 7
    config = {
        f"r{i:03}": {"path_match": f"^/p{i % 9}/" if i % 5 else "^/", "headers": {f"X-R{i}": "1"}} for i in range(count)
    }
    rules = compile_rules(config, use_default=False)
    engine = PythonEngine(rules)
    for path in ["/p1/x", "/p8/", "/x", "/", "/p3/y"]:
        expected = model_match(rules, "h", path, "GET")
        for _ in range(2):
            match = engine.match("h", path, "GET")
            assert match is not None
            assert engine.apply(match, 200, []) == model_apply(expected, None, 200, [])
