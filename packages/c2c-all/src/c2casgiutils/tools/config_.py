"""The effective-configuration tool: every setting, its value and where it came from.

`GET /config` (under the `/c2c` mount, `c2c_config` endpoint, admin access) answers a
`ConfigResponse`:

- `settings`: one `SettingEntry` per leaf setting of `c2casgiutils.config.Settings`, in declaration
  order: its dotted `name`, its `env_var`, its `value` as JSON, its `source` (the environment
  variable that set it, or `default`), whether it was `masked` (all of it or a part), and its
  `description`;
- `unknown`: the `C2C__` variables no setting reads, each with the closest known name
  (`suggestion`), as `c2c_config.find_unknown_variables` finds them.

Nothing secret leaves the process: a secret setting (`SecretText`) shows as `**********`, the
user-info part of any URL (`redis://user:password@host`, a Sentry DSN's key) as `**********@`,
the value of a credential-named query parameter of any URL (`redis://host/0?password=...`) as
`**********`, and any text setting, option (`C2C__REDIS__OPTIONS=password=...`) or mapping key
whose name is a credential name as `**********`. Credential names are one rule, the
request-headers tool's `NameMasker` (with `C2C__TOOLS__HEADERS__MASKED_NAMES`), for setting
names, mapping keys and query parameters alike (`mask_url_queries`). `describe_settings` builds
the same answer for any settings object.
"""

from __future__ import annotations

import datetime
import enum
import os
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from c2c_auth import require_admin_access
from c2c_config import (
    SECRET_FILE_SUFFIX,
    SECRET_MASK,
    FieldInfo,
    env_var_name,
    find_unknown_variables,
    format_duration,
    is_credential_setting,
    iter_fields,
)
from c2casgiutils.tools.headers import NameMasker, mask_url_queries

__all__ = [
    "DEFAULT_SOURCE",
    "ConfigResponse",
    "SettingEntry",
    "UnknownEntry",
    "c2c_config",
    "describe_settings",
    "mask_userinfo",
    "router",
]

DEFAULT_SOURCE = "default"
"""The `source` of a setting no environment variable sets."""

# From a scheme's '://' to the LAST '@' of the text: an unencoded '@', '/', or space in a password
# cannot end the masked part early (at the cost of hiding more than the user-info in odd values).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://).*@", re.DOTALL)

JSONValue = str | int | float | bool | list[Any] | dict[str, Any] | None


class SettingEntry(BaseModel):
    """One setting as the configuration tool shows it; `masked` when any part of `value` is hidden."""

    name: str
    env_var: str
    value: JSONValue
    source: str
    masked: bool
    description: str


class UnknownEntry(BaseModel):
    """A `C2C__` variable that no setting reads, with the closest known name."""

    name: str
    suggestion: str | None


class ConfigResponse(BaseModel):
    """The answer of `GET /c2c/config`."""

    settings: list[SettingEntry]
    unknown: list[UnknownEntry]


_DEFAULT_MASKER = NameMasker()


def mask_userinfo(text: str, masked: Callable[[str], bool] | None = None) -> str:
    """Hide the credentials of the URLs in `text`: their user-info and their credential-named query parameters.

    `redis://u:p@h/0?password=x&db=1` → `redis://**********@h/0?password=**********&db=1`. `masked`
    decides which parameter names are credentials (default: `NameMasker` with no extra name).
    """
    hidden = _USERINFO.sub(lambda match: f"{match['scheme']}{SECRET_MASK}@", text)
    return mask_url_queries(hidden, _DEFAULT_MASKER if masked is None else masked, SECRET_MASK)


