"""Security headers: the service's 0.14-style rules (paths matched without their leading slash)."""

import re

from fastapi.testclient import TestClient


def directives(value: str) -> set[str]:
    """The directives of a Cache-Control value, whatever the separator."""
    return {item.strip() for item in re.split(r"[;,]", value) if item.strip()}


def test_tiles_can_be_embedded_by_other_sites(client: TestClient) -> None:
    response = client.get("/tiles/osm/3/4/2.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert directives(response.headers["Cache-Control"]) == {"public", "max-age=86400"}


def test_admin_page_scripts_carry_the_csp_nonce(client: TestClient) -> None:
    response = client.get("/admin/")
    assert response.status_code == 200, response.text
    csp = response.headers["Content-Security-Policy"]
    match = re.search(r"script-src 'self' 'nonce-([A-Za-z0-9+/=]+)'", csp)
    assert match is not None, csp
    nonce = match.group(1)
    assert f"style-src 'self' 'nonce-{nonce}'" in csp
    assert response.text.count(f'nonce="{nonce}"') == 2
    assert response.headers["Cache-Control"] == "no-store"
    # A new nonce for every page.
    assert client.get("/admin/").headers["Content-Security-Policy"] != csp


def test_api_caching_by_method(client: TestClient) -> None:
    response = client.get("/api/layers")
    assert response.json() == {"layers": ["osm", "ortho", "relief"]}
    assert directives(response.headers["Cache-Control"]) == {"private", "max-age=60"}
    assert client.post("/api/layers/osm/purge").headers["Cache-Control"] == "no-store"


def test_robots_tag_everywhere_but_the_api(client: TestClient) -> None:
    assert "X-Robots-Tag" not in client.get("/api/layers").headers
    assert client.get("/").headers["X-Robots-Tag"] == "noindex, nofollow"
    assert client.get("/tiles/ortho/0/0/0.png").headers["X-Robots-Tag"] == "noindex, nofollow"


def test_default_headers_are_kept(client: TestClient) -> None:
    response = client.get("/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    # C2C__HTTP=true: the service's "http" rule removes HSTS.
    assert "Strict-Transport-Security" not in response.headers


def test_c2c_console_page(client: TestClient) -> None:
    response = client.get("/c2c/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
