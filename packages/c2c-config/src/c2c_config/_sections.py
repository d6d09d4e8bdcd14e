"""The sections c2c-config owns (redis, prometheus, proxy_headers, http, route_prefix) and `CoreSettings`."""

from __future__ import annotations

import datetime
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from c2c_config._base import C2CSettings, Section, redact_option_values, redact_url
from c2c_config._types import Duration, RedisOptions, StringList, _parse_redis_options

_METRIC_PREFIX = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*|")
_HOST_PORT = re.compile(r"(?:\[(?P<ipv6>[0-9a-fA-F:.]+)\]|(?P<host>[^\s:\[\]/@,]+)):(?P<port>\d{1,5})")


def parse_host_port_list(value: str) -> list[tuple[str, int]]:
    """Parse `host:port,host:port` (IPv6 in brackets) into a list; raise `ValueError` on a bad entry."""
    addresses = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        match = _HOST_PORT.fullmatch(item)
        if match is None:
            raise ValueError(f"{item!r} is not host:port (write IPv6 addresses as [::1]:26379)")
        port = int(match["port"])
        if not 0 < port < 65536:
            raise ValueError(f"{item!r}: port {port} is out of range 1-65535")
        addresses.append((match["ipv6"] or match["host"], port))
    if not addresses:
        raise ValueError("no sentinel address given")
    return addresses


def url_database(url: str) -> str | None:
    """The database a Redis URL names, as redis-py reads it, or None when it names none.

    A non-empty `?db=` first; else, for `redis://` and `rediss://`, the path (`/2`); a `unix://`
    URL's path is the socket, never a database. The text is returned as written (redis-py refuses
    one that is not a number when it connects). `C2C__REDIS__DB` applies when this is None.
    """
    parsed = urllib.parse.urlsplit(url)
    for name, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True):
        if name == "db" and value:
            return value
    if parsed.scheme.lower() in ("redis", "rediss"):
        return parsed.path.replace("/", "") or None
    return None


