"""The app served by uvicorn: one browser-like client follows every redirect over real HTTP."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import c2c_auth
from c2c_testing import serve_asgi


@pytest.fixture
def served_app(github_mode: Any, h: types.ModuleType) -> Iterator[str]:
    """The test app under uvicorn on a free 127.0.0.1 port (plain HTTP, so cookies are not Secure)."""
    github_mode.set(C2C__AUTH__JWT__COOKIE__SECURE="false")
    with serve_asgi(h.build_app(), name="app-under-test", lifespan="on") as url:
        yield url


async def test_browser_dance_over_http(served_app: str, fake_github: Any) -> None:
    fake_github.next_login = "bob"
    async with httpx.AsyncClient(base_url=served_app, follow_redirects=True, timeout=10) as browser:
        # Not logged in: the protected route refuses, the status says so.
        assert (await browser.get("/c2c/rw")).status_code == 403
        # Login → fake GitHub's authorize → callback → came_from, following every redirect.
        landed = await browser.get("/c2c/auth/github/login", params={"came_from": "/c2c/rw"})
        assert [str(r.url).split("?")[0] for r in landed.history] == [
            f"{served_app}/c2c/auth/github/login",
            f"{fake_github.base}/login/oauth/authorize",
            f"{served_app}/c2c/auth/github/callback",
        ]
        assert landed.status_code == 200
        assert landed.json() == {"access": "read-write"}
        status = (await browser.get("/c2c/auth/status")).json()
        assert status["user"]["login"] == "bob"
        assert status["user"]["token"] == ""
        # The session cookie is scoped to /c2c/: the app's other routes do not receive it.
        assert [cookie.path for cookie in browser.cookies.jar if cookie.name == "c2c-jwt-auth"] == ["/c2c/"]
        assert (await browser.get("/c2c/admin")).status_code == 403
        # Logout clears the session and lands on the index (404 here: the test app has none).
        out = await browser.post("/c2c/auth/github/logout")
        assert str(out.url) == f"{served_app}/c2c/"
        assert "c2c-jwt-auth" not in browser.cookies
        assert (await browser.get("/c2c/rw")).status_code == 403
    assert c2c_auth.auth_type() is c2c_auth.AuthenticationType.GITHUB
