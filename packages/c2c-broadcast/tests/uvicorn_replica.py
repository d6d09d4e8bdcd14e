"""A replica served by uvicorn whose lifespan only calls `startup()` (c2casgiutils 0.14's README), for test_drain.py."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

import c2c_broadcast


async def echo(**params: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "params": params}


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await c2c_broadcast.startup(app)
    await c2c_broadcast.subscribe("drain_echo", echo)
    yield  # no shutdown(): the replica must still leave the registry when uvicorn stops on SIGTERM


app = FastAPI(lifespan=lifespan)


@app.get("/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}