class RedisSettings(Section):
    """Redis, used by broadcast, logging-level persistence and the Redis health check.

    Its `repr()` (and `str()`, and that of the settings holding it) never shows a password: the
    URL goes through `redact_url` (`redis://:***@redis:6379/0?password=***`) and the value of
    each credential option (`password`, `ssl_password`...: `is_credential_name`) is `'***'`. The
    fields themselves hold the real values (the Redis client needs them), and so do
    `model_dump()` and `model_dump_json()`, which are data, not display: do not log them, nor
    `settings.redis.options` or `settings.redis.url` themselves.
    """

    url: str | None = Field(
        default=None,
        description="Redis connection URL, e.g. redis://:password@redis:6379/0 (the password is never logged)",
    )
    options: RedisOptions = Field(
        default_factory=dict,
        description="Redis connection options, e.g. 'socket_timeout=5,ssl=True' (typed redis-py keyword arguments)",
    )
    sentinels: str | None = Field(
        default=None, description="Redis Sentinels as host:port,host:port; takes precedence over the URL"
    )
    servicename: str | None = Field(default=None, description="Redis service name for Sentinel")
    db: int = Field(default=0, ge=0, description="Redis database number (Sentinel mode, or a URL without one)")
    broadcast_prefix: str = Field(default="broadcast_api_", description="Redis prefix for broadcast channels")
    timeout: Duration = Field(
        default=datetime.timedelta(seconds=5),
        description=(
            "Time limit of one Redis call on a request path or at startup (connect and answer); "
            "past it the call fails and the endpoint answers 503; a request waits for Redis at most this long "
            "once, not once per call it makes (see c2c_config.redis.note_unreachable)"
        ),
    )
    cluster: bool = Field(
        default=False,
        description=(
            "Redis Cluster mode: the URL names one node, the client discovers the others and follows MOVED/ASK "
            "and failovers; broadcast uses sharded pub/sub (Redis 7+, redis-py 8+); only database 0"
        ),
    )
    max_connections: int = Field(
        default=20,
        ge=1,
        description=(
            "Most command connections one process opens to Redis per event loop (the pool waits for a free one "
            "up to the timeout); pub/sub connections, two per broadcaster, are outside it"
        ),
    )

    @classmethod
    def parse_options(cls, value: object) -> dict[str, bool | int | float | str]:
        """Parse `k=v,k2=v2` (or pass a mapping) into typed redis-py options, as the `options` field does.

        Its c2casgiutils 0.14 name; raises `ValueError` naming the option on an unknown name or a bad value.
        """
        return _parse_redis_options(value)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not re.match(r"(redis|rediss|unix)://", value):
            raise ValueError("must start with redis://, rediss:// or unix://")
        # What redis-py would refuse only when it connects (a traceback naming no variable); the
        # messages never repeat the URL, which may hold a password.
        try:
            parsed = urllib.parse.urlsplit(value)
        except ValueError as error:  # an unbalanced "[" or "]": redis-py cannot read it either
            raise ValueError(
                f"it cannot be read as a URL ({error}): percent-encode the special characters of its password"
            ) from None
        try:
            parsed.port  # noqa: B018 (raises ValueError for a port that is no number from 0 to 65535)
        except ValueError:
            raise ValueError(
                "its port is not a number from 0 to 65535 (a '/', '?', '#' or '@' in the password must be "
                "percent-encoded)"
            ) from None
        database = url_database(value)
        if database is not None and not database.isdigit():
            raise ValueError(f"its database {database[:20]!r} is not a number")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: datetime.timedelta) -> datetime.timedelta:
        if value <= datetime.timedelta(0):
            raise ValueError("the Redis timeout must be longer than 0 s")
        return value

    @field_validator("sentinels")
    @classmethod
    def _check_sentinels(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_host_port_list(value)
        return value.strip()

    @model_validator(mode="after")
    def _sentinels_need_service(self) -> RedisSettings:
        if self.sentinels and not self.servicename:
            raise ValueError("C2C__REDIS__SENTINELS is set: C2C__REDIS__SERVICENAME must name the Sentinel service")
        return self

    @model_validator(mode="after")
    def _cluster_needs_a_node(self) -> RedisSettings:
        if not self.cluster:
            return self
        if self.sentinels:
            raise ValueError(
                "C2C__REDIS__CLUSTER and C2C__REDIS__SENTINELS exclude each other (a cluster fails over by itself)"
            )
        if not self.url:
            raise ValueError("C2C__REDIS__CLUSTER is set: C2C__REDIS__URL must name one node of the cluster")
        if self.url.startswith("unix://"):
            raise ValueError(
                "C2C__REDIS__CLUSTER: a cluster is reached over TCP (redis:// or rediss://), not a unix socket"
            )
        if url_database(self.url) not in (None, "0") or self.db != 0:
            raise ValueError("C2C__REDIS__CLUSTER: a Redis Cluster has only database 0 (remove the database number)")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """The fields `repr()` shows, the URL's and the options' credentials hidden."""
        for name, value in super().__repr_args__():
            if name == "url" and isinstance(value, str):
                yield name, redact_url(value)
            elif name == "options" and isinstance(value, Mapping):
                yield name, redact_option_values(value)
            else:
                yield name, value

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """The parsed `sentinels` (empty when not in Sentinel mode)."""
        return parse_host_port_list(self.sentinels) if self.sentinels else []

    @property
    def configured(self) -> bool:
        """Whether a Redis server is configured (URL or Sentinels)."""
        return bool(self.url or self.sentinels)


class PrometheusSettings(Section):
    """Prometheus metrics."""

    prefix: str = Field(default="c2casgiutils_", description="Prefix for Prometheus metrics")
    port: int = Field(default=9000, ge=0, le=65535, description="Port for Prometheus metrics")

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _METRIC_PREFIX.fullmatch(value):
            raise ValueError(
                "a metric name prefix may hold only letters, digits, '_' and ':' and not start with a digit"
            )
        return value


class ProxyHeadersSettings(Section):
    """Forwarded headers from reverse proxies (`ForwardedHeadersMiddleware`)."""

    type: Literal["none", "x-forwarded", "forwarded"] = Field(
        default="none",
        description=(
            "Proxy headers mode: 'none' disables host/proto rewriting, 'x-forwarded' trusts X-Forwarded-* headers, "
            "'forwarded' trusts RFC7239 Forwarded header"
        ),
    )
    trusted_hosts: StringList = Field(
        default_factory=lambda: ["127.0.0.1"],
        description=(
            "Trusted proxy client hosts/networks. Accepts comma-separated string or list "
            "(e.g. '127.0.0.1,10.0.0.0/8' or '*')."
        ),
    )

    trust_host: bool = Field(
        default=True,
        description=(
            "Believe X-Forwarded-Host and X-Forwarded-Port from a trusted proxy (as c2casgiutils 0.14 did); "
            "the proxy must then set or strip them, or a client chooses the host url_for uses"
        ),
    )

    @field_validator("type", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("trusted_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        # The middleware's own parser, so that the setting and `ForwardedHeadersMiddleware` accept
        # and refuse exactly the same entries. Imported here: `import c2c_config` stays light.
        from c2c_headers import parse_trusted_hosts

        parse_trusted_hosts(value)
        return value


def normalize_route_prefix(value: str) -> str:
    """`c2c` → `/c2c/`, `` → `/`: a route prefix starts and ends with a slash."""
    value = value.strip()
    if any(char.isspace() or char in "?#\\" for char in value):
        raise ValueError("a route prefix is a URL path: no spaces, '?', '#' or '\\'")
    return "/" + value.strip("/") + "/" if value.strip("/") else "/"


class CoreSettings(C2CSettings):
    """The sections shared by the whole toolkit; packages subclass it to add their own sections."""

    redis: RedisSettings = Field(default_factory=RedisSettings, description="Redis")
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings, description="Prometheus")
    proxy_headers: ProxyHeadersSettings = Field(default_factory=ProxyHeadersSettings, description="Proxy headers")
    http: bool = Field(
        default=False,
        description="The application is running in HTTP mode to be used for development only (default: False)",
    )
    route_prefix: str = Field(
        default="/", description="Route prefix for the application, should start and end with a '/'"
    )

    @field_validator("route_prefix")
    @classmethod
    def validate_route_prefix(cls, value: str) -> str:
        """Normalise the prefix to start and end with `/` (its c2casgiutils 0.14 name)."""
        return normalize_route_prefix(value)
