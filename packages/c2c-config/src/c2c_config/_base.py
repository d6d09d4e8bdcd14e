"""The settings machinery: `C2C__SECTION__FIELD` variables, readable errors, typo detection, reload."""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import threading
import types
import typing
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import pydantic
from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from c2c_config._types import SecretText

LOG = logging.getLogger("c2c_config")

ENV_PREFIX = "C2C__"
ENV_DELIMITER = "__"

# user:password@ after a scheme; the password runs to the last '@' before the authority ends (a '/',
# '?', '#' or a space), so that an unencoded '@' in it is hidden too (as urllib reads
# `https://u:p@ss@h/`: password `p@ss`), and an '@' in the query is not taken for one.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/?#\s]*):(?P<password>[^/?#\s]*)@")


def redact_url(url: str) -> str:
    """Hide the password of a URL (`redis://:secret@host` → `redis://:***@host`) for logs and messages.

    The one redaction helper of the toolkit: it works on any text (an error message holding
    several URLs). A password with a space or a '/' cannot be told from the text around it: where
    the URL is an object (SQLAlchemy's `URL`), render it without its password instead.
    (`c2c_health._http.mask_password` is the copy the probe `python -m c2c_health` keeps so that it
    imports the standard library only; a test checks that both agree.)
    """
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


