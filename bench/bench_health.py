"""Benchmark of c2c-health: concurrency of the checks and the probe-storm cache, in one run.

    uv run --no-sync python bench/bench_health.py

1. The endpoint with 10 checks (9 real `SELECT 1` on SQLite through aiosqlite, 1 slow check of
   SLOW seconds): the report's latency against the slowest check (concurrency: ratio close to 1)
   and against running the same checks one after the other.
2. Probe storms against a check that runs a real SQLite query, counted with SQLAlchemy's
   `before_cursor_execute` event: 200 concurrent probes without cache, then with the cache on;
   then waves of probes over several cache periods (at most one query per period).

Everything goes through the real FastAPI router (httpx.ASGITransport) and prints ratios.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from c2c_health import Check, Factory, HealthChecksSettings, Result, Settings, SQLAlchemy, create_router

SLOW = 0.3
PROBES = 200
CACHE_TTL = 0.5
WAVES = 12
WAVE_INTERVAL = 0.15
REPEAT = 5


class Slow(Check):
    """A dependency that answers in SLOW seconds."""

    async def check(self) -> Result:
        await asyncio.sleep(SLOW)
        return Result()


class CountedQuery(Check):
    """Runs a real query; the engine's event listener counts every statement sent to SQLite."""

    def __init__(self, engine: AsyncEngine, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = async_sessionmaker(engine)

    async def check(self) -> Result:
        async with self.session() as session:
            value = (await session.execute(text("SELECT count(*) FROM sqlite_master"))).scalar_one()
        return Result(payload={"tables": value})


def make_factory(cache_ttl: float) -> Factory:
    settings = Settings(
        health_checks=HealthChecksSettings(
            timeout=datetime.timedelta(seconds=5), cache_ttl=datetime.timedelta(seconds=cache_ttl)
        )
    )
    return Factory(registry=CollectorRegistry(), settings=lambda: settings)


def make_app(factory: Factory) -> FastAPI:
    c2c = FastAPI()
    c2c.include_router(create_router(factory))
    app = FastAPI()
    app.mount("/c2c", c2c)
    return app


def counting_engine(path: Path) -> tuple[AsyncEngine, list[str]]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    return engine, statements


async def bench_concurrency(directory: Path) -> None:
    factory = make_factory(cache_ttl=0)
    engines = []
    for index in range(9):
        engine = create_async_engine(f"sqlite+aiosqlite:///{directory / f'db{index}.sqlite'}")
        engines.append(engine)
        factory.add(SQLAlchemy(async_sessionmaker(engine), name=f"db{index}", tags=["readiness"]))
    factory.add(Slow(tags=["readiness"]))
    app = make_app(factory)
    latencies, sequential, slowest, sums = [], [], [], []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        await client.get("/c2c/health_checks")  # warm up: connections, metrics registration
        for _ in range(REPEAT):
            start = time.perf_counter()
            response = await client.get("/c2c/health_checks")
            latencies.append(time.perf_counter() - start)
            body = response.json()
            assert response.status_code == 200, body
            assert len(body["entities"]) == 10
            slowest.append(max(entity["time_taken"] for entity in body["entities"]))
            sums.append(sum(entity["time_taken"] for entity in body["entities"]))
            start = time.perf_counter()
            for check in factory.checks:
                one = await client.get("/c2c/health_checks", params={"name": check.name})
                assert one.status_code == 200
            sequential.append(time.perf_counter() - start)
    for engine in engines:
        await engine.dispose()
    latency = statistics.median(latencies)
    print("## 1. Endpoint with 10 checks (9 x SQLite SELECT 1, 1 slow check of %.0f ms)" % (SLOW * 1000))
    print(f"{'median of ' + str(REPEAT) + ' runs':<44}{'value':>12}")
    print(f"{'report latency':<44}{latency * 1000:>10.1f} ms")
    print(f"{'slowest check (time_taken)':<44}{statistics.median(slowest) * 1000:>10.1f} ms")
    print(f"{'sum of the 10 checks (time_taken)':<44}{statistics.median(sums) * 1000:>10.1f} ms")
    print(f"{'the 10 checks one request after the other':<44}{statistics.median(sequential) * 1000:>10.1f} ms")
    print(f"{'ratio latency / slowest check':<44}{latency / statistics.median(slowest):>11.2f}x")
    print(f"{'ratio sum of the checks / report latency':<44}{statistics.median(sums) / latency:>11.2f}x")
    print(f"{'ratio one-by-one / concurrent report':<44}{statistics.median(sequential) / latency:>11.2f}x")


async def storm(client: httpx.AsyncClient, probes: int) -> list[float]:
    async def probe() -> float:
        start = time.perf_counter()
        response = await client.get("/c2c/health_checks", params={"tags": "readiness"})
        assert response.status_code == 200
        return time.perf_counter() - start

    return list(await asyncio.gather(*(probe() for _ in range(probes))))


async def bench_cache(directory: Path) -> None:
    print()
    print(f"## 2. {PROBES} concurrent probes, one check running a real SQLite query (queries counted)")
    print(f"{'':<34}{'queries':>9}{'probes/query':>14}{'p50 latency':>14}{'max latency':>14}")
    rows = []
    for label, ttl in (("no cache", 0.0), (f"cache_ttl {CACHE_TTL:g} s", CACHE_TTL)):
        engine, statements = counting_engine(directory / f"storm-{ttl}.sqlite")
        factory = make_factory(cache_ttl=ttl)
        factory.add(CountedQuery(engine, tags=["readiness"]))
        transport = httpx.ASGITransport(app=make_app(factory))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            latencies = await storm(client, PROBES)
        await engine.dispose()
        queries = len(statements)
        rows.append((label, queries))
        print(
            f"{label:<34}{queries:>9}{PROBES / max(queries, 1):>14.1f}"
            f"{statistics.median(latencies) * 1000:>11.1f} ms{max(latencies) * 1000:>11.1f} ms"
        )
    print(f"{'ratio of queries, no cache / cache':<34}{rows[0][1] / max(rows[1][1], 1):>8.0f}x")

    # Waves of probes across several cache periods: at most one query per period started.
    engine, statements = counting_engine(directory / "waves.sqlite")
    factory = make_factory(cache_ttl=CACHE_TTL)
    factory.add(CountedQuery(engine, tags=["readiness"]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app(factory)), base_url="http://bench") as c:
        start = time.perf_counter()
        for _ in range(WAVES):
            await storm(c, PROBES // 10)
            await asyncio.sleep(WAVE_INTERVAL)
        elapsed = time.perf_counter() - start
    await engine.dispose()
    periods = elapsed / CACHE_TTL
    assert len(statements) <= math.ceil(periods) + 1, (len(statements), periods)
    print()
    print(f"## 3. {WAVES} waves of {PROBES // 10} probes over {elapsed:.2f} s, cache_ttl {CACHE_TTL:g} s")
    print(f"{'cache periods elapsed':<44}{periods:>8.1f}")
    print(f"{'queries':<44}{len(statements):>8}")
    print(f"{'queries per cache period':<44}{len(statements) / periods:>8.2f}  (bound: 1, +1 for the last period)")
    print(f"{'probes per query':<44}{WAVES * (PROBES // 10) / len(statements):>8.1f}")


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-health-") as directory:
        await bench_concurrency(Path(directory))
        await bench_cache(Path(directory))


if __name__ == "__main__":
    asyncio.run(main())
