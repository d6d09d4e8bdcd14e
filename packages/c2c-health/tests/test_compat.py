"""The names and signatures of c2casgiutils 0.14's `health_checks` module, as 0.14 code uses them."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

import c2c_health
from c2c_health import (
    DEFAULT_PATHS,
    FACTORY,
    Alembic,
    Check,
    EntityResult,
    Factory,
    GlobalResult,
    Redis,
    Result,
    SQLAlchemy,
    Wrong,
    c2c_health_checks,
    router,
)

try:
    import alembic  # noqa: F401
    import sqlalchemy  # noqa: F401

    HAVE_ALEMBIC = True
except ModuleNotFoundError:
    HAVE_ALEMBIC = False


def leading_parameters(callable_: Any, count: int) -> list[tuple[str, Any]]:
    """The first `count` parameters that are not keyword-only: name and default."""
    parameters = [
        parameter
        for parameter in inspect.signature(callable_).parameters.values()
        if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    return [(parameter.name, parameter.default) for parameter in parameters[:count]]


EMPTY = inspect.Parameter.empty


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (Check, [("tags", None)]),
        (Redis, [("tags", None)]),
        (Wrong, [("tags", None)]),
        (SQLAlchemy, [("Session", EMPTY), ("tags", None)]),
        (Alembic, [("Session", EMPTY), ("config_file", "alembic.ini"), ("tags", None)]),
    ],
)
def test_constructor_parameters_of_014(cls: type, expected: list[tuple[str, Any]]) -> None:
    assert leading_parameters(cls, len(expected)) == expected
    # Anything we added is keyword-only or defaulted: 0.14 calls still bind.
    for parameter in list(inspect.signature(cls).parameters.values())[len(expected) :]:
        assert parameter.default is not EMPTY or parameter.kind is inspect.Parameter.VAR_KEYWORD, parameter


def test_check_members_of_014() -> None:
    class Mine(Check):
        async def check(self) -> Result:
            return Result(status_code=200, payload={"message": "ok"})

    check = Mine(tags=["custom", "all"])
    assert (check.name, check.tags) == ("Mine", ["custom", "all"])
    assert inspect.iscoroutinefunction(Mine.check)
    assert not inspect.isabstract(Check)  # a plain class, as in 0.14: `check` is a marker for type checkers


async def test_a_check_may_be_given_its_coroutine_in_init(global_factory: Factory) -> None:
    """0.14's `Check` was a plain class: `Check(tags=...)` and a `check` set on the instance work."""

    class FromFunction(Check):
        def __init__(self, function: Callable[[], Awaitable[Result]]) -> None:
            super().__init__(tags=["fn"])
            self.check = function  # type: ignore[method-assign,assignment]

    async def answer() -> Result:
        return Result(status_code=503, public_payload={"from": "function"})

    global_factory.add(FromFunction(answer))  # type: ignore[abstract]
    global_factory.add(Check(tags=["bare"]))  # type: ignore[abstract]
    result = await c2c_health_checks(Response(), tags="fn")
    assert (result.status_code, result.entities[0].payload) == (503, {"from": "function"})
    assert (await c2c_health_checks(Response(), tags="bare")).status_code == 500  # NotImplementedError, logged


def test_models_construct_with_014_defaults() -> None:
    assert (Result().status_code, Result().payload) == (200, {})
    assert Result(status_code=500, payload={"error": "x"}).payload == {"error": "x"}
    assert isinstance(Result(), BaseModel)  # a pydantic model, as in 0.14
    assert Result(status_code=503, payload={"a": 1}).model_dump() == {
        "status_code": 503,
        "payload": {"a": 1},
        "public_payload": None,
    }
    assert Result.model_validate({"status_code": 500}) == Result(500, {})
    assert Result(500, {"error": "x"}, public_payload={"error": "y"}).public_payload == {"error": "y"}
    with pytest.raises(ValidationError):
        Result(status_code="not a number")  # type: ignore[arg-type]
    entity = EntityResult(name="Redis", tags=[])
    assert (entity.status_code, entity.payload, entity.time_taken) == (200, {}, 0.0)
    report = GlobalResult()
    assert (report.status_code, report.time_taken, report.entities) == (200, 0.0, [])
    assert GlobalResult(entities=[entity]).entities == [entity]


