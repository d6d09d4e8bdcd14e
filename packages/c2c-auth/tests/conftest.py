"""Fixtures: a fake GitHub on 127.0.0.1 (a Starlette app under uvicorn), the app under test, settings."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

import c2c_auth
from c2c_auth import _github, _routes, _secret, _shared
from c2c_config import reload_settings
from c2c_testing import free_port, serve_asgi, stop_process

# Hypothesis profiles (`dev`, `ci`) come from the c2c-testing plugin. The property tests reuse
# function-scoped fixtures (app, client, settings) on purpose: each example resets its cookies.

APP_BASE = "https://app.example"
SHARED_SECRET = "correct horse battery staple"
JWT_SECRET = "a-jwt-secret-that-is-long-enough-for-hs256-0123456789"
CLIENT_ID = "client-id-123"
CLIENT_SECRET = "client-secret-456"
REPOSITORY = "camptocamp/tools"


@dataclasses.dataclass
class FakeUser:
    """A GitHub account of the fake server and its permissions on REPOSITORY."""

    login: str
    name: str | None
    permissions: dict[str, bool] | None


LEVELS = {
    "pull": {"admin": False, "maintain": False, "push": False, "triage": False, "pull": True},
    "push": {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True},
    "admin": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
}


@dataclasses.dataclass
class FakeGitHub:
    """State of the fake GitHub: accounts, issued codes and tokens, call counters, failure switches."""

    base: str = ""
    users: dict[str, FakeUser] = dataclasses.field(default_factory=dict)
    next_login: str = "alice"
    codes: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)  # access token -> login
    refresh_tokens: dict[str, str] = dataclasses.field(default_factory=dict)  # refresh token -> login
    calls: Counter[str] = dataclasses.field(default_factory=Counter)
    token_requests: list[dict[str, str]] = dataclasses.field(default_factory=list)
    authorize_requests: list[dict[str, str]] = dataclasses.field(default_factory=list)
    revoked: list[str] = dataclasses.field(default_factory=list)
    peers: list[int] = dataclasses.field(default_factory=list)  # client port of each API call
    expires_in: int | None = None  # set: expiring user tokens with refresh tokens (GitHub App style)
    down: bool = False  # every endpoint answers 503
    hang: bool = False  # every API endpoint waits until released
    rate_limited: bool = False  # every endpoint answers GitHub's primary rate-limit 403
    token_answer: Response | None = None  # replaces the token endpoint's answer (malformed answers)
    release: threading.Event = dataclasses.field(default_factory=threading.Event)

    def reset(self) -> None:
        """Back to the initial accounts, nothing issued, no failure."""
        self.users = {
            "alice": FakeUser("alice", "Alice Liddell", LEVELS["pull"]),
            "bob": FakeUser("bob", None, LEVELS["push"]),
            "carol": FakeUser("carol", "Carol", LEVELS["admin"]),
            "mallory": FakeUser("mallory", "Mallory", None),
        }
        self.next_login = "alice"
        self.codes.clear()
        self.tokens.clear()
        self.refresh_tokens.clear()
        self.calls.clear()
        self.token_requests.clear()
        self.authorize_requests.clear()
        self.revoked.clear()
        self.peers.clear()
        self.expires_in = None
        self.down = False
        self.hang = False
        self.rate_limited = False
        self.token_answer = None

    def issue_token(self, login: str) -> str:
        """A valid access token of `login` (as a personal access token would be)."""
        token = "gho_" + secrets.token_hex(16)
        self.tokens[token] = login
        return token

    def env(self) -> dict[str, str]:
        """The settings that point c2c-auth at this server."""
        return {
            "C2C__AUTH__GITHUB__AUTHORIZE_URL": f"{self.base}/login/oauth/authorize",
            "C2C__AUTH__GITHUB__TOKEN_URL": f"{self.base}/login/oauth/access_token",
            "C2C__AUTH__GITHUB__USER_URL": f"{self.base}/user",
            "C2C__AUTH__GITHUB__REPO_URL": f"{self.base}/repos",
            "C2C__AUTH__GITHUB__REVOKE_URL": f"{self.base}/applications/{{client_id}}/token",
        }


class _FakeGitHubEndpoints:
    """The endpoints of the fake GitHub, playing `fake`'s state."""

    def __init__(self, fake: FakeGitHub) -> None:
        self.fake = fake

    async def gate(self, request: Request, name: str) -> Response | None:
        """Count the call; the failure answer when the fake is down or hanging."""
        fake = self.fake
        fake.calls[name] += 1
        fake.peers.append(request.client.port if request.client else 0)
        if fake.down:
            return JSONResponse({"message": "down"}, status_code=503)
        if fake.rate_limited:
            limited = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1900000000"}
            return JSONResponse({"message": "API rate limit exceeded"}, status_code=403, headers=limited)
        if fake.hang:
            for _ in range(500):
                if fake.release.is_set():
                    break
                await asyncio.sleep(0.02)
            return JSONResponse({"message": "too late"}, status_code=504)
        return None

    def bearer_login(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return self.fake.tokens.get(token) if scheme.lower() in ("bearer", "token") else None

    async def authorize(self, request: Request) -> Response:
        fake = self.fake
        fake.calls["authorize"] += 1
        params = dict(request.query_params)
        fake.authorize_requests.append(params)
        code = secrets.token_hex(8)
        fake.codes[code] = {**params, "login": fake.next_login}
        target = params["redirect_uri"]
        separator = "&" if "?" in target else "?"
        return RedirectResponse(f"{target}{separator}{urlencode({'code': code, 'state': params['state']})}", 302)

    def refresh_grant(self, form: dict[str, str]) -> str | Response:
        """The login of a refresh token (used up), or the error answer."""
        login = self.fake.refresh_tokens.pop(form.get("refresh_token", ""), None)
        if login is None:
            return JSONResponse({"error": "bad_refresh_token"})
        return login

    def code_grant(self, form: dict[str, str]) -> str | Response:
        """The login of an authorization code (used up, same redirect_uri, PKCE checked), or the error answer."""
        flow = self.fake.codes.pop(form.get("code", ""), None)
        if flow is None:
            return JSONResponse({"error": "bad_verification_code"})
        if form.get("redirect_uri") != flow["redirect_uri"] or flow.get("client_id") != CLIENT_ID:
            return JSONResponse({"error": "redirect_uri_mismatch"})
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        if flow.get("code_challenge_method") != "S256" or challenge != flow.get("code_challenge"):
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE verification failed"})
        return flow["login"]

    def token_answer(self, login: str) -> Response:
        """New tokens for `login` (with a refresh token when tokens expire)."""
        fake = self.fake
        token = fake.issue_token(login)
        answer: dict[str, Any] = {"access_token": token, "token_type": "bearer", "scope": ""}
        if fake.expires_in is not None:
            refresh = "ghr_" + secrets.token_hex(16)
            fake.refresh_tokens[refresh] = login
            answer |= {"expires_in": fake.expires_in, "refresh_token": refresh, "refresh_token_expires_in": 15_897_600}
        return JSONResponse(answer)

    async def access_token(self, request: Request) -> Response:
        fake = self.fake
        if (refused := await self.gate(request, "token")) is not None:
            return refused
        form = dict(parse_qsl((await request.body()).decode()))
        fake.token_requests.append(form)
        if fake.token_answer is not None:
            return fake.token_answer
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "incorrect_client_credentials"})
        grant = self.refresh_grant(form) if form.get("grant_type") == "refresh_token" else self.code_grant(form)
        if isinstance(grant, Response):
            return grant
        return self.token_answer(grant)

    async def user(self, request: Request) -> Response:
        if (refused := await self.gate(request, "user")) is not None:
            return refused
        login = self.bearer_login(request)
        if login is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        account = self.fake.users[login]
        body: dict[str, Any] = {"login": login, "name": account.name, "html_url": f"https://github.com/{login}"}
        return JSONResponse(body)

    async def repository(self, request: Request) -> Response:
        if (refused := await self.gate(request, "repo")) is not None:
            return refused
        login = self.bearer_login(request)
        if login is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        name = f"{request.path_params['owner']}/{request.path_params['repo']}"
        permissions = self.fake.users[login].permissions
        if name != REPOSITORY or permissions is None:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        return JSONResponse({"full_name": name, "permissions": permissions})

    async def revoke(self, request: Request) -> Response:
        if (refused := await self.gate(request, "revoke")) is not None:
            return refused
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}" or request.path_params["client"] != CLIENT_ID:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        token = (await request.json())["access_token"]
        self.fake.revoked.append(token)
        self.fake.tokens.pop(token, None)
        return Response(status_code=204)


