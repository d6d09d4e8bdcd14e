"""Fixtures of the c2c-broadcast tests: a clean environment and a fresh module state per test."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import c2c_broadcast
from c2c_broadcast import Settings
from c2c_config import reload_settings

# --import-mode=importlib does not put test folders on sys.path: make the helpers module importable.
sys.path.insert(0, str(Path(__file__).parent))

# Hypothesis: `dev` (default, fast) and `ci` (more examples), chosen by HYPOTHESIS_PROFILE.
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("ci", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
async def _clean_state(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """No `C2C__` variable from the outside, no broadcaster left over, settings re-read."""
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    await c2c_broadcast.shutdown()
    reload_settings(Settings)
    yield
    await c2c_broadcast.shutdown()
    # Nothing of ours survives a shutdown: listeners, heartbeat, handlers, cleanup tasks.
    leftovers = [task for task in asyncio.all_tasks() if task.get_name().startswith("c2c-broadcast")]
    assert leftovers == [], leftovers
    try:
        from c2c_config.redis import reset_factory
    except ModuleNotFoundError:
        pass
    else:
        await reset_factory()
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    reload_settings(Settings)
