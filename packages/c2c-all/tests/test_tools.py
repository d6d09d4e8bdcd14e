"""The /c2c sub-application in one process: access levels, the logging tool, the headers tool, versions."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

import c2c_broadcast
import c2casgiutils
from c2casgiutils import config
from c2casgiutils._app import _printable, create_app
from c2casgiutils.tools import logging_ as logging_tool

SECRET = "tools-test-secret-value"
KEY = {"X-API-Key": SECRET}


@pytest.fixture
async def client(c2c_client_factory: Any, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    logging_tool._TOOL = None  # a fresh tool per test
    env = {
        "C2C__AUTH__SECRET": SECRET,
        "C2C__AUTH__JWT__COOKIE__SECURE": "false",
        "C2C__TOOLS__VERSIONS_FILE": str(tmp_path / "versions.json"),
    }
    async with c2c_client_factory(env) as http_client:
        yield http_client


# --- access levels ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/c2c/headers/", None),
        ("GET", "/c2c/logging/level?name=c2c_test", None),
        ("GET", "/c2c/logging/overrides", None),
        ("POST", "/c2c/logging/level", {"name": "c2c_test", "level": "DEBUG"}),
        ("DELETE", "/c2c/logging/level?name=c2c_test", None),
        ("GET", "/c2c/versions", None),
    ],
)
async def test_tools_need_a_login(client: httpx.AsyncClient, method: str, path: str, body: object) -> None:
    anonymous = await client.request(method, path, json=body)
    assert anonymous.status_code == 403, anonymous.text
    wrong = await client.request(method, path, json=body, headers={"X-API-Key": "wrong"})
    assert wrong.status_code == 403
    assert SECRET not in anonymous.text


async def test_public_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/c2c/health_checks")).status_code == 200
    assert (await client.get("/c2c/health")).status_code == 200
    index = await client.get("/c2c/")
    assert index.status_code == 200
    assert index.headers["cache-control"] == "no-store"
    head = await client.head("/c2c/")  # `curl -I`, uptime monitors
    assert (head.status_code, head.headers["content-type"], head.content) == (200, index.headers["content-type"], b"")
    # The OpenAPI description of the admin endpoints is not public.
    for path in ("/c2c/openapi.json", "/c2c/docs", "/c2c/redoc"):
        assert (await client.get(path)).status_code == 404


async def test_probes_after_the_wrong_secret_budget_is_spent(
    c2c_client_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Once unknown devices get 429 for wrong secrets, a probe with a wrong key still answers, without an ERROR.

    Any anonymous caller can spend that budget; a traceback per probe would let it flood the logs
    (and Sentry).
    """
    env = {"C2C__AUTH__SECRET": SECRET, "C2C__AUTH__SECRET_UNKNOWN_DEVICES_MAX_FAILURES": "2"}
    async with c2c_client_factory(env) as http_client:
        for _ in range(3):
            await http_client.get("/c2c/headers/", headers={"X-API-Key": "wrong"})
        spent = await http_client.get("/c2c/headers/", headers={"X-API-Key": "wrong"})
        assert spent.status_code == 429, spent.text
        caplog.clear()
        caplog.set_level(logging.INFO)
        for path in ("/c2c/livez", "/c2c/readyz", "/c2c/health_checks", "/c2c/health_checks?secret=wrong"):
            response = await http_client.get(path, headers={"X-API-Key": "wrong"})
            assert response.status_code == 200, response.text
        history = await http_client.get("/c2c/health_checks/history", headers={"X-API-Key": "wrong"})
        assert history.status_code == 403
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "secret" not in r.name] == []
        assert not [record for record in caplog.records if record.exc_info]