def _fake_app(fake: FakeGitHub) -> Starlette:
    endpoints = _FakeGitHubEndpoints(fake)
    return Starlette(
        routes=[
            Route("/login/oauth/authorize", endpoints.authorize),
            Route("/login/oauth/access_token", endpoints.access_token, methods=["POST"]),
            Route("/user", endpoints.user),
            Route("/repos/{owner}/{repo}", endpoints.repository),
            Route("/applications/{client}/token", endpoints.revoke, methods=["DELETE"]),
        ]
    )


@pytest.fixture(scope="session")
def fake_github_server() -> Iterator[FakeGitHub]:
    """The fake GitHub, served by uvicorn on a free 127.0.0.1 port for the whole session."""
    fake = FakeGitHub()
    fake.reset()
    with serve_asgi(_fake_app(fake), name="fake-github") as url:
        fake.base = url
        yield fake
        fake.release.set()


@pytest.fixture
def fake_github(fake_github_server: FakeGitHub) -> Iterator[FakeGitHub]:
    """The fake GitHub, reset for one test."""
    fake_github_server.reset()
    fake_github_server.release.clear()
    yield fake_github_server
    fake_github_server.release.set()


class Env:
    """Sets `C2C__` variables and reloads the settings in place (as an operator restarting with new ones)."""

    def __init__(self) -> None:
        self.saved = dict(os.environ)
        for name in list(os.environ):
            if name.upper().startswith("C2C__"):
                del os.environ[name]

    def set(self, **values: str | None) -> None:
        """`set(C2C__AUTH__SECRET="x", C2C__AUTH__TEST__USERNAME=None)`, then reload."""
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reload_settings(c2c_auth.Settings)

    def restore(self) -> None:
        """Put the environment back and reload."""
        os.environ.clear()
        os.environ.update(self.saved)
        reload_settings(c2c_auth.Settings)


