"""The one place that builds Redis clients for the toolkit (needs the `redis` extra: `c2c-config[redis]`).

Two modes, decided by `RedisSettings`:

- URL mode (`C2C__REDIS__URL`): one client; the replica is the master. The database is the URL's
  (`redis://host/2`), else `C2C__REDIS__DB`.
- Sentinel mode (`C2C__REDIS__SENTINELS` + `C2C__REDIS__SERVICENAME`): the master and a replica
  found through the Sentinels (`master_for` / `slave_for`), database `C2C__REDIS__DB`; they follow a
  failover by themselves.
- Cluster mode (`C2C__REDIS__CLUSTER=true` + `C2C__REDIS__URL` naming one node): one
  `redis.asyncio.RedisCluster` client for commands (it discovers the nodes, follows `MOVED`/`ASK`
  and a shard's failover), a second one for pub/sub (sharded pub/sub: `SSUBSCRIBE`/`SPUBLISH`).
  Needs redis-py 8.0 or later (its asyncio cluster client has sharded pub/sub from 8.0 on): an
  older redis-py is refused when the factory is built, with the version to install. Database 0 only.

Clients are created lazily (creating one opens no connection), one set per running event loop, and
closed by `aclose()` or, at the latest, when their loop ends. Responses
are decoded to `str` unless the options say `decode_responses=false`; the pub/sub client's never are
(`bytes`: a message is whatever anyone sent). Passwords never reach a log.

Bounds (unless `C2C__REDIS__OPTIONS` sets the same redis-py option, which wins):

- command clients (`master()`, `replica()`) share, per client, a pool of at most
  `C2C__REDIS__MAX_CONNECTIONS` connections that *waits* for a free connection (at most
  `C2C__REDIS__TIMEOUT`, then `redis.exceptions.ConnectionError("No connection available.")`)
  instead of opening more; a command, and a connection attempt, fail after `C2C__REDIS__TIMEOUT`
  (`socket_timeout`, `socket_connect_timeout`);
- in cluster mode `max_connections` bounds the connections per node, and a command beyond it fails
  at once (`MaxConnectionsError`: redis-py's cluster client has no waiting pool);
- the pub/sub client (`subscriber()`) is separate: each `PubSub` holds one connection for its
  whole life, so it must neither wait behind commands nor starve them; its reads are bounded by
  the reader's own timeout (`get_message(timeout=...)`), not by `socket_timeout`, which would cut
  a subscriber that is simply idle; connecting is bounded by `C2C__REDIS__TIMEOUT`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any, TypeAlias

from c2c_config._base import get_settings, redact_url
from c2c_config._loop import LoopLocal
from c2c_config._sections import CoreSettings, RedisSettings, url_database

try:
    import redis
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
except ModuleNotFoundError as _error:  # pragma: no cover - exercised by the "not installed" test
    raise ModuleNotFoundError(
        "c2c_config.redis needs the Redis client: install c2c-config[redis] (or the redis package)",
        name=_error.name,
    ) from None

LOG = logging.getLogger("c2c_config.redis")

__all__ = [
    "CLUSTER_MIN_REDIS_PY",
    "SKIP_AFTER_FAILURE",
    "RedisClient",
    "RedisFactory",
    "get_factory",
    "note_unreachable",
    "redis_py_version",
    "request_scope",
    "reset_factory",
    "reset_unreachable",
    "unreachable_here",
    "unreachable_reason",
    "unreachable_remaining",
]

SKIP_AFTER_FAILURE = 2.0
"""Seconds during which the request path does not ask Redis again after it timed out or could not be reached."""

_unreachable_until = 0.0
_unreachable_reason = ""
_failed_here: contextvars.ContextVar[float] = contextvars.ContextVar("c2c_redis_failed_here", default=0.0)


def note_unreachable(reason: str = "") -> None:
    """Redis just timed out or could not be reached: open the `SKIP_AFTER_FAILURE` window.

    Two scopes, for two kinds of caller on the request path:

    - the process (`unreachable_remaining`): c2c-auth's checks, which have a fallback in this
      process, skip Redis for the next requests too: a frozen Redis costs one request its timeout
      every 2 s, not every request;
    - the current request (`unreachable_here`: a context variable, each request runs in a task of
      its own): a call without a fallback (c2casgiutils' logging tool) skips Redis only when this
      very request already waited for it, so that a request waits for Redis at most once, and a
      request made after Redis came back is not refused for the rest of the window.

    Background loops consult neither, and health checks not the process's: they must find out when
    Redis is back. c2c-health's Redis check consults the request's (a probe whose access check just
    waited for Redis does not wait again).
    """
    global _unreachable_until, _unreachable_reason
    now = time.monotonic()
    _unreachable_until = now + SKIP_AFTER_FAILURE
    _unreachable_reason = reason
    _failed_here.set(now)


def unreachable_remaining() -> float:
    """Seconds left in the process-wide window `note_unreachable` opened; 0.0 when Redis may be asked."""
    return max(0.0, _unreachable_until - time.monotonic())


def unreachable_here() -> bool:
    """Whether Redis failed in the current request (context) less than `SKIP_AFTER_FAILURE` s ago."""
    failed = _failed_here.get()
    return bool(failed) and time.monotonic() - failed < SKIP_AFTER_FAILURE


@contextlib.contextmanager
def request_scope() -> Iterator[None]:
    """Serve one request inside: `unreachable_here()` starts false, and what the request noted stays in it.

    A server runs each request in a task of its own, whose context is a fresh copy, so the memory
    is per request anyway. A test client that calls the application in the caller's task (httpx's
    `ASGITransport`) does not: without this scope, a failure noted in one request would refuse the
    caller's next requests for the rest of the window, even once Redis is back. c2casgiutils' `/c2c`
    application serves every request inside one.
    """
    token = _failed_here.set(0.0)
    try:
        yield
    finally:
        _failed_here.reset(token)


def unreachable_reason() -> str:
    """The failure that opened the current window (`note_unreachable`'s `reason`), for error messages."""
    return _unreachable_reason if unreachable_remaining() > 0 else ""


def reset_unreachable() -> None:
    """Close the windows: the next call asks Redis (tests, each starting as a new process would)."""
    global _unreachable_until
    _unreachable_until = 0.0
    _failed_here.set(0.0)


RedisClient: TypeAlias = "aioredis.Redis | RedisCluster"
"""What the factory hands out: a plain (URL, Sentinel) client, or a cluster client in cluster mode."""

CLUSTER_MIN_REDIS_PY = (8, 0)
"""The first redis-py whose asyncio cluster client has sharded pub/sub."""


def redis_py_version() -> tuple[int, ...]:
    """The installed redis-py's version as numbers, e.g. `(8, 2, 0)`."""
    numbers: list[int] = []
    for part in redis.__version__.split("."):
        digits = "".join(char for char in part if char.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


# redis-py options that configure the client object rather than its connections or pool.
_CLIENT_OPTIONS = ("single_connection_client",)


class _BlockingSentinelConnectionPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):  # type: ignore[misc,unused-ignore]
    """A Sentinel-managed pool (follows the master) that waits for a free connection when full."""


@dataclasses.dataclass
class _Clients:
    """The clients of one event loop."""

    master: RedisClient | None = None
    replica: RedisClient | None = None
    subscriber: RedisClient | None = None
    sentinel: Sentinel | None = None

    async def aclose(self) -> None:
        clients = list({id(c): c for c in (self.master, self.replica, self.subscriber) if c}.values())
        sentinel = self.sentinel
        self.master = self.replica = self.subscriber = None
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
        """Prepare the factory (no I/O); cluster mode with a redis-py older than 8.0 raises `RuntimeError`."""
        if settings.cluster and redis_py_version() < CLUSTER_MIN_REDIS_PY:
            raise RuntimeError(
                f"C2C__REDIS__CLUSTER needs redis-py 8.0 or later (sharded pub/sub on its asyncio cluster client); "
                f"redis-py {redis.__version__} is installed: pip install 'redis>=8'"
            )
        self.settings = settings
        self._clients: LoopLocal[_Clients] = LoopLocal(self._build, _Clients.aclose, name="Redis clients")

    @property
    def configured(self) -> bool:
        """Whether a Redis server is configured."""
        return self.settings.configured

    @property
    def mode(self) -> str:
        """`"sentinel"`, `"cluster"`, `"url"` or `"none"`."""
        if self.settings.sentinels:
            return "sentinel"
        if self.settings.url:
            return "cluster" if self.settings.cluster else "url"
        return "none"

    @property
    def cluster(self) -> bool:
        """Whether the clients are Redis Cluster clients (`C2C__REDIS__CLUSTER`)."""
        return self.mode == "cluster"

    def _options(self) -> dict[str, Any]:
        """Connection options of the command clients: the defaults, then the user's options."""
        timeout = self.settings.timeout.total_seconds()
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        options.update(self.settings.options)
        return options

    def _subscriber_options(self) -> dict[str, Any]:
        """Connection options of the pub/sub client: no default `socket_timeout` (see the module docstring).

        Never decoding: a message is whatever bytes anyone who may PUBLISH sent, and redis-py decoding
        a message that is not UTF-8 fails mid-reply, leaving the connection unusable; the reader
        decodes (and refuses) them itself.
        """
        options: dict[str, Any] = {"socket_connect_timeout": self.settings.timeout.total_seconds()}
        options.update(self.settings.options)
        options["decode_responses"] = False
        options.pop("max_connections", None)  # one connection per PubSub, as many as there are subscribers
        return options

    def _pool_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Take the pool's bounds out of `options`: its size and how long to wait for a free connection."""
        return {
            "max_connections": options.pop("max_connections", self.settings.max_connections),
            "timeout": self.settings.timeout.total_seconds(),
        }

    def describe(self) -> str:
        """Where the clients connect, for a log line: the URL through `redact_url`, or the Sentinels.

        The URL's passwords show as `***`: the user-info's and those of credential query parameters
        (`?password=`, `?sentinel_password=`), which redis-py reads too.
        """
        if self.mode == "sentinel":
            return f"sentinels {self.settings.sentinels} service {self.settings.servicename!r} db {self.settings.db}"
        if self.mode in ("url", "cluster"):
            assert self.settings.url is not None
            return redact_url(self.settings.url) + (" (cluster)" if self.mode == "cluster" else "")
        return "not configured"

    def _build(self) -> _Clients:
        clients = _Clients()
        if self.mode == "sentinel":
            self._build_sentinel(clients)
        elif self.mode == "cluster":
            self._build_cluster(clients)
        elif self.mode == "url":
            self._build_url(clients)
        if self.configured:
            LOG.info("Redis clients created (%s mode, %s)", self.mode, self.describe())
        return clients

    def _build_sentinel(self, clients: _Clients) -> None:
        assert self.settings.servicename is not None
        service, db = self.settings.servicename, self.settings.db
        options = self._options()
        pool = self._pool_options(options)
        client_options = {key: options.pop(key) for key in _CLIENT_OPTIONS if key in options}
        # Options that configure the connection to the Redis nodes also apply to the Sentinels,
        # except the data-node credentials and database.
        sentinel_kwargs = {key: value for key, value in options.items() if key not in ("password", "username", "db")}
        # redis-py before 8 leaves Sentinel.__init__ unannotated.
        sentinel = clients.sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
            self.settings.sentinel_addresses, sentinel_kwargs=sentinel_kwargs, **options
        )
        blocking = {"connection_pool_class": _BlockingSentinelConnectionPool, **pool, "db": db}
        master, replica = sentinel.master_for(service, **blocking), sentinel.slave_for(service, **blocking)
        if client_options.get("single_connection_client"):
            for client in (master, replica):
                client.single_connection_client = True  # read at the first command, as the constructor's argument
        clients.master, clients.replica = master, replica
        # The pub/sub client: the same master, its own unbounded pool, no read timeout by default.
        subscriber_options = self._subscriber_options()
        if "socket_timeout" not in subscriber_options:
            subscriber_options["socket_timeout"] = None  # override the Sentinel-wide default
        for key in _CLIENT_OPTIONS:
            subscriber_options.pop(key, None)
        clients.subscriber = sentinel.master_for(service, **{**subscriber_options, "db": db})

    def _build_url(self, clients: _Clients) -> None:
        assert self.settings.url is not None
        url = self.settings.url
        options = self._options()
        subscriber_options = self._subscriber_options()
        if url_database(url) is None:
            options.setdefault("db", self.settings.db)
            subscriber_options.setdefault("db", self.settings.db)
        pool = self._pool_options(options)
        client_options = {key: options.pop(key) for key in _CLIENT_OPTIONS if key in options}
        clients.master = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(url, **pool, **options), **client_options
        )
        clients.master.auto_close_connection_pool = True  # the client owns its pool (closed with it)
        clients.replica = clients.master
        for key in _CLIENT_OPTIONS:
            subscriber_options.pop(key, None)
        clients.subscriber = aioredis.Redis.from_url(url, **subscriber_options)

    def _build_cluster(self, clients: _Clients) -> None:
        assert self.settings.url is not None
        options = self._options()
        options.pop("db", None)
        for key in _CLIENT_OPTIONS:
            options.pop(key, None)
        options.setdefault("max_connections", self.settings.max_connections)
        clients.master = RedisCluster.from_url(self.settings.url, **options)
        clients.replica = clients.master
        subscriber_options = self._subscriber_options()
        subscriber_options.pop("db", None)
        for key in _CLIENT_OPTIONS:
            subscriber_options.pop(key, None)
        clients.subscriber = RedisCluster.from_url(self.settings.url, **subscriber_options)

    def master(self) -> RedisClient | None:
        """This loop's client for writes (created on first call), or None when Redis is not configured."""
        return self._clients.get().master if self.configured else None

    def replica(self) -> RedisClient | None:
        """This loop's client for reads that tolerate a lagging replica, or None when Redis is not configured."""
        return self._clients.get().replica if self.configured else None

    def subscriber(self) -> RedisClient | None:
        """This loop's client for pub/sub connections (`subscriber().pubsub()`), or None when Redis is not configured.

        Its pool is not the command clients' bounded one: every `PubSub` holds one connection for
        its life (the toolkit opens two per broadcaster), and reading is bounded by the reader's
        `get_message(timeout=...)` rather than by a `socket_timeout` (unless the options set one).
        In cluster mode it is a `RedisCluster` whose `pubsub()` is a `ClusterPubSub` (use
        `ssubscribe` and `get_sharded_message`).
        """
        return self._clients.get().subscriber if self.configured else None

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