# --- logging tool ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "c2c_test", "level": "DEBUG", "duration": 1e309}',
        '{"name": "c2c_test", "level": "DEBUG", "duration": -1e400}',
        '{"name": "c2c_test", "level": "DEBUG", "duration": NaN}',
        '{"name": "c2c_test", "level": "DEBUG", "duration": Infinity}',
        '{"name": "\\udfff", "level": "DEBUG"}',
        '{"name": "c2c_test", "level": "\\ud800"}',
        '{"name": ["\\ud800", 1e999], "level": {"x": NaN}}',
    ],
)
async def test_refused_input_json_cannot_carry_is_a_422(client: httpx.AsyncClient, body: str) -> None:
    """Non-finite numbers and lone surrogates in a refused body: 422 with a readable answer, not a 500."""
    response = await client.post(
        "/c2c/logging/level", content=body, headers={**KEY, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail and all("msg" in error and "loc" in error for error in detail)
    assert "\\ud" in response.text or "inf" in response.text or "nan" in response.text


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(alphabet=st.characters(codec=None)),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=10,
    )
)
def test_printable_is_always_strict_json(value: object) -> None:
    """Whatever a JSON parser can produce, `_printable` makes it writable as strict UTF-8 JSON."""
    printed = json.dumps(_printable(value), allow_nan=False, ensure_ascii=False)
    printed.encode("utf-8")


async def test_set_level_answers_014s_body(client: httpx.AsyncClient) -> None:
    """0.14's answer unless more is asked: `duration` when given, `replicas` with `?replicas=true`."""
    change = {"name": "c2c_shape_test", "level": "DEBUG"}
    plain = await client.post("/c2c/logging/level", json=change, headers=KEY)
    assert plain.json() == {"name": "c2c_shape_test", "level": "DEBUG", "effective_level": "DEBUG"}
    timed = await client.post("/c2c/logging/level", json={**change, "duration": 60}, headers=KEY)
    assert timed.json() == {"name": "c2c_shape_test", "level": "DEBUG", "effective_level": "DEBUG", "duration": 60.0}
    detailed = await client.post("/c2c/logging/level?replicas=true", json=change, headers=KEY)
    assert [answer["pid"] for answer in detailed.json()["replicas"]] == [os.getpid()]
    # An anonymous caller: 0.14's answer (its tools router checked read-only access first).
    anonymous = await client.post("/c2c/logging/level", json=change)
    assert anonymous.json() == {"detail": "You don't have read-only access to this resource"}
    await client.delete("/c2c/logging/level", params={"name": "c2c_shape_test"}, headers=KEY)


async def test_get_level_does_not_create_loggers(client: httpx.AsyncClient) -> None:
    name = "c2c_never_created.child"
    response = await client.get("/c2c/logging/level", params={"name": name}, headers=KEY)
    assert response.status_code == 200
    assert response.json()["level"] == "NOTSET"
    assert name not in logging.Logger.manager.loggerDict


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"name": "app", "level": "LOUD"}, 422, "invalid level 'LOUD'"),
        ({"name": "app", "level": 10}, 422, "invalid level 10"),
        ({"name": "app with space", "level": "DEBUG"}, 422, "invalid logger name"),
        ({"name": "a" * 201, "level": "DEBUG"}, 422, "invalid logger name"),
        ({"name": "app", "level": "DEBUG", "duration": "P1Y"}, 422, "years and months"),
        ({"name": "app", "level": "DEBUG", "duration": 0}, 422, "between 1 second and 7 days"),
        ({"name": "app", "level": "DEBUG", "duration": "P30D"}, 422, "between 1 second and 7 days"),
        ({"level": "DEBUG"}, 422, "Field required"),
    ],
)
async def test_set_level_validation(
    client: httpx.AsyncClient, body: dict[str, object], status: int, message: str
) -> None:
    response = await client.post("/c2c/logging/level", json=body, headers=KEY)
    assert response.status_code == status, response.text
    assert message in response.text
    overrides = await client.get("/c2c/logging/overrides", headers=KEY)
    assert overrides.json() == {"overrides": []}  # nothing stored


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize(("name", "message"), [("bad name", "invalid logger name"), ("", "must not be blank")])
async def test_query_logger_names_are_refused_as_the_body_s(
    client: httpx.AsyncClient, method: str, name: str, message: str
) -> None:
    """A query's bad logger name is a 422, as the POST body's is (and as migration.md says)."""
    response = await client.request(method, "/c2c/logging/level", params={"name": name}, headers=KEY)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "name"]
    assert message in error["msg"]


