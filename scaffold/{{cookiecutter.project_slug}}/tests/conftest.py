"""Fixtures: the application served in-process through httpx, its lifespan run around each test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest

# Read when the application is imported: no metrics server and no Redis in these tests.
os.environ["C2C__PROMETHEUS__PORT"] = "0"
for _name in [name for name in os.environ if name.upper().startswith("C2C__REDIS__")]:
    del os.environ[_name]


@pytest.fixture
def anyio_backend() -> str:
    """The tests run on asyncio (anyio's pytest plugin comes with httpx)."""
    return "asyncio"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client of the application, as a browser on localhost sees it."""
    from {{ cookiecutter.project_slug }}.main import app

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http_client:
            yield http_client
