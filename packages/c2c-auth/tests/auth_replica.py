"""A replica of a service protected by c2c-auth, served by uvicorn in a subprocess (tests of shared state).

Settings come from the environment (`C2C__...`) the test gives the subprocess.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI

import c2c_auth


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await c2c_auth.startup(app)
    yield
    await c2c_auth.shutdown(app)


app = FastAPI(lifespan=_lifespan)
_c2c = FastAPI()
_c2c.include_router(c2c_auth.create_router(), prefix="/auth")
app.mount("/c2c", _c2c)


@_c2c.get("/ro", dependencies=[Depends(c2c_auth.require_read_only_access)])
async def read_only() -> dict[str, str]:
    """A protected route."""
    return {"access": "read-only"}


@app.get("/ready")
async def ready() -> dict[str, str]:
    """The replica is serving."""
    return {"ready": "yes"}