@pytest.fixture
def env() -> Iterator[Env]:
    """A clean `C2C__` environment; caches, rate limiters and the ended sessions of the process reset."""
    _reset_process_state()
    environment = Env()
    environment.set()
    yield environment
    environment.restore()
    _reset_process_state()


def _reset_process_state() -> None:
    _github.CACHE.clear()
    _github.REFUSED_BEARERS.clear()
    _github.BEARER_RATE.reset()
    _github.BEARER_CLIENT_RATES.reset()
    _routes._USED_STATES.clear()
    _secret.LIMITER.reset()
    _shared.ENDED_SESSIONS.clear()


@pytest.fixture
def secret_mode(env: Env) -> Env:
    """Secret mode, without a JWT secret (keys derived from the shared secret)."""
    env.set(C2C__AUTH__SECRET=SHARED_SECRET)
    return env


@pytest.fixture
def github_mode(env: Env, fake_github: FakeGitHub) -> Env:
    """GitHub mode against the fake GitHub."""
    env.set(
        C2C__AUTH__JWT__SECRET=JWT_SECRET,
        C2C__AUTH__GITHUB__CLIENT_ID=CLIENT_ID,
        C2C__AUTH__GITHUB__CLIENT_SECRET=CLIENT_SECRET,
        C2C__AUTH__GITHUB__REPOSITORY=REPOSITORY,
        C2C__AUTH__GITHUB__TIMEOUT="2",
        **fake_github.env(),
    )
    return env


@pytest.fixture(autouse=True)
async def _close_github_client() -> AsyncIterator[None]:
    """Close the pooled GitHub client of the test's event loop (as an application's shutdown does); ask
    Redis at once in the next test (not skipped after an outage of this one)."""
    from c2c_auth import _shared

    _shared.reset_redis_state()
    yield
    await c2c_auth.shutdown()
    _shared.reset_redis_state()


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await c2c_auth.startup(app)
    yield
    await c2c_auth.shutdown(app)


def build_app() -> FastAPI:
    """The app under test: the auth router and protected routes in a sub-application mounted at /c2c."""
    sub = FastAPI()
    sub.include_router(c2c_auth.create_router(), prefix="/auth")

    @sub.get("/ro", dependencies=[Depends(c2c_auth.require_read_only_access)])
    async def read_only() -> dict[str, str]:
        return {"access": "read-only"}

    @sub.get("/rw", dependencies=[Depends(c2c_auth.require_read_write_access)])
    async def read_write() -> dict[str, str]:
        return {"access": "read-write"}

    @sub.get("/admin", dependencies=[Depends(c2c_auth.require_admin_access)])
    async def admin() -> dict[str, str]:
        return {"access": "admin"}

    @sub.get("/logged", dependencies=[Depends(c2c_auth.auth_required)])
    async def logged() -> dict[str, str]:
        return {"access": "logged in"}

    @sub.get("/checks")
    async def checks(
        context: Annotated[c2c_auth.AccessContext, Depends(c2c_auth.get_access_context)],
    ) -> dict[str, bool]:
        return {
            "read_only": await context.check_read_only_access(),
            "read_write": await context.check_read_write_access(),
            "admin": await context.check_admin_access(),
            "custom_push": await context.check_access(
                c2c_auth.AuthConfig(github_access_type_read_write=c2c_auth.GitHubAccessType.PUSH)
            ),
        }

    main = FastAPI(lifespan=_lifespan)
    main.mount("/c2c", sub)

    @main.get("/api/open")
    async def open_route() -> dict[str, str]:
        return {"open": "yes"}

    return main


ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """Build clients of the app (in-process ASGI, https origin so Secure cookies flow); all closed at the end."""
    clients: list[httpx.AsyncClient] = []
    app = build_app()

    def factory(address: str = "203.0.113.7") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 50000))
        client = httpx.AsyncClient(transport=transport, base_url=APP_BASE)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:
    """One browser-like client of the app."""
    return make_client()