async def test_set_level_then_delete(client: httpx.AsyncClient) -> None:
    logger = logging.getLogger("c2c_tools_test")
    logger.setLevel(logging.WARNING)
    response = await client.post(
        "/c2c/logging/level?replicas=true", json={"name": "c2c_tools_test", "level": "debug"}, headers=KEY
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["level"] == "DEBUG"
    assert logger.level == logging.DEBUG
    assert len(body["replicas"]) == 1  # the local broadcaster: this process
    assert body["replicas"][0]["pid"] == os.getpid()
    assert body["replicas"][0]["payload"]["level"] == "DEBUG"
    overrides = (await client.get("/c2c/logging/overrides", headers=KEY)).json()["overrides"]
    assert overrides == [{"name": "c2c_tools_test", "level": "DEBUG"}]  # 0.14's item exactly
    deleted = await client.delete("/c2c/logging/level", params={"name": "c2c_tools_test"}, headers=KEY)
    assert deleted.status_code == 200
    assert logger.level == logging.WARNING  # the level it had before the override
    assert (await client.get("/c2c/logging/overrides", headers=KEY)).json() == {"overrides": []}


async def test_level_reverts_after_duration(client: httpx.AsyncClient) -> None:
    logger = logging.getLogger("c2c_tools_revert")
    logger.setLevel(logging.ERROR)
    response = await client.post(
        "/c2c/logging/level", json={"name": "c2c_tools_revert", "level": "INFO", "duration": 1}, headers=KEY
    )
    assert response.status_code == 200
    assert logger.level == logging.INFO
    overrides = (await client.get("/c2c/logging/overrides", headers=KEY)).json()["overrides"]
    assert overrides[0]["name"] == "c2c_tools_revert"
    assert 0 < overrides[0]["expires_in"] <= 1
    for _ in range(50):  # bounded wait for the revert (1 s)
        if logger.level == logging.ERROR:
            break
        await asyncio.sleep(0.1)
    assert logger.level == logging.ERROR
    assert (await client.get("/c2c/logging/overrides", headers=KEY)).json() == {"overrides": []}


async def test_login_cookie_then_tools(client: httpx.AsyncClient) -> None:
    login = await client.post("/c2c/auth/login", data={"secret": SECRET})
    assert login.status_code == 303, login.text  # a form POST redirects back to the page
    assert SECRET not in login.headers.get("set-cookie", "")
    response = await client.get("/c2c/logging/overrides")
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/c2c/", "/c2c/health_checks", "/c2c/health", "/c2c/headers/", "/c2c/versions"])
async def test_stale_session_cookie_is_cleared_once_on_every_route(client: httpx.AsyncClient, path: str) -> None:
    # The /c2c app installs c2c_auth.PendingCookiesMiddleware: the health checks (which look at the
    # caller only to decide on details) clear a stale cookie too, and the index page, which also
    # calls apply_pending_cookies, does not clear it twice.
    response = await client.get(path, headers={"Cookie": "c2c-jwt-auth=stale.token.value"})
    assert response.status_code in (200, 403), response.text
    cleared = [value for value in response.headers.get_list("set-cookie") if value.startswith("c2c-jwt-auth=")]
    assert len(cleared) == 1, response.headers.get_list("set-cookie")
    assert "Max-Age=0" in cleared[0]
    assert "Path=/c2c/" in cleared[0]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/c2c/headers/"),
        ("GET", "/c2c/config"),
        ("GET", "/c2c/audit"),
        ("GET", "/c2c/replicas"),
        ("GET", "/c2c/versions"),
        ("GET", "/c2c/logging/level?name=c2c_test"),
        ("GET", "/c2c/logging/overrides"),
        ("GET", "/c2c/auth/status"),
        ("GET", "/c2c/"),
        ("GET", "/c2c/health_checks"),
        ("GET", "/c2c/nothing-here"),
    ],
)
async def test_no_answer_of_the_c2c_app_is_kept_by_a_shared_cache(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """Settings, request headers, audit records, levels: every answer, to an admin or to anybody,
    is `no-store`, so a caching proxy never hands an admin's answer to the next caller."""
    for headers in (KEY, {}):
        response = await client.request(method, path, headers=headers)
        assert response.headers.get_list("cache-control") == ["no-store"], (path, headers, response.status_code)
    # The page's files: kept, but revalidated each time (an upgrade never mixes old and new modules).
    static = await client.get("/c2c/static/index.css")
    assert static.status_code == 200
    assert static.headers.get_list("cache-control") == ["no-cache"]
    again = await client.get("/c2c/static/index.css", headers={"If-None-Match": static.headers["etag"]})
    assert again.status_code == 304


def test_c2c_app_installs_the_pending_cookies_middleware() -> None:
    installed: list[object] = [entry.cls for entry in create_app().user_middleware]
    from c2casgiutils._app import _RequestDefaults
    from c2casgiutils._guard import BodyGuardMiddleware  # the body guard runs inside it (issue 14 item 8)

    # Outermost, the per-request memory of a Redis failure (c2c_config.redis.request_scope).
    assert installed == [_RequestDefaults, c2casgiutils.auth.PendingCookiesMiddleware, BodyGuardMiddleware]


# --- headers tool -------------------------------------------------------------------------------------


async def test_headers_tool_masks_credentials(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/c2c/headers/a/b?param_1=shown&token=secret-value",
        headers={**KEY, "Authorization": "Bearer tok", "Cookie": "c=1", "X-Custom-Token": "t0k3n", "Accept": "text/x"},
    )
    assert response.status_code == 200
    body = response.json()
    headers = body["headers"]
    assert headers["accept"] == "text/x"
    assert headers["host"] == "testserver"
    for name in ("x-api-key", "authorization", "x-custom-token"):
        assert headers[name] == "*****", name
    assert headers["cookie"] == "c=*****"  # cookie names kept, values masked
    assert body["client_info"]["path_params"] == {"path_1": "a", "path_2": "b"}
    assert body["client_info"]["query_params"] == {"param_1": "shown", "token": "*****"}
    text = response.text
    for secret in (SECRET, "tok", "t0k3n", "secret-value"):
        assert f'"{secret}"' not in text and f"={secret}" not in text, secret
    assert body["scope"]["client"] == ["127.0.0.1", 40000]


# --- versions ---------------------------------------------------------------------------------------


async def test_versions(client: httpx.AsyncClient, tmp_path: Path) -> None:
    missing = await client.get("/c2c/versions", headers=KEY)  # no file: the installed distributions
    assert missing.status_code == 200
    assert missing.json()["main"] == {} and "c2c-all" in missing.json()["packages"]
    (tmp_path / "versions.json").write_text(json.dumps({"main": {"git_hash": "abc"}, "packages": {}}))
    found = await client.get("/c2c/versions", headers=KEY)
    assert found.json() == {"main": {"git_hash": "abc"}, "packages": {}}
    (tmp_path / "versions.json").write_text("{not json")
    broken = await client.get("/c2c/versions", headers=KEY)
    assert broken.status_code == 500
    assert "cannot be read" in broken.json()["detail"]


async def test_broadcaster_is_local_without_redis(client: httpx.AsyncClient) -> None:
    assert c2c_broadcast.status().kind == "local"


# --- 0.14's names ---------------------------------------------------------------------------------


def test_tools_reachable_after_a_plain_import() -> None:
    code = (
        "import c2casgiutils, inspect\n"
        "assert inspect.iscoroutinefunction(c2casgiutils.tools.logging_.startup)\n"
        "assert c2casgiutils.tools.headers.router is not None\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_models_keep_the_fields_of_0_14() -> None:
    from c2casgiutils.broadcast import types as broadcast_types
    from c2casgiutils.tools import headers as headers_tool

    assert set(headers_tool.HeadersClientInfoResponse.model_fields) == {
        "url_str",
        "url",
        "base_url_str",
        "base_url",
        "query_params",
        "path_params",
    }
    assert set(headers_tool.HeadersResponse.model_fields) == {"headers", "client_info", "scope"}
    assert set(logging_tool.LevelResponse.model_fields) == {"name", "level", "effective_level"}
    # Ours adds `expires_in`, optional: 0.14's constructor call still works.
    assert logging_tool.OverrideResponse(name="a", level="DEBUG").expires_in is None
    assert logging_tool.OverridesResponse(overrides=[]).overrides == []
    assert logging_tool.BroadcastResponse is broadcast_types.BroadcastResponse
    assert logging_tool.MissingAnswer is broadcast_types.MissingAnswer
    assert issubclass(logging_tool.LevelChangeResponse, logging_tool.LevelResponse)


def test_routers_hold_the_routes() -> None:
    from c2casgiutils import tools

    app = FastAPI()
    app.include_router(tools.router)
    paths = {
        "c2c_index": "/",
        "c2c_versions": "/versions",
        "c2c_headers": "/headers/",
        "c2c_headers_path": "/headers/{path}",
        "c2c_headers_path2": "/headers/{path_1}/{path_2}",
        "c2c_logging_level": "/logging/level",
        "c2c_logging_set_level": "/logging/level",
        "c2c_logging_delete_level": "/logging/level",
        "c2c_logging_overrides": "/logging/overrides",
    }
    for name, path in paths.items():
        parameters = {key: "x" for key in ("path", "path_1", "path_2") if "{" + key + "}" in path}
        assert app.url_path_for(name, **parameters) == path.replace("{path}", "x").replace("{path_1}", "x").replace(
            "{path_2}", "x"
        ), name


async def test_index_honours_a_get_auth_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.14's `c2c_index` takes `auth_info` from `get_auth`: an application's override applies to the page."""
    from c2casgiutils import auth

    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("C2C__AUTH__SECRET", SECRET)
    config.reload()
    sub_app = create_app()
    sub_app.dependency_overrides[auth.get_auth] = lambda: auth.AuthInfo(
        is_logged_in=True, user=auth.UserInfo(login="someone", display_name="Some One")
    )
    app = FastAPI()
    app.mount("/c2c", sub_app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http_client:
        page = await http_client.get("/c2c/")
    assert page.status_code == 200
    assert 'id="headers"' in page.text  # the read-only tools are offered to the overridden user
    monkeypatch.delenv("C2C__AUTH__SECRET")
    config.reload()


@pytest.mark.parametrize("style", ["no parameters", "request and response", "async, by annotation"])
async def test_health_details_follow_a_get_auth_override(monkeypatch: pytest.MonkeyPatch, style: str) -> None:
    """0.14 test suites override `get_auth` and read the health checks' payloads: the health router
    asks for the caller outside dependency injection, and still sees the override."""
    from fastapi import Request, Response

    import c2c_health
    from c2casgiutils import auth, health_checks

    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("C2C__AUTH__SECRET", SECRET)
    config.reload()
    user = auth.AuthInfo(is_logged_in=True, user=auth.UserInfo(login="test"))

    def plain() -> auth.AuthInfo:
        return user

    def named(request: Any, response: Any) -> auth.AuthInfo:
        assert isinstance(request, Request)
        assert isinstance(response, Response)
        return user

    async def annotated(incoming: Request, outgoing: Response) -> auth.AuthInfo:
        return user

    overrides: dict[str, Callable[..., Any]] = {
        "no parameters": plain,
        "request and response": named,
        "async, by annotation": annotated,
    }
    override = overrides[style]

    class Fine(health_checks.Check):
        async def check(self) -> health_checks.Result:
            return health_checks.Result(200, {"message": "Everything is fine!"})

    sub_app = create_app()
    app = FastAPI()
    app.mount("/c2c", sub_app)
    monkeypatch.setattr(c2c_health.FACTORY, "_entries", {})
    c2c_health.FACTORY.clear_cache()
    c2c_health.FACTORY.add(Fine(name="fine"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http_client:
        anonymous = (await http_client.get("/c2c/health_checks")).json()
        sub_app.dependency_overrides[auth.get_auth] = override
        c2c_health.FACTORY.clear_cache()
        overridden = (await http_client.get("/c2c/health_checks")).json()
    c2c_health.FACTORY.clear_cache()
    assert [entry["payload"] for entry in anonymous["entities"]] == [{}]
    assert [entry["payload"] for entry in overridden["entities"]] == [{"message": "Everything is fine!"}]
    monkeypatch.delenv("C2C__AUTH__SECRET")
    config.reload()
