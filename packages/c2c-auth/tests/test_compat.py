"""c2casgiutils 0.14 compatibility: its names and parameters, application-built `AuthInfo`, the cookie an
application decodes itself, the logout of a session id."""

from __future__ import annotations

import inspect
import logging
import types
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.security import APIKeyHeader, APIKeyQuery

import c2c_auth
from c2c_auth import AuthInfo, GitHubAccessType, UserInfo, _info
from c2c_config import get_settings

COOKIE = "c2c-jwt-auth"

# Kind and parameters of each name of `c2casgiutils.auth` 0.14 (`settings` lives in c2casgiutils.auth).
KINDS: dict[str, tuple[str, list[str] | None]] = {
    "ADMIN_AUTH_CONFIG": ("object", None),
    "AccessContext": ("class", ["auth_info", "request", "response"]),
    "AuthConfig": ("class", None),
    "AuthInfo": ("class", None),
    "AuthMethod": ("class", None),
    "AuthenticationType": ("class", None),
    "GitHubAccessType": ("class", None),
    "GitHubSessionPayload": ("class", None),
    "READ_ONLY_AUTH_CONFIG": ("object", None),
    "READ_WRITE_AUTH_CONFIG": ("object", None),
    "UserInfo": ("class", None),
    "api_key_header": ("object", None),
    "api_key_query": ("object", None),
    "auth_required": ("coroutine function", ["auth_info"]),
    "auth_type": ("function", []),
    "check_access": ("coroutine function", ["auth_info", "auth_config", "request", "response"]),
    "check_access_config": ("coroutine function", ["auth_info", "auth_config", "request", "fastapi_response"]),
    "check_admin_access": ("coroutine function", ["auth_info", "request", "response"]),
    "check_read_only_access": ("coroutine function", ["auth_info", "request", "response"]),
    "check_read_write_access": ("coroutine function", ["auth_info", "request", "response"]),
    "get_access_context": ("coroutine function", ["auth_info", "request", "response"]),
    "get_auth": ("coroutine function", ["request", "response"]),
    "is_enabled": ("function", []),
    "require_access": ("coroutine function", ["auth_info", "auth_config", "request", "response"]),
    "require_admin_access": ("coroutine function", ["auth_info", "request", "response"]),
    "require_read_only_access": ("coroutine function", ["auth_info", "request", "response"]),
    "require_read_write_access": ("coroutine function", ["auth_info", "request", "response"]),
    "router": ("object", None),
    "startup": ("coroutine function", ["main_app"]),
}


def _kind(value: object) -> str:
    if inspect.isclass(value):
        return "class"
    if inspect.iscoroutinefunction(value):
        return "coroutine function"
    if inspect.isfunction(value):
        return "function"
    return "object"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_names_of_0_14(env: Any, name: str) -> None:
    kind, parameters = KINDS[name]
    value = getattr(c2c_auth, name)
    assert _kind(value) == kind
    if parameters is not None:
        signature = inspect.signature(value)
        required = [p.name for p in signature.parameters.values() if p.default is inspect.Parameter.empty]
        names = list(signature.parameters)
        # 0.14's parameters come first, in order; anything added is optional.
        assert names[: len(parameters)] == parameters
        assert all(name in parameters for name in required)


def test_router_and_security_schemes() -> None:
    assert isinstance(c2c_auth.router, APIRouter)
    paths = {route.path for route in c2c_auth.router.routes}  # type: ignore[attr-defined]
    assert {"/login", "/logout", "/status", "/github/login", "/github/callback", "/github/logout"} <= paths
    assert isinstance(c2c_auth.api_key_header, APIKeyHeader)
    assert c2c_auth.api_key_header.model.name == "X-API-Key"
    assert isinstance(c2c_auth.api_key_query, APIKeyQuery)
    assert c2c_auth.api_key_query.model.name == "secret"


async def test_router_mounted_as_0_14_apps_do(secret_mode: Any, h: types.ModuleType) -> None:
    app = FastAPI()
    app.include_router(c2c_auth.router, prefix="/c2c/auth")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=h.APP_BASE) as client:
        login = await client.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
        assert login.status_code == 200
        assert (await client.get("/c2c/auth/status")).json()["is_logged_in"] is True


