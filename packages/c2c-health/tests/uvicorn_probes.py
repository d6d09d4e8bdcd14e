"""A service served by uvicorn, for test_probes.py's draining test: the probes under /c2c, a slow route.

Its lifespan calls `c2c_health.startup()` (the SIGTERM hook) and `shutdown()`; `/slow` prints a line
when it starts, so the test knows the request is in flight before it sends SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

from fastapi import FastAPI

import c2c_health
from c2c_config import signals


class Ready(c2c_health.Check):
    async def check(self) -> c2c_health.Result:
        return c2c_health.Result(payload={"ok": True})


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    c2c_health.FACTORY.add(Ready(tags=[c2c_health.READINESS]))
    installed = await c2c_health.startup()
    print(f"probes: SIGTERM hook installed={installed}", flush=True)
    signals.on_sigterm("probes-test", lambda: print("probes: SIGTERM hooks ran", flush=True))
    yield
    print("probes: lifespan shutdown", flush=True)
    await c2c_health.shutdown()


app = FastAPI(lifespan=lifespan)
app.include_router(c2c_health.router, prefix="/c2c")


@app.get("/slow")
async def slow(seconds: float = 3.0) -> dict[str, float]:
    print("probes: slow request started", flush=True)
    await asyncio.sleep(seconds)
    print("probes: slow request done", flush=True)
    sys.stdout.flush()
    return {"slept": seconds}
