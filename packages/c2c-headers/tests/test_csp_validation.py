"""CSP validation at construction (issue 14, item 14): helmet's test vectors, the issue's inputs, Hypothesis.

helmet's vectors are the inputs of helmet's own CSP tests (``test/content-security-policy.test.ts``,
helmet 8): directive names it refuses or converts, duplicates, values it refuses, the policies it
accepts. The table gives each one our outcome: the rendered header, or the error. Where helmet
converts a camelCase name (``defaultSrc`` to ``default-src``) we refuse it and name the dash-case
form: in a header a camelCase name is ignored by browsers, so rendering it as written (what we did)
silently dropped the policy.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from c2c_headers import CSP_NONCE, ArmorHeaderMiddleware
from c2c_headers._csp import DIRECTIVE_NAME_RE, KNOWN_CSP_DIRECTIVES, QUOTED_KEYWORDS
from c2c_headers._rules import compile_rules, render_value

CSP = "Content-Security-Policy"
SHA = "sha256-ks9D5epDKP+c2x6DrkuHmhmfKkOM/HZ+pOlzdWbI91k="
# helmet's list of keywords that must be quoted.
HELMET_SHOULD_BE_QUOTED = [
    "none",
    "self",
    "strict-dynamic",
    "report-sample",
    "inline-speculation-rules",
    "unsafe-inline",
    "unsafe-eval",
    "unsafe-hashes",
    "wasm-unsafe-eval",
    "nonce-abc123",
    SHA,
]


def _render(value: Any, extras: tuple[str, ...] = ()) -> str | None:
    return render_value(CSP, value, frozenset(extras))


# Each row: helmet's input, extra directives, our outcome: the rendered policy, or ("error", fragment).
HELMET_VECTORS: list[tuple[str, Any, tuple[str, ...], str | tuple[str, str]]] = [
    # names helmet refuses: so do we
    *[
        (f"invalid name {name!r}", {name: ["value"]}, (), ("error", "invalid CSP directive name"))
        for name in ["", ";", "\u00e1", "default src", "default;src", "default,src", "default!src", "def\u00e1ult-src"]
    ],
    ("invalid name 'default_src'", {"default_src": ["value"]}, (), ("error", "write 'default-src'")),
    ("invalid name '__proto__'", {"__proto__": ["value"]}, (), ("error", "invalid CSP directive name")),
    # names helmet converts from camelCase: we refuse them, naming the dash-case form
    ("camelCase defaultSrc", {"defaultSrc": ["'self'"]}, (), ("error", "'defaultSrc' is not lower-case dash-case")),
    ("camelCase scriptSrc", {"default-src": ["'self'"], "scriptSrc": ["example.com"]}, (), ("error", "'script-src'")),
    ("camelCase styleSrc", {"default-src": ["'self'"], "styleSrc": ["'none'"]}, (), ("error", "'style-src'")),
    ("camelCase objectSrc", {"default-src": ["'self'"], "objectSrc": ["'none'"]}, (), ("error", "'object-src'")),
    # duplicates helmet refuses
    (
        "duplicate defaultSrc",
        {"defaultSrc": ["foo"], "default-src": ["foo"]},
        (),
        ("error", "is not lower-case dash-case"),
    ),
    (
        "duplicate scriptSrc",
        {"default-src": ["'self'"], "scriptSrc": ["foo"], "script-src": ["foo"]},
        (),
        ("error", "is not lower-case dash-case"),
    ),
    (
        "duplicate, dash-case first",
        {"default-src": ["foo"], "defaultSrc": ["foo"]},
        (),
        ("error", "duplicate CSP directive 'defaultSrc'"),
    ),
    # values helmet refuses (in its directive "something-else", which we only accept declared)
    ("unknown directive something-else", {"default-src": "'self'", "something-else": ["x"]}, (), ("error", "unknown")),
    *[
        (
            f"value {value!r}",
            {"default-src": "'self'", "something-else": [value]},
            ("something-else",),
            ("error", "';'"),
        )
        for value in [";", ",", "hello;world", "hello,world"]
    ],
    *[
        (
            f"unquoted {value[:12]!r}",
            {"default-src": "'self'", "something-else": [value]},
            ("something-else",),
            ("error", "must be quoted"),
        )
        for value in HELMET_SHOULD_BE_QUOTED
    ],
    # policies helmet accepts: so do we
    (
        "dash-case names",
        {"default-src": ["'self'"], "script-src": ["example.com"], "style-src": ["'none'"]},
        (),
        "default-src 'self'; script-src example.com; style-src 'none'",
    ),
    ("empty list", {"default-src": ["'self'"], "sandbox": []}, (), "default-src 'self'; sandbox"),
    (
        "string values",
        {"default-src": "'self'  example.com", "sandbox": ""},
        (),
        "default-src 'self' example.com; sandbox",
    ),
    ("default-src foo", {"default-src": ["foo"]}, (), "default-src foo"),
    ("default-src empty", {"default-src": []}, (), "default-src"),
    ("default-src empty string", {"default-src": ""}, (), "default-src"),
    ("report only", {"default-src": "'self'"}, (), "default-src 'self'"),
    (
        "helmet's defaults",
        {
            "default-src": ["'self'"],
            "base-uri": ["'self'"],
            "font-src": ["'self'", "https:", "data:"],
            "form-action": ["'self'"],
            "frame-ancestors": ["'self'"],
            "img-src": ["'self'", "data:"],
            "object-src": ["'none'"],
            "script-src": ["'self'"],
            "script-src-attr": ["'none'"],
            "style-src": ["'self'", "https:", "'unsafe-inline'"],
            "upgrade-insecure-requests": [],
            "block-all-mixed-content": [],
        },
        (),
        "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; form-action 'self'; "
        "frame-ancestors 'self'; img-src 'self' data:; object-src 'none'; script-src 'self'; "
        "script-src-attr 'none'; style-src 'self' https: 'unsafe-inline'; upgrade-insecure-requests; "
        "block-all-mixed-content",
    ),
    # helmet refuses a policy without directives; without default-src we warn (see below)
    ("no directives", {}, (), ("error", "empty Content-Security-Policy")),
    ("no default-src", {"script-src": ["example.com"]}, (), "script-src example.com"),
]


@pytest.mark.parametrize(
    ("value", "extras", "expected"),
    [row[1:] for row in HELMET_VECTORS],
    ids=[row[0] for row in HELMET_VECTORS],
)
def test_helmet_vectors(value: Any, extras: tuple[str, ...], expected: str | tuple[str, str]) -> None:
    if isinstance(expected, tuple):
        with pytest.raises(ValueError, match=re.escape(expected[1])):
            _render(value, extras)
    else:
        assert _render(value, extras) == expected


# Each row: the inputs (accepted before, each widening or dropping the policy), the error.
@pytest.mark.parametrize(
    ("value", "message"),
    [
        # a missing ';': script-src became a host name of default-src
        ("default-src 'self' script-src *", "source 'script-src' is a directive name (a missing ';'"),
        ({"default-src": ["'self' script-src *"]}, "source 'script-src' is a directive name"),
        ({"default-src": ["'self'", "img-src"]}, "source 'img-src' is a directive name"),
        ("default-src 'self'; report-uri /r default-src", "source 'default-src' is a directive name"),
        # control characters and whitespace inside one source
        ({"default-src": ["'self'\nhttps://evil.example"]}, "control character or a whitespace"),
        ({"default-src": ["'self'\thttps://evil.example"]}, "control character or a whitespace"),
        ({"default-src": ["https://a.example\x00"]}, "control character or a whitespace"),
        ({"default-src": ["https://a\xa0example"]}, "control character or a whitespace"),
        ("default-src 'self'\nscript-src *", "control character or a whitespace"),
        (["default-src 'self'", "script-src\r\n*"], "control character or a whitespace"),
        # names browsers ignore
        (
            {"default-src-": ["*"]},
            "'default-src-' is not lower-case dash-case, which browsers ignore: write 'default-src'",
        ),
        ({"default-src": ["'self'"], "default-src-": ["*"]}, "duplicate CSP directive 'default-src-'"),
        (
            {"DefaultSrc": ["'self'"]},
            "'DefaultSrc' is not lower-case dash-case, which browsers ignore: write 'default-src'",
        ),
        ({"DEFAULT-SRC": ["'self'"]}, "write 'default-src'"),
        ({"defaultSrc": ["'self'"], "scriptSrc": ["*"]}, "write 'default-src'"),
        ("Default-Src 'self'", "write 'default-src'"),
        ({"default-src": ["'self'"], "scirpt-src": ["*"]}, "unknown CSP directive 'scirpt-src'"),
        ({"default-src": ["'self'"], "defualt-src": ["*"]}, "did you mean"),
        ({"default-src": ["'self'"], "x": ["*"]}, "unknown CSP directive 'x'"),
        # two names that differ only by case
        ({"default-src": ["'self'"], "Default-Src": ["*"]}, "duplicate CSP directive 'Default-Src'"),
        ({"script-src": ["'self'"], "SCRIPT-SRC": ["*"]}, "duplicate CSP directive 'SCRIPT-SRC'"),
        # unknown quoted keywords
        ({"script-src": ["'unsafe-inlin'"]}, "unknown quoted keyword \"'unsafe-inlin'\""),
        ({"script-src": ["'self"]}, "unknown quoted keyword"),
        ({"script-src": ["'nonce-'"]}, "unknown quoted keyword"),
        ({"script-src": ["'sha1-abc='"]}, "unknown quoted keyword"),
        ({"script-src": ["'script'"]}, "unknown quoted keyword"),  # only in require-trusted-types-for
        ({"script-src": ["'nonce-a b'"]}, "unknown quoted keyword"),
    ],
)
def test_refused(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _render(value)


# Each row: a policy that stays valid (0.14 README and defaults, CSP 3, deprecated names), rendered.
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # c2casgiutils 0.14's README and default rules
        (
            {
                "default-src": ["'self'"],
                "script-src": ["'self'", "https://cdn.example.com"],
                "style-src": ["'self'", "'unsafe-inline'"],
            },
            "default-src 'self'; script-src 'self' https://cdn.example.com; style-src 'self' 'unsafe-inline'",
        ),
        (
            {"default-src": ["'self'"], "script-src": ["'self'", CSP_NONCE], "style-src": ["'self'", CSP_NONCE]},
            "default-src 'self'; script-src 'self' 'nonce'; style-src 'self' 'nonce'",
        ),
        ("default-src 'self'; ", "default-src 'self'"),
        (
            {
                "default-src": ["'self'"],
                "script-src-elem": [
                    "'self'",
                    "https://cdnjs.cloudflare.com/",
                    "https://cdn.jsdelivr.net/npm/@sbrunner/",
                ],
                "style-src-attr": ["'unsafe-inline'"],
            },
            "default-src 'self'; script-src-elem 'self' https://cdnjs.cloudflare.com/ "
            "https://cdn.jsdelivr.net/npm/@sbrunner/; style-src-attr 'unsafe-inline'",
        ),
        # several sources in one item, as 0.14 rendered them
        ({"default-src": ["'self' data:"]}, "default-src 'self' data:"),
        # keywords, nonces and hashes
        (
            {"script-src": ["'SELF'", "'strict-dynamic'", "'nonce-YWJj+/_-=='", f"'{SHA}'", "'report-sample'"]},
            f"script-src 'SELF' 'strict-dynamic' 'nonce-YWJj+/_-==' '{SHA}' 'report-sample'",
        ),
        (
            {"script-src": ["'wasm-unsafe-eval'", "'unsafe-hashes'", "'inline-speculation-rules'"]},
            "script-src 'wasm-unsafe-eval' 'unsafe-hashes' 'inline-speculation-rules'",
        ),
        ({"navigate-to": ["'unsafe-allow-redirects'", "'self'"]}, "navigate-to 'unsafe-allow-redirects' 'self'"),
        # directives with their own grammar
        ({"sandbox": ["allow-scripts", "allow-forms"]}, "sandbox allow-scripts allow-forms"),
        ({"require-trusted-types-for": ["'script'"]}, "require-trusted-types-for 'script'"),
        ({"trusted-types": ["default", "'allow-duplicates'"]}, "trusted-types default 'allow-duplicates'"),
        ({"webrtc": ["'block'"]}, "webrtc 'block'"),
        ({"report-uri": ["/csp-report"], "report-to": ["csp"]}, "report-uri /csp-report; report-to csp"),
        # deprecated names still deployed
        (
            "default-src 'self'; block-all-mixed-content; plugin-types application/pdf; prefetch-src 'self'; "
            "referrer no-referrer; require-sri-for script style; upgrade-insecure-requests",
            "default-src 'self'; block-all-mixed-content; plugin-types application/pdf; prefetch-src 'self'; "
            "referrer no-referrer; require-sri-for script style; upgrade-insecure-requests",
        ),
    ],
)
def test_stays_valid(value: Any, expected: str) -> None:
    assert _render(value) == expected


def test_extra_directives() -> None:
    policy = {"default-src": ["'self'"], "future-src": ["'self'"]}
    with pytest.raises(ValueError, match="unknown CSP directive 'future-src'"):
        compile_rules({"page": {"headers": {CSP: policy}}}, use_default=False)
    (rule,) = compile_rules(
        {"page": {"headers": {CSP: policy}}}, use_default=False, extra_csp_directives=["future-src"]
    )
    assert rule.edits == ((b"content-security-policy", b"default-src 'self'; future-src 'self'"),)
    # a declared name is a directive name: among sources, it is a missing ';'
    with pytest.raises(ValueError, match="source 'future-src' is a directive name"):
        render_value(CSP, "default-src 'self' future-src *", frozenset({"future-src"}))


@pytest.mark.parametrize("extras", ["future-src", ["Future-Src"], ["future src"], [1]])
def test_extra_directives_must_be_dash_case_names(extras: Any) -> None:
    with pytest.raises(ValueError, match="extra_csp_directives"):
        compile_rules(None, extra_csp_directives=extras)


def test_error_names_the_rule() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # never called
        raise AssertionError

    config = {"page": {"headers": {"Content-Security-Policy-Report-Only": {"defaultSrc": ["'self'"]}}}}
    with pytest.raises(ValueError, match=r"rule 'page', header 'Content-Security-Policy-Report-Only': CSP directive"):
        ArmorHeaderMiddleware(app, config)


def test_missing_default_src_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # never called
        raise AssertionError

    with caplog.at_level(logging.WARNING, logger="c2c_headers"):
        ArmorHeaderMiddleware(app)  # the defaults all have default-src
        assert caplog.records == []
        ArmorHeaderMiddleware(app, {"page": {"headers": {CSP: {"script-src": ["'self'"]}}}})
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "rule 'page', header 'Content-Security-Policy': the CSP has no default-src" in record.getMessage()


# Hypothesis: the validator never renders a policy wider than the one configured.
_KNOWN = sorted(KNOWN_CSP_DIRECTIVES)
_VALID_NAMES = st.sampled_from(_KNOWN)
_VALID_SOURCES = st.sampled_from(
    ["'self'", "'none'", "data:", "https:", "*", "https://a.example", "*.b.example", CSP_NONCE, f"'{SHA}'"]
)
_BAD_NAMES = st.one_of(
    _VALID_NAMES.map(lambda name: re.sub(r"-([a-z])", lambda match: match.group(1).upper(), name)),
    _VALID_NAMES.map(str.upper),
    _VALID_NAMES.map(lambda name: name + "-"),
    st.text(st.sampled_from("abcdefrsc-_ ;,'\n"), max_size=10),
)
_BAD_SOURCES = st.one_of(
    _VALID_NAMES,
    st.sampled_from(["self", "unsafe-inline", "'unsafe-inlin'", "'nonce-abc'", "nonce-abc", "'self"]),
    st.sampled_from(sorted(QUOTED_KEYWORDS)),  # valid: mixed in with the rest
    st.text(st.sampled_from("ab'-:/;, \t\n\r\x00\xa0"), max_size=8),
)
_ITEMS = st.lists(st.lists(_VALID_SOURCES, max_size=2).map(" ".join), max_size=3)
_VALID_POLICIES = st.dictionaries(_VALID_NAMES, _ITEMS, min_size=1, max_size=4)


def _with_name(policy: dict[str, list[str]], name: str, items: list[str]) -> dict[str, list[str]]:
    return {**policy, name: items}


def _with_source(policy: dict[str, list[str]], name: str, source: str, glue: str) -> dict[str, list[str]]:
    items = policy.get(name, ["'self'"])
    return {**policy, name: [*items[:-1], glue.join([*items[-1:], source])]}


# Valid policies, and valid policies with one name or one source that may be wrong.
_POLICIES = st.one_of(
    _VALID_POLICIES,
    st.builds(_with_name, _VALID_POLICIES, st.one_of(_VALID_NAMES, _BAD_NAMES), _ITEMS),
    st.builds(_with_source, _VALID_POLICIES, _VALID_NAMES, _BAD_SOURCES, st.sampled_from([" ", ""])),
)


def _as_string(policy: dict[str, list[str]], separators: list[str]) -> str:
    parts = [" ".join([name, *items]) for name, items in policy.items()]
    return "".join(part + separators[index % len(separators)] for index, part in enumerate(parts))


# The same policies written as one string; a " " separator is a missing ";".
_STRINGS = st.builds(_as_string, _POLICIES, st.lists(st.sampled_from(["; ", ";", " ; ", " "]), min_size=1, max_size=3))


def _parse(rendered: str) -> list[tuple[str, list[str]]]:
    parsed = []
    for part in rendered.split("; "):
        name, *sources = part.split(" ")
        parsed.append((name, sources))
    return parsed


def _check_not_wider(rendered: str, allowed_sources: dict[str, set[str]]) -> None:
    for name, sources in _parse(rendered):
        assert name in KNOWN_CSP_DIRECTIVES, name
        assert DIRECTIVE_NAME_RE.fullmatch(name)
        for source in sources:
            assert source in allowed_sources[name], (name, source)  # a single token from the input
            assert source.lower() not in KNOWN_CSP_DIRECTIVES
            assert not re.search(r"\s|[\x00-\x1f\x7f;,]", source)


@given(_POLICIES)
@example({"default-src": ["'self' script-src *"]})
@example({"defaultSrc": ["'self'"]})
@example({"default-src": ["'self'\nhttps://evil.example"]})
@example({"default-src": ["'self'"], "Default-Src": ["*"]})
def test_generated_dicts_render_no_wider(policy: dict[str, list[str]]) -> None:
    try:
        rendered = _render(policy)
    except ValueError:
        return
    assert rendered is not None
    allowed = {name: {token for item in items for token in item.split(" ")} for name, items in policy.items()}
    _check_not_wider(rendered, allowed)
    assert [name for name, _ in _parse(rendered)] == list(policy)  # every name as written, none added


@given(_STRINGS)
@example("default-src 'self' script-src *")
@example("default-src 'self'\nscript-src *")
def test_generated_strings_render_no_wider(policy: str) -> None:
    try:
        rendered = _render(policy)
    except ValueError:
        return
    assert rendered is not None
    allowed: dict[str, set[str]] = {}
    for part in policy.split(";"):
        words = part.split(" ")
        words = [word for word in words if word]
        if words:
            allowed[words[0]] = set(words[1:])
    _check_not_wider(rendered, allowed)