def test_github_access_type(env: Any) -> None:
    assert issubclass(GitHubAccessType, str)
    assert [(member.name, member.value) for member in GitHubAccessType] == [
        ("PULL", "pull"),
        ("PUSH", "push"),
        ("ADMIN", "admin"),
    ]
    github = get_settings(c2c_auth.Settings).auth.github
    assert github.access_type_read_only is GitHubAccessType.PULL
    assert github.access_type_read_write is GitHubAccessType.PUSH
    assert github.access_type_admin is GitHubAccessType.ADMIN
    env.set(C2C__AUTH__GITHUB__ACCESS_TYPE_READ_WRITE="admin")
    assert get_settings(c2c_auth.Settings).auth.github.access_type_read_write is GitHubAccessType.ADMIN
    config = c2c_auth.AuthConfig(github_access_type_read_only="push")  # type: ignore[arg-type]
    assert config.github_access_type_read_only is GitHubAccessType.PUSH


def test_auth_configs_reflect_the_settings(env: Any) -> None:
    env.set(C2C__AUTH__GITHUB__REPOSITORY="camptocamp/one")
    read_only = c2c_auth.READ_ONLY_AUTH_CONFIG
    assert read_only.github_repository == "camptocamp/one"
    assert read_only.github_access_type_read_only is GitHubAccessType.PULL
    assert read_only.github_access_type_admin is None
    assert c2c_auth.READ_WRITE_AUTH_CONFIG.github_access_type_read_write is GitHubAccessType.PUSH
    assert c2c_auth.ADMIN_AUTH_CONFIG.github_access_type_admin is GitHubAccessType.ADMIN
    assert c2c_auth.READ_ONLY_AUTH_CONFIG is read_only  # the same object while the settings stay
    env.set(C2C__AUTH__GITHUB__REPOSITORY="camptocamp/two", C2C__AUTH__GITHUB__ACCESS_TYPE_READ_ONLY="push")
    assert c2c_auth.READ_ONLY_AUTH_CONFIG.github_repository == "camptocamp/two"
    assert c2c_auth.READ_ONLY_AUTH_CONFIG.github_access_type_read_only is GitHubAccessType.PUSH
    with pytest.raises(AttributeError, match="NOPE"):
        c2c_auth.NOPE  # noqa: B018


def test_github_session_payload_never_holds_a_token(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="c2c_auth"):
        payload = c2c_auth.GitHubSessionPayload(
            login="a", display_name="A", url="u", access_token_expires_at=5, refresh_token="ghr_secret"
        )
    assert "refresh token" in caplog.text
    assert "ghr_secret" not in caplog.text
    assert isinstance(payload, UserInfo)
    assert "ghr_" not in payload.model_dump_json()
    assert payload.model_dump() == {
        "login": "a",
        "display_name": "A",
        "url": "u",
        "token": "",
        "access_token_expires_at": 5,
        "refresh_token": None,
        "refresh_token_expires_at": None,
    }


async def test_auth_required_called_as_in_0_14(env: Any) -> None:
    await c2c_auth.auth_required(AuthInfo(is_logged_in=True, user=UserInfo(login="x")))
    with pytest.raises(HTTPException) as raised:
        await c2c_auth.auth_required(AuthInfo(is_logged_in=False, user=UserInfo()))
    assert raised.value.status_code == 403


# --- AuthInfo built by the application (item 2) ----------------------------------------------------


def _override_app(info: AuthInfo | None) -> FastAPI:
    """Protected routes (dependencies, check functions, AccessContext) with `get_auth` overridden."""
    app = FastAPI()

    @app.get("/ro", dependencies=[Depends(c2c_auth.require_read_only_access)])
    async def read_only() -> str:
        return "ro"

    @app.get("/rw", dependencies=[Depends(c2c_auth.require_read_write_access)])
    async def read_write() -> str:
        return "rw"

    @app.get("/admin", dependencies=[Depends(c2c_auth.require_admin_access)])
    async def admin() -> str:
        return "admin"

    @app.get("/logged", dependencies=[Depends(c2c_auth.auth_required)])
    async def logged() -> str:
        return "logged"

    @app.get("/custom")
    async def custom(
        auth_info: Annotated[AuthInfo, Depends(c2c_auth.get_auth)], request: Request, response: Response
    ) -> dict[str, bool]:
        config = c2c_auth.AuthConfig(github_access_type_read_write=GitHubAccessType.PUSH)
        await c2c_auth.require_access(auth_info, config, request, response)
        return {"ok": True}

    @app.get("/checks")
    async def checks(
        auth_info: Annotated[AuthInfo, Depends(c2c_auth.get_auth)],
        context: Annotated[c2c_auth.AccessContext, Depends(c2c_auth.get_access_context)],
    ) -> dict[str, bool]:
        await context.require_read_only_access()
        return {
            "read_only": await c2c_auth.check_read_only_access(auth_info),
            "read_write": await c2c_auth.check_read_write_access(auth_info),
            "admin": await c2c_auth.check_admin_access(auth_info),
            "config": await c2c_auth.check_access_config(auth_info, c2c_auth.READ_WRITE_AUTH_CONFIG),
            "access": await c2c_auth.check_access(auth_info, c2c_auth.READ_ONLY_AUTH_CONFIG),
            "context_admin": await context.check_admin_access(),
        }

    if info is not None:
        app.dependency_overrides[c2c_auth.get_auth] = lambda: info
    return app


