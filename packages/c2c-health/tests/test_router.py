"""The endpoint mounted under /c2c: paths, filters, HTTP status, JSON shape, detail visibility."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from c2c_health import FACTORY, GENERIC_ERROR, Authorizer, Check, Factory, Result, Wrong, create_router, router

MakeFactory = Callable[..., Factory]
MakeApp = Callable[..., FastAPI]

SECRETS = ("hunter2", "db.internal", "SELECT", "10.1.2.3")


class Ok(Check):
    async def check(self) -> Result:
        return Result(payload={"version": "1.2.3"})


class Leaky(Check):
    async def check(self) -> Result:
        raise ConnectionError("cannot connect to postgresql://admin:hunter2@db.internal:5432 (SELECT 1) from 10.1.2.3")


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def get(app: FastAPI, url: str) -> httpx.Response:
    async with client(app) as http:
        return await http.get(url)


@pytest.mark.parametrize("path", ["/c2c/health_checks", "/c2c/health", "/c2c/health/"])
async def test_paths_under_c2c(make_factory: MakeFactory, make_app: MakeApp, path: str) -> None:
    factory = make_factory()
    factory.add(Ok(tags=["liveness"]))
    response = await get(make_app(factory), path)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"status_code", "time_taken", "entities"}
    assert body["status_code"] == 200
    assert isinstance(body["time_taken"], float)
    (entity,) = body["entities"]
    assert set(entity) == {"name", "tags", "status_code", "payload", "time_taken"}
    assert (entity["name"], entity["tags"], entity["status_code"]) == ("Ok", ["liveness"], 200)


async def test_http_status_is_the_worst_check(make_factory: MakeFactory, make_app: MakeApp) -> None:
    factory = make_factory()
    factory.add(Ok(tags=["a"]))
    factory.add(Wrong(tags=["b"]))
    app = make_app(factory)
    assert (await get(app, "/c2c/health_checks")).status_code == 500
    assert (await get(app, "/c2c/health_checks?tags=a")).status_code == 200
    assert (await get(app, "/c2c/health_checks?tags=b")).status_code == 500
    response = await get(app, "/c2c/health_checks?name=Unknown")
    assert (response.status_code, response.json()["entities"]) == (200, [])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["Redis", "DB", "Alembic"]),
        ("?tags=database,critical", ["DB", "Alembic"]),
        ("?tags=database&tags=liveness", ["Redis", "DB", "Alembic"]),
        ("?tags=liveness", ["Redis"]),
        ("?name=Redis", ["Redis"]),
        ("?name=Redis,DB&tags=database", ["DB"]),
        ("?name=DB&name=Alembic", ["DB", "Alembic"]),
        ("?tags=", ["Redis", "DB", "Alembic"]),
        ("?tags=nothing", []),
    ],
)
async def test_query_filters(make_factory: MakeFactory, make_app: MakeApp, query: str, expected: list[str]) -> None:
    factory = make_factory()
    factory.add(Ok(tags=["liveness", "all"], name="Redis"))
    factory.add(Ok(tags=["database", "readiness"], name="DB"))
    factory.add(Ok(tags=["database"], name="Alembic"))
    response = await get(make_app(factory), "/c2c/health_checks" + query)
    assert [entity["name"] for entity in response.json()["entities"]] == expected


async def test_router_included_with_a_prefix_and_the_default_factory() -> None:
    app = FastAPI()
    app.include_router(router, prefix="/c2c")
    saved = FACTORY.checks  # other packages' tests may share the process-wide factory: restore it
    FACTORY.clear()
    try:
        FACTORY.add(Ok(name="from-global"))
        response = await get(app, "/c2c/health_checks")
    finally:
        FACTORY.clear()
        for check in saved:
            FACTORY.add(check)
    assert [entity["name"] for entity in response.json()["entities"]] == ["from-global"]


async def test_custom_paths_and_openapi(make_factory: MakeFactory) -> None:
    app = FastAPI()
    app.include_router(create_router(make_factory(), paths=["/livez"]))
    assert (await get(app, "/livez")).status_code == 200
    assert (await get(app, "/health_checks")).status_code == 404
    schema = app.openapi()
    assert "/livez" in schema["paths"]
    parameters = {p["name"] for p in schema["paths"]["/livez"]["get"]["parameters"]}
    assert parameters == {"name", "tags"}


async def _allow(request: Request) -> bool:
    return request.headers.get("x-admin") == "yes"


async def _broken(request: Request) -> bool:
    raise RuntimeError("auth backend down")


# (details setting, authorize function, admin header sent) -> details shown
VISIBILITY = [
    # never: nobody, even an authorised caller
    ("never", None, False, False),
    ("never", _allow, True, False),
    # authorized: only callers the function accepts; nobody without a function
    ("authorized", None, True, False),
    ("authorized", _allow, False, False),
    ("authorized", _allow, True, True),
    ("authorized", _broken, True, False),
    # always: everybody
    ("always", None, False, True),
    ("always", _allow, False, True),
]


@pytest.mark.parametrize(("details", "authorize", "admin", "shown"), VISIBILITY)
async def test_detail_visibility(
    make_factory: MakeFactory,
    make_app: MakeApp,
    caplog: pytest.LogCaptureFixture,
    details: str,
    authorize: Authorizer | None,
    admin: bool,
    shown: bool,
) -> None:
    factory = make_factory(details=details)
    factory.add(Ok())
    factory.add(Leaky())
    app = make_app(factory, authorize=authorize)
    async with client(app) as http:
        response = await http.get("/c2c/health_checks", headers={"x-admin": "yes"} if admin else {})
    assert response.status_code == 500
    ok, leaky = response.json()["entities"]
    if shown:
        assert ok["payload"] == {"version": "1.2.3"}
        assert leaky["payload"]["error"].startswith("cannot connect to postgresql://admin:***@db.internal:5432")
    else:
        assert ok["payload"] == {}
        assert leaky["payload"] == {"error": GENERIC_ERROR}
        assert not any(secret in response.text for secret in SECRETS)
    if authorize is _broken:
        assert "authorize function failed" in caplog.text


async def test_anonymous_report_leaks_nothing_but_the_log_has_it(
    make_factory: MakeFactory, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    factory = make_factory()  # default visibility: authorized, and no authorize function
    factory.add(Leaky(tags=["db"]))
    with caplog.at_level(logging.ERROR, logger="c2c_health"):
        response = await get(make_app(factory), "/c2c/health_checks")
    assert response.status_code == 500
    body: dict[str, Any] = response.json()
    assert body["entities"][0]["payload"] == {"error": GENERIC_ERROR}
    assert not any(secret in json.dumps(body) for secret in SECRETS)
    assert all(secret in caplog.text for secret in SECRETS)  # the traceback is logged in full


async def test_cached_report_is_still_filtered_per_caller(make_factory: MakeFactory, make_app: MakeApp) -> None:
    factory = make_factory(cache_ttl=60, details="authorized")
    factory.add(Leaky())
    app = make_app(factory, authorize=_allow)
    async with client(app) as http:
        admin = await http.get("/c2c/health_checks", headers={"x-admin": "yes"})
        anonymous = await http.get("/c2c/health_checks")
    assert "db.internal" in admin.text
    assert "db.internal" not in anonymous.text


async def test_kubernetes_presets_by_tags(make_factory: MakeFactory, make_app: MakeApp) -> None:
    from c2c_health import LIVENESS, READINESS

    factory = make_factory()
    factory.add(Wrong(tags=[READINESS], name="database"))  # an external dependency is down
    app = make_app(factory)
    # No liveness check: the process answers, so it is alive; a database outage never restarts it.
    liveness = await get(app, f"/c2c/health_checks?tags={LIVENESS}")
    assert (liveness.status_code, liveness.json()["entities"]) == (200, [])
    readiness = await get(app, f"/c2c/health_checks?tags={READINESS}")
    assert readiness.status_code == 500
    factory.add(Ok(tags=[LIVENESS], name="event-loop"))
    liveness = await get(app, f"/c2c/health_checks?tags={LIVENESS}")
    assert [(e["name"], e["status_code"]) for e in liveness.json()["entities"]] == [("event-loop", 200)]
    assert liveness.status_code == 200
