"""Issue 16 item 4: the audit trail (`GET /c2c/audit`) in one process: access, records, bounds, no secret."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from c2c_auth import _audit as auth_audit
from c2c_auth import _shared
from c2c_testing import serve_asgi
from c2casgiutils.tools import audit

SECRET = "audit-test-secret-0123456789"
KEY = {"X-API-Key": SECRET}


@pytest.fixture(autouse=True)
def _fresh_audit() -> Iterator[None]:
    audit.get_handler().clear()
    auth_audit.REFUSED_LOGINS.reset()
    yield
    audit.get_handler().clear()
    auth_audit.REFUSED_LOGINS.reset()
    _shared.LIMITER.reset()  # the wrong secrets of these tests must not spend the next tests' budget


@pytest.fixture
async def client(c2c_client_factory: Any) -> AsyncIterator[httpx.AsyncClient]:
    env = {"C2C__AUTH__SECRET": SECRET, "C2C__AUTH__JWT__COOKIE__SECURE": "false"}
    async with c2c_client_factory(env) as http_client:
        yield http_client


async def test_audit_needs_admin_access(client: httpx.AsyncClient) -> None:
    assert (await client.get("/c2c/audit")).status_code == 403
    assert (await client.get("/c2c/audit", headers={"X-API-Key": "wrong"})).status_code == 403
    answer = await client.get("/c2c/audit", headers=KEY)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [replica["status"] for replica in body["replicas"]] == ["ok"]


async def test_level_changes_are_recorded_newest_first(client: httpx.AsyncClient) -> None:
    set_answer = await client.post("/c2c/logging/level", json={"name": "c2c_audit_test", "level": "debug"}, headers=KEY)
    assert set_answer.status_code == 200, set_answer.text
    assert (await client.delete("/c2c/logging/level?name=c2c_audit_test", headers=KEY)).status_code == 200
    body = (await client.get("/c2c/audit", headers=KEY)).json()
    actions = [(entry["action"], entry["who"], entry["client"], entry["details"]) for entry in body["entries"]]
    assert actions == [
        ("level_deleted", "secret", "127.0.0.1", {"name": "c2c_audit_test"}),
        ("level_set", "secret", "127.0.0.1", {"name": "c2c_audit_test", "level": "DEBUG", "duration": None}),
    ]
    entry = body["entries"][0]
    assert entry["logger"] == audit.AUDIT_LOGGER_NAME
    assert entry["hostname"] and entry["pid"]
    assert body["entries"][0]["time"] >= body["entries"][1]["time"]
    assert body["replicas"][0]["entries"] == 2


async def test_a_refused_change_is_not_recorded(client: httpx.AsyncClient) -> None:
    assert (await client.post("/c2c/logging/level", json={"name": "x", "level": "DEBUG"})).status_code == 403
    body = (await client.get("/c2c/audit", headers=KEY)).json()
    assert not [entry for entry in body["entries"] if entry["action"].startswith("level")]


async def test_logins_logouts_and_refusals(client: httpx.AsyncClient) -> None:
    for _ in range(4):
        assert (await client.post("/c2c/auth/login", headers={"X-API-Key": "wrong"})).status_code == 401
    assert (await client.post("/c2c/auth/login", headers=KEY)).status_code == 200
    assert (await client.post("/c2c/auth/logout")).status_code == 200
    body = (await client.get("/c2c/audit", headers=KEY)).json()
    actions = [(entry["action"], entry["who"], entry["logger"]) for entry in body["entries"]]
    assert actions == [
        ("logout", "secret", "c2c_auth.audit"),
        ("login", "secret", "c2c_auth.audit"),
        ("login_refused", "unknown", "c2c_auth.audit"),
    ]
    refused = body["entries"][2]["details"]
    assert refused["count"] == 4
    assert refused["budget"] == "unknown-devices"
    assert refused["clients"] == ["127.0.0.1"]


async def test_the_list_is_bounded(c2c_client_factory: Any) -> None:
    env = {"C2C__AUTH__SECRET": SECRET, "C2C__TOOLS__AUDIT__SIZE": "3"}
    async with c2c_client_factory(env) as client:
        for index in range(5):
            answer = await client.post(
                "/c2c/logging/level", json={"name": f"c2c_bound_{index}", "level": "INFO"}, headers=KEY
            )
            assert answer.status_code == 200
        entries = (await client.get("/c2c/audit", headers=KEY)).json()["entries"]
        assert [entry["details"]["name"] for entry in entries] == ["c2c_bound_4", "c2c_bound_3", "c2c_bound_2"]
        assert len((await client.get("/c2c/audit?limit=1", headers=KEY)).json()["entries"]) == 1
        assert (await client.get("/c2c/audit?limit=0", headers=KEY)).status_code == 422


async def test_the_secret_is_nowhere(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    """The secret (and variants of it) in every input: never in a record, a log line or the answer."""
    wrong = SECRET + "-wrong"
    caplog.set_level(logging.DEBUG)
    login = await client.post("/c2c/auth/login", headers=KEY)
    cookie = login.cookies.get("c2c-auth") or next(iter(login.cookies.values()), "")
    assert cookie
    for value in (SECRET, wrong):
        headers = {"X-API-Key": value, "User-Agent": value, "Referer": f"http://testserver/?secret={value}"}
        await client.post("/c2c/auth/login", headers=headers)
        await client.post("/c2c/auth/login", data={"secret": value})
        await client.get(f"/c2c/auth/login?secret={value}")
        client.cookies.set("c2c-auth-device", value)
        await client.post("/c2c/auth/login", headers={"X-API-Key": value})
        client.cookies.delete("c2c-auth-device")
        await client.post("/c2c/logging/level", json={"name": "c2c_audit_secret", "level": "INFO"}, headers=headers)
        await client.delete(f"/c2c/logging/level?name=c2c_audit_secret&secret={value}", headers=headers)
    await client.post("/c2c/auth/logout")
    answer = await client.get("/c2c/audit", headers=KEY)
    assert answer.status_code == 200
    records = [record for record in caplog.records if record.name.endswith(".audit")]
    assert {record.getMessage().split(" ")[1] for record in records} >= {"login", "level_set", "login_refused"}
    # Every server-side line (the test client's own request lines, httpx's, name the secret it sends).
    server_lines = [record for record in caplog.records if not record.name.startswith(("httpx", "httpcore"))]
    texts = [answer.text, *(f"{record.getMessage()} {record.__dict__!r}" for record in server_lines)]
    for text in texts:
        for forbidden in (SECRET, cookie):
            assert forbidden not in text


# --- read-only access in GitHub mode (a small fake GitHub) ---------------------------------------------------

REPOSITORY = "camptocamp/audit-test"
TOKENS = {
    "token-reader": ("reader", {"pull": True, "push": False, "admin": False}),
    "token-writer": ("writer", {"pull": True, "push": True, "admin": False}),
}


async def _user(request: Request) -> JSONResponse:
    found = TOKENS.get(request.headers.get("authorization", "").removeprefix("Bearer ").removeprefix("token "))
    if found is None:
        return JSONResponse({"message": "Bad credentials"}, status_code=401)
    return JSONResponse({"login": found[0], "name": found[0], "html_url": f"https://github.com/{found[0]}"})


async def _repository(request: Request) -> JSONResponse:
    found = TOKENS.get(request.headers.get("authorization", "").removeprefix("Bearer ").removeprefix("token "))
    if found is None:
        return JSONResponse({"message": "Bad credentials"}, status_code=401)
    return JSONResponse({"full_name": REPOSITORY, "permissions": found[1]})


@pytest.fixture(scope="module")
def fake_github() -> Iterator[str]:
    app = Starlette(routes=[Route("/user", _user), Route("/repos/{owner}/{repo}", _repository)])
    with serve_asgi(app, name="fake-github") as url:
        yield url


async def test_read_only_access_is_refused(c2c_client_factory: Any, fake_github: str) -> None:
    env = {
        "C2C__AUTH__JWT__SECRET": "a-jwt-secret-for-the-audit-tests-0123456789",
        "C2C__AUTH__GITHUB__CLIENT_ID": "client",
        "C2C__AUTH__GITHUB__CLIENT_SECRET": "client-secret",
        "C2C__AUTH__GITHUB__REPOSITORY": REPOSITORY,
        "C2C__AUTH__GITHUB__USER_URL": f"{fake_github}/user",
        "C2C__AUTH__GITHUB__REPO_URL": f"{fake_github}/repos",
        "C2C__AUTH__GITHUB__TIMEOUT": "5",
    }
    async with c2c_client_factory(env) as client:
        reader = {"Authorization": "Bearer token-reader"}
        writer = {"Authorization": "Bearer token-writer"}
        assert (await client.get("/c2c/logging/overrides", headers=reader)).status_code == 200  # read-only works
        assert (await client.get("/c2c/audit", headers=reader)).status_code == 403
        assert (
            await client.post("/c2c/logging/level", json={"name": "c2c_gh", "level": "INFO"}, headers=writer)
        ).status_code == 200
        answer = await client.get("/c2c/audit", headers=writer)
        assert answer.status_code == 200, answer.text
        assert [(entry["action"], entry["who"]) for entry in answer.json()["entries"]] == [("level_set", "writer")]
        assert "token-writer" not in answer.text


# --- merging the answers, failures --------------------------------------------------------------------------


def test_merge_marks_missing_and_failed_replicas_and_skips_bad_items() -> None:
    from c2c_broadcast import BroadcastResponse, ErrorAnswer, MissingAnswer

    good = {
        "time": 2.0,
        "action": "login",
        "who": "secret",
        "client": "192.0.2.1",
        "logger": "c2c_auth.audit",
        "message": "m",
    }
    answers = [
        BroadcastResponse[Any](hostname="b", pid=2, payload=[{"time": "not a time"}, 42, good]),
        BroadcastResponse[Any](hostname="a", pid=1, payload={"not": "a list"}),
        ErrorAnswer(hostname="c", pid=3, error_type="RuntimeError", message="boom"),
        MissingAnswer(hostname="d", pid=4),
        MissingAnswer(),
    ]
    merged = audit._merge(answers)
    assert [(entry.hostname, entry.action) for entry in merged.entries] == [("b", "login")]
    assert [(r.hostname, r.status, r.entries, r.detail) for r in merged.replicas] == [
        ("a", "ok", 0, None),
        ("b", "ok", 1, None),
        (None, "missing", 0, None),
        ("c", "error", 0, "RuntimeError"),
        ("d", "missing", 0, None),
    ]


def test_a_record_that_cannot_be_read_breaks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = audit.AuditHandler(5)
    failures: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", failures.append)
    broken = logging.LogRecord("c2casgiutils.audit", logging.INFO, __file__, 1, "%d", ("x",), None)
    handler.emit(broken)
    assert failures == [broken]
    assert handler.entries() == []
    handler.resize(5)
    assert handler.size == 5


async def test_broadcast_unavailable_is_a_503(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import c2c_broadcast

    async def unavailable(*args: Any, **kwargs: Any) -> None:
        raise c2c_broadcast.BroadcastUnavailableError("Redis is down")

    monkeypatch.setattr(c2c_broadcast, "broadcast", unavailable)
    answer = await client.get("/c2c/audit", headers=KEY)
    assert answer.status_code == 503
    assert "BroadcastUnavailableError" in answer.json()["detail"]


async def test_record_asks_who_when_not_given(client: httpx.AsyncClient) -> None:
    """An application's own admin action: `record()` without the `AuthInfo` asks c2c-auth who it is."""
    from starlette.requests import Request as StarletteRequest

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/app/action",
        "headers": [(b"x-api-key", SECRET.encode())],
        "query_string": b"",
        "client": ("192.0.2.44", 1234),
    }
    await audit.record(StarletteRequest(scope), "custom_action", {"what": "reindex"})
    (entry,) = audit.get_handler().entries()
    assert (entry["action"], entry["who"], entry["client"], entry["details"]) == (
        "custom_action",
        "secret",
        "192.0.2.44",
        {"what": "reindex"},
    )
