"""The python engine's nonce pool and path prefilter (issue 17 item 7): what they must never change.

Nonces: 128 bits from ``os.urandom`` read in batches, standard base64 (24 characters), never
handed out twice, and a forked worker never repeats its parent's (a real ``os.fork``). The literal
prefilter: a pattern's required text is in every subject the pattern matches, so testing it first
never changes an answer (Hypothesis over generated patterns, against ``re.match``).
"""

from __future__ import annotations

import base64
import os
import re
import signal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from c2c_headers import CSP_NONCE
from c2c_headers._engine import PATH_WITH_SLASH_PREFIXES
from c2c_headers._python_engine import _NONCE_BATCH, _NONCES, PythonEngine, _required_literal, new_nonce
from c2c_headers._rules import compile_rules

NONCE = re.compile(rb"[A-Za-z0-9+/]{22}==")


def nonce_engine() -> PythonEngine:
    return PythonEngine(compile_rules({"page": {"headers": {"Content-Security-Policy": f"script-src {CSP_NONCE}"}}}))


def assert_128_bit_base64(nonce: str) -> None:
    raw = base64.b64decode(nonce, validate=True)
    assert len(raw) == 16
    assert base64.b64encode(raw).decode() == nonce  # canonical: what b2a_base64 of the 16 bytes gives


# --- nonces -------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(chunks=st.lists(st.tuples(st.integers(1, 300), st.booleans()), min_size=1, max_size=6))
@example(chunks=[(_NONCE_BATCH - 1, False), (2, False), (_NONCE_BATCH + 1, True)])  # across batch edges
def test_nonces_never_repeat(chunks: list[tuple[int, bool]]) -> None:
    """Any sequence of requests, with the pool dropped (as in a forked child) between some of them:
    no nonce twice, each one 128 bits in base64, the CSP carrying exactly the request's nonce."""
    engine = nonce_engine()
    seen: list[str] = []
    for count, reset in chunks:
        if reset:
            _NONCES.reset()
        for _ in range(count):
            match = engine.match("example.com", "/", "GET")
            assert match is not None
            assert match.nonce is not None
            headers = dict(engine.apply(match, 200, []))
            assert headers[b"content-security-policy"] == b"script-src 'nonce-" + match.nonce.encode() + b"'"
            assert getattr(match, "token", None) == match.nonce.encode()  # what the app's headers are searched for
            seen.append(match.nonce)
    assert len(set(seen)) == len(seen)
    for nonce in {seen[0], seen[-1], *seen[:: max(1, len(seen) // 7)]}:
        assert_128_bit_base64(nonce)


def test_new_nonce_and_a_whole_batch_are_well_formed() -> None:
    nonces = [new_nonce() for _ in range(_NONCE_BATCH + 3)]
    assert len(set(nonces)) == len(nonces)
    for nonce in nonces:
        assert NONCE.fullmatch(nonce.encode())
        assert_128_bit_base64(nonce)


def test_reset_drops_the_batch() -> None:
    """What the fork hook runs: after a reset the next nonce is none of the old batch's."""
    _NONCES.reset()
    new_nonce()  # a fresh batch
    left = list(_NONCES.nonces)
    assert len(left) == _NONCE_BATCH - 1
    _NONCES.nonces = iter(left)
    _NONCES.reset()
    assert new_nonce() not in {text for text, _ in left}  # without the reset: left[0]


def test_forked_child_never_repeats_the_parents_nonces() -> None:
    """A real fork with a batch half used: the child's nonces (past a batch edge) and the parent's
    next ones share nothing."""
    engine = nonce_engine()
    assert engine.match("example.com", "/", "GET") is not None  # a batch in the parent
    count = _NONCE_BATCH + 10
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            nonces: list[str] = []
            for _ in range(count):
                match = engine.match("example.com", "/", "GET")
                nonces.append(match.nonce or "" if match is not None else "")
            os.write(write, "\n".join(nonces).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode().split("\n")
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), signal.Signals(os.WTERMSIG(status)) if os.WIFSIGNALED(status) else status
    parent = []
    for _ in range(count):
        match = engine.match("example.com", "/", "GET")
        assert match is not None
        parent.append(match.nonce)
    assert len(child) == len(set(child)) == count
    assert set(child).isdisjoint(parent)
    for nonce in child[:3]:
        assert_128_bit_base64(nonce)


# --- the literal prefilter ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        (r"^(.*/)?c2c/?$", "c2c"),
        (r"^/docs/?$", "/docs"),
        (r"^/section12/", "/section12/"),
        (r".*docs$", "docs"),
        (r"^a(?i:bc)de", "de"),  # a scoped flag: the letters inside are not plain
        (r"^/(api|admin)", "/"),
        (r"(?i)^api", ""),  # ignores case: no prefilter
        (r"^$", ""),
        (r"a|bc", ""),  # an alternation at the top: nothing is required
        (r"^/x?y", "/"),  # an optional character is not required
        (r"(", ""),  # not a pattern: no prefilter (the rule compiler refuses it anyway)
    ],
)
def test_required_literal(pattern: str, literal: str) -> None:
    assert _required_literal(pattern) == literal


PIECES = ["a", "b", "c2c", "/", "x?", "(a|b)", "(.*/)?", "[ab]", r"\d", ".", "a*", "b+", "(?i:ab)", "$", "(?:/c)?"]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES), min_size=1, max_size=6),
    anchored=st.booleans(),
    subjects=st.lists(st.text(alphabet="abc2/xAB1", max_size=12), min_size=1, max_size=8),
)
@example(pieces=["(.*/)?", "c2c", "/", "$"], anchored=True, subjects=["c2c/", "a/c2c/", "c2", "/c2c"])
def test_prefilter_never_changes_an_answer(pieces: list[str], anchored: bool, subjects: list[str]) -> None:
    """A subject the pattern matches contains its literal; the engine (the pattern tested alone,
    in both path forms) answers as re.match does."""
    source = ("^" if anchored else "") + "".join(pieces)
    for pattern in (source, "^/" + source.removeprefix("^")):
        literal = _required_literal(pattern)
        with_slash = pattern.startswith(PATH_WITH_SLASH_PREFIXES)
        rules = compile_rules({"r": {"path_match": pattern, "headers": {"X-A": "1"}}}, use_default=False)
        engine = PythonEngine(rules)
        for subject in subjects:
            path = "/" + subject
            seen = path if with_slash else subject
            expected = re.match(pattern, seen) is not None
            if expected:
                assert literal in seen
            assert (engine.match("h", path, "GET") is not None) is expected, (pattern, path)
