"""What the engines read from a scope (`c2c_headers._scope`), and the python engine's `match_scope`."""

from __future__ import annotations

from typing import Any

import pytest

from c2c_headers._python_engine import PythonEngine
from c2c_headers._rules import compile_rules
from c2c_headers._scope import request_target


@pytest.mark.parametrize(
    ("scope", "netloc"),
    [
        ({"headers": [(b"accept", b"*/*"), (b"host", b"h:8000")]}, "h:8000"),
        ({"headers": [(b"host", b"a"), (b"host", b"b")]}, "a"),  # the first one
        ({"headers": [(b"host", b"\xe9")]}, "\xe9"),  # latin-1, never an error
        ({"headers": [(b"Host", b"x")], "server": ("s", 80)}, "s"),  # servers lower-case names
        ({"server": ("s", 443), "scheme": "https"}, "s"),
        ({"server": ("s", 443), "scheme": "http"}, "s:443"),
        ({"server": ("s", 80)}, "s"),  # no scheme: http
        ({"server": ("/tmp/sock", None)}, "/tmp/sock"),  # a Unix socket: no port
        ({}, ""),
    ],
)
def test_netloc(scope: dict[str, Any], netloc: str) -> None:
    assert request_target({**scope, "method": "GET"})[0] == netloc


@pytest.mark.parametrize(
    ("path", "root_path", "relative"),
    [
        ("/app/x", "/app", "/x"),
        ("/app", "/app", "/"),
        ("/apple", "/app", "/apple"),  # a prefix only at a segment boundary
        ("/x", "", "/x"),
        ("/x", "/other", "/x"),
    ],
)
def test_path_relative_to_root_path(path: str, root_path: str, relative: str) -> None:
    assert request_target({"path": path, "root_path": root_path, "method": "GET"})[1] == relative


def test_refuses_what_no_server_sends() -> None:
    assert request_target({"path": "/", "method": "GET"}) == ("", "/", "GET")
    with pytest.raises(TypeError, match="path and method must be str, got bytes and str"):
        request_target({"path": b"/", "method": "GET"})
    with pytest.raises(TypeError, match="got str and bytes"):
        request_target({"path": "/", "method": b"GET"})
    with pytest.raises(KeyError, match="method"):
        request_target({"path": "/"})


def test_python_match_scope_is_match_on_the_target() -> None:
    engine = PythonEngine(compile_rules({"api": {"path_match": r"^/api", "methods": ["GET"], "headers": {"X-A": "1"}}}))
    scope = {"type": "http", "headers": [(b"host", b"h")], "path": "/app/api/x", "root_path": "/app", "method": "GET"}
    match = engine.match_scope(scope)
    assert match is not None
    assert (b"x-a", b"1") in engine.apply(match, 200, [])
    posted = engine.match_scope({**scope, "method": "POST"})
    assert posted is not None  # the default rules still match
    assert (b"x-a", b"1") not in engine.apply(posted, 200, [])
