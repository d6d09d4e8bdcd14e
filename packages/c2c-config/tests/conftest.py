"""Fixtures shared by c2c-config's tests (no Redis import here: the package is also tested without its extra)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from c2c_config.redis import RedisFactory


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without C2C__ variables from the developer's shell."""
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)


@pytest.fixture
async def factories() -> AsyncIterator[list[RedisFactory]]:
    """Append the `RedisFactory`s a test builds: their connections are closed at teardown."""
    made: list[RedisFactory] = []
    yield made
    for factory in made:
        await factory.aclose()
