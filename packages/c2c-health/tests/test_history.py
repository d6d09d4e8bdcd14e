"""Each check's last results in memory (`history_size`), `Factory.history()` and `/health_checks/history`."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

import c2c_health
from c2c_config import ConfigError, reload_settings
from c2c_health import (
    HISTORY_PATH,
    Authorizer,
    Check,
    Factory,
    HealthChecksSettings,
    HistoryPoint,
    Result,
    Settings,
    Wrong,
    create_router,
)
from c2c_health._router import HISTORY_FORBIDDEN

SECRETS = ("hunter2", "db.internal")


class Counting(Check):
    """Healthy, or failing with a secret in its error, as `status` says; counts its runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.status = 200
        self.runs = 0

    async def check(self) -> Result:
        self.runs += 1
        if self.status >= 400:
            raise ConnectionError("cannot reach postgresql://admin:hunter2@db.internal:5432")
        return Result(self.status, {"version": "1.2.3"})


class Mutable:
    """Settings that a test changes between runs."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def __call__(self) -> Settings:
        return Settings(health_checks=HealthChecksSettings.model_validate(self.values))


def factory_with(**values: Any) -> tuple[Factory, Mutable]:
    settings = Mutable(**values)
    return Factory(registry=CollectorRegistry(), settings=settings), settings


def statuses(points: list[HistoryPoint]) -> list[int]:
    return [point.status_code for point in points]


def app_with(factory: Factory | None, authorize: Authorizer | None = None, **options: Any) -> FastAPI:
    c2c = FastAPI()
    c2c.include_router(create_router(factory, authorize=authorize, **options))
    app = FastAPI()
    app.mount("/c2c", c2c)
    return app


async def request(app: FastAPI, url: str, method: str = "GET") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.request(method, url)


# -- Factory.history() ----------------------------------------------------------------------------


async def test_each_run_is_recorded_oldest_first_and_bounded() -> None:
    factory, _ = factory_with(history_size=3)
    check = factory.add(Counting(name="db", tags=["database"]))
    assert isinstance(check, Counting)
    assert factory.history() == {"db": []}  # registered, not run yet
    before = datetime.datetime.now(datetime.UTC)
    for status in (200, 500, 200, 503, 200):
        check.status = status
        await factory.run()
    after = datetime.datetime.now(datetime.UTC)
    points = factory.history()["db"]
    # The last three runs only; an exception counts as the failure the report shows (500).
    assert statuses(points) == [200, 500, 200]
    for point in points:
        assert point.time.tzinfo is not None
        assert before <= point.time <= after
        assert 0 <= point.time_taken < 10
    assert [point.time for point in points] == sorted(point.time for point in points)


async def test_timeouts_and_invalid_results_are_failures_in_the_history() -> None:
    class Slow(Check):
        async def check(self) -> Result:
            await asyncio.sleep(10)
            return Result()

    factory, _ = factory_with(history_size=5, timeout=0.05)
    factory.add(Slow(name="slow"))
    factory.add(Wrong(name="wrong"))
    await factory.run()
    history = factory.history()
    assert statuses(history["slow"]) == [500]
    assert history["slow"][0].time_taken >= 0.05
    assert statuses(history["wrong"]) == [500]


async def test_cache_hits_add_nothing() -> None:
    factory, _ = factory_with(history_size=10, cache_ttl=datetime.timedelta(minutes=5))
    check = factory.add(Counting(name="db"))
    assert isinstance(check, Counting)
    for _ in range(4):
        await factory.run()
    assert check.runs == 1
    assert len(factory.history()["db"]) == 1
    factory.clear_cache()
    await factory.run()
    assert len(factory.history()["db"]) == 2


async def test_the_size_setting_is_read_at_each_run() -> None:
    factory, settings = factory_with(history_size=5)
    factory.add(Counting(name="db"))
    for _ in range(5):
        await factory.run()
    assert len(factory.history()["db"]) == 5
    settings.values["history_size"] = 2  # shrunk: the last two at once, then two at most
    assert len(factory.history()["db"]) == 2
    await factory.run()
    assert len(factory.history()["db"]) == 2
    settings.values["history_size"] = 4  # grown: room for more
    await factory.run()
    await factory.run()
    assert len(factory.history()["db"]) == 4
    settings.values["history_size"] = 0  # disabled: nothing kept, nothing shown
    assert factory.history() == {"db": []}
    await factory.run()
    settings.values["history_size"] = 4
    assert factory.history() == {"db": []}
    assert factory.history_report().size == 4


async def test_default_size_is_sixty() -> None:
    factory, _ = factory_with()
    factory.add(Counting(name="db"))
    for _ in range(65):
        await factory.run()
    assert len(factory.history()["db"]) == 60


async def test_history_filters_and_forgets_removed_checks() -> None:
    factory, _ = factory_with(history_size=5)
    factory.add(Counting(name="db", tags=["database", "readiness"]))
    factory.add(Counting(name="cache", tags=["readiness"]))
    await factory.run()
    assert list(factory.history()) == ["db", "cache"]
    assert list(factory.history(tags="database")) == ["db"]
    assert list(factory.history(name=["cache", "unknown"])) == ["cache"]
    await factory.run(tags="database")  # only db runs
    assert {name: len(points) for name, points in factory.history().items()} == {"db": 2, "cache": 1}
    report = factory.history_report(tags="readiness")
    assert [(entry.name, entry.tags, len(entry.history)) for entry in report.checks] == [
        ("db", ["database", "readiness"], 2),
        ("cache", ["readiness"], 1),
    ]
    factory.remove("db")
    factory.add(Counting(name="db", tags=["other"]))  # another check under the same name: a new history
    assert factory.history() == {"cache": factory.history()["cache"], "db": []}
    factory.clear()
    factory.add(Counting(name="cache", tags=["readiness"]))
    assert factory.history() == {"cache": []}


async def test_a_check_removed_while_it_runs_leaves_no_history() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    class Waiting(Check):
        async def check(self) -> Result:
            started.set()
            await release.wait()
            return Result()

    factory, _ = factory_with(history_size=5)
    factory.add(Waiting(name="waiting"))
    run = asyncio.ensure_future(factory.run())
    await asyncio.wait_for(started.wait(), 5)
    factory.remove("waiting")
    release.set()
    await asyncio.wait_for(run, 5)
    assert factory._history == {}
    factory.add(Waiting(name="waiting"))
    assert factory.history() == {"waiting": []}


# -- Settings -------------------------------------------------------------------------------------


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    reload_settings(Settings)


def test_setting_from_the_environment(environment: pytest.MonkeyPatch) -> None:
    assert Settings().health_checks.history_size == 60
    environment.setenv("C2C__HEALTH_CHECKS__HISTORY_SIZE", "7")
    assert Settings().health_checks.history_size == 7
    environment.setenv("C2C__HEALTH_CHECKS__HISTORY_SIZE", "0")
    assert Settings().health_checks.history_size == 0


@pytest.mark.parametrize("value", ["-1", "100001", "many"])
def test_bad_setting_names_the_variable(environment: pytest.MonkeyPatch, value: str) -> None:
    environment.setenv("C2C__HEALTH_CHECKS__HISTORY_SIZE", value)
    with pytest.raises(ConfigError, match=f"C2C__HEALTH_CHECKS__HISTORY_SIZE='{value}'"):
        Settings()


# -- The endpoint ---------------------------------------------------------------------------------


async def allow(request: Request) -> bool:
    return True


async def deny(request: Request) -> bool:
    return False


async def broken(request: Request) -> bool:
    raise RuntimeError("the auth backend is down")


async def test_endpoint_serves_the_history_without_running_checks() -> None:
    factory, _ = factory_with(history_size=5)
    check = factory.add(Counting(name="db", tags=["database"]))
    assert isinstance(check, Counting)
    app = app_with(factory, authorize=allow)
    assert (await request(app, "/c2c/health_checks")).status_code == 200
    check.status = 500
    assert (await request(app, "/c2c/health_checks")).status_code == 500
    response = await request(app, "/c2c/health_checks/history")
    assert check.runs == 2  # reading the history runs nothing
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["size"] == 5
    (entry,) = body["checks"]
    assert (entry["name"], entry["tags"]) == ("db", ["database"])
    assert [point["status_code"] for point in entry["history"]] == [200, 500]
    assert set(entry["history"][0]) == {"time", "status_code", "time_taken"}
    assert datetime.datetime.fromisoformat(entry["history"][0]["time"]).tzinfo is not None
    # No payload, so no error text, even for a caller allowed to see the details.
    assert not any(secret in response.text for secret in SECRETS)
    # The report itself is unchanged: no history in it.
    report = (await request(app, "/c2c/health_checks")).json()
    assert set(report) == {"status_code", "time_taken", "entities"}
    assert set(report["entities"][0]) == {"name", "tags", "status_code", "payload", "time_taken"}
    # HEAD: same status, no body.
    response = await request(app, "/c2c/health_checks/history")
    head = await request(app, "/c2c/health_checks/history", "HEAD")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == response.headers["content-length"]


async def test_endpoint_filters() -> None:
    factory, _ = factory_with(history_size=5)
    factory.add(Counting(name="db", tags=["database"]))
    factory.add(Counting(name="cache", tags=["memory"]))
    app = app_with(factory, authorize=allow)
    await factory.run()

    def names(response: httpx.Response) -> list[str]:
        return [entry["name"] for entry in response.json()["checks"]]

    assert names(await request(app, "/c2c/health_checks/history")) == ["db", "cache"]
    assert names(await request(app, "/c2c/health_checks/history?tags=memory")) == ["cache"]
    assert names(await request(app, "/c2c/health_checks/history?name=db&name=cache")) == ["db", "cache"]
    assert names(await request(app, "/c2c/health_checks/history?name=nothing")) == []


@pytest.mark.parametrize(
    ("details", "authorize", "status"),
    [
        ("authorized", None, 403),
        ("authorized", deny, 403),
        ("authorized", broken, 403),
        ("authorized", allow, 200),
        ("never", allow, 200),  # no payload in the history: 'never' hides payloads, not statuses
        ("never", None, 403),
        ("always", None, 200),
        ("always", deny, 200),
    ],
)
async def test_endpoint_access(details: str, authorize: Authorizer | None, status: int) -> None:
    factory, _ = factory_with(history_size=5, details=details)
    factory.add(Counting(name="db"))
    await factory.run()
    response = await request(app_with(factory, authorize=authorize), "/c2c/health_checks/history")
    assert response.status_code == status
    if status == 403:
        assert response.json() == {"detail": HISTORY_FORBIDDEN}
        assert "db" not in response.text


async def test_the_history_route_is_optional_and_never_takes_a_report_path() -> None:
    factory, _ = factory_with(history_size=5)
    factory.add(Counting(name="db"))
    without = app_with(factory, authorize=allow, history=False)
    assert (await request(without, "/c2c/health_checks/history")).status_code == 404
    # A report served at that very path keeps it (as the probes do with theirs).
    there = app_with(factory, authorize=allow, paths=[HISTORY_PATH])
    body = (await request(there, "/c2c/health_checks/history")).json()
    assert set(body) == {"status_code", "time_taken", "entities"}
    # The report's own paths, with their filters, are not shadowed by the history.
    app = app_with(factory, authorize=allow)
    report = await request(app, "/c2c/health_checks?name=db")
    assert [entity["name"] for entity in report.json()["entities"]] == ["db"]
    assert (await request(app, "/c2c/health/history")).status_code == 404


async def test_default_router_serves_the_history_only_when_details_are_always(
    environment: pytest.MonkeyPatch,
) -> None:
    app = FastAPI()
    app.include_router(c2c_health.router, prefix="/c2c")
    assert (await request(app, "/c2c/health_checks/history")).status_code == 403
    environment.setenv("C2C__HEALTH_CHECKS__DETAILS", "always")
    reload_settings(Settings)
    response = await request(app, "/c2c/health_checks/history")
    assert response.status_code == 200
    assert set(response.json()) == {"size", "checks"}


@given(
    name=st.lists(st.text(max_size=20), max_size=3),
    tags=st.lists(st.text(max_size=20), max_size=3),
)
def test_any_filter_is_answered(name: list[str], tags: list[str]) -> None:
    factory, _ = factory_with(history_size=2)
    factory.add(Counting(name="db", tags=["database"]))
    app = app_with(factory, authorize=allow)
    params: list[tuple[str, str | int | float | bool | None]] = [("name", value) for value in name]
    params += [("tags", value) for value in tags]

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.get("/c2c/health_checks/history", params=params)

    response = asyncio.run(fetch())
    assert response.status_code == 200
    assert all(entry["name"] == "db" for entry in response.json()["checks"])
