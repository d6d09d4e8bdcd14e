"""Issue 14 item 11: logout ends the session server side; a GET logout from another site does nothing."""

from __future__ import annotations

import types
from typing import Any

import httpx
import pytest

from c2c_auth import _routes

COOKIE = "c2c-jwt-auth"

FOREIGN = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Referer": "https://evil.example/page"},
    {"Referer": "http://app.example/c2c/"},  # another scheme is another origin
    {"Origin": "https://app.example.evil.example"},
]


@pytest.mark.parametrize("headers", FOREIGN)
async def test_cross_site_get_logout_does_nothing_in_secret_mode(
    secret_mode: Any, client: httpx.AsyncClient, h: types.ModuleType, headers: dict[str, str]
) -> None:
    assert (await client.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    response = await client.get("/c2c/auth/logout", headers=headers)
    assert response.status_code == 403
    assert response.json() == {"detail": _routes.CROSS_SITE_LOGOUT_MESSAGE}
    assert COOKIE not in h.set_cookies(response)
    # Still logged in, with the same cookie: it was neither cleared nor ended.
    assert (await client.get("/c2c/ro")).status_code == 200
    # The same request from the site itself logs out.
    own = await client.get("/c2c/auth/logout", headers={"Sec-Fetch-Site": "same-origin", "Origin": h.APP_BASE})
    assert own.status_code == 200
    assert (await client.get("/c2c/ro")).status_code == 403


@pytest.mark.parametrize("path", ["/c2c/auth/logout", "/c2c/auth/github/logout"])
@pytest.mark.parametrize("headers", FOREIGN[:2])
async def test_cross_site_get_logout_does_nothing_in_github_mode(
    github_mode: Any,
    client: httpx.AsyncClient,
    github_http: httpx.AsyncClient,
    fake_github: Any,
    h: types.ModuleType,
    path: str,
    headers: dict[str, str],
) -> None:
    await h.oauth_login(client, github_http, fake_github, "carol")
    response = await client.get(path, headers=headers)
    assert response.status_code == 403
    assert COOKIE not in h.set_cookies(response)
    assert fake_github.revoked == []  # the GitHub token is revoked only by a genuine logout
    assert (await client.get("/c2c/admin")).status_code == 200
    # POST keeps working, also with a foreign Origin (a SameSite=Lax cookie is not sent cross-site anyway).
    out = await client.post(path, headers={"Origin": h.APP_BASE})
    assert out.status_code in (200, 303)
    assert len(fake_github.revoked) == 1
    assert (await client.get("/c2c/admin")).status_code == 403


async def test_logged_out_cookie_is_refused_and_a_replayed_logout_revokes_nothing(
    github_mode: Any,
    make_client: Any,
    github_http: httpx.AsyncClient,
    fake_github: Any,
    h: types.ModuleType,
) -> None:
    browser = make_client()
    await h.oauth_login(browser, github_http, fake_github, "carol")
    stolen = browser.cookies[COOKIE]
    assert (await browser.post("/c2c/auth/logout")).status_code == 200
    assert len(fake_github.revoked) == 1
    # Whoever copied the cookie before the logout: refused and cleared, not a 401 or 500.
    thief = make_client("198.51.100.7")
    thief.cookies.set(COOKIE, stolen, domain="app.example", path="/c2c/")
    refused = await thief.get("/c2c/admin")
    assert refused.status_code == 403
    assert h.set_cookies(refused)[COOKIE]["max-age"] == "0"
    # Replaying the logout with the ended cookie does not call GitHub again.
    thief.cookies.set(COOKIE, stolen, domain="app.example", path="/c2c/")
    assert (await thief.post("/c2c/auth/logout")).status_code == 200
    assert len(fake_github.revoked) == 1
