"""Built-in checks: Redis, SQLAlchemy, Alembic, HTTP (and Wrong, which always fails).

The optional libraries are imported when a check is created, so `import c2c_health` works without
them and a missing one gives a message naming the extra to install.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import ssl
import threading
from collections.abc import Awaitable, Collection, Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from c2c_config import describe_error, redact_url
from c2c_health._core import Check, Result, Timeout, time_left
from c2c_health._http import HTTPProbeError, fetch_status, validate_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from c2c_config.redis import RedisFactory

LOG = logging.getLogger("c2c_health")

MISSING_EXTRA = "{check} needs {module!r}: install c2c-health[{extra}] (with c2c-all: c2c-all[{extra}])"


def require(module: str, extra: str, check: str) -> ModuleType:
    """Import `module`, or raise `ModuleNotFoundError` telling which extra of c2c-health provides it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            MISSING_EXTRA.format(check=check, module=error.name or module, extra=extra), name=error.name
        ) from error


_describe = describe_error


def _redis_failed_in_this_request() -> bool:
    from c2c_config.redis import unreachable_here

    return unreachable_here()


class Redis(Check):
    """Pings the Redis master and, when it is another server, the replica (Sentinel aware).

    Uses `c2c_config.redis.get_factory()` (the `C2C__REDIS__*` settings) unless a `factory` is
    given. Healthy (with a message) when Redis is not configured. Needs `c2c-health[redis]`.
    With that factory, a request that already waited for Redis (`c2c_config.redis.unreachable_here`:
    its access check met a frozen Redis) fails the check without asking again: a request waits for
    Redis at most once.

    On a Redis Cluster (`C2C__REDIS__CLUSTER`) it pings every master of the cluster's current
    topology at once, each bounded by `C2C__REDIS__TIMEOUT` (and by the check's own timeout), and
    fails when any master does not answer. The detailed payload lists each master
    (`{"masters": [{"address": "host:port", "ok": true}, {"address": ..., "ok": false, "error": ...}]}`);
    the public one only counts them (`{"masters": 3}`, or `{"error": "1 of 3 Redis Cluster masters
    are not reachable"}`).
    """

    def __init__(
        self,
        tags: Iterable[str] | str | None = None,
        *,
        name: str | None = None,
        timeout: Timeout = None,
        factory: RedisFactory | None = None,
    ) -> None:
        super().__init__(tags, name=name, timeout=timeout)
        require("c2c_config.redis", "redis", "the Redis health check")
        self.factory = factory

    async def check(self) -> Result:
        """Ping master and replica concurrently."""
        from c2c_config.redis import get_factory

        factory = self.factory if self.factory is not None else get_factory()
        master = factory.master()
        replica = factory.replica()
        if master is None:
            return Result(200, {"message": "Redis is not configured"})
        if self.factory is None and _redis_failed_in_this_request():
            # This request already waited for this Redis (its access check): a request waits for it
            # at most once (`C2C__REDIS__TIMEOUT`); the next request asks it again.
            not_asked = {"error": "not asked: it already failed in this request"}
            return Result(500, not_asked, public_payload={"error": "Redis is not reachable"})
        settings = getattr(factory, "settings", None)  # a factory-like object of the tests may have none
        bound = settings.timeout.total_seconds() if settings is not None else None
        # Within 90 % of the time the check has (its own timeout, else C2C__HEALTH_CHECKS__TIMEOUT),
        # so that the report names the server that did not answer rather than the check timing out.
        # One bound for the whole ping: with Sentinel, asking the sentinels for the address and then
        # the server would otherwise take a socket timeout each.
        left = time_left()
        if left is None and self.timeout is not None:  # called outside a factory's run
            left = self.timeout
        if left is not None:
            bound = left * 0.9 if bound is None else min(bound, left * 0.9)
        if getattr(factory, "cluster", False):  # a factory-like object of the tests has no `cluster`
            assert bound is not None
            return await _check_cluster(master, bound)
        if replica is None or replica is master:
            error = await _ping(master, None, bound)
            if error is None:
                return Result(200, {})
            return Result(500, {"error": error}, public_payload={"error": "Redis is not reachable"})
        master_error, replica_error = await asyncio.gather(_ping(master, None, bound), _ping(replica, None, bound))
        payload: dict[str, Any] = {}
        public: dict[str, Any] = {}
        if master_error is not None:
            payload["master_error"] = master_error
            public["master_error"] = "Redis master is not reachable"
        if replica_error is not None:
            payload["slave_error"] = replica_error
            public["slave_error"] = "Redis replica is not reachable"
        return Result(500 if payload else 200, payload, public_payload=public)


