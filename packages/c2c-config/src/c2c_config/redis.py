"""The one place that builds Redis clients for the toolkit (needs the `redis` extra: `c2c-config[redis]`).

Two modes, decided by `RedisSettings`:

- URL mode (`C2C__REDIS__URL`): one client; the replica is the master. The database is the URL's
  (`redis://host/2`), else `C2C__REDIS__DB`.
- Sentinel mode (`C2C__REDIS__SENTINELS` + `C2C__REDIS__SERVICENAME`): the master and a replica
  found through the Sentinels (`master_for` / `slave_for`), database `C2C__REDIS__DB`; they follow a
  failover by themselves.

Clients are created lazily (creating one opens no connection) and closed by `aclose()`. Responses
are decoded to `str` unless the options say `decode_responses=false`. Passwords never reach a log.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

from c2c_config._base import get_settings, redact_url
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


class RedisFactory:
    """Lazily built Redis clients for one `RedisSettings`.

    `master()` and `replica()` return `None` when Redis is not configured, so callers can fall back
    to in-process behaviour (local broadcast, in-memory logging levels).
    """

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self._master: aioredis.Redis | None = None
        self._replica: aioredis.Redis | None = None
        self._sentinel: Sentinel | None = None

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

    def _build(self) -> None:
        options = self._options()
        if self.mode == "sentinel":
            assert self.settings.servicename is not None
            # Options that configure the connection to the Redis nodes also apply to the Sentinels,
            # except the data-node credentials and database.
            sentinel_kwargs = {
                key: value for key, value in options.items() if key not in ("password", "username", "db")
            }
            # redis-py leaves Sentinel.__init__ unannotated.
            self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
                self.settings.sentinel_addresses, sentinel_kwargs=sentinel_kwargs, **options
            )
            self._master = self._sentinel.master_for(self.settings.servicename, db=self.settings.db)
            self._replica = self._sentinel.slave_for(self.settings.servicename, db=self.settings.db)
        elif self.mode == "url":
            assert self.settings.url is not None
            url = self.settings.url
            parsed = urllib.parse.urlsplit(url)
            has_db = parsed.path.strip("/") != "" or "db=" in parsed.query
            if not has_db and "db" not in options:
                options["db"] = self.settings.db
            self._master = aioredis.Redis.from_url(url, **options)
            self._replica = self._master
        LOG.info("Redis clients created (%s mode, %s)", self.mode, self.describe())

    def master(self) -> aioredis.Redis | None:
        """The client for writes (created on first call), or None when Redis is not configured."""
        if self._master is None and self.configured:
            self._build()
        return self._master

    def replica(self) -> aioredis.Redis | None:
        """The client for reads that tolerate a lagging replica, or None when Redis is not configured."""
        if self._replica is None and self.configured:
            self._build()
        return self._replica

    def sentinel(self) -> Sentinel | None:
        """The Sentinel client in Sentinel mode, else None."""
        if self._sentinel is None and self.mode == "sentinel":
            self._build()
        return self._sentinel

    async def aclose(self) -> None:
        """Close every connection; later calls to `master()` build new clients."""
        clients = list({id(c): c for c in (self._master, self._replica) if c}.values())
        sentinel = self._sentinel
        self._master = self._replica = None
        self._sentinel = None
        for client in clients:
            await client.aclose()
        if sentinel is not None:
            for sentinel_client in sentinel.sentinels:
                await sentinel_client.aclose()


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
