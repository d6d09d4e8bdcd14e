"""Generate the settings reference (variable, type, default, description) from the models."""

from __future__ import annotations

import datetime
import enum
import importlib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined

from c2c_config._base import ENV_DELIMITER, FieldInfo, env_var_name, iter_fields
from c2c_config._types import SecretText, format_duration

BEGIN_MARKER = "<!-- BEGIN GENERATED SETTINGS: do not edit, run `python -m c2c_config docs MODULE:CLASS FILE` -->"
END_MARKER = "<!-- END GENERATED SETTINGS -->"


# The validators of `StringList`, `IntList` and `FloatList` (c2c_config._types), by name.
_LIST_PARSERS = frozenset({"parse_string_list", "parse_int_list", "parse_float_list"})


def _metadata_names(metadata: Any) -> list[str]:
    names = []
    for meta in metadata:
        func = getattr(meta, "func", None)
        if func is not None:
            names.append(getattr(func, "__name__", ""))
    return names


def describe_type(annotation: Any, metadata: Any = ()) -> str:
    """A human name for a field's type: `integer`, `duration`, `one of: lax, strict, none`...

    `metadata` is the field's pydantic metadata (where the `Annotated` validators of the field's
    outer type end up).
    """
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated or metadata:
        if origin is typing.Annotated:
            base, *_ = typing.get_args(annotation)
            validators = _metadata_names(annotation.__metadata__)
        else:
            base, validators = annotation, _metadata_names(metadata)
        if "parse_duration" in validators:
            return "duration"
        if any(name in _LIST_PARSERS for name in validators) and typing.get_origin(base) is list:
            (item,) = typing.get_args(base)
            return f"comma-separated list of {describe_type(item)}s"
        if any("options" in name for name in validators):
            return "key=value options, comma-separated"
        return describe_type(base)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        inner = " or ".join(describe_type(arg) for arg in args)
        return f"{inner}, optional" if len(args) < len(typing.get_args(annotation)) else inner
    if origin is typing.Literal:
        return "one of: " + ", ".join(str(arg) for arg in typing.get_args(annotation))
    if origin is dict:
        return "mapping"
    if origin is list:
        return "list"
    simple = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        SecretStr: "secret string",
        SecretText: "secret string",
    }
    if annotation in simple:
        return simple[annotation]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of: " + ", ".join(str(member.value) for member in annotation)
    return getattr(annotation, "__name__", str(annotation))


def _render_default(info: FieldInfo) -> str:
    extra = info.field.json_schema_extra
    if isinstance(extra, dict) and "doc_default" in extra:
        return str(extra["doc_default"])
    if info.field.default_factory is not None:
        value = info.field.default_factory()  # type: ignore[call-arg]
    elif info.field.default is PydanticUndefined:
        return "required"
    else:
        value = info.field.default
    if value is None:
        return "unset"
    if isinstance(value, datetime.timedelta):
        return f"`{format_duration(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return f"`{','.join(str(v) for v in value)}`" if value else "empty"
    if isinstance(value, dict):
        return ", ".join(f"`{k}={v}`" for k, v in value.items()) if value else "empty"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if isinstance(value, SecretStr | SecretText):
        return "hidden"
    return f"`{value}`" if str(value) else "empty"


def _variable(info: FieldInfo) -> str:
    extra = info.field.json_schema_extra
    if isinstance(extra, dict) and "env_pattern" in extra:
        return env_var_name(info.path[:-1]) + ENV_DELIMITER + str(extra["env_pattern"])
    return info.env_var


def render_reference(settings_cls: type[BaseModel]) -> str:
    """The Markdown table of every setting of `settings_cls`, one row per environment variable."""
    lines = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for info in iter_fields(settings_cls):
        description = (info.field.description or "").replace("|", "\\|").replace("\n", " ")
        kind = describe_type(info.annotation, info.field.metadata)
        if info.secret and "secret" not in kind:
            kind += " (secret)"
        lines.append(f"| `{_variable(info)}` | {kind} | {_render_default(info)} | {description} |")
    return "\n".join(lines) + "\n"


def replace_generated(text: str, table: str) -> str:
    """Put `table` between the markers of `text` (appending the markers when absent)."""
    block = f"{BEGIN_MARKER}\n\n{table}\n{END_MARKER}"
    if BEGIN_MARKER in text and END_MARKER in text:
        head, _, rest = text.partition(BEGIN_MARKER)
        _, _, tail = rest.partition(END_MARKER)
        return head + block + tail
    return text.rstrip("\n") + ("\n\n" if text.strip() else "") + block + "\n"


def load_settings_class(spec: str) -> type[BaseModel]:
    """Import `module:Class`."""
    module_name, _, class_name = spec.partition(":")
    if not class_name:
        raise ValueError(f"expected module:Class, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ValueError(
            f"cannot import {module_name!r} ({error}): install the package that provides it "
            "(c2casgiutils.config:Settings comes with c2c-all), or name another settings class"
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"{module_name!r} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        raise TypeError(f"{spec} is not a settings class")
    return cls


def update_file(path: Path, settings_cls: type[BaseModel], *, check: bool = False) -> bool:
    """Regenerate the table in `path`; with `check`, only report. Returns True when it was up to date."""
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    wanted = replace_generated(current, render_reference(settings_cls))
    if current == wanted:
        return True
    if not check:
        path.write_text(wanted, encoding="utf-8")
    return False