async def _codes(app: FastAPI, h: types.ModuleType) -> dict[str, int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=h.APP_BASE) as client:
        return {path: (await client.get(path)).status_code for path in ("/ro", "/rw", "/admin", "/logged", "/custom")}


ALL_OK = {"/ro": 200, "/rw": 200, "/admin": 200, "/logged": 200, "/custom": 200}
ALL_REFUSED = {"/ro": 403, "/rw": 403, "/admin": 403, "/logged": 403, "/custom": 403}


@pytest.mark.parametrize(
    "variables",
    [
        pytest.param({}, id="none"),
        pytest.param({"C2C__AUTH__SECRET": "s" * 20}, id="secret"),
        pytest.param({"C2C__AUTH__TEST__USERNAME": "tester"}, id="test"),
    ],
)
async def test_application_auth_info_outside_github_mode(
    env: Any, h: types.ModuleType, variables: dict[str, str]
) -> None:
    env.set(**variables)
    # The common way 0.14 test suites reach protected routes.
    info = AuthInfo(is_logged_in=True, user=UserInfo(login="test"))
    assert await _codes(_override_app(info), h) == ALL_OK
    transport = httpx.ASGITransport(app=_override_app(info))
    async with httpx.AsyncClient(transport=transport, base_url=h.APP_BASE) as client:
        checks = (await client.get("/checks")).json()
    assert checks == {
        **dict.fromkeys(("read_only", "read_write", "admin", "access", "context_admin"), True),
        # 0.14's `check_access_config` is the GitHub check alone, in every mode: no token, no access.
        "config": False,
    }
    # Not logged in: refused; without the override the client gets nothing (no credential given).
    assert await _codes(_override_app(AuthInfo(is_logged_in=False, user=UserInfo(login="x"))), h) == ALL_REFUSED
    expected = ALL_OK if "C2C__AUTH__TEST__USERNAME" in variables else ALL_REFUSED
    assert await _codes(_override_app(None), h) == expected


async def test_application_auth_info_in_github_mode(github_mode: Any, fake_github: Any, h: types.ModuleType) -> None:
    """In GitHub mode the levels come from GitHub for `user.token`, cached."""
    alice = AuthInfo(is_logged_in=True, user=UserInfo(login="alice", token=fake_github.issue_token("alice")))
    assert await _codes(_override_app(alice), h) == {
        "/ro": 200,
        "/rw": 403,
        "/admin": 403,
        "/logged": 200,
        "/custom": 403,
    }
    carol = AuthInfo(is_logged_in=True, user=UserInfo(login="carol", token=fake_github.issue_token("carol")))
    assert await _codes(_override_app(carol), h) == ALL_OK
    repository_calls = fake_github.calls["repo"]
    assert await _codes(_override_app(carol), h) == ALL_OK
    assert fake_github.calls["repo"] == repository_calls  # cached: GitHub is not asked again
    # No token, or one GitHub refuses: logged in (auth_required passes) but no level.
    no_token = AuthInfo(is_logged_in=True, user=UserInfo(login="test"))
    assert await _codes(_override_app(no_token), h) == {**ALL_REFUSED, "/logged": 200}
    refused = AuthInfo(is_logged_in=True, user=UserInfo(login="x", token="gho_unknown"))
    assert (await _codes(_override_app(refused), h))["/ro"] == 403


# --- the session cookie read by the application (item 7) -------------------------------------------


