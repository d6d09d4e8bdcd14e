"""Issue 14 item 11: logout ends the session server side; a logout from another site does nothing."""

from __future__ import annotations

import types
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from c2c_auth import _redirect, _routes

COOKIE = "c2c-jwt-auth"

FOREIGN = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # a sibling host of the domain: maybe anybody's
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Referer": "https://evil.example/page"},
    {"Referer": "https://evil.example:443/c2c/"},
    {"Origin": "https://app.example.evil.example"},
]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("headers", FOREIGN)
async def test_cross_site_logout_does_nothing_in_secret_mode(
    secret_mode: Any, client: httpx.AsyncClient, h: types.ModuleType, headers: dict[str, str], method: str
) -> None:
    """A link, an image or a form on another site (GET or a form POST) logs nobody out."""
    assert (await client.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    response = await client.request(
        method, "/c2c/auth/logout", headers=headers, data={"x": "1"} if method == "POST" else None
    )
    assert response.status_code == 403
    assert response.json() == {"detail": _routes.CROSS_SITE_LOGOUT_MESSAGE}
    assert COOKIE not in h.set_cookies(response)
    # Still logged in, with the same cookie: it was neither cleared nor ended.
    assert (await client.get("/c2c/ro")).status_code == 200
    # The same request from the site itself logs out (the host decides: behind a TLS proxy the
    # application may see http while the browser's Referer says https).
    own_site = {"Sec-Fetch-Site": "same-origin", "Origin": h.APP_BASE, "Referer": "http://app.example/c2c/"}
    own = await client.request(method, "/c2c/auth/logout", headers=own_site)
    assert own.status_code == 200
    assert (await client.get("/c2c/ro")).status_code == 403


@pytest.mark.parametrize("path", ["/c2c/auth/logout", "/c2c/auth/github/logout"])
@pytest.mark.parametrize("headers", FOREIGN[:2])
async def test_cross_site_logout_does_nothing_in_github_mode(
    github_mode: Any,
    client: httpx.AsyncClient,
    github_http: httpx.AsyncClient,
    fake_github: Any,
    h: types.ModuleType,
    path: str,
    headers: dict[str, str],
) -> None:
    await h.oauth_login(client, github_http, fake_github, "carol")
    for method in ("GET", "POST"):
        response = await client.request(method, path, headers=headers)
        assert response.status_code == 403
        assert COOKIE not in h.set_cookies(response)
    assert fake_github.revoked == []  # the GitHub token is revoked only by a genuine logout
    assert (await client.get("/c2c/admin")).status_code == 200
    # A POST from the site itself logs out.
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


_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


@given(origin=st.none() | _HEADER_TEXT, referer=st.none() | _HEADER_TEXT)
def test_any_origin_or_referer_is_a_clear_answer(origin: str | None, referer: str | None) -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "https",
        "path": "/c2c/auth/logout",
        "query_string": b"",
        "headers": [(b"host", b"app.example")]
        + [(name, value.encode()) for name, value in ((b"origin", origin), (b"referer", referer)) if value is not None],
    }
    request = Request(scope)
    own = all(value is None or (_redirect.host_of(value) or "") == "app.example" for value in (origin, referer))
    assert _redirect.cross_site(request) is not own


async def test_the_browser_s_sec_fetch_site_decides(
    secret_mode: Any, client: httpx.AsyncClient, h: types.ModuleType
) -> None:
    """A page whose referrer policy is `no-referrer` posts its own logout form with `Origin: null`:
    the browser's `Sec-Fetch-Site: same-origin`, which no page can set, says it is this site's."""
    assert (await client.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    own = await client.post("/c2c/auth/logout", headers={"Sec-Fetch-Site": "same-origin", "Origin": "null"})
    assert own.status_code == 200, own.text
    assert (await client.get("/c2c/ro")).status_code == 403
