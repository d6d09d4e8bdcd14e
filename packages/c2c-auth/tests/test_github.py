"""GitHub OAuth end to end against the fake GitHub on 127.0.0.1 (weak points 1, 2, 3, 5 and 11)."""

from __future__ import annotations

import asyncio
import datetime
import time
import types
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.responses import HTMLResponse, JSONResponse

import c2c_auth
from c2c_auth import _access, _claims, _github, _modes, _sessions
from c2c_auth._settings import GitHubSettings

COOKIE = "c2c-jwt-auth"


def _everything(responses: list[httpx.Response]) -> str:
    """Every header and body the browser saw, as one text."""
    return "\n".join(f"{r.headers}\n{r.text}" for r in responses)


async def test_full_dance(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    started = await h.start_flow(client, came_from="/c2c/ro?x=1")
    location = urlsplit(started.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{fake_github.base}/login/oauth/authorize"
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert query["client_id"] == h.CLIENT_ID
    assert query["redirect_uri"] == f"{h.APP_BASE}/c2c/auth/github/callback"
    assert query["scope"] == "repo"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 43
    state_cookies = h.set_cookies(started)
    (state_name,) = state_cookies
    assert state_name.startswith("c2c-state-")
    assert state_cookies[state_name]["path"] == "/c2c/auth/github/"  # the login counts the flows in progress
    assert state_cookies[state_name]["httponly"] == "True"
    # The state cookie holds neither the state nor the PKCE verifier in clear.
    state_text = h.jwt_text(state_cookies[state_name]["value"])
    assert query["state"] not in state_text

    callback = await h.finish_flow(client, github_http, fake_github, started, "alice")
    assert callback.status_code == 307, callback.text
    assert callback.headers["location"] == "/c2c/ro?x=1"
    cookies = h.set_cookies(callback)
    assert cookies[state_name]["max-age"] == "0"  # single use
    session = cookies[COOKIE]
    assert session["path"] == "/c2c/"
    assert session["httponly"] == "True"
    assert session["secure"] == "True"
    # The token request used the same redirect_uri and the PKCE verifier (the fake GitHub checks both).
    (exchange,) = fake_github.token_requests
    assert exchange["redirect_uri"] == query["redirect_uri"]
    assert exchange["code_verifier"]
    (access_token,) = fake_github.tokens
    # The GitHub token is encrypted in the cookie: not readable by whoever sees it.
    session_text = h.jwt_text(session["value"])
    assert access_token not in session_text
    assert "gho_" not in session_text

    status = await client.get("/c2c/auth/status")
    assert status.json() == {
        "is_logged_in": True,
        "user": {
            "login": "alice",
            "display_name": "Alice Liddell",
            "url": "https://github.com/alice",
            "token": "",
        },
        "type": "github_oauth",
    }
    checks = await client.get("/c2c/checks")
    assert checks.json() == {"read_only": True, "read_write": False, "admin": False, "custom_push": False}
    responses = [started, callback, status, checks]
    for path in ("/c2c/ro", "/c2c/rw", "/c2c/admin", "/c2c/logged"):
        responses.append(await client.get(path))
    assert [r.status_code for r in responses[-4:]] == [200, 403, 403, 200]
    assert responses[-3].json()["detail"] == "You don't have read-write access to this resource"
    # No response ever carried the GitHub token (c2casgiutils returned it from /status).
    assert access_token not in _everything(responses)


@pytest.mark.parametrize(
    ("login", "expected"),
    [
        ("alice", {"/c2c/ro": 200, "/c2c/rw": 403, "/c2c/admin": 403}),  # pull
        ("bob", {"/c2c/ro": 200, "/c2c/rw": 200, "/c2c/admin": 403}),  # push
        ("carol", {"/c2c/ro": 200, "/c2c/rw": 200, "/c2c/admin": 200}),  # admin
        ("mallory", {"/c2c/ro": 403, "/c2c/rw": 403, "/c2c/admin": 403}),  # no access to the repository
    ],
)
async def test_levels(
    github_mode: Any,
    client: httpx.AsyncClient,
    github_http: httpx.AsyncClient,
    fake_github: Any,
    h: types.ModuleType,
    login: str,
    expected: dict[str, int],
) -> None:
    assert (await h.oauth_login(client, github_http, fake_github, login)).status_code == 307
    assert {path: (await client.get(path)).status_code for path in expected} == expected
    # Logged in, whatever the permissions.
    assert (await client.get("/c2c/logged")).status_code == 200


async def test_display_name_falls_back_to_login(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    await h.oauth_login(client, github_http, fake_github, "bob")
    assert (await client.get("/c2c/auth/status")).json()["user"]["display_name"] == "bob"


async def test_several_tabs_at_once(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    first = await h.start_flow(client, came_from="/c2c/first")
    second = await h.start_flow(client, came_from="/c2c/second")
    # Finished in the other order: each flow has its own state cookie (c2casgiutils had one slot).
    done_second = await h.finish_flow(client, github_http, fake_github, second, "bob")
    assert done_second.status_code == 307
    assert done_second.headers["location"] == "/c2c/second"
    done_first = await h.finish_flow(client, github_http, fake_github, first, "alice")
    assert done_first.status_code == 307
    assert done_first.headers["location"] == "/c2c/first"
    assert (await client.get("/c2c/auth/status")).json()["user"]["login"] == "alice"


async def test_callback_replay_and_foreign_browser(
    github_mode: Any,
    make_client: Any,
    github_http: httpx.AsyncClient,
    fake_github: Any,
    h: types.ModuleType,
) -> None:
    victim = make_client()
    attacker = make_client()
    started = await h.start_flow(attacker)
    authorize = await github_http.get(started.headers["location"])
    callback = urlsplit(authorize.headers["location"])
    url = f"{callback.path}?{callback.query}"
    # Login CSRF: the attacker's callback URL opened in the victim's browser has no matching state cookie.
    refused = await victim.get(url)
    assert refused.status_code == 400
    assert "No GitHub login in progress" in refused.json()["error"]
    assert COOKIE not in h.set_cookies(refused)
    # The right browser succeeds once; a replay fails (state cookie consumed, code used).
    assert (await attacker.get(url)).status_code == 307
    replay = await attacker.get(url)
    assert replay.status_code == 400


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Missing state parameter"),
        ({"state": "forged", "code": "x"}, "No GitHub login in progress"),
    ],
)
async def test_callback_errors(
    github_mode: Any, client: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    response = await client.get("/c2c/auth/github/callback", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


async def test_callback_state_mismatch_and_provider_error(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    started = await h.start_flow(client)
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    denied = await client.get("/c2c/auth/github/callback", params={"state": state, "error": "access_denied"})
    assert denied.status_code == 400
    assert "access_denied" in denied.json()["error"]
    # The flow's cookie was consumed by the failed attempt.
    again = await client.get("/c2c/auth/github/callback", params={"state": state, "code": "x"})
    assert again.status_code == 400


async def test_bad_code_is_a_400(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    started = await h.start_flow(client)
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    response = await client.get("/c2c/auth/github/callback", params={"state": state, "code": "not-issued"})
    assert response.status_code == 400
    assert "bad_verification_code" in response.json()["error"]
    assert COOKIE not in h.set_cookies(response)


@pytest.mark.parametrize("failure", ["down", "hang", "closed"])
async def test_github_unavailable_at_login_is_a_503(
    github_mode: Any,
    client: httpx.AsyncClient,
    github_http: httpx.AsyncClient,
    fake_github: Any,
    h: types.ModuleType,
    failure: str,
) -> None:
    github_mode.set(C2C__AUTH__GITHUB__TIMEOUT="0.3")
    started = await h.start_flow(client)
    authorize = await github_http.get(started.headers["location"])
    callback = urlsplit(authorize.headers["location"])
    if failure == "closed":
        from c2c_testing import free_port

        github_mode.set(C2C__AUTH__GITHUB__TOKEN_URL=f"http://127.0.0.1:{free_port()}/token")
    else:
        setattr(fake_github, failure, True)
    response = await client.get(f"{callback.path}?{callback.query}")
    assert response.status_code == 503
    assert response.json() == {"error": _github.GITHUB_UNAVAILABLE_MESSAGE}
    assert COOKIE not in h.set_cookies(response)


async def test_github_unavailable_during_access_check(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    github_mode.set(C2C__AUTH__GITHUB__TIMEOUT="0.3")
    await h.oauth_login(client, github_http, fake_github, "carol")
    fake_github.down = True
    response = await client.get("/c2c/admin")
    assert response.status_code == 503
    assert response.json()["detail"] == _github.GITHUB_UNAVAILABLE_MESSAGE
    # The check_* functions fail closed instead of raising.
    assert (await client.get("/c2c/checks")).json() == dict.fromkeys(
        ("read_only", "read_write", "admin", "custom_push"), False
    )
    fake_github.down = False
    fake_github.hang = True
    assert (await client.get("/c2c/rw")).status_code == 503


async def test_permissions_are_cached(
    github_mode: Any,
    client: httpx.AsyncClient,
    github_http: httpx.AsyncClient,
    fake_github: Any,
    h: types.ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(_github.CACHE, "clock", lambda: now[0])
    await h.oauth_login(client, github_http, fake_github, "bob")
    for _ in range(3):
        assert (await client.get("/c2c/rw")).status_code == 200
    assert fake_github.calls["repo"] == 1
    # Access removed at GitHub: still granted until the cache entry expires, then refused.
    fake_github.users["bob"].permissions = h.LEVELS["pull"]
    now[0] += 59
    assert (await client.get("/c2c/rw")).status_code == 200
    now[0] += 2
    assert (await client.get("/c2c/rw")).status_code == 403
    assert fake_github.calls["repo"] == 2
    # Cache disabled: every check asks GitHub.
    github_mode.set(C2C__AUTH__GITHUB__CACHE_TTL="0")
    await client.get("/c2c/ro")
    await client.get("/c2c/ro")
    assert fake_github.calls["repo"] == 4


async def test_missing_permissions_key_is_no_access(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    await h.oauth_login(client, github_http, fake_github, "bob")
    fake_github.users["bob"].permissions = {"pull": True}  # no `push` key: c2casgiutils raised KeyError (500)
    assert (await client.get("/c2c/rw")).status_code == 403
    assert (await client.get("/c2c/ro")).status_code == 200


@pytest.mark.parametrize(
    ("login", "expected"),
    [
        ("alice", {"/c2c/ro": 200, "/c2c/rw": 403}),
        ("bob", {"/c2c/ro": 200, "/c2c/rw": 200}),
        ("mallory", {"/c2c/ro": 403, "/c2c/rw": 403}),  # a valid GitHub account without permission
        (None, {"/c2c/ro": 403, "/c2c/rw": 403, "/c2c/logged": 403}),  # not a GitHub token
    ],
)
async def test_bearer_token_needs_the_repository_permission(
    github_mode: Any,
    client: httpx.AsyncClient,
    fake_github: Any,
    login: str | None,
    expected: dict[str, int],
) -> None:
    token = fake_github.issue_token(login) if login else "ghp_forged"
    headers = {"Authorization": f"Bearer {token}"}
    assert {path: (await client.get(path, headers=headers)).status_code for path in expected} == expected
    if login is None:
        refused = await client.get("/c2c/logged", headers=headers)
        assert refused.json()["detail"] == _access.NOT_LOGGED_IN_GITHUB_MESSAGE
    status = await client.get("/c2c/auth/status", headers=headers)
    assert token not in status.text
    assert status.json()["type"] == ("github_bearer" if login else "none")


async def test_the_access_type_variable_is_not_used(
    github_mode: Any, client: httpx.AsyncClient, fake_github: Any
) -> None:
    """`C2C__AUTH__GITHUB__ACCESS_TYPE` existed on c2casgiutils' master branch and was read nowhere:
    a deployment still carrying it (`admin`) keeps the access the ACCESS_TYPE_* levels give."""
    github_mode.set(C2C__AUTH__GITHUB__ACCESS_TYPE="admin")
    headers = {"Authorization": f"Bearer {fake_github.issue_token('bob')}"}  # push, not admin
    assert (await client.get("/c2c/ro", headers=headers)).status_code == 200
    assert (await client.get("/c2c/rw", headers=headers)).status_code == 200


async def test_bearer_token_with_github_down_is_a_503(
    github_mode: Any, client: httpx.AsyncClient, fake_github: Any
) -> None:
    token = fake_github.issue_token("bob")
    fake_github.down = True
    response = await client.get("/c2c/ro", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503


async def test_state_cookie_is_never_a_session(
    github_mode: Any, client: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    # Weak point 2: the state cookie, which anyone can get, was accepted as a session.
    started = await h.start_flow(client)
    state_token = next(iter(h.set_cookies(started).values()))["value"]
    client.cookies.clear()
    client.cookies.set(COOKIE, state_token, domain="app.example", path="/c2c/")
    logged = await client.get("/c2c/logged")
    assert logged.status_code == 403
    assert h.set_cookies(logged)[COOKIE]["max-age"] == "0"
    client.cookies.set(COOKIE, state_token, domain="app.example", path="/c2c/")
    status = await client.get("/c2c/auth/status")
    assert status.json()["is_logged_in"] is False
    assert h.set_cookies(status)[COOKIE]["max-age"] == "0"


async def test_secret_mode_session_is_not_a_github_session(
    github_mode: Any, client: httpx.AsyncClient, h: types.ModuleType
) -> None:
    keys = _sessions.keys()
    assert keys is not None
    forged = keys.encode("session", {"mth": "secret", "sfp": "x"}, 3600)
    client.cookies.set(COOKIE, forged, domain="app.example", path="/c2c/")
    assert (await client.get("/c2c/logged")).status_code == 403


async def test_expired_session_is_cleared(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    await h.oauth_login(client, github_http, fake_github, "carol")
    payload = h.jwt_payload(client.cookies[COOKIE])
    keys = _sessions.keys()
    assert keys is not None
    claims = {key: payload[key] for key in ("mth", "login", "display_name", "url", "ght", "pth")}
    client.cookies.set(COOKIE, keys.encode("session", claims, 60, now=time.time() - 120), "app.example", "/c2c/")
    for path in ("/c2c/auth/status", "/c2c/admin"):
        response = await client.get(path)
        assert response.status_code == (200 if "status" in path else 403)
        assert h.set_cookies(response)[COOKIE]["max-age"] == "0"
        client.cookies.set(COOKIE, keys.encode("session", claims, 60, now=time.time() - 120), "app.example", "/c2c/")
    # Rotating the JWT secret logs everyone out cleanly (c2casgiutils answered 401 until expiry).
    client.cookies.set(COOKIE, keys.encode("session", claims, 3600), "app.example", "/c2c/")
    assert (await client.get("/c2c/auth/status")).json()["is_logged_in"] is True
    github_mode.set(C2C__AUTH__JWT__SECRET="another-jwt-secret-that-is-long-enough-0123456789")
    response = await client.get("/c2c/auth/status")
    assert response.status_code == 200
    assert response.json()["is_logged_in"] is False
    assert h.set_cookies(response)[COOKIE]["max-age"] == "0"


async def test_refresh_of_expiring_tokens(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    # GitHub App user tokens expire; 30 s left is inside the default 1 min margin: refreshed at the next request.
    fake_github.expires_in = 30
    await h.oauth_login(client, github_http, fake_github, "bob")
    first_token = next(iter(fake_github.tokens))
    response = await client.get("/c2c/rw")
    assert response.status_code == 200
    assert fake_github.token_requests[-1]["grant_type"] == "refresh_token"
    renewed = h.set_cookies(response)[COOKIE]
    assert renewed["path"] == "/c2c/"
    assert len(fake_github.tokens) == 2
    second_token = next(token for token in fake_github.tokens if token != first_token)
    assert second_token not in h.jwt_text(renewed["value"])
    # The refresh token is single use at the fake GitHub: a refused refresh logs out and clears the cookie.
    fake_github.refresh_tokens.clear()
    refused = await client.get("/c2c/rw")
    assert refused.status_code == 403
    assert h.set_cookies(refused)[COOKIE]["max-age"] == "0"
    assert (await client.get("/c2c/auth/status")).json()["is_logged_in"] is False


async def test_refresh_with_github_down_keeps_a_still_valid_token(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    fake_github.expires_in = 30
    await h.oauth_login(client, github_http, fake_github, "bob")
    assert (await client.get("/c2c/ro")).status_code == 200  # refreshed, permissions cached
    fake_github.expires_in = None
    github_mode.set(C2C__AUTH__GITHUB__TOKEN_URL="http://127.0.0.1:1/unreachable")
    response = await client.get("/c2c/ro")
    assert response.status_code == 200
    assert COOKIE not in h.set_cookies(response)


async def test_github_s_rate_limit_keeps_the_session_and_its_permissions(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    """A session whose permissions are checked while GitHub rate-limits (403 with
    `x-ratelimit-remaining: 0`) is neither logged out nor cached without permissions."""
    await h.oauth_login(client, github_http, fake_github, "bob")
    _github.CACHE.clear()  # the permissions are asked again, now
    fake_github.rate_limited = True
    limited = await client.get("/c2c/rw")
    assert limited.status_code == 503
    assert COOKIE not in h.set_cookies(limited)  # not logged out
    fake_github.rate_limited = False
    assert (await client.get("/c2c/rw")).status_code == 200


async def test_revoked_token_logs_out(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    await h.oauth_login(client, github_http, fake_github, "carol")
    fake_github.tokens.clear()  # the user revoked the app at GitHub
    response = await client.get("/c2c/admin")
    assert response.status_code == 403
    assert h.set_cookies(response)[COOKIE]["max-age"] == "0"


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_logout_revokes_the_token(
    github_mode: Any,
    client: httpx.AsyncClient,
    github_http: httpx.AsyncClient,
    fake_github: Any,
    h: types.ModuleType,
    method: str,
) -> None:
    await h.oauth_login(client, github_http, fake_github, "carol")
    (token,) = fake_github.tokens
    assert (await client.get("/c2c/admin")).status_code == 200
    response = await client.request(method, "/c2c/auth/github/logout", params={"came_from": "/c2c/?bye"})
    assert response.status_code == (307 if method == "GET" else 303)  # 0.14's 307 after a GET
    assert response.headers["location"] == "/c2c/?bye"
    assert h.set_cookies(response)[COOKIE]["max-age"] == "0"
    assert fake_github.revoked == [token]
    assert (await client.get("/c2c/admin")).status_code == 403
    # The revoked token no longer works as a bearer either.
    assert (await client.get("/c2c/ro", headers={"Authorization": f"Bearer {token}"})).status_code == 403


async def test_logout_refuses_a_foreign_came_from_before_anything_changes(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    """As the login: 0.14's 400 for a `came_from` on another site; the session is not ended."""
    await h.oauth_login(client, github_http, fake_github, "bob")
    response = await client.get("/c2c/auth/github/logout", params={"came_from": "https://evil.example/"})
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid 'came_from' parameter: only a path on this site is accepted"}
    assert fake_github.revoked == []
    assert (await client.get("/c2c/auth/status")).json()["is_logged_in"] is True
    back = await client.get("/c2c/auth/github/logout", params={"came_from": "/c2c/?tab=logs"})
    assert (back.status_code, back.headers["location"]) == (307, "/c2c/?tab=logs")


async def test_the_token_exchange_sends_the_state_too(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    """As 0.14 did: GitHub ignores it; an OAuth proxy or another provider may check it."""
    await h.oauth_login(client, github_http, fake_github, "bob")
    (exchange,) = [form for form in fake_github.token_requests if "code" in form]
    (authorize,) = fake_github.authorize_requests
    assert exchange["state"] == authorize["state"]


@pytest.mark.parametrize(
    "came_from", ["//evil.example", "/\\evil.example", "https:evil.example", "https://evil.example"]
)
async def test_login_refuses_foreign_came_from(github_mode: Any, client: httpx.AsyncClient, came_from: str) -> None:
    response = await client.get("/c2c/auth/github/login", params={"came_from": came_from})
    assert response.status_code == 400
    # 0.14's key and first words: a 0.14 test suite's `response.json()["detail"]` keeps working.
    assert response.json() == {"detail": "Invalid 'came_from' parameter: only a path on this site is accepted"}


async def test_proxy_url(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    github_mode.set(C2C__AUTH__GITHUB__PROXY_URL="https://oauth-proxy.example/redirect")
    started = await h.start_flow(client)
    query = parse_qs(urlsplit(started.headers["location"]).query)
    redirect_uri = query["redirect_uri"][0]
    assert redirect_uri.startswith("https://oauth-proxy.example/redirect?came_from=")
    assert parse_qs(urlsplit(redirect_uri).query)["came_from"] == [f"{h.APP_BASE}/c2c/auth/github/callback"]


async def test_startup_needs_a_jwt_secret_in_github_mode(github_mode: Any, client: httpx.AsyncClient) -> None:
    await c2c_auth.startup(None)
    github_mode.set(C2C__AUTH__JWT__SECRET=None)
    with pytest.raises(ValueError, match="C2C__AUTH__JWT__SECRET"):
        await c2c_auth.startup(None)
    # Without startup, the endpoints say so clearly.
    response = await client.get("/c2c/auth/github/login")
    assert response.status_code == 500
    assert "C2C__AUTH__JWT__SECRET" in response.json()["error"]


async def test_cookie_settings_apply(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    github_mode.set(
        C2C__AUTH__JWT__COOKIE__NAME="my-session",
        C2C__AUTH__JWT__COOKIE__PATH="/",
        C2C__AUTH__JWT__COOKIE__SAME_SITE="Strict",
        C2C__AUTH__JWT__COOKIE__AGE="1h",
    )
    response = await h.oauth_login(client, github_http, fake_github, "alice")
    cookie = h.set_cookies(response)["my-session"]
    assert (cookie["path"], cookie["samesite"].lower(), cookie["max-age"]) == ("/", "strict", "3600")
    assert (await client.get("/c2c/ro")).status_code == 200


async def test_github_connections_are_pooled(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    # c2casgiutils opened a new HTTP session for every call to GitHub.
    await h.oauth_login(client, github_http, fake_github, "carol")
    assert (await client.get("/c2c/admin")).status_code == 200
    await client.post("/c2c/auth/logout")
    assert [fake_github.calls[name] for name in ("token", "user", "repo", "revoke")] == [1, 1, 1, 1]
    assert len(set(fake_github.peers)) == 1  # four calls, one TCP connection


async def test_concurrent_requests_share_one_refresh(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    # GitHub's refresh tokens are single use: two requests refreshing at once must not log the user out.
    fake_github.expires_in = 30
    await h.oauth_login(client, github_http, fake_github, "bob")
    responses = await asyncio.gather(*(client.get("/c2c/rw") for _ in range(4)))
    assert [response.status_code for response in responses] == [200] * 4
    refreshes = [request for request in fake_github.token_requests if request.get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1
    assert all(COOKIE in h.set_cookies(response) for response in responses)
    assert (await client.get("/c2c/auth/status")).json()["is_logged_in"] is True


async def test_a_refresh_arriving_while_another_waits_shares_its_lock(github_mode: Any, fake_github: Any) -> None:
    """A's refresh fails (GitHub times out), B was waiting and asks again; C arrives after A left but
    before B got the lock back: C waits for B and takes its answer, never sending the single-use
    refresh token beside B (GitHub would refuse one of them and log that user out)."""
    settings = _modes.current_settings().github
    fake_github.refresh_tokens["ghr_shared"] = "bob"
    fake_github.hang = True
    started: list[asyncio.Task[dict[str, Any]]] = []

    def arrive(_: object) -> None:  # runs once A has left and B has woken, before B's request is answered
        started.append(asyncio.ensure_future(_github.refresh_token(settings, "ghr_shared")))

    first = asyncio.ensure_future(_github.refresh_token(settings, "ghr_shared"))
    first.add_done_callback(arrive)
    second = asyncio.ensure_future(_github.refresh_token(settings, "ghr_shared"))
    for _ in range(200):
        if fake_github.calls["token"]:
            break
        await asyncio.sleep(0.01)
    fake_github.hang = False
    fake_github.release.set()
    with pytest.raises(_github.GitHubUnavailable):
        await first
    tokens = await second
    assert started
    assert await started[0] == tokens
    refreshes = [request for request in fake_github.token_requests if request.get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1  # B's (A's was refused before it was read)
    assert not _github._REFRESH_LOCKS.get()  # nobody holds or waits: the lock is gone


def test_github_tokens_are_not_in_their_repr() -> None:
    tokens = _claims.GitHubTokens(access_token="gho_secret1", refresh_token="ghr_secret2")
    assert "gho_secret1" not in repr(tokens)
    assert "ghr_secret2" not in repr(tokens)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # GitHub's way of refusing: 200 with an error field, or an error status
        (JSONResponse({"error": "bad_verification_code"}), 400),
        (JSONResponse({"message": "nope"}, status_code=401), 400),
        (JSONResponse({"token_type": "bearer"}), 400),  # no access token
        (JSONResponse({"access_token": "x", "token_type": "mac"}), 400),
        # not an answer GitHub gives: treated as GitHub being unavailable
        (HTMLResponse("<html>maintenance</html>"), 503),
        (JSONResponse(["access_token"]), 503),
        (JSONResponse({"message": "rate limited"}, status_code=429), 503),
        (JSONResponse({}, status_code=302), 503),
    ],
)
async def test_malformed_token_answers(
    github_mode: Any,
    client: httpx.AsyncClient,
    github_http: httpx.AsyncClient,
    fake_github: Any,
    h: types.ModuleType,
    answer: Any,
    expected: int,
) -> None:
    fake_github.token_answer = answer
    response = await h.oauth_login(client, github_http, fake_github, "carol")
    assert response.status_code == expected
    assert "error" in response.json()
    assert COOKIE not in h.set_cookies(response)


async def test_expired_access_token_without_refresh_token_ends_the_session(
    github_mode: Any, client: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    keys = _sessions.keys()
    assert keys is not None
    token = fake_github.issue_token("carol")
    ght = keys.encrypt({"at": token, "ate": int(time.time()) - 10}, "session")
    session = keys.encode("session", {"mth": "github_oauth", "login": "carol", "ght": ght, "pth": "/c2c/"}, 600)
    client.cookies.set(COOKIE, session, "app.example", "/c2c/")
    response = await client.get("/c2c/admin")
    assert response.status_code == 403
    assert h.set_cookies(response)[COOKIE]["max-age"] == "0"
    assert fake_github.calls["token"] == 0


async def test_a_finished_flow_cannot_be_replayed_from_a_copied_cookie(
    github_mode: Any,
    make_client: Any,
    github_http: httpx.AsyncClient,
    fake_github: Any,
    h: types.ModuleType,
) -> None:
    """The flow's cookie is deleted by the callback in the browser; copied into another one (its
    state and cookie), the finished flow is refused by the server too, before GitHub is asked."""
    browser = make_client()
    started = await h.start_flow(browser)
    flow_cookies = {name: value for name, value in browser.cookies.items() if name.startswith("c2c-state")}
    fake_github.next_login = "alice"
    authorize = await github_http.get(started.headers["location"])
    callback = urlsplit(authorize.headers["location"])
    first = await browser.get(f"{callback.path}?{callback.query}")
    assert first.status_code == 307, first.text
    exchanges = fake_github.calls["token"]
    replayer = make_client()
    for name, value in flow_cookies.items():
        replayer.cookies.set(name, value)
    again = await replayer.get(f"{callback.path}?{callback.query}")
    assert again.status_code == 400
    assert "already used" in again.json()["error"]
    assert fake_github.calls["token"] == exchanges  # GitHub not asked
    assert COOKIE not in h.set_cookies(again)


async def test_unfinished_flows_do_not_pile_up_in_the_browser(github_mode: Any, client: httpx.AsyncClient) -> None:
    """Each flow's state cookie is some 700 bytes: beyond `MAX_FLOWS` in progress, a new login
    clears the others' (proxies refuse requests whose cookies pass a few kilobytes)."""
    from c2c_auth import _routes

    for _ in range(_routes.MAX_FLOWS):
        await client.get("/c2c/auth/github/login")
    flows = [name for name in client.cookies if name.startswith("c2c-state")]
    assert len(flows) == _routes.MAX_FLOWS
    await client.get("/c2c/auth/github/login")
    assert len([name for name in client.cookies if name.startswith("c2c-state")]) == 1


async def test_the_flow_cookie_is_cleared_where_it_was_set(
    github_mode: Any, client: httpx.AsyncClient, h: types.ModuleType
) -> None:
    """The callback clears the flow cookie with the path the login set it with (both from `url_for`,
    which holds a root path the request's own path may not), or the browser keeps it."""
    started = await client.get("/c2c/auth/github/login")
    ((name, attributes),) = [item for item in h.set_cookies(started).items() if item[0].startswith("c2c-state")]
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    done = await client.get("/c2c/auth/github/callback", params={"state": state, "error": "access_denied"})
    cleared = h.set_cookies(done)[name]
    assert cleared["max-age"] == "0"
    assert cleared["path"] == attributes["path"] == "/c2c/auth/github/"


async def test_a_trickling_github_answer_is_bounded_as_a_whole() -> None:
    """httpx's timeout bounds each read: an answer sent a byte every 0.1 s (a slow proxy, an overloaded
    GitHub Enterprise) would hold the request for as long as it lasts. The whole call has the same bound."""
    body = b'{"permissions":{"pull":true}}'  # 29 bytes: about 3 s at this pace

    handlers: list[asyncio.Task[Any]] = []

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
            for byte in body:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.1)
        except ConnectionError:  # the client gave up
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = GitHubSettings(repo_url=f"http://127.0.0.1:{port}/repos", timeout=datetime.timedelta(seconds=0.5))
    try:
        with pytest.raises(_github.GitHubUnavailable, match="did not answer the repository request in time"):
            await _github.get_permissions(settings, "ghp_trickled", "camptocamp/project")
    finally:
        server.close()
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def test_access_levels_wait_for_a_hanging_github_once(github_mode: Any, fake_github: Any) -> None:
    """The /c2c page asks the three levels: a GitHub that does not answer costs one timeout, not three."""
    github_mode.set(C2C__AUTH__GITHUB__TIMEOUT="0.3")
    token = fake_github.issue_token("carol")
    info = c2c_auth.AuthInfo(is_logged_in=True, user=c2c_auth.UserInfo(login="carol", token=token))
    fake_github.hang = True
    assert await c2c_auth.access_levels(info) == {"read_only": False, "read_write": False, "admin": False}
    assert fake_github.calls["repo"] == 1
    fake_github.hang = False
    fake_github.release.set()
    # Available: the three levels as the check_* functions give them, from one (cached) permission request.
    expected = {
        "read_only": await c2c_auth.check_read_only_access(info),
        "read_write": await c2c_auth.check_read_write_access(info),
        "admin": await c2c_auth.check_admin_access(info),
    }
    assert await c2c_auth.access_levels(info) == expected
    assert expected["read_only"]
    assert fake_github.calls["repo"] == 2