def _decoding_app(base: FastAPI) -> FastAPI:
    """A route that decodes the session cookie itself, as 0.14 applications do."""
    sub: FastAPI = next(route.app for route in base.routes if getattr(route, "path", "") == "/c2c")  # type: ignore[attr-defined]

    @sub.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        settings = get_settings(c2c_auth.Settings)
        assert settings.auth.jwt.secret is not None
        payload: dict[str, Any] = jwt.decode(
            request.cookies[settings.auth.jwt.cookie.name], settings.auth.jwt.secret, algorithms=["HS256"]
        )
        return payload

    return base


async def test_application_decodes_the_session_cookie(
    github_mode: Any, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    app = _decoding_app(h.build_app())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=h.APP_BASE) as client:
        callback = await h.oauth_login(client, github_http, fake_github, "carol")
        assert callback.status_code == 307  # as 0.14 answered
        response = await client.get("/c2c/whoami")
    assert response.status_code == 200, response.text
    payload = response.json()
    assert {key: payload[key] for key in ("login", "display_name", "url")} == {
        "login": "carol",
        "display_name": "Carol",
        "url": "https://github.com/carol",
    }
    assert payload["typ"] == "session"
    assert payload["ver"] == 1
    assert payload["mth"] == "github_oauth"
    assert isinstance(payload["sid"], str)
    assert "aud" not in payload
    assert "token" not in payload  # 0.14's clear token claim is gone
    (access_token,) = fake_github.tokens
    assert access_token not in response.text


async def test_session_cookie_as_state_cookie_is_refused(
    github_mode: Any, client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    await h.oauth_login(client, github_http, fake_github, "carol")
    session = client.cookies[COOKIE]
    started = await h.start_flow(client)
    ((name, _),) = h.set_cookies(started).items()
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    client.cookies.clear()
    calls = fake_github.calls["token"]
    response = await client.get(
        "/c2c/auth/github/callback", params={"state": state, "code": "x"}, headers={"Cookie": f"{name}={session}"}
    )
    assert response.status_code == 400
    assert fake_github.calls["token"] == calls


async def test_cookie_of_0_14_logs_out_once(github_mode: Any, client: httpx.AsyncClient, h: types.ModuleType) -> None:
    """After the upgrade a 0.14 cookie (same secret, clear token) is cleared, never a 401 or a 500."""
    old = jwt.encode(
        {"login": "carol", "display_name": "Carol", "url": "u", "token": "gho_x", "iat": 1, "exp": 2**31},
        h.JWT_SECRET,
        algorithm="HS256",
    )
    response = await client.get("/c2c/auth/status", headers={"Cookie": f"{COOKIE}={old}"})
    assert response.status_code == 200
    assert response.json()["is_logged_in"] is False
    assert h.set_cookies(response)[COOKIE]["max-age"] == "0"


async def test_logout_ends_the_session_id(
    github_mode: Any,
    client: httpx.AsyncClient,
    github_http: httpx.AsyncClient,
    fake_github: Any,
    h: types.ModuleType,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A copy of the cookie kept by someone else stops working at logout (in this process at once)."""
    await h.oauth_login(client, github_http, fake_github, "carol")
    stolen = client.cookies[COOKIE]
    assert (await client.get("/c2c/admin")).status_code == 200
    monkeypatch.setattr(_info, "_TOKEN_NOT_SERIALISED_WARNED", False)
    caplog.clear()  # the login's audit record (INFO, c2c_auth.audit) is not what this checks
    with caplog.at_level(logging.WARNING, logger="c2c_auth"):
        status = await client.get("/c2c/auth/status")
    assert status.json()["user"] == {
        "login": "carol",
        "display_name": "Carol",
        "url": "https://github.com/carol",
        "token": "",
    }
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert warnings == []  # the status endpoint itself never triggers the warning meant for applications
    await client.post("/c2c/auth/github/logout")
    response = await client.get("/c2c/auth/status", headers={"Cookie": f"{COOKIE}={stolen}"})
    assert response.json()["is_logged_in"] is False


async def test_secret_logout_ends_the_session_id(
    secret_mode: Any, client: httpx.AsyncClient, h: types.ModuleType
) -> None:
    login = await client.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
    stolen = h.set_cookies(login)[COOKIE]["value"]
    payload = h.jwt_payload(stolen)
    assert payload["mth"] == "secret"
    assert "secret" not in payload
    assert h.SHARED_SECRET not in h.jwt_text(stolen)
    assert (await client.get("/c2c/logged")).status_code == 200
    await client.post("/c2c/auth/logout")
    assert (await client.get("/c2c/logged", headers={"Cookie": f"{COOKIE}={stolen}"})).status_code == 403
