"""Benchmark of the Kubernetes probes: `/c2c/readyz` with 10 cached checks against a bare endpoint.

    uv run --no-sync python bench/bench_probes.py

One FastAPI application holds a bare endpoint (`GET /bare`, a small JSON answer) and the `/c2c`
sub-application with another one (`GET /c2c/bare`, the reference: same mount, same JSON) and
c2c-health's router. Ten checks tagged `readiness` are registered (each
awaits once and answers 200), and `C2C__HEALTH_CHECKS__CACHE_TTL` is long: after the first call
every `/c2c/readyz` reuses the cached report, which is what a kubelet, a load balancer and uptime
monitors hitting a pod every few seconds cost. Also measured: `/c2c/livez`, `/c2c/readyz` with
`Accept: application/health+json`, and `/c2c/readyz` without the cache (the 10 checks run each
time).

Requests are driven in process straight through the ASGI interface (no server, no socket, no HTTP
client), so the figures are the application's own cost; rounds alternate the endpoints and the
medians of the per-round medians are printed, with the ratio to the bare endpoint.
"""

from __future__ import annotations

import asyncio
import datetime
import statistics
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from c2c_health import READINESS, Check, Factory, HealthChecksSettings, Result, Settings, create_router

CHECKS = 10
ROUNDS = 7
REQUESTS = 400

Message = MutableMapping[str, Any]
ASGIApp = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class Quick(Check):
    """A dependency that answers at once (one await)."""

    async def check(self) -> Result:
        await asyncio.sleep(0)
        return Result(payload={"ok": True})


def make_app(cache_ttl: float) -> FastAPI:
    settings = Settings(
        health_checks=HealthChecksSettings(
            timeout=datetime.timedelta(seconds=5), cache_ttl=datetime.timedelta(seconds=cache_ttl), details="never"
        )
    )
    factory = Factory(registry=CollectorRegistry(), settings=lambda: settings)
    for index in range(CHECKS):
        factory.add(Quick(tags=[READINESS], name=f"dependency-{index}"))
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, Any]:
        return {"status_code": 200, "time_taken": 0.0, "entities": []}

    c2c = FastAPI()

    @c2c.get("/bare")
    async def bare_in_c2c() -> dict[str, Any]:
        return {"status_code": 200, "time_taken": 0.0, "entities": []}

    c2c.include_router(create_router(factory, service_id="bench", version="1"))
    app.mount("/c2c", c2c)
    return app


async def call(app: ASGIApp, path: str, accept: bytes = b"application/json") -> int:
    """One GET through the ASGI interface; returns the status."""
    scope: Message = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"accept", accept)],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def per_request(app: ASGIApp, path: str, accept: bytes) -> float:
    """Median time of one request, in µs, over REQUESTS sequential requests."""
    times = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        status = await call(app, path, accept)
        times.append(time.perf_counter() - start)
        assert status == 200, (path, status)
    return statistics.median(times) * 1e6


async def main() -> None:
    cached = make_app(cache_ttl=3600)
    uncached = make_app(cache_ttl=0)
    cases: list[tuple[str, ASGIApp, str, bytes]] = [
        ("bare endpoint (root app)", cached, "/bare", b"application/json"),
        ("bare endpoint (in /c2c)", cached, "/c2c/bare", b"application/json"),
        ("/c2c/livez", cached, "/c2c/livez", b"application/json"),
        (f"/c2c/readyz, {CHECKS} checks cached", cached, "/c2c/readyz", b"application/json"),
        (f"/c2c/readyz, {CHECKS} checks cached, health+json", cached, "/c2c/readyz", b"application/health+json"),
        (f"/c2c/readyz, {CHECKS} checks run (no cache)", uncached, "/c2c/readyz", b"application/json"),
    ]
    for _, app, path, accept in cases:  # warm up (and fill the cache)
        for _ in range(50):
            await call(app, path, accept)
    results: dict[str, list[float]] = {label: [] for label, *_ in cases}
    for _ in range(ROUNDS):
        for label, app, path, accept in cases:
            results[label].append(await per_request(app, path, accept))
    bare = statistics.median(results["bare endpoint (in /c2c)"])
    print(f"{ROUNDS} rounds x {REQUESTS} sequential requests per case, in process (ASGI), medians")
    print(f"{'case':<50} {'µs/request':>11} {'vs bare endpoint in /c2c':>25}")
    for label, values in results.items():
        value = statistics.median(values)
        print(f"{label:<50} {value:>11.1f} {value / bare:>24.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
