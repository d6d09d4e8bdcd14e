"""Shared by the tests that start the module-level broadcaster on a real redis-server."""

from __future__ import annotations

import pytest

import c2c_broadcast
from c2c_broadcast import Settings
from c2c_config import reload_settings

FAST = {
    "C2C__BROADCAST__HEARTBEAT_INTERVAL": "0.5",
    "C2C__BROADCAST__REPLICA_TTL": "5",
    "C2C__BROADCAST__RECONNECT_MAX_DELAY": "0.3",
    "C2C__BROADCAST__CONNECT_TIMEOUT": "1",
}
"""Short intervals and timeouts, so that outages and recoveries fit in a test."""


async def start_on_redis(monkeypatch: pytest.MonkeyPatch, url: str, **extra: str) -> None:
    """`c2c_broadcast.startup()` on the Redis at `url` with `FAST` settings (`extra` overrides them)."""
    for name, value in {"C2C__REDIS__URL": url, **FAST, **extra}.items():
        monkeypatch.setenv(name, value)
    reload_settings(Settings)
    await c2c_broadcast.startup()
