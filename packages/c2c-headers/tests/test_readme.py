"""Every header example of our README and of the reference (c2casgiutils) README, run as written.

Our README's examples are executed from the README itself (each block after an
``<!-- example: name -->`` marker), on both engines through ``C2C_HEADERS_ENGINE``. The reference
README's header examples are copied below verbatim (their configuration dicts), then served.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from _c2c_headers_helpers import http_scope, make_app, response_headers

from c2c_headers import CSP_NONCE, ArmorHeaderMiddleware, HeaderMatcher
from c2c_headers.types import ASGIApp

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE_RE = re.compile(r"<!-- example: (?P<name>[\w-]+) -->\n```python\n(?P<code>.*?)```", re.DOTALL)


def readme_examples() -> dict[str, str]:
    return {match["name"]: match["code"] for match in EXAMPLE_RE.finditer(README.read_text(encoding="utf-8"))}


def test_every_example_is_tested() -> None:
    assert set(readme_examples()) == {"defaults", "rules", "nonce", "forwarded"}


def build(name: str, monkeypatch: pytest.MonkeyPatch, engine: str) -> ASGIApp:
    monkeypatch.setenv("C2C_HEADERS_ENGINE", engine)
    namespace: dict[str, Any] = {"__name__": f"readme_{name}"}
    exec(compile(readme_examples()[name], f"README.md:{name}", "exec"), namespace)  # noqa: S102 (our README)
    app: ASGIApp = namespace["app"]
    return app


def client(app: ASGIApp, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=peer), base_url="http://www.example.com")


async def test_readme_defaults(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with client(build("defaults", monkeypatch, engine)) as http:
        response = await http.get("/")
    assert response.json() == {"hello": "world"}
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"].startswith("default-src 'self'; base-uri 'self'")


async def test_readme_rules(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with client(build("rules", monkeypatch, engine)) as http:
        items = await http.get("/api/items")
        fresh = await http.get("/api/fresh")
        posted = await http.post("/api/items")
    assert items.headers["cache-control"] == "public, max-age=3600"
    assert items.headers["access-control-allow-origin"] == "*"
    assert fresh.headers["cache-control"] == "no-cache"
    assert posted.status_code == 405
    assert "access-control-allow-origin" not in posted.headers


async def test_readme_nonce(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with client(build("nonce", monkeypatch, engine)) as http:
        first = await http.get("/page")
        second = await http.get("/page")
    nonce = re.search(r'nonce="([^"]+)"', first.text)
    assert nonce is not None
    assert f"script-src 'self' 'nonce-{nonce[1]}'" in first.headers["content-security-policy"]
    assert first.headers["cache-control"] == "no-store"
    assert nonce[1] not in second.text


async def test_readme_forwarded(monkeypatch: pytest.MonkeyPatch) -> None:
    app = build("forwarded", monkeypatch, "python")
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "www.example.org", "X-Forwarded-For": "192.0.2.9"}
    async with client(app, ("10.1.2.3", 5555)) as http:
        response = await http.get("/", headers=forwarded)
    assert response.json() == {"url": "https://www.example.org/", "client": "192.0.2.9"}
    async with client(app, ("203.0.113.1", 5555)) as http:
        untrusted = await http.get("/", headers=forwarded)
    assert untrusted.json() == {"url": "http://www.example.com/", "client": "203.0.113.1"}


# --- the reference README's header examples, as written ---

# Annotated as the reference typed it (`dict[str, HeaderMatcher]`): mypy infers `object` for such mixed dicts.
REFERENCE_RULES: dict[str, HeaderMatcher] = {
    "api_endpoints": {
        "path_match": r"^/api/.*",  # Regex pattern for paths
        "headers": {"Access-Control-Allow-Origin": "*", "X-Custom-Header": "api-value"},
        "order": 1,  # Processing order
    },
    "admin_section": {
        "netloc_match": r"^admin\..*",  # Regex for host matching
        "path_match": r"^/admin/.*",
        "headers": {"X-Robots-Tag": "noindex, nofollow"},
        "status_code": 200,  # Only apply for specific status code
        "order": 2,
    },
    "success_responses": {
        "headers": {"Cache-Control": ["public", "max-age=3600"]},
        "status_code": (200, 299),  # Apply for a range of status codes (200-299)
        "order": 3,
    },
    "api_methods": {
        "path_match": r"^/api/.*",
        "methods": ["GET", "HEAD"],  # Only apply for specific HTTP methods
        "headers": {"Cache-Control": ["public", "max-age=3600"]},
        "order": 4,
    },
    "remove_header": {
        "headers": {
            "Server": None  # Remove header by setting to None
        }
    },
}


@pytest.mark.parametrize(
    ("host", "path", "method", "status", "expected"),
    [
        (
            "www.example.com",
            "/api/items",
            "GET",
            200,
            {
                b"access-control-allow-origin": b"*",
                b"x-custom-header": b"api-value",
                b"cache-control": b"public, max-age=3600",
            },
        ),
        ("admin.example.com", "/admin/users", "GET", 200, {b"x-robots-tag": b"noindex, nofollow"}),
        ("admin.example.com", "/admin/users", "GET", 404, {b"x-robots-tag": None, b"cache-control": None}),
        ("www.example.com", "/other", "POST", 201, {b"cache-control": b"public, max-age=3600", b"server": None}),
    ],
)
async def test_reference_rules_example(
    engine: str, host: str, path: str, method: str, status: int, expected: dict[bytes, bytes | None]
) -> None:
    app = make_app(status=status, headers=[(b"server", b"uvicorn"), (b"content-type", b"application/json")])
    middleware = ArmorHeaderMiddleware(app, headers_config=REFERENCE_RULES, engine=engine)
    headers = dict(await response_headers(middleware, http_scope(path, method, host)))
    assert b"server" not in headers
    for name, value in expected.items():
        assert headers.get(name) == value


async def test_reference_value_types_example(engine: str) -> None:
    headers_config = {
        # String value
        "X-Custom": "value",
        # List (joined with "; ")
        "Cache-Control": ["no-cache", "no-store", "must-revalidate"],
        # Dictionary (for complex headers like CSP)
        "Content-Security-Policy": {
            "default-src": ["'self'"],
            "script-src": ["'self'", "https://cdn.example.com"],
            "style-src": ["'self'", "'unsafe-inline'"],
        },
        # List (joined with ", ") for Permissions-Policy
        "Permissions-Policy": ["geolocation=()", "microphone=()"],
        # Remove header
        "Unwanted-Header": None,
    }
    app = make_app(headers=[(b"unwanted-header", b"x")])
    middleware = ArmorHeaderMiddleware(app, {"types": {"headers": headers_config}}, use_default=False, engine=engine)
    assert dict(await response_headers(middleware, http_scope())) == {
        b"x-custom": b"value",
        b"cache-control": b"no-cache, no-store, must-revalidate",  # a Cache-Control list is a comma list
        b"content-security-policy": (
            b"default-src 'self'; script-src 'self' https://cdn.example.com; style-src 'self' 'unsafe-inline'"
        ),
        b"permissions-policy": b"geolocation=(), microphone=()",
    }


async def test_reference_nonce_and_methods_examples(engine: str) -> None:
    custom_config = {
        "my_page": {
            "path_match": r"^/my-page/?",
            "headers": {
                "Content-Security-Policy": {
                    "default-src": ["'self'"],
                    "script-src": ["'self'", CSP_NONCE],
                    "style-src": ["'self'", CSP_NONCE],
                }
            },
        },
        "api_post_endpoints": {
            "path_match": r"^/api/.*",
            "methods": ["POST", "PUT", "PATCH"],  # Only apply for these methods
            "headers": {"Cache-Control": "no-store"},
        },
        "api_get_endpoints": {
            "path_match": r"^/api/.*",
            "methods": ["GET", "HEAD"],  # Only apply for GET and HEAD requests
            "headers": {"Cache-Control": ["public", "max-age=3600"]},
        },
    }
    middleware = ArmorHeaderMiddleware(make_app(), custom_config, engine=engine)
    scope = http_scope("/my-page")
    page = dict(await response_headers(middleware, scope))
    assert (
        page[b"content-security-policy"]
        == (
            f"default-src 'self'; script-src 'self' 'nonce-{scope['state']['nonce']}'; "
            f"style-src 'self' 'nonce-{scope['state']['nonce']}'"
        ).encode()
    )
    post = dict(await response_headers(middleware, http_scope("/api/x", "POST")))
    get = dict(await response_headers(middleware, http_scope("/api/x", "GET")))
    assert (post[b"cache-control"], get[b"cache-control"]) == (b"no-store", b"public, max-age=3600")


def test_reference_placeholder_example_gives_a_clear_error(engine: str) -> None:
    """The reference README's "my_page" example has a literal ``...`` in its lists: a clear error."""
    config = {
        "my_page": {
            "path_match": r"^your-path/?",
            "headers": {
                "Content-Security-Policy": {
                    "default-src": ["'self'"],
                    "script-src-elem": ["'self'", ...],
                    "style-src-elem": ["'self'", ...],
                }
            },
            "order": 1,
        }
    }
    with pytest.raises(ValueError, match=r"rule 'my_page', header 'Content-Security-Policy': unsupported value type"):
        ArmorHeaderMiddleware(make_app(), config, engine=engine)


@pytest.mark.parametrize("http_mode", [False, True])
async def test_reference_install_example(engine: str, http_mode: bool) -> None:
    """The reference's install snippet (with its HSTS condition as the 0.7 guide meant it)."""
    middleware = ArmorHeaderMiddleware(
        make_app(),
        headers_config={
            "http": {"headers": {"Strict-Transport-Security": None} if http_mode else {}},
        },
        engine=engine,
    )
    headers = dict(await response_headers(middleware, http_scope()))
    assert (b"strict-transport-security" in headers) is not http_mode
