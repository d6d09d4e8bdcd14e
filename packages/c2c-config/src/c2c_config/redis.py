"""The one place that builds Redis clients for the toolkit (needs the `redis` extra: `c2c-config[redis]`).

Two modes, decided by `RedisSettings`:

- URL mode (`C2C__REDIS__URL`): one client; the replica is the master. The database is the URL's
  (`redis://host/2`), else `C2C__REDIS__DB`.
- Sentinel mode (`C2C__REDIS__SENTINELS` + `C2C__REDIS__SERVICENAME`): the master and a replica
  found through the Sentinels (`master_for` / `slave_for`), database `C2C__REDIS__DB`; they follow a
  failover by themselves.

Clients are created lazily (creating one opens no connection), one set per running event loop, and
closed by `aclose()` or, at the latest, when their loop ends. Responses
are decoded to `str` unless the options say `decode_responses=false`. Passwords never reach a log.
"""

from __future__ import annotations

import dataclasses
import logging
import urllib.parse
from typing import Any

from c2c_config._base import get_settings, redact_url
from c2c_config._loop import LoopLocal
from c2c_config._sections import CoreSettings, RedisSettings

try:
    import redis.asyncio as aioredis
    from redis.asyncio.sentinel import Sentinel
except ModuleNotFoundError as _error:  # pragma: no cover - exercised by the "not installed" test
    raise ModuleNotFoundError(
        "c2c_config.redis needs the Redis client: install c2c-config[redis] (or the redis package)",
        name=_error.name,
    ) from None

LOG = logging.getLogger("c2c_config.redis")

__all__ = ["RedisFactory", "get_factory", "reset_factory"]


@dataclasses.dataclass
class _Clients:
    """The clients of one event loop."""

    master: aioredis.Redis | None = None
    replica: aioredis.Redis | None = None
    sentinel: Sentinel | None = None

    async def aclose(self) -> None:
        clients = list({id(c): c for c in (self.master, self.replica) if c}.values())
        sentinel = self.sentinel
        self.master = self.replica = None
        self.sentinel = None
        for client in clients:
            await client.aclose()
        if sentinel is not None:
            for sentinel_client in sentinel.sentinels:
                await sentinel_client.aclose()


class RedisFactory:
    """Lazily built Redis clients for one `RedisSettings`, one set per event loop.

    `master()` and `replica()` return `None` when Redis is not configured, so callers can fall back
    to in-process behaviour (local broadcast, in-memory logging levels).

    A redis-py asyncio client is bound to the loop that first used it, so each running loop gets
    its own clients (see `c2c_config.LoopLocal`): a process that runs several loops one after the
    other (a `TestClient` per test) never reuses a client of an earlier loop, and the clients of a
    loop are closed on that loop when it ends, even if nobody called `aclose()`.
    """

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self._clients: LoopLocal[_Clients] = LoopLocal(self._build, _Clients.aclose, name="Redis clients")

    @property
    def configured(self) -> bool:
        """Whether a Redis server is configured."""
        return self.settings.configured

    @property
    def mode(self) -> str:
        """`"sentinel"`, `"url"` or `"none"`."""
        if self.settings.sentinels:
            return "sentinel"
        return "url" if self.settings.url else "none"

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"decode_responses": True}
        options.update(self.settings.options)
        return options

    def describe(self) -> str:
        """Where the clients connect, for a log line: the URL without its password, or the Sentinels."""
        if self.mode == "sentinel":
            return f"sentinels {self.settings.sentinels} service {self.settings.servicename!r} db {self.settings.db}"
        if self.mode == "url":
            assert self.settings.url is not None
            return redact_url(self.settings.url)
        return "not configured"

    def _build(self) -> _Clients:
        clients = _Clients()
        options = self._options()
        if self.mode == "sentinel":
            assert self.settings.servicename is not None
            # Options that configure the connection to the Redis nodes also apply to the Sentinels,
            # except the data-node credentials and database.
            sentinel_kwargs = {
                key: value for key, value in options.items() if key not in ("password", "username", "db")
            }
            # redis-py before 8 leaves Sentinel.__init__ unannotated.
            clients.sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
                self.settings.sentinel_addresses, sentinel_kwargs=sentinel_kwargs, **options
            )
            clients.master = clients.sentinel.master_for(self.settings.servicename, db=self.settings.db)
            clients.replica = clients.sentinel.slave_for(self.settings.servicename, db=self.settings.db)
        elif self.mode == "url":
            assert self.settings.url is not None
            url = self.settings.url
            parsed = urllib.parse.urlsplit(url)
            has_db = parsed.path.strip("/") != "" or "db=" in parsed.query
            if not has_db and "db" not in options:
                options["db"] = self.settings.db
            clients.master = aioredis.Redis.from_url(url, **options)
            clients.replica = clients.master
        if self.configured:
            LOG.info("Redis clients created (%s mode, %s)", self.mode, self.describe())
        return clients

    def master(self) -> aioredis.Redis | None:
        """This loop's client for writes (created on first call), or None when Redis is not configured."""
        return self._clients.get().master if self.configured else None

    def replica(self) -> aioredis.Redis | None:
        """This loop's client for reads that tolerate a lagging replica, or None when Redis is not configured."""
        return self._clients.get().replica if self.configured else None

    def sentinel(self) -> Sentinel | None:
        """This loop's Sentinel client in Sentinel mode, else None."""
        return self._clients.get().sentinel if self.mode == "sentinel" else None

    def forget(self) -> None:
        """Drop this loop's clients without closing them (closed when their loop ends); next calls build new ones."""
        self._clients.forget()

    async def aclose(self) -> None:
        """Close this loop's connections now; later calls to `master()` build new clients.

        The clients of another loop are not touched: they close when their loop ends.
        """
        await self._clients.aclose()


_FACTORY: RedisFactory | None = None


def get_factory(settings: RedisSettings | None = None) -> RedisFactory:
    """The process-wide factory, built on first use from `settings` (default: `CoreSettings` from the environment).

    Passing different settings than the current factory's replaces it (close the old one first
    with `reset_factory()` to release its connections).
    """
    global _FACTORY
    if settings is None:
        if _FACTORY is not None:
            return _FACTORY
        settings = get_settings(CoreSettings).redis
    if _FACTORY is None or _FACTORY.settings != settings:
        _FACTORY = RedisFactory(settings)
    return _FACTORY


async def reset_factory() -> None:
    """Close the process-wide factory's connections and forget it (call it on shutdown)."""
    global _FACTORY
    factory, _FACTORY = _FACTORY, None
    if factory is not None:
        await factory.aclose()
