"""`PendingCookiesMiddleware`: cookies set or cleared by the authentication code reach every response.

Application endpoints that return their own `Response` (a page, a file) used to drop the cookies
`get_auth` and the access checks changed unless they called `apply_pending_cookies`; with the
middleware they get them, and a cookie is never set twice when both are used.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

import c2c_auth
from c2c_auth import _sessions
from c2c_auth._middleware import cookie_id, missing_cookies

ResponseT = TypeVar("ResponseT", bound=Response)

COOKIE = "c2c-jwt-auth"
STALE = {"Cookie": f"{COOKIE}=stale.token.value"}


def build_app(*, middleware: int = 1, apply_too: bool = False) -> FastAPI:
    """An application with the auth router under /c2c/auth and routes of its own under /c2c.

    `middleware`: how many times `PendingCookiesMiddleware` is installed (0: as before 0.15);
    `apply_too`: the endpoints also call `apply_pending_cookies` (0.14 code).
    """
    app = FastAPI()
    app.include_router(c2c_auth.create_router(), prefix="/c2c/auth")

    def finish(request: Request, response: ResponseT) -> ResponseT:
        return c2c_auth.apply_pending_cookies(request, response) if apply_too else response

    @app.get("/c2c/page", dependencies=[Depends(c2c_auth.require_read_only_access)])
    async def page(request: Request) -> PlainTextResponse:
        return finish(request, PlainTextResponse("protected page"))

    @app.get("/c2c/welcome")
    async def welcome(request: Request, auth: Annotated[c2c_auth.AuthInfo, Depends(c2c_auth.get_auth)]) -> HTMLResponse:
        return finish(request, HTMLResponse(f"<p>logged in: {auth.is_logged_in}</p>"))

    @app.get("/c2c/data", dependencies=[Depends(c2c_auth.require_read_only_access)])
    async def data() -> dict[str, str]:
        return {"data": "yes"}  # FastAPI copies the dependency response's cookies itself

    @app.get("/c2c/stream")
    async def stream(request: Request) -> StreamingResponse:
        await c2c_auth.get_auth(request, PlainTextResponse())  # a throwaway response: its headers go nowhere

        async def chunks() -> AsyncIterator[bytes]:
            for number in range(3):
                yield f"chunk {number};".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    for _ in range(middleware):
        app.add_middleware(c2c_auth.PendingCookiesMiddleware)
    return app


@pytest.fixture
async def make_app_client(h: types.ModuleType) -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def factory(app: FastAPI) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
        client = httpx.AsyncClient(transport=transport, base_url=h.APP_BASE)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()


def session_cookies(response: httpx.Response) -> list[str]:
    return [value for value in response.headers.get_list("set-cookie") if value.startswith(f"{COOKIE}=")]


# --- secret mode: a stale cookie cleared -----------------------------------------------------------


async def test_page_of_the_application_clears_a_stale_cookie(
    secret_mode: Any, make_app_client: Any, h: types.ModuleType
) -> None:
    response = await make_app_client(build_app()).get("/c2c/welcome", headers=STALE)
    assert response.text == "<p>logged in: False</p>"
    assert h.set_cookies(response)[COOKIE]["max-age"] == "0"
    assert h.set_cookies(response)[COOKIE]["path"] == "/c2c/"
    assert len(session_cookies(response)) == 1


async def test_without_the_middleware_the_cookie_is_lost(secret_mode: Any, make_app_client: Any) -> None:
    # What the middleware fixes: an endpoint returning its own Response drops the dependency's cookies.
    response = await make_app_client(build_app(middleware=0)).get("/c2c/welcome", headers=STALE)
    assert response.status_code == 200
    assert session_cookies(response) == []


@pytest.mark.parametrize("middleware", [1, 2], ids=["once", "installed-twice"])
@pytest.mark.parametrize("apply_too", [False, True], ids=["middleware-only", "with-apply_pending_cookies"])
@pytest.mark.parametrize("path", ["/c2c/welcome", "/c2c/page", "/c2c/data"])
async def test_a_cookie_is_set_once(
    secret_mode: Any, make_app_client: Any, h: types.ModuleType, middleware: int, apply_too: bool, path: str
) -> None:
    app = build_app(middleware=middleware, apply_too=apply_too)
    response = await make_app_client(app).get(path, headers=STALE)
    # /c2c/page and /c2c/data need a login: the stale cookie is cleared on the 403.
    assert response.status_code == (200 if path == "/c2c/welcome" else 403)
    assert len(session_cookies(response)) == 1, response.headers.get_list("set-cookie")
    assert h.set_cookies(response)[COOKIE]["max-age"] == "0"


async def test_streaming_body_passes_through(secret_mode: Any, make_app_client: Any, h: types.ModuleType) -> None:
    response = await make_app_client(build_app()).get("/c2c/stream", headers=STALE)
    assert response.text == "chunk 0;chunk 1;chunk 2;"
    assert h.set_cookies(response)[COOKIE]["max-age"] == "0"


async def test_login_and_logout_set_their_cookie_once(
    secret_mode: Any, make_app_client: Any, h: types.ModuleType
) -> None:
    client = make_app_client(build_app(middleware=2))
    login = await client.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
    assert login.status_code == 200
    assert len(session_cookies(login)) == 1
    assert (await client.get("/c2c/page")).text == "protected page"
    logout = await client.post("/c2c/auth/logout")
    assert len(session_cookies(logout)) == 1
    assert h.set_cookies(logout)[COOKIE]["max-age"] == "0"


async def test_no_pending_cookie_no_change(secret_mode: Any, make_app_client: Any, h: types.ModuleType) -> None:
    response = await make_app_client(build_app()).get("/c2c/page", headers={"X-API-Key": h.SHARED_SECRET})
    assert response.text == "protected page"
    assert response.headers.get_list("set-cookie") == []


# --- GitHub mode: a session refreshed or ended -----------------------------------------------------


async def test_refreshed_session_reaches_a_page_of_the_application(
    github_mode: Any, make_app_client: Any, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    fake_github.expires_in = 30  # inside the 1 min margin: refreshed at the next request
    client = make_app_client(build_app())
    await h.oauth_login(client, github_http, fake_github, "alice")
    before = client.cookies[COOKIE]
    response = await client.get("/c2c/page")
    assert response.text == "protected page"
    assert fake_github.token_requests[-1]["grant_type"] == "refresh_token"
    assert len(session_cookies(response)) == 1
    renewed = h.set_cookies(response)[COOKIE]
    assert renewed["path"] == "/c2c/"
    assert renewed["value"] != before
    # An endpoint returning data: FastAPI copies the dependency response's cookie, the middleware adds none.
    data = await client.get("/c2c/data")
    assert data.json() == {"data": "yes"}
    assert len(session_cookies(data)) == 1
    assert h.set_cookies(data)[COOKIE]["value"] not in (before, renewed["value"])
    # The refresh token is single use: a refused refresh ends the session, cleared on the 403.
    fake_github.refresh_tokens.clear()
    refused = await client.get("/c2c/page")
    assert refused.status_code == 403
    assert len(session_cookies(refused)) == 1
    assert h.set_cookies(refused)[COOKIE]["max-age"] == "0"


async def test_refresh_without_the_middleware_is_lost(
    github_mode: Any, make_app_client: Any, github_http: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    fake_github.expires_in = 30
    client = make_app_client(build_app(middleware=0))
    await h.oauth_login(client, github_http, fake_github, "alice")
    response = await client.get("/c2c/page")
    assert response.text == "protected page"
    assert fake_github.token_requests[-1]["grant_type"] == "refresh_token"
    assert session_cookies(response) == []  # the renewed session never reached the browser


# --- the header logic --------------------------------------------------------------------------------


def test_cookie_id() -> None:
    assert cookie_id(b"c2c-jwt-auth=abc; HttpOnly; Max-Age=0; Path=/c2c/; SameSite=lax; Secure") == (
        "c2c-jwt-auth",
        "/c2c/",
    )
    assert cookie_id(b"theme=dark") == ("theme", None)
    assert cookie_id(b"a=b=c; path=/x") == ("a", "/x")


SET = b"c2c-jwt-auth=new; HttpOnly; Max-Age=60; Path=/c2c/"
CLEAR = b"c2c-jwt-auth=; HttpOnly; Max-Age=0; Path=/c2c/"
STATE = b"c2c-state-1=s; HttpOnly; Max-Age=600; Path=/c2c/auth/github/callback"


def headers(*values: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"text/plain")] + [(b"set-cookie", value) for value in values]


@pytest.mark.parametrize(
    ("pending", "present", "missing"),
    [
        ([SET], [], [SET]),
        ([SET], [SET], []),  # apply_pending_cookies (or FastAPI) already put it there
        ([CLEAR, SET], [CLEAR, SET], []),
        ([CLEAR, SET], [], [SET]),  # only the last change of a cookie counts
        ([CLEAR, SET], [CLEAR], [SET]),  # an earlier change of ours is there: the last one follows it
        ([STATE, CLEAR], [CLEAR], [STATE]),  # an HTTPException carries only the last cookie
        ([CLEAR], [b"c2c-jwt-auth=mine; Path=/c2c/"], []),  # the application's own Set-Cookie wins
        ([CLEAR], [b"c2c-jwt-auth=x; Path=/other/"], [CLEAR]),  # another path is another cookie
    ],
)
def test_missing_cookies(pending: list[bytes], present: list[bytes], missing: list[bytes]) -> None:
    assert missing_cookies(pending, headers(*present)) == missing


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        assert "state" not in scope

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    middleware = c2c_auth.PendingCookiesMiddleware(inner)
    for kind in ("lifespan", "websocket"):
        await middleware({"type": kind}, receive, send)
    assert seen == ["lifespan", "websocket"]


async def test_cookies_recorded_in_a_copy_of_the_state_reach_the_response() -> None:
    """An inner layer that puts a copy of the state in the scope (ArmorHeaderMiddleware does, for the
    CSP nonce): the cookie recorded in that copy is still set."""
    app = FastAPI()

    @app.get("/page")
    async def page(request: Request) -> dict[str, str]:
        _sessions.set_cookie(request, None, "probe", "value", 60, "/")
        return {"nonce": request.state.nonce}

    async def copying(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = {**scope.get("state", {}), "nonce": "n0nce"}
        await app(scope, receive, send)

    outer = c2c_auth.PendingCookiesMiddleware(copying)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="https://app.example") as client:
        response = await client.get("/page")
    assert response.json() == {"nonce": "n0nce"}
    assert [cookie.split("=")[0] for cookie in response.headers.get_list("set-cookie")] == ["probe"]