class ConfigError(ValueError):
    """The environment holds a bad `C2C__` value; the message names each variable and what it accepts."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {problem}" for problem in problems))


class Section(BaseModel):
    """Base class of a settings section (a nested model such as `redis` or `auth.jwt`).

    `extra_prefixes` lists lower-case key prefixes the section collects itself (for instance
    `tag_` for `C2C__SENTRY__TAG_<NAME>`), so the typo detector does not report them.

    Assignments are validated (`settings.auth.secret = "x"` stores a `SecretText`, a bad value
    raises), as applications and test suites of c2casgiutils 0.14 change sections at run time.
    """

    model_config = pydantic.ConfigDict(extra="ignore", validate_default=True, validate_assignment=True)

    extra_prefixes: ClassVar[tuple[str, ...]] = ()


def env_var_name(path: tuple[str | int, ...]) -> str:
    """The environment variable of a field path: `("redis", "db")` → `C2C__REDIS__DB`."""
    return ENV_PREFIX + ENV_DELIMITER.join(str(part).upper() for part in path if isinstance(part, str))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class inside an annotation (`Section`, `Section | None`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) or origin is typing.Annotated:
        for arg in typing.get_args(annotation):
            model = _model_of(arg)
            if model is not None:
                return model
    return None


def _is_secret(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes, SecretText):
        return True
    return any(_is_secret(arg) for arg in typing.get_args(annotation))


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """One leaf setting, as the docs generator and the error messages see it."""

    path: tuple[str, ...]
    annotation: Any
    field: pydantic.fields.FieldInfo

    @property
    def env_var(self) -> str:
        """The environment variable that sets it."""
        return env_var_name(self.path)

    @property
    def secret(self) -> bool:
        """Whether its value must never be shown."""
        return _is_secret(self.annotation)


def iter_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[FieldInfo]:
    """Walk every leaf field of a settings class depth first, in declaration order."""
    for name, field in model.model_fields.items():
        sub = _model_of(field.annotation)
        if sub is not None:
            yield from iter_fields(sub, (*prefix, name))
        else:
            yield FieldInfo((*prefix, name), field.annotation, field)


def _field_at(model: type[BaseModel], path: tuple[str | int, ...]) -> FieldInfo | None:
    current: type[BaseModel] | None = model
    names = [part for part in path if isinstance(part, str)]
    for index, name in enumerate(names):
        if current is None or name not in current.model_fields:
            return None
        field = current.model_fields[name]
        sub = _model_of(field.annotation)
        if index == len(names) - 1:
            return FieldInfo(tuple(names), field.annotation, field)
        current = sub
    return None


@dataclasses.dataclass(frozen=True)
class UnknownVariable:
    """A `C2C__` environment variable that no setting reads, with the closest known name."""

    name: str
    suggestion: str | None

    def __str__(self) -> str:
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"{self.name} is not a known setting{hint}"


def _known_names(model: type[BaseModel]) -> tuple[set[str], dict[str, tuple[str, ...]], set[str]]:
    """Leaf variable names, open-ended prefixes (dict fields, extra_prefixes) and section names."""
    leaves: set[str] = set()
    prefixes: dict[str, tuple[str, ...]] = {}
    sections: set[str] = set()

    def walk(current: type[BaseModel], path: tuple[str, ...]) -> None:
        if path:
            sections.add(env_var_name(path))
        extra = getattr(current, "extra_prefixes", ())
        if extra:
            prefixes[env_var_name(path) + (ENV_DELIMITER if path else "")] = tuple(p.upper() for p in extra)
        for name, field in current.model_fields.items():
            sub = _model_of(field.annotation)
            if sub is not None:
                walk(sub, (*path, name))
            else:
                leaves.add(env_var_name((*path, name)))

    walk(model, ())
    return leaves, prefixes, sections


def find_unknown_variables(
    settings_cls: type[BaseModel], environ: Mapping[str, str] | None = None
) -> list[UnknownVariable]:
    """The `C2C__` variables of `environ` (default `os.environ`) that `settings_cls` does not read.

    A variable under a section the class knows (`C2C__REDIS__URLL`) is always reported; one whose
    first part is not a known section is reported only when it looks like a typo of one
    (`C2C__REDDIS__URL`), since other packages of the toolkit may own it.
    """
    environ = os.environ if environ is None else environ
    leaves, prefixes, sections = _known_names(settings_cls)
    top_sections = {name for name in sections if name.count(ENV_DELIMITER) == 1}
    top_leaves = {name for name in leaves if name.count(ENV_DELIMITER) == 1}
    unknown = []
    for raw_name in sorted(environ):
        name = raw_name.upper()
        if not name.startswith(ENV_PREFIX) or name in leaves:
            continue
        if any(name.startswith(base + p) for base, ps in prefixes.items() for p in ps):
            continue
        # Nested values may also be given whole, as JSON, at a section's name.
        if name in sections:
            continue
        first = ENV_PREFIX + name[len(ENV_PREFIX) :].split(ENV_DELIMITER)[0]
        candidates = sorted(leaves | sections)
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
        if first in top_sections or first in top_leaves:
            unknown.append(UnknownVariable(raw_name, close[0] if close else None))
        elif difflib.get_close_matches(first, sorted(top_sections | top_leaves), n=1, cutoff=0.8):
            # The section itself looks like a typo (C2C__REDDIS__URL); an unrelated section belongs
            # to another package (C2C__AUTH__SECRET read by c2c-auth), not reported.
            unknown.append(UnknownVariable(raw_name, close[0] if close else None))
    return unknown


def _describe_input(info: FieldInfo | None, value: Any) -> str:
    if info is not None and info.secret:
        return "<hidden>"
    text = value if isinstance(value, str) else repr(value)
    text = redact_url(str(text))
    return repr(text[:200] + ("…" if len(text) > 200 else "")) if isinstance(value, str) else text[:200]


def _clean_message(message: str) -> str:
    # pydantic prefixes messages raised by our validators with "Value error, ".
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def explain_validation_error(settings_cls: type[BaseModel], error: ValidationError) -> ConfigError:
    """Turn pydantic's error into a `ConfigError` naming each variable; values of secrets are hidden."""
    problems = []
    for item in error.errors(include_url=False, include_context=False):
        location = tuple(item["loc"])
        info = _field_at(settings_cls, location)
        variable = env_var_name(location) if location else "settings"
        if item["type"] == "missing":
            problems.append(f"{variable}: required, not set")
            continue
        given = _describe_input(info, item.get("input"))
        if item["type"] in ("model_type", "model_attributes_type", "dict_type") or isinstance(item.get("input"), dict):
            problems.append(f"{variable}: {_clean_message(item['msg'])}")
        else:
            problems.append(f"{variable}={given}: {_clean_message(item['msg'])}")
    return ConfigError(problems)