async def _check_cluster(client: Any, bound: float) -> Result:
    """Ping every master of a `redis.asyncio.RedisCluster` concurrently, each within `bound` seconds.

    The topology refresh and the pings share `bound` first: a refresh that meets a frozen node
    (redis-py asks the nodes one after the other) would otherwise take a whole bound before the
    pings take another, and the check's own timeout would cut the report that names the master.
    Once a topology is known, the refresh gets half the bound; when it fails or runs out, the known
    topology is pinged (the frozen master is then the one reported). The pings get what is left of
    `bound`, but no less than a whole `bound` when the check has time for it (90 % of its time
    left): a first topology read slowed by a loaded machine must not leave healthy masters no time.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    known = _primaries(client)
    try:
        async with asyncio.timeout(bound / 2 if known else bound):
            # The topology: read once, and read again when an earlier failure asked for it (a
            # failover), so that a promoted replica is the one pinged.
            await client.initialize()
        masters = _primaries(client)
    except Exception as error:  # no node reachable, or a refresh slower than its share of the bound
        description = _describe(error) if str(error) else f"{type(error).__name__}: no topology within {bound:g} s"
        if not known:
            LOG.debug("Redis health check: the cluster is not reachable: %s", description, exc_info=error)
            return Result(500, {"error": description}, public_payload={"error": "Redis Cluster is not reachable"})
        LOG.debug("Redis health check: topology refresh failed, pinging the known masters: %s", description)
        masters = known
    left = time_left()
    floor = bound if left is None else min(bound, left * 0.9)
    remaining = max(deadline - loop.time(), floor, 0.001)
    errors = await asyncio.gather(*(_ping(client, node, remaining) for node in masters))
    details: list[dict[str, Any]] = [
        {"address": node.name, "ok": True} if failure is None else {"address": node.name, "ok": False, "error": failure}
        for node, failure in zip(masters, errors, strict=True)
    ]
    failed = sum(error is not None for error in errors)
    if not masters or failed:
        message = f"{failed} of {len(masters)} Redis Cluster masters are not reachable"
        return Result(500, {"masters": details, "error": message}, public_payload={"error": message})
    return Result(200, {"masters": details}, public_payload={"masters": len(masters)})


def _primaries(client: Any) -> list[Any]:
    """The masters of the cluster client's current topology (empty before its first reading)."""
    try:
        return list(client.get_primaries())
    except Exception:  # a client that never read a topology
        return []


async def _ping(client: Any, node: Any = None, bound: float | None = None) -> str | None:
    try:
        async with asyncio.timeout(bound):
            if node is None:
                await cast("Awaitable[Any]", client.ping())
            else:  # one cluster node, without the client's retries on other nodes
                await cast("Awaitable[Any]", client.execute_command("PING", target_nodes=node))
    except TimeoutError as error:
        if bound is None:  # a builtin TimeoutError from the client itself
            return _describe(error)
        LOG.debug("Redis health check: no answer within %.2g s", bound)
        return f"TimeoutError: no answer within {round(bound, 2):g} s"
    except Exception as error:
        description = _describe(error)
        # The factory logs the failing check in one WARNING line (this description in its payload);
        # the traceback, a redis-py stack of some 50 lines saying no more, only at DEBUG.
        LOG.debug("Redis health check: ping failed: %s", description, exc_info=error)
        return description
    return None


class SQLAlchemy(Check):
    """Opens a session from an `async_sessionmaker` and runs `SELECT 1`. Needs `c2c-health[sqlalchemy]`."""

    def __init__(
        self,
        Session: async_sessionmaker[AsyncSession],
        tags: Iterable[str] | str | None = None,
        *,
        name: str | None = None,
        timeout: Timeout = None,
    ) -> None:
        super().__init__(tags, name=name, timeout=timeout)
        self._sqlalchemy = require("sqlalchemy", "sqlalchemy", "the SQLAlchemy health check")
        self.Session = Session

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} database={_database_of(self.Session)!r}>"

    async def check(self) -> Result:
        """Run `SELECT 1`; an exception fails the check (logged, hidden from anonymous callers)."""
        async with self.Session() as session:
            await session.execute(self._sqlalchemy.text("SELECT 1"))
        return Result(200, {})


def _database_of(Session: Any) -> str | None:
    """The URL (password masked) of the engine a sessionmaker is bound to, to tell checks apart in logs."""
    bind = getattr(Session, "kw", {}).get("bind")
    url = getattr(bind, "url", None)
    if url is None:
        return None
    try:
        # The URL object knows where its password is: it renders without it. Rendering it and then
        # `redact_url` would show a password holding a space (SQLAlchemy leaves spaces unencoded).
        return str(url.render_as_string(hide_password=True))
    except Exception:
        return None