class _Rendering:
    """Renders a setting's value as JSON with its credentials masked, and remembers whether it masked any."""

    def __init__(self, masked: Callable[[str], bool]) -> None:
        self.masked = masked
        self.hid = False

    def text(self, text: str) -> str:
        shown = mask_userinfo(text, self.masked)
        self.hid = self.hid or shown != text
        return shown

    def value(self, value: Any) -> JSONValue:
        """`value` as JSON, URL credentials and the values of credential-named keys masked."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, datetime.timedelta):
            return format_duration(value)
        if isinstance(value, enum.Enum):
            return self.value(value.value)
        if isinstance(value, Mapping):
            return {self.text(str(key)): self._item(str(key), item) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(item) for item in value]
        return self.text(str(value))

    def _item(self, key: str, item: Any) -> JSONValue:
        if self.masked(key):
            self.hid = True
            return SECRET_MASK
        return self.value(item)


def _credential_text(name: str, value: Any, masked: Callable[[str], bool]) -> bool:
    """Whether a text setting holds a credential by its name (`c2c_config.is_credential_setting`: not
    `token_url`, whose user-info is masked instead, nor `state_cookie`, a cookie's name).

    Numbers, flags and durations named after a credential (`secret_max_failures`) are limits, not secrets.
    """
    if not isinstance(value, str):
        return False
    if isinstance(masked, NameMasker):  # the names an operator added apply whatever their suffix
        return is_credential_setting(name) or masked.by_extra(name)
    return is_credential_setting(name, masked)


def _value_at(settings: BaseModel, path: tuple[str, ...]) -> Any:
    current: Any = settings
    for part in path:
        current = getattr(current, part, None)
    return current


def _source(info: FieldInfo, environ: Mapping[str, str]) -> str:
    """The variable that set `info` (its own, a `<NAME>` pattern's, or a section given as JSON), else `default`."""
    names = {name.upper(): name for name in environ}
    if info.env_var in names:
        return info.env_var
    if info.secret and info.env_var + SECRET_FILE_SUFFIX in names:  # read from the file it names
        return info.env_var + SECRET_FILE_SUFFIX
    extra = info.field.json_schema_extra
    pattern = extra.get("env_pattern") if isinstance(extra, dict) else None
    if isinstance(pattern, str):
        prefix = env_var_name(info.path[:-1]) + "__" + pattern.split("<", 1)[0]
        if any(name.startswith(prefix) for name in names):
            return f"{prefix}*"
    for depth in range(len(info.path) - 1, 0, -1):
        section = env_var_name(info.path[:depth])
        if section in names:
            return section
    return DEFAULT_SOURCE


def describe_settings(
    settings: BaseModel,
    environ: Mapping[str, str] | None = None,
    masked: Callable[[str], bool] | None = None,
) -> ConfigResponse:
    """Every setting of `settings` with its masked value and source, and the unknown `C2C__` variables.

    `environ` (default `os.environ`) tells where each value came from; `masked` decides which names
    are credentials (default: `NameMasker` with no extra name).
    """
    environ = os.environ if environ is None else environ
    is_masked = NameMasker() if masked is None else masked
    entries = []
    for info in iter_fields(type(settings)):
        value = _value_at(settings, info.path)
        hidden = value not in (None, "", [], {}) and (info.secret or _credential_text(info.path[-1], value, is_masked))
        rendering = _Rendering(is_masked)
        shown = SECRET_MASK if hidden else rendering.value(value)
        entries.append(
            SettingEntry(
                name=".".join(info.path),
                env_var=info.env_var,
                value=shown,
                source=_source(info, environ),
                masked=hidden or rendering.hid,
                description=info.field.description or "",
            )
        )
    unknown = [
        UnknownEntry(name=mask_userinfo(item.name, is_masked), suggestion=item.suggestion)
        for item in find_unknown_variables(type(settings), environ)
    ]
    return ConfigResponse(settings=entries, unknown=unknown)


router = APIRouter(prefix="/config", tags=["config"])
"""The configuration route (admin access); `c2casgiutils.tools.router` includes it."""


@router.get("")
async def c2c_config(_: Annotated[None, Depends(require_admin_access)]) -> ConfigResponse:
    """The effective configuration of this replica (`GET /c2c/config`), secrets masked."""
    from c2casgiutils import config  # read per request: `config.reload()` applies at once

    settings = config.settings
    return describe_settings(settings, masked=NameMasker(settings.tools.headers.masked_names))
