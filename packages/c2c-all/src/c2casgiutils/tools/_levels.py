"""Logger names and level names as the logging tool accepts them (the API, the broadcast handler, Redis)."""

from __future__ import annotations

import re
from typing import Literal

from c2c_auth import AUDIT_LOGGER_NAME as AUTH_AUDIT_LOGGER_NAME
from c2casgiutils.tools import audit

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NOTSET")
LevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NOTSET"]
_LOGGER_NAME = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*")
MAX_NAME_LENGTH = 200


def validate_level(value: object) -> str:
    """Normalise a level name (`debug` → `DEBUG`); raise `ValueError` listing the accepted names."""
    if isinstance(value, str) and value.strip().upper() in LEVELS:
        return value.strip().upper()
    raise ValueError(f"invalid level {value!r}: expected one of {', '.join(LEVELS)}")


def validate_logger_name(value: object) -> str:
    """Accept a dotted logger name (`root` for the root logger); raise `ValueError` otherwise (a blank name too)."""
    if not isinstance(value, str):
        raise ValueError("a logger name is a string")
    name = value.strip()
    if not name:
        raise ValueError("a logger name must not be blank: the root logger is named 'root'")
    if name == "root":
        return "root"
    if len(name) > MAX_NAME_LENGTH or not _LOGGER_NAME.fullmatch(name):
        raise ValueError(
            f"invalid logger name {value!r}: dotted names of letters, digits, '_' and '-' "
            f"(at most {MAX_NAME_LENGTH} characters)"
        )
    return name


PROTECTED_LOGGERS = (audit.AUDIT_LOGGER_NAME, AUTH_AUDIT_LOGGER_NAME)
"""The audit loggers (and their children): the tool never sets their level. A caller with
read-write access could otherwise silence the audit trail on every replica, the record of that
change included."""


def is_protected(name: str) -> bool:
    """Whether the level of the logger `name` is out of the tool's reach (`PROTECTED_LOGGERS`)."""
    return any(name == protected or name.startswith(f"{protected}.") for protected in PROTECTED_LOGGERS)


def validate_settable_logger_name(value: object) -> str:
    """`validate_logger_name`, refusing the audit loggers too (`PROTECTED_LOGGERS`)."""
    name = validate_logger_name(value)
    if is_protected(name):
        raise ValueError(f"the level of {name!r} cannot be changed here: it keeps the audit trail")
    return name
