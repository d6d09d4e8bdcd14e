"""A replica of the mixed-rollout test (`test_mixed_rollout.py`), written against c2casgiutils 0.14's API only.

The same module runs on c2casgiutils 0.14.0 (its own virtual environment) and on ours (c2c-all), as
a service in the middle of its migration would: `uvicorn mixed_rollout_app:app`. Its lifespan only
calls `c2casgiutils.startup`, as 0.14's README shows. `MIXED_REPLICA` names the replica in its answers.

- `GET /echo?message=`: calls the `decorate`d `_echo` on every replica and returns each answer's
  payload (`null` for a missing one);
- `/c2c/...`: the c2c tools, among which the logging levels (secret-mode authentication).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

import c2casgiutils
from c2casgiutils import broadcast

_STATE: dict[str, Any] = {}


async def _echo(*, message: str) -> dict[str, Any]:
    """Runs on every replica."""
    return {"replica": os.environ.get("MIXED_REPLICA", "?"), "pid": os.getpid(), "message": message}


@contextlib.asynccontextmanager
async def _lifespan(main_app: FastAPI) -> AsyncIterator[None]:
    await c2casgiutils.startup(main_app)
    _STATE["echo"] = await broadcast.decorate(_echo, expect_answers=True)
    yield


app = FastAPI(title="mixed rollout replica", lifespan=_lifespan)
app.mount("/c2c", c2casgiutils.app)


@app.get("/echo")
async def echo(message: str) -> list[Any]:
    """The payload of every replica's answer (`None` for a missing one)."""
    answers = await _STATE["echo"](message=message)
    return [answer.payload if isinstance(answer, broadcast.BroadcastResponse) else None for answer in answers]


@app.get("/alive")
async def alive() -> dict[str, Any]:
    """Answers once the lifespan started; says which library runs this replica."""
    return {"replica": os.environ.get("MIXED_REPLICA", "?"), "version": c2casgiutils.__version__}
