"""The toolkit's settings (`C2C__...` environment variables), as `c2casgiutils.config` documents them.

- `settings`: the process-wide `Settings`, built from the environment on first access (not at
  import), shared by every module; `reload()` re-reads the environment into that same object.
- `Settings()`: a fresh object built from the environment now.
- The names of c2casgiutils 0.14: the section classes (`Auth`, `AuthGitHub`, `AuthJWT`,
  `AuthJWTCookie`, `AuthTest`, `Prometheus`, `ProxyHeaders`, `Redis`, `Sentry`, `SettingsTools`,
  `SettingsToolsLogging`: aliases of the classes named `...Settings`), `GitHubAccessType`, the list
  types and `parse_comma_separated_list` / `_int_list` / `_float_list` (`None` gives `[]`, lists
  pass through, items are stripped), `parse_duration`.

The machinery and the core sections come from c2c-config, the `auth` section from c2c-auth,
`health_checks` from c2c-health, `broadcast` from c2c-broadcast; the `sentry` and `tools` sections
belong to this package. `reload()` re-reads every package's settings at once.
"""

from __future__ import annotations

from c2c_auth import AuthSettings, CookieSettings, GitHubAccessType, GitHubSettings, JWTSettings, TestAuthSettings
from c2c_broadcast import BroadcastSettings
from c2c_config import (
    ConfigError,
    Duration,
    FloatList,
    IntList,
    Options,
    PrometheusSettings,
    ProxyHeadersSettings,
    RedisOptions,
    RedisSettings,
    StringList,
    find_unknown_variables,
    format_duration,
    get_settings,
    parse_duration,
    reload_settings,
)
from c2c_config import parse_float_list as parse_comma_separated_float_list
from c2c_config import parse_int_list as parse_comma_separated_int_list
from c2c_config import parse_string_list as parse_comma_separated_list
from c2c_health import HealthChecksSettings
from c2casgiutils._settings import HeadersToolSettings, LoggingToolSettings, SentrySettings, Settings, ToolsSettings

# The section classes under their c2casgiutils 0.14 names: the same classes, not copies, so that
# `isinstance(settings.auth, Auth)` and `Auth(...)` keep working.
Auth = AuthSettings
AuthGitHub = GitHubSettings
AuthJWT = JWTSettings
AuthJWTCookie = CookieSettings
AuthTest = TestAuthSettings
Prometheus = PrometheusSettings
ProxyHeaders = ProxyHeadersSettings
Redis = RedisSettings
Sentry = SentrySettings
SettingsTools = ToolsSettings
SettingsToolsLogging = LoggingToolSettings

__all__ = [
    "Auth",
    "AuthGitHub",
    "AuthJWT",
    "AuthJWTCookie",
    "AuthSettings",
    "AuthTest",
    "BroadcastSettings",
    "ConfigError",
    "CookieSettings",
    "Duration",
    "FloatList",
    "GitHubAccessType",
    "GitHubSettings",
    "HeadersToolSettings",
    "HealthChecksSettings",
    "IntList",
    "JWTSettings",
    "LoggingToolSettings",
    "Options",
    "Prometheus",
    "PrometheusSettings",
    "ProxyHeaders",
    "ProxyHeadersSettings",
    "Redis",
    "RedisOptions",
    "RedisSettings",
    "Sentry",
    "SentrySettings",
    "Settings",
    "SettingsTools",
    "SettingsToolsLogging",
    "StringList",
    "TestAuthSettings",
    "ToolsSettings",
    "find_unknown_variables",
    "format_duration",
    "parse_comma_separated_float_list",
    "parse_comma_separated_int_list",
    "parse_comma_separated_list",
    "parse_duration",
    "reload",
    "settings",  # noqa: F822 - provided lazily by __getattr__
]


def reload() -> Settings:
    """Re-read the environment into the process-wide `settings` (in place) and return it.

    Raises `ConfigError` (naming the variable) on a bad value; the previous values then stay.
    """
    return reload_settings(Settings)


def __getattr__(name: str) -> Settings:
    # `settings` is built on first access so that importing the package never reads the environment.
    if name == "settings":
        return get_settings(Settings)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# `importlib.reload(c2casgiutils.config)`: 0.14 built `settings` from the environment at import, so
# that reloading the module was how a test applied changed `C2C__...` variables. It still is: the
# process-wide settings are re-read in place (every holder sees the new values, as with `reload()`).
if "_IMPORTED" in globals():
    reload()
_IMPORTED = True