class C2CSettings(BaseSettings):
    """Base class of every settings object of the toolkit: `C2C__` prefix, `__` nesting, case-insensitive.

    Build one with `MySettings()` (reads the environment now; a bad value raises `ConfigError`,
    which names the variable), or share one per process with `get_settings(MySettings)` and
    re-read the environment with `reload_settings(MySettings)`.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
        nested_model_default_partial_update=True,
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            # `from None`: pydantic's own text shows raw inputs, secrets included.
            raise explain_validation_error(type(self), error) from None
        except SettingsError as error:
            raise ConfigError([_settings_error_message(error)]) from None
        _report_unknown_variables(type(self))


# The unknown variables already logged: each is reported once per process, not once per settings
# class (every package reads its own) and per reload.
_REPORTED_VARIABLES: set[str] = set()
_REPORTED_LOCK = threading.Lock()


def _report_unknown_variables(settings_cls: type[BaseModel]) -> None:
    """Log each unknown `C2C__` variable `settings_cls` finds, unless it was logged before."""
    for unknown in find_unknown_variables(settings_cls):
        with _REPORTED_LOCK:
            if unknown.name in _REPORTED_VARIABLES:
                continue
            _REPORTED_VARIABLES.add(unknown.name)
        LOG.warning("Ignored environment variable: %s", unknown)


def _settings_error_message(error: SettingsError) -> str:
    match = re.search(r'field "([^"]+)"', str(error))
    if match:
        return f"{env_var_name(tuple(match.group(1).split('.')))}: cannot be parsed ({str(error).split(':')[0]})"
    return str(error).split(":")[0]


SettingsT = TypeVar("SettingsT", bound=C2CSettings)

# Weak keys: a settings class defined and dropped (in a test) does not stay in every later reload.
_PROCESS_SETTINGS: weakref.WeakKeyDictionary[type[C2CSettings], C2CSettings] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _share_sections() -> None:
    """Make every process-wide settings object hold the same instance of each section they have in common.

    Each package reads its own settings class (c2c-auth reads one with `auth`, c2casgiutils the one
    composing every section), all from the same environment. Sharing the section objects means an
    application that changes a section at run time (0.14 code and test suites assign
    `settings.auth.secret = ...`) is seen by every package, not only through the object it changed.
    The object built first gives its sections to the others. Call with `_LOCK` held.
    """
    owners: dict[tuple[str, type[BaseModel]], BaseModel] = {}
    for current in _PROCESS_SETTINGS.values():
        for name in type(current).model_fields:
            value = getattr(current, name)
            if not isinstance(value, BaseModel):
                continue
            key = (name, type(value))
            shared = owners.setdefault(key, value)
            if shared is not value:
                object.__setattr__(current, name, shared)


def get_settings(settings_cls: type[SettingsT]) -> SettingsT:
    """The process-wide settings object of `settings_cls`, built from the environment on first use.

    Process-wide objects of different classes share their common sections (the same `auth`,
    `redis`... instances), so a change made to a section through one is seen through all. A class
    used for the first time gets the sections the others already hold (with any change made to them
    at run time); after changing the environment, `reload_settings` re-reads every object.
    """
    current = _PROCESS_SETTINGS.get(settings_cls)
    if current is None:
        with _LOCK:
            current = _PROCESS_SETTINGS.get(settings_cls)
            if current is None:
                current = settings_cls()
                _PROCESS_SETTINGS[settings_cls] = current
                _share_sections()
    return typing.cast("SettingsT", current)


def reload_settings(settings_cls: type[SettingsT]) -> SettingsT:
    """Re-read the environment into the process-wide object of `settings_cls`, in place, and return it.

    Every other process-wide settings object (each package reads its own class) is re-read too, so
    that one reload is seen by the whole toolkit. Code holding a reference to such an object (`from
    ... import settings`) sees the new values. On a bad value `ConfigError` is raised and every
    object keeps its previous values.
    """
    with _LOCK:
        classes: list[type[C2CSettings]] = [settings_cls]
        classes += [cls for cls in list(_PROCESS_SETTINGS) if cls is not settings_cls]
        fresh: dict[type[C2CSettings], C2CSettings] = {cls: cls() for cls in classes}  # all built first
        for cls, new in fresh.items():
            current = _PROCESS_SETTINGS.get(cls)
            if current is None:
                _PROCESS_SETTINGS[cls] = new
                continue
            for name in cls.model_fields:
                # Plain assignment of validated values; the model does not validate assignments.
                object.__setattr__(current, name, getattr(new, name))
            object.__setattr__(current, "__pydantic_fields_set__", set(new.model_fields_set))
        _share_sections()
        return typing.cast("SettingsT", _PROCESS_SETTINGS[settings_cls])
