"""`ForwardedRewriter`: known forwarded rewrites written into an ASGI scope, exactly or not at all.

The rewriter decides nothing: these tests fill its cache by hand, as c2c-headers' middleware does,
and check what it writes, and that it answers False with the scope untouched whenever it cannot
answer exactly (the differential test against the Python path lives in c2c-headers' tests).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from c2c_headers_native import ForwardedRewriter

NAMES = [b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"host"]
PEER = ("10.0.0.1", 5000)
UPDATES = {"client": ("203.0.113.7", 0), "scheme": "https", "server": ("public.example", 443)}
HOST_LINE = (b"host", b"public.example")


def _scope(headers: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": "http",
        "server": ("internal", 8000),
        "client": PEER,
        "root_path": "",
        "path": "/x",
        "raw_path": b"/x",
        "headers": headers,
        **extra,
    }


HEADERS = [(b"host", b"internal:8000"), (b"user-agent", b"t"), (b"x-forwarded-for", b"203.0.113.7")]
KEY = ("http", "http", b"internal:8000", ((b"x-forwarded-for", b"203.0.113.7"),), None)


def _rewriter(entries: dict[Any, Any] | None = None) -> tuple[ForwardedRewriter, dict[Any, Any]]:
    cache: dict[Any, Any] = dict(entries or {})
    return ForwardedRewriter(NAMES, cache, "c2c.peer", "original"), cache


def test_a_known_key_is_written_like_the_python_path() -> None:
    rewriter, _ = _rewriter({KEY: (UPDATES, HOST_LINE, None, "internal:8000")})
    headers = list(HEADERS)
    scope = _scope(headers)
    assert rewriter.rewrite(scope, PEER) is True
    assert list(scope.items()) == [
        ("type", "http"),
        ("scheme", "https"),
        ("server", ("public.example", 443)),
        ("client", ("203.0.113.7", 0)),
        ("root_path", ""),
        ("path", "/x"),
        ("raw_path", b"/x"),
        ("headers", [HOST_LINE, HEADERS[1], HEADERS[2]]),
        ("c2c.peer", PEER),
        (
            "original",
            {
                "client": PEER,
                "scheme": "http",
                "server": ("internal", 8000),
                "host": "internal:8000",
                "root_path": "",
                "path": "/x",
            },
        ),
    ]
    assert headers == HEADERS  # the request's own list is not written to


def test_an_unknown_key_leaves_the_scope_untouched() -> None:
    rewriter, cache = _rewriter()
    scope = _scope(list(HEADERS))
    before = copy.deepcopy(scope)
    assert rewriter.rewrite(scope, PEER) is False
    assert scope == before
    cache[KEY] = None  # resolved: nothing to rewrite
    assert rewriter.rewrite(scope, PEER) is True
    assert scope == before


def test_no_forwarded_line_is_done_without_a_lookup() -> None:
    rewriter, _ = _rewriter()
    scope = _scope([(b"host", b"a"), (b"host", b"b"), (b"x-forwarded-for-not", b"1")])
    before = copy.deepcopy(scope)
    assert rewriter.rewrite(scope, PEER) is True
    assert scope == before


@pytest.mark.parametrize(
    "headers",
    [
        [[b"host", b"internal:8000"], (b"x-forwarded-for", b"203.0.113.7")],  # a line as a list
        [(b"host", b"internal:8000"), (b"x-forwarded-for", "203.0.113.7")],  # a str value
        [(b"host", b"internal:8000", b""), (b"x-forwarded-for", b"203.0.113.7")],  # three items
        [(b"x-forwarded-for", b"203.0.113.7")],  # no Host line
        [(b"host", b"a"), (b"Host", b"b"), (b"x-forwarded-for", b"203.0.113.7")],  # two
        ((b"host", b"internal:8000"), (b"x-forwarded-for", b"203.0.113.7")),  # a tuple, not a list
    ],
    ids=["list-line", "str-value", "three-items", "no-host", "two-hosts", "tuple-of-lines"],
)
def test_what_it_cannot_read_goes_back_untouched(headers: Any) -> None:
    rewriter, _ = _rewriter({KEY: (UPDATES, HOST_LINE, None, "internal:8000")})
    scope = _scope(headers)
    before = copy.deepcopy(scope)
    assert rewriter.rewrite(scope, PEER) is False
    assert scope == before


def test_a_line_it_does_not_read_is_copied_as_it_is() -> None:
    rewriter, _ = _rewriter({KEY: (UPDATES, HOST_LINE, None, "internal:8000")})
    odd = (b"x-other", "text")  # not bytes: the Python side would not read it either
    scope = _scope([*HEADERS, odd])
    assert rewriter.rewrite(scope, PEER) is True
    assert scope["headers"] == [HOST_LINE, HEADERS[1], HEADERS[2], odd]


def test_names_are_matched_without_case_and_keyed_lower_case() -> None:
    rewriter, _ = _rewriter({KEY: (UPDATES, None, None, "internal:8000")})
    scope = _scope([(b"HOST", b"internal:8000"), (b"X-Forwarded-For", b"203.0.113.7"), (b"X-Forwarded-For\xff", b"1")])
    assert rewriter.rewrite(scope, PEER) is True
    assert scope["scheme"] == "https"
    assert scope["headers"][0] == (b"HOST", b"internal:8000")  # no host line to write: the list stays


def test_a_prefix_and_missing_keys() -> None:
    key = ("websocket", None, b"h", ((b"x-forwarded-proto", b"https"),), None)
    rewriter, _ = _rewriter({key: ({"scheme": "wss"}, None, ("/p", b"/p"), "h")})
    scope: dict[str, Any] = {
        "type": "websocket",
        "headers": [(b"host", b"h"), (b"x-forwarded-proto", b"https")],
        "raw_path": b"/x",
    }
    assert rewriter.rewrite(scope, None) is True
    assert scope["c2c.peer"] is None
    assert scope["original"] == {
        "client": None,
        "scheme": None,
        "server": None,
        "host": "h",
        "root_path": "",
        "path": None,
    }
    assert (scope["scheme"], scope["root_path"], scope["path"], scope["raw_path"]) == ("wss", "/p", "/p", b"/p/x")


def test_an_earlier_peer_is_kept_and_a_non_bytes_raw_path_left_alone() -> None:
    rewriter, _ = _rewriter({KEY: ({"scheme": "https"}, None, ("/p", b"/p"), "internal:8000")})
    scope = _scope(list(HEADERS), raw_path=None)
    scope["c2c.peer"] = ("192.0.2.1", 1)
    assert rewriter.rewrite(scope, PEER) is True
    assert scope["c2c.peer"] == ("192.0.2.1", 1)
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == ("/p", "/p/x", None)


def test_a_root_path_that_is_not_text_raises_like_python() -> None:
    rewriter, _ = _rewriter({KEY: ({"scheme": "https"}, None, ("/p", b"/p"), "internal:8000")})
    scope = _scope(list(HEADERS), root_path=b"/bytes")
    with pytest.raises(TypeError):
        rewriter.rewrite(scope, PEER)
    prefix: Any = "/p"
    with pytest.raises(TypeError):  # what the Python path raises
        _ = prefix + b"/bytes"


@pytest.mark.parametrize(
    "entry",
    [("not a dict", None, None, "h"), ({}, None), ({}, None, "not a pair", "h"), ["a", "list"]],
    ids=["updates", "short", "prefix", "list"],
)
def test_a_malformed_entry_goes_back_untouched(entry: Any) -> None:
    rewriter, _ = _rewriter({KEY: entry})
    scope = _scope(list(HEADERS))
    before = copy.deepcopy(scope)
    assert rewriter.rewrite(scope, PEER) is False
    assert scope == before


def test_repr() -> None:
    rewriter, _ = _rewriter()
    assert repr(rewriter) == "<ForwardedRewriter: 4 header names>"