class Alembic(Check):
    """Compares the database's Alembic revision(s) with the heads of the migration scripts.

    The script directory (from `config_file`, whose `script_location` should use `%(here)s` to
    be independent of the working directory) is read once, in a thread. Several heads are
    handled: the database must be at exactly the set of heads. Needs `c2c-health[alembic]`.
    """

    # Internal state, not configuration: two Alembic checks differing only here are the same check.
    _c2c_compare_ignore = frozenset({"_heads", "_lock"})

    def __init__(
        self,
        Session: async_sessionmaker[AsyncSession],
        config_file: str = "alembic.ini",
        tags: Iterable[str] | str | None = None,
        *,
        name: str | None = None,
        timeout: Timeout = None,
        version_table: str = "alembic_version",
        version_table_schema: str | None = None,
    ) -> None:
        super().__init__(tags, name=name, timeout=timeout)
        require("alembic", "alembic", "the Alembic health check")
        self.Session = Session
        self.config_file = config_file
        self.version_table = version_table
        self.version_table_schema = version_table_schema
        self._heads: tuple[str, ...] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} database={_database_of(self.Session)!r} config_file={self.config_file!r}>"

    def script_heads(self) -> tuple[str, ...]:
        """The heads of the migration scripts (blocking: read once, then remembered)."""
        with self._lock:
            if self._heads is None:
                from alembic.config import Config
                from alembic.script import ScriptDirectory

                if not os.path.isfile(self.config_file):
                    raise FileNotFoundError(
                        f"Alembic configuration file {self.config_file!r} not found (working directory {os.getcwd()!r})"
                    )
                script = ScriptDirectory.from_config(Config(self.config_file))
                self._heads = tuple(sorted(script.get_heads()))
            return self._heads

    def _current_heads(self, connection: Connection) -> tuple[str, ...]:
        from alembic.runtime.migration import MigrationContext

        context = MigrationContext.configure(
            connection,
            opts={"version_table": self.version_table, "version_table_schema": self.version_table_schema},
        )
        return tuple(sorted(context.get_current_heads()))

    async def check(self) -> Result:
        """Read the database revision(s) and compare them with the script heads."""
        heads = self._heads if self._heads is not None else await asyncio.to_thread(self.script_heads)
        async with self.Session() as session:
            connection = await session.connection()
            current = await connection.run_sync(self._current_heads)
        version = ",".join(current) or None
        head = ",".join(heads)
        if set(current) == set(heads):
            return Result(200, {"version": version, "head": head})
        return Result(
            500,
            {"error": "the database is not at the migration head(s)", "current": version, "head": head},
            public_payload={"error": "the database schema is not up to date"},
        )


class HTTP(Check):
    """GETs a dependency's own health URL and expects a status (default 200); redirects are not followed.

    Args:
        url: an http:// or https:// URL (user:password@ becomes Basic authentication; never shown).
        expected_status: one status code or a collection of accepted ones.
        headers: extra request headers.
        ssl_context: for https:// URLs, the TLS settings (e.g. a private CA); default: the system's CAs.
    """

    def __init__(
        self,
        url: str,
        expected_status: int | Collection[int] = 200,
        tags: Iterable[str] | str | None = None,
        *,
        name: str | None = None,
        timeout: Timeout = None,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(tags, name=name, timeout=timeout)
        validate_url(url)
        self.ssl_context = ssl_context
        self.url = url
        self.expected_status = frozenset([expected_status] if isinstance(expected_status, int) else expected_status)
        if not self.expected_status:
            raise ValueError("expected_status must hold at least one status code")
        self.headers = dict(headers or {})

    async def check(self) -> Result:
        """Request the URL; a connection error, an answer that is not HTTP or another status fails the check.

        A dependency that cannot be reached or does not answer in time is an ordinary failing result
        (`{"url", "status": None, "error"}`, one WARNING line from the factory), not an exception
        with a traceback.
        """
        # Within 90 % of the time the check has, so that the report names the URL that did not answer
        # rather than the check timing out.
        left = time_left()
        if left is None:  # called outside a factory's run
            left = self.timeout
        bound = None if left is None else left * 0.9
        deadline = asyncio.timeout(bound)
        try:
            async with deadline:
                status = await fetch_status(self.url, headers=self.headers, ssl_context=self.ssl_context)
        except (OSError, HTTPProbeError) as error:  # refused, unreachable, DNS, TLS, not HTTP, no answer in time
            if deadline.expired() and bound is not None:
                return _http_unreachable(self.url, error, f"TimeoutError: no answer within {round(bound, 2):g} s")
            return _http_unreachable(self.url, error)
        payload = {"url": redact_url(self.url), "status": status}
        if status in self.expected_status:
            return Result(200, payload)
        return Result(
            500,
            {**payload, "error": f"unexpected status {status}, expected {sorted(self.expected_status)}"},
            public_payload={"error": f"the dependency answered {status}"},
        )


def _http_unreachable(url: str, error: Exception, description: str | None = None) -> Result:
    """The failing result of an HTTP check whose dependency gave no HTTP answer."""
    description = describe_error(error) if description is None else description
    # The factory logs the failing check in one WARNING line (this description in its payload); the
    # traceback, which says no more, only at DEBUG (an ERROR would be an error-tracker event per run).
    LOG.debug("HTTP health check: %s: %s", redact_url(url), description, exc_info=error)
    public = (
        "the dependency did not answer HTTP" if isinstance(error, HTTPProbeError) else "the dependency is not reachable"
    )
    return Result(500, {"url": redact_url(url), "status": None, "error": description}, public_payload={"error": public})


WRONG_ERROR = "This is an always-failing check for testing purposes"
"""`Wrong`'s error, word for word c2casgiutils 0.14's (test suites compare it)."""


class Wrong(Check):
    """Always fails (status 500): to test alerting and probes."""

    async def check(self) -> Result:
        """Fail."""
        return Result(500, {"error": WRONG_ERROR}, public_payload={"error": WRONG_ERROR})
