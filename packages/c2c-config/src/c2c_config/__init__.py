"""c2c-config: settings from `C2C__` environment variables for the c2c ASGI toolkit.

`C2C__SECTION__FIELD` variables (case-insensitive, `__` between levels) fill pydantic models;
comma lists, durations and `k=v` options parse strictly; secrets are `SecretText` (a `str` that
masks itself); a bad value raises `ConfigError` naming the variable; an unknown `C2C__` variable is reported with the
closest known name. The Redis client factory lives in `c2c_config.redis` (extra `redis`); SIGTERM hooks that run
before the server's graceful shutdown in `c2c_config.signals`.
"""

from importlib.metadata import version as _version

from c2c_config import signals
from c2c_config._base import (
    CREDENTIAL_FRAGMENTS,
    CREDENTIAL_NAMES,
    CREDENTIAL_WORDS,
    ENV_PREFIX,
    SECRET_FILE_SUFFIX,
    C2CSettings,
    ConfigError,
    FieldInfo,
    SecretFilesSource,
    Section,
    UnknownVariable,
    env_var_name,
    find_unknown_variables,
    get_settings,
    is_credential_name,
    is_credential_setting,
    iter_fields,
    redact_url,
    reload_settings,
    secret_file_variables,
)
from c2c_config._docs import render_reference
from c2c_config._errors import describe_error
from c2c_config._loop import LoopLocal, raise_if_cancelled, running_loop
from c2c_config._sections import (
    CoreSettings,
    PrometheusSettings,
    ProxyHeadersSettings,
    RedisSettings,
    normalize_route_prefix,
    parse_host_port_list,
)
from c2c_config._types import (
    DURATION_FORMATS,
    REDIS_OPTION_TYPES,
    SECRET_MASK,
    Duration,
    DurationError,
    FloatList,
    IntList,
    Options,
    RedisOptions,
    SecretList,
    SecretText,
    StringList,
    format_duration,
    parse_duration,
    parse_float_list,
    parse_int_list,
    parse_options,
    parse_secret_list,
    parse_string_list,
)

__version__ = _version("c2c-config")

__all__ = [
    "CREDENTIAL_FRAGMENTS",
    "CREDENTIAL_NAMES",
    "CREDENTIAL_WORDS",
    "DURATION_FORMATS",
    "ENV_PREFIX",
    "REDIS_OPTION_TYPES",
    "SECRET_FILE_SUFFIX",
    "SECRET_MASK",
    "C2CSettings",
    "ConfigError",
    "CoreSettings",
    "Duration",
    "DurationError",
    "FieldInfo",
    "FloatList",
    "IntList",
    "LoopLocal",
    "Options",
    "PrometheusSettings",
    "ProxyHeadersSettings",
    "RedisOptions",
    "RedisSettings",
    "SecretFilesSource",
    "SecretList",
    "SecretText",
    "Section",
    "StringList",
    "UnknownVariable",
    "__version__",
    "describe_error",
    "env_var_name",
    "find_unknown_variables",
    "format_duration",
    "get_settings",
    "is_credential_name",
    "is_credential_setting",
    "iter_fields",
    "normalize_route_prefix",
    "parse_duration",
    "parse_float_list",
    "parse_host_port_list",
    "parse_int_list",
    "parse_options",
    "parse_secret_list",
    "parse_string_list",
    "raise_if_cancelled",
    "redact_url",
    "reload_settings",
    "render_reference",
    "running_loop",
    "secret_file_variables",
    "signals",
]