def test_factory_of_014() -> None:
    factory = Factory()
    assert inspect.iscoroutinefunction(factory.check)
    assert list(inspect.signature(factory.add).parameters) == ["item"]  # 0.14's name (`add(item=...)`)
    assert isinstance(FACTORY, Factory)


def test_c2c_health_checks_signature_of_014() -> None:
    assert inspect.iscoroutinefunction(c2c_health_checks)
    parameters = inspect.signature(c2c_health_checks).parameters
    assert list(parameters) == ["response", "name", "tags"]
    assert parameters["name"].default is None and parameters["tags"].default is None
    assert inspect.signature(c2c_health_checks).return_annotation in (GlobalResult, "GlobalResult")


def test_router_endpoint_is_c2c_health_checks() -> None:
    routes = [route for route in router.routes if isinstance(route, APIRoute) and route.path in DEFAULT_PATHS]
    assert routes
    assert all(route.endpoint is c2c_health_checks for route in routes)
    # The probes are there too (the router is usable alone).
    assert {route.path for route in router.routes if isinstance(route, APIRoute)} >= {"/livez", "/readyz"}
    assert c2c_health.router is router


@pytest.fixture
def global_factory() -> Iterator[Factory]:
    saved = dict(FACTORY._entries)
    FACTORY.clear()
    try:
        yield FACTORY
    finally:
        FACTORY.clear()
        FACTORY._entries.update(saved)


async def test_c2c_health_checks_called_directly(global_factory: Factory) -> None:
    class Ok(Check):
        async def check(self) -> Result:
            return Result()

    global_factory.add(Ok(tags=["a"]))
    global_factory.add(Wrong(tags=["b"]))
    response = Response()
    result = await c2c_health_checks(response)
    assert isinstance(result, GlobalResult)
    assert (result.status_code, response.status_code) == (500, 500)
    assert [entity.name for entity in result.entities] == ["Ok", "Wrong"]
    response = Response()
    result = await c2c_health_checks(response, name="Ok", tags=None)
    assert (result.status_code, response.status_code) == (200, 200)
    assert response.headers["cache-control"] == "no-store"
    result = await c2c_health_checks(Response(), tags="b")
    assert [entity.name for entity in result.entities] == ["Wrong"]
    # 0.14's words, which test suites compare.
    assert result.entities[0].payload == {"error": "This is an always-failing check for testing purposes"}


async def test_router_serves_the_014_endpoint(global_factory: Factory) -> None:
    global_factory.add(Wrong(tags=["b"]))
    app = FastAPI()
    app.include_router(router, prefix="/c2c")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        response = await http.get("/c2c/health_checks?tags=b")
        assert response.status_code == 500
        assert response.headers["cache-control"] == "no-store"
        assert [entity["name"] for entity in response.json()["entities"]] == ["Wrong"]
        assert (await http.get("/c2c/health?tags=nothing")).status_code == 200
        assert (await http.get("/c2c/health/?name=Wrong")).status_code == 500


@pytest.mark.skipif(not HAVE_ALEMBIC, reason="needs the alembic extra")
def test_database_checks_name_their_database_in_repr() -> None:
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    engine = create_async_engine("postgresql+asyncpg://user:hunter2@db.example:5432/app")
    check = SQLAlchemy(async_sessionmaker(engine))
    assert "db.example:5432/app" in repr(check)
    assert "hunter2" not in repr(check)
    assert "db.example" in repr(Alembic(async_sessionmaker(engine)))
    assert "database=None" in repr(SQLAlchemy(async_sessionmaker()))


def test_tags_and_name_set_by_a_subclass_as_in_014() -> None:
    class After(Check):
        def __init__(self) -> None:
            super().__init__()
            self.tags = ["set", "after"]
            self.name = "after"

        async def check(self) -> Result:
            return Result()

    class Before(Check):
        def __init__(self) -> None:
            self.tags = ["set", "before"]
            super().__init__()

        async def check(self) -> Result:
            return Result()

    class NoInit(Check):
        def __init__(self) -> None:
            pass

        async def check(self) -> Result:
            return Result()

    assert (After().tags, After().name) == (["set", "after"], "after")
    assert Before().tags == ["set", "before"]
    untagged = NoInit()
    assert untagged.tags == []
    untagged.tags.append("added")
    assert untagged.tags == ["added"]
    assert hasattr(Check, "tags") and hasattr(Check, "name")
    factory = Factory()
    factory.add(After())
    factory.add(Before())
    assert [check.name for check in factory.select(tags="after")] == ["after"]
