"""The application as deployed: health checks, security headers, the /c2c pages, secure defaults."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/c2c/livez")
    assert response.status_code == 200
    report = response.json()
    assert report["status_code"] == 200
    assert [entity["name"] for entity in report["entities"]] == ["Alive"]


async def test_readiness(client: httpx.AsyncClient) -> None:
    response = await client.get("/c2c/readyz")
    assert response.status_code == 200
    report = response.json()
    assert report["status_code"] == 200
    assert [entity["name"] for entity in report["entities"]] == ["Alive"]  # nothing shared by the replicas


async def test_all_health_checks(client: httpx.AsyncClient) -> None:
    response = await client.get("/c2c/health_checks")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


async def test_api(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/hello", params={"name": "tests"})
    assert response.status_code == 200
    assert response.json() == {"message": "Hello, tests!"}


@pytest.mark.parametrize("path", ["/", "/api/hello", "/c2c/health_checks"])
async def test_security_headers(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert "default-src" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "referrer-policy" in response.headers


async def test_c2c_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/c2c/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in response.headers


async def test_c2c_without_slash_redirects(client: httpx.AsyncClient) -> None:
    response = await client.get("/c2c")
    assert response.status_code in (307, 308)
    assert response.headers["location"].endswith("/c2c/")


async def test_unknown_host_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/hello", headers={"Host": "attacker.example"})
    assert response.status_code == 400
    assert response.headers["x-content-type-options"] == "nosniff"  # the refusal has the security headers


async def test_cors_allows_no_origin_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/hello", headers={"Origin": "https://attacker.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = await client.options(
        "/api/hello",
        headers={"Origin": "https://attacker.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_request_id(client: httpx.AsyncClient) -> None:
    """Every response has an X-Request-ID: the trusted proxy's (the tests' client is 127.0.0.1), else a new one."""
    kept = await client.get("/api/hello", headers={"X-Request-ID": "from-the-proxy-42"})
    assert kept.headers["x-request-id"] == "from-the-proxy-42"
    generated = await client.get("/api/hello", headers={"X-Request-ID": "not well formed!"})
    assert len(generated.headers["x-request-id"]) == 32
    other = await client.get("/api/hello")
    assert other.headers["x-request-id"] not in ("", generated.headers["x-request-id"])