@pytest.fixture
async def github_http() -> AsyncIterator[httpx.AsyncClient]:
    """A real HTTP client for the browser's visits to the fake GitHub."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def oauth_login(
    client: httpx.AsyncClient,
    github_http: httpx.AsyncClient,
    fake: FakeGitHub,
    login: str = "alice",
    came_from: str | None = None,
) -> httpx.Response:
    """Run the OAuth dance as a browser: app login → GitHub authorize → app callback; the callback's response."""
    started = await start_flow(client, came_from)
    return await finish_flow(client, github_http, fake, started, login)


async def start_flow(client: httpx.AsyncClient, came_from: str | None = None) -> httpx.Response:
    """GET /c2c/auth/github/login; the redirect to GitHub."""
    params = {"came_from": came_from} if came_from else {}
    response = await client.get("/c2c/auth/github/login", params=params)
    assert response.status_code == 307, response.text  # 0.14's code after a GET
    return response


async def finish_flow(
    client: httpx.AsyncClient, github_http: httpx.AsyncClient, fake: FakeGitHub, started: httpx.Response, login: str
) -> httpx.Response:
    """Follow a started flow through the fake GitHub's authorize page and back to the app's callback."""
    fake.next_login = login
    authorize = await github_http.get(started.headers["location"])
    assert authorize.status_code == 302
    callback = urlsplit(authorize.headers["location"])
    assert f"{callback.scheme}://{callback.netloc}" == APP_BASE
    return await client.get(f"{callback.path}?{callback.query}")


def set_cookies(response: httpx.Response) -> dict[str, dict[str, str]]:
    """The Set-Cookie headers of a response: name → {"value": ..., attribute: value}."""
    found: dict[str, dict[str, str]] = {}
    for header in response.headers.get_list("set-cookie"):
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            attributes = {key: str(value) for key, value in morsel.items() if value}
            # SimpleCookie reports flags as True: keep them as "True".
            found[name] = {"value": morsel.value, **attributes}
            lowered = header.lower()
            found[name]["httponly"] = str("httponly" in lowered)
            found[name]["secure"] = str("; secure" in lowered)
    return found


def jwt_payload(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (what anyone reading the cookie sees)."""
    part = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def jwt_text(token: str) -> str:
    """Header and payload of a JWT as readable text."""
    header, payload, _ = token.split(".")
    return "".join(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode() for part in (header, payload))


ReplicaFactory = Callable[..., list[str]]


@pytest.fixture
def replica_factory(tmp_path: Path) -> Iterator[ReplicaFactory]:
    """Start replicas of `auth_replica:app` under uvicorn subprocesses; their base URLs. All stopped at the end.

    `replica_factory(2, C2C__AUTH__SECRET="...", C2C__REDIS__URL=...)`: each replica gets these
    settings (and non-Secure cookies, served over plain HTTP) and nothing else of the `C2C__` environment.
    """
    processes: list[subprocess.Popen[bytes]] = []

    def factory(count: int, **settings: str) -> list[str]:
        env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
        env.update({"C2C__AUTH__JWT__COOKIE__SECURE": "false", **settings})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")]))
        bases = []
        for _ in range(count):
            port = free_port()
            log = tmp_path / f"replica-{port}.log"
            argv = [sys.executable, "-m", "uvicorn", "auth_replica:app", "--host", "127.0.0.1", "--port", str(port)]
            with log.open("wb") as output:
                processes.append(subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT))
            bases.append((f"http://127.0.0.1:{port}", log, processes[-1]))
        for base, log, process in bases:
            _wait_ready(base, log, process)
        return [base for base, _, _ in bases]

    yield factory
    for process in processes:
        stop_process(process, timeout=10)


def _wait_ready(base: str, log: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"the replica {base} did not start:\n{log.read_text()}")


@pytest.fixture
def h() -> types.ModuleType:
    """This module: its helper functions and constants for the tests (they cannot import conftest)."""
    return sys.modules[__name__]
