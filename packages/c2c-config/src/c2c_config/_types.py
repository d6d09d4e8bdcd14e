"""Value types that environment variables need and pydantic does not give: durations, comma lists, options.

Every parser here is strict: junk is an error with a message saying what is accepted, never a
silently truncated value (c2casgiutils 0.14 read `1x` as one second and `P1Y` as zero).
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, GetCoreSchemaHandler, PlainSerializer, WithJsonSchema
from pydantic_core import core_schema
from pydantic_settings import NoDecode

DURATION_FORMATS = (
    "an ISO 8601 duration without years or months (PT10M, P7D, PT1H30M, P2W), "
    "a short form with units w d h m s where a trailing bare number takes the next smaller unit "
    "(2h30 = 2h30m, 1m30 = 1m30s, 1d12h), or a number of seconds (90, 1.5)"
)

_ISO_DURATION = re.compile(
    r"""
    P(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?
     (?:(?P<days>\d+(?:[.,]\d+)?)D)?
     (?:T(?:(?P<hours>\d+(?:[.,]\d+)?)H)?
         (?:(?P<minutes>\d+(?:[.,]\d+)?)M)?
         (?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?
    """,
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)
# Only to give a precise message for calendar units, which have no fixed length.
_ISO_CALENDAR = re.compile(r"P(?:\d+(?:[.,]\d+)?Y)?(?:\d+(?:[.,]\d+)?M)?(?:\d|T|$)", re.IGNORECASE | re.ASCII)
_SHORT_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])", re.IGNORECASE | re.ASCII)
_NUMBER = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_UNITS = ("w", "d", "h", "m", "s")
_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}

MAX_DURATION = datetime.timedelta(days=36500)
"""The longest duration `parse_duration` accepts: 100 years (`P36500D`).

Longer than any time limit, cache age or cookie lifetime a service sets, and small enough that
everything downstream takes it: `timedelta` (its limit is 999,999,999 days), `total_seconds()`
without losing a microsecond (100 years is about 3.2e15 µs, below 2**53), Redis `PX` and
`loop.call_later`. A longer value is a `DurationError`, never an `OverflowError`.
"""


class DurationError(ValueError):
    """A duration that does not parse; the message lists the accepted formats."""


def _invalid_duration(value: str, reason: str = "") -> DurationError:
    detail = f" ({reason})" if reason else ""
    return DurationError(f"Invalid time delta: invalid duration {value!r}{detail}; expected {DURATION_FORMATS}")


def _checked_seconds(value: object, seconds: float) -> datetime.timedelta:
    """`seconds` as a timedelta, or a `DurationError` when it is not finite or longer than `MAX_DURATION`."""
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        raise DurationError(
            f"Invalid time delta: duration {_shown(value)} is out of range: at most {MAX_DURATION.days} days "
            f"(P{MAX_DURATION.days}D)"
        )
    return datetime.timedelta(seconds=seconds)


def _shown(value: object) -> str:
    """The value for a message, cut short: a duration is short, untrusted input may not be."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_iso(text: str) -> datetime.timedelta:
    match = _ISO_DURATION.fullmatch(text)
    if match is None or not any(match.groupdict().values()) or text.upper().endswith("T"):
        if _ISO_CALENDAR.match(text) and re.search(r"^P[^T]*[YM]", text, re.IGNORECASE):
            raise _invalid_duration(text, "years and months have no fixed length: write days, e.g. P365D or P30D")
        raise _invalid_duration(text)
    parts = {k: float(v.replace(",", ".")) for k, v in match.groupdict().items() if v is not None}
    _checked_seconds(text, sum(amount * _UNIT_SECONDS[unit[0]] for unit, amount in parts.items()))
    return datetime.timedelta(**parts)  # built from the parts: no rounding of the sum


def _parse_short(text: str) -> datetime.timedelta:
    position = 0
    total = 0.0
    last_unit_index = -1
    compact = text.strip()
    while position < len(compact):
        while position < len(compact) and compact[position].isspace():
            position += 1
        part = _SHORT_PART.match(compact, position)
        if part is None:
            number = _NUMBER.fullmatch(compact, position)
            if number is None:
                raise _invalid_duration(text)
            # A trailing bare number takes the unit after the last one written (2h30 = 2h30m).
            if last_unit_index in (-1, len(_UNITS) - 1):
                raise _invalid_duration(text, "a trailing number needs a unit before it other than seconds")
            total += float(number.group(0)) * _UNIT_SECONDS[_UNITS[last_unit_index + 1]]
            break
        unit_index = _UNITS.index(part.group(2).lower())
        if unit_index <= last_unit_index:
            raise _invalid_duration(text, "units must appear once each, from weeks down to seconds")
        last_unit_index = unit_index
        total += float(part.group(1)) * _UNIT_SECONDS[part.group(2).lower()]
        position = part.end()
    return _checked_seconds(text, total)


def _parse_number(value: float) -> datetime.timedelta:
    if not isinstance(value, int) and not math.isfinite(value):
        raise DurationError(f"Invalid time delta: invalid duration {value!r}: not a finite number")
    if value < 0:
        raise DurationError(f"Invalid time delta: invalid duration {_shown(value)}: must not be negative")
    # An int too large for a float is out of range too (compared before any float conversion).
    return _checked_seconds(value, math.inf if value > MAX_DURATION.total_seconds() else float(value))


def parse_duration(text: object) -> datetime.timedelta:
    """Parse a duration from an environment value (see `DURATION_FORMATS`) or pass a timedelta through.

    Numbers (int or float) are seconds. Negative, infinite and NaN durations are refused, and so
    are durations longer than `MAX_DURATION` (100 years).

    Raises:
        DurationError: the value is not a duration (the message lists the accepted formats) or is
            out of range; never another exception, whatever the input.
    """
    value = text
    if isinstance(value, datetime.timedelta):
        result = value
        if result > MAX_DURATION:
            _checked_seconds(value, math.inf)
    elif isinstance(value, bool):
        raise DurationError(f"Invalid time delta: invalid duration {value!r}; expected {DURATION_FORMATS}")
    elif isinstance(value, int | float):
        result = _parse_number(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise _invalid_duration(value, "empty")
        if text[0] in "Pp":
            result = _parse_iso(text)
        elif _NUMBER.fullmatch(text):
            result = _checked_seconds(value, float(text))
        elif text[0] in "0123456789":
            result = _parse_short(text)
        else:
            raise _invalid_duration(value)
    else:
        raise DurationError(
            f"Invalid time delta: invalid duration of type {type(value).__name__}; expected {DURATION_FORMATS}"
        )
    if result < datetime.timedelta(0):
        raise DurationError(f"Invalid time delta: invalid duration {_shown(value)}: must not be negative")
    return result


def format_duration(value: datetime.timedelta) -> str:
    """Render a duration as ISO 8601 with hours as the largest unit (`PT10M`, `PT168H`, `PT1.5S`).

    `parse_duration(format_duration(d)) == d` for every non-negative timedelta (microsecond precision).
    """
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    if micros < 0:
        raise ValueError("negative durations have no ISO 8601 form here")
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micro = divmod(rest, 1_000_000)
    out = "PT"
    if hours:
        out += f"{hours}H"
    if minutes:
        out += f"{minutes}M"
    if seconds or micro or out == "PT":
        out += f"{seconds}.{micro:06d}".rstrip("0").rstrip(".") + "S" if micro else f"{seconds}S"
    return out


Duration = Annotated[
    datetime.timedelta,
    NoDecode,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "duration"}),
]
"""A `datetime.timedelta` read from ISO 8601 (`PT10M`), short (`2h30`) or seconds (`90`) notation."""


# --- comma-separated lists ------------------------------------------------------------------


def _split_list(value: object) -> list[Any]:
    if value is None:  # as in c2casgiutils 0.14: an unset value is an empty list
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                decoded = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"a value starting with '[' must be a JSON array ({error.msg})") from None
            if not isinstance(decoded, list):
                raise ValueError("a value starting with '[' must be a JSON array")
            return decoded
        return [item.strip() for item in text.split(",") if item.strip()]
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    raise ValueError(f"expected a comma-separated string, a list or None, got a value of type {type(value).__name__}")


def _typed_list(kind: Callable[[Any], Any], kind_name: str, name: str) -> Callable[[object], list[Any]]:
    def convert(value: object) -> list[Any]:
        items = _split_list(value)
        result = []
        for index, item in enumerate(items):
            if isinstance(item, bool):
                raise ValueError(f"item {index + 1} ({item!r}) is not {kind_name}")
            try:
                result.append(kind(item.strip() if isinstance(item, str) else item))
            except (TypeError, ValueError):
                raise ValueError(f"item {index + 1} ({item!r}) is not {kind_name}") from None
        return result

    convert.__name__ = convert.__qualname__ = name
    convert.__doc__ = (
        f"A list whose every item is {kind_name}, from `a,b,c` (items stripped, empty items dropped), a JSON"
        f" array, a list or None (empty); ValueError naming the first item that is not {kind_name}."
    )
    return convert


def _to_str(item: object) -> str:
    if not isinstance(item, str):
        raise TypeError
    return item


def _to_int(item: object) -> int:
    if isinstance(item, int):
        return item
    if isinstance(item, str) and re.fullmatch(r"[+-]?[0-9]+", item):
        return int(item)
    raise ValueError


def _to_float(item: object) -> float:
    result = float(item)  # type: ignore[arg-type]
    if not math.isfinite(result):
        raise ValueError
    return result


parse_string_list = _typed_list(_to_str, "a string", "parse_string_list")
parse_int_list = _typed_list(_to_int, "an integer", "parse_int_list")
parse_float_list = _typed_list(_to_float, "a finite number", "parse_float_list")

StringList = Annotated[list[str], NoDecode, BeforeValidator(parse_string_list)]
"""A list of strings from `a,b,c` (items stripped, empty items dropped), a JSON array, a list, or None (empty)."""
IntList = Annotated[list[int], NoDecode, BeforeValidator(parse_int_list)]
"""A list of integers from `1,2,3`, a JSON array, a list, or None (empty)."""
FloatList = Annotated[list[float], NoDecode, BeforeValidator(parse_float_list)]
"""A list of finite numbers from `0.5,1`, a JSON array, a list, or None (empty)."""


# --- k=v options --------------------------------------------------------------------------------

OptionType = type[bool] | type[int] | type[float] | type[str]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _split_options(text: str) -> list[str]:
    """Split on commas outside double quotes."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
            current.append(char)
        elif char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise ValueError("unbalanced double quote")
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _guess_option(raw: object) -> bool | int | float | str:
    """No declared type: the literal decides, conservatively (`true` → True, `5` → 5, `0.5` → 0.5)."""
    if isinstance(raw, bool | int | float):
        return raw
    text = str(raw)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
        return float(text)
    return text


def _bool_option(key: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if str(raw).lower() in _TRUE:
        return True
    if str(raw).lower() in _FALSE:
        return False
    raise ValueError(f"option {key!r}: {raw!r} is not a boolean (true/false, yes/no, on/off, 1/0)")


def _int_option(key: str, raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"[+-]?[0-9]+", raw.strip()):
        return int(raw)
    raise ValueError(f"option {key!r}: {raw!r} is not an integer")


def _float_option(key: str, raw: object) -> float:
    try:
        if isinstance(raw, bool):
            raise ValueError
        result = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"option {key!r}: {raw!r} is not a number") from None
    if not math.isfinite(result):
        raise ValueError(f"option {key!r}: {raw!r} is not a finite number")
    return result


def _convert_option(key: str, raw: object, kind: OptionType | None) -> bool | int | float | str:
    """One option's value as `kind` (guessed from the literal when None); a quoted value is a string."""
    if isinstance(raw, str) and len(raw) >= 2 and raw[0] == raw[-1] == '"':
        if kind not in (None, str):
            raise ValueError(f"option {key!r}: a quoted value is a string, expected {getattr(kind, '__name__', kind)}")
        return raw[1:-1]
    if kind is None:
        return _guess_option(raw)
    if kind is bool:
        return _bool_option(key, raw)
    if kind is int:
        return _int_option(key, raw)
    if kind is float:
        return _float_option(key, raw)
    return str(raw)


def parse_options(
    value: object, types: Mapping[str, OptionType] | None = None, *, what: str = "option"
) -> dict[str, bool | int | float | str]:
    """Parse `k=v,k2=v2` (or a JSON object, or a mapping) into a dict of typed values.

    With `types`, each key must be one of them (an unknown key is an error naming the closest known
    one) and its value is converted to the declared type; a quoted value (`password="1,2"`) is
    always a string. Without `types`, `true`/`false` become booleans and plain numbers become
    numbers; anything else stays a string.
    """
    pairs: list[tuple[str, object]]
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                decoded = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"a value starting with '{{' must be a JSON object ({error.msg})") from None
            if not isinstance(decoded, dict):
                raise ValueError("a value starting with '{' must be a JSON object")
            pairs = [(str(k), v) for k, v in decoded.items()]
        else:
            pairs = []
            for item in _split_options(text):
                key, sep, raw_value = item.partition("=")
                if not sep or not key.strip():
                    raise ValueError(f"{what} {item!r} is not of the form key=value")
                pairs.append((key.strip(), raw_value.strip()))
    else:
        raise ValueError(f"expected key=value pairs separated by commas, got {type(value).__name__}")
    result: dict[str, bool | int | float | str] = {}
    for key, raw in pairs:
        if key in result:
            raise ValueError(f"{what} {key!r} is given twice")
        kind: OptionType | None = None
        if types is not None:
            if key not in types:
                close = difflib.get_close_matches(key, list(types), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(types))}"
                hint += _OPTION_ADVICE.get(key, "")
                raise ValueError(f"unknown {what} {key!r}{hint}")
            kind = types[key]
        result[key] = _convert_option(key, raw, kind)
    return result


# Options a user may reach for that an environment variable cannot carry, or that the URL carries.
_OPTION_ADVICE: Final = {
    "unix_socket_path": " (a unix socket is given as the URL: C2C__REDIS__URL=unix:///path/to/redis.sock)",
    "host": " (the address is given as the URL: C2C__REDIS__URL)",
    "port": " (the address is given as the URL: C2C__REDIS__URL)",
}

# The keyword arguments of redis-py's clients that make sense in an environment variable: text,
# numbers and booleans (not exception classes, callables, TLS enums or socket option maps), and
# not the address, which is the URL's.
REDIS_OPTION_TYPES: dict[str, OptionType] = {
    "client_name": str,
    "db": int,
    "decode_responses": bool,
    "encoding": str,
    "encoding_errors": str,
    "health_check_interval": float,
    "max_connections": int,
    "password": str,
    "protocol": int,
    "retry_on_timeout": bool,
    "single_connection_client": bool,
    "socket_connect_timeout": float,
    "socket_keepalive": bool,
    "socket_timeout": float,
    "ssl": bool,
    "ssl_ca_certs": str,
    "ssl_ca_data": str,
    "ssl_ca_path": str,
    "ssl_certfile": str,
    "ssl_check_hostname": bool,
    "ssl_cert_reqs": str,
    "ssl_ciphers": str,
    "ssl_keyfile": str,
    "ssl_password": str,
    "username": str,
}


def _parse_redis_options(value: object) -> dict[str, bool | int | float | str]:
    return parse_options(value, REDIS_OPTION_TYPES, what="Redis option")


Options = Annotated[dict[str, bool | int | float | str], NoDecode, BeforeValidator(parse_options)]
"""`k=v,k2=v2` options; values typed from their literal (`true` → bool, `5` → int)."""

RedisOptions = Annotated[dict[str, bool | int | float | str], NoDecode, BeforeValidator(_parse_redis_options)]
"""`k=v` keyword arguments for redis-py, each typed from `REDIS_OPTION_TYPES` (unknown keys refused)."""


# --- secrets ------------------------------------------------------------------------------------

SECRET_MASK = "**********"  # noqa: S105 - the mask, not a secret
"""How a secret shows in a `repr`, a settings dump or a page (pydantic's `SecretStr` mask)."""


class SecretText(str):
    """A secret setting: the text itself, which never shows in a `repr`, a dump or a log line.

    It *is* a `str` (c2casgiutils 0.14 gave secrets as plain strings, and applications use them so:
    `jwt.decode(cookie, settings.auth.jwt.secret, algorithms=[...])`, comparisons, `.encode()`),
    while `repr()`, `model_dump()` and `model_dump_json()` show `**********`, as pydantic's
    `SecretStr` does, and `.get_secret_value()` returns the plain `str` as `SecretStr` does.
    `str(secret)` and f-strings give the text: never format a secret into a message.
    """

    __slots__ = ()

    def get_secret_value(self) -> str:
        """The secret as a plain `str` (`SecretStr`'s accessor, kept for code written for it)."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"SecretText({SECRET_MASK!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(value: object) -> SecretText:
            if isinstance(value, SecretText):
                return value
            if hasattr(value, "get_secret_value"):  # a pydantic SecretStr
                value = value.get_secret_value()
            if not isinstance(value, str):
                raise ValueError(f"expected text, got a value of type {type(value).__name__}")
            return cls(value)

        return core_schema.no_info_plain_validator_function(
            validate,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda _value: SECRET_MASK),
        )


def parse_secret_list(value: object) -> list[str]:
    """Secrets from `a,b` (items stripped, empty ones dropped), a JSON array, a list, or None (empty).

    An error never shows an item: only its position.
    """
    items = _split_list(value)
    result = []
    for index, item in enumerate(items):
        if hasattr(item, "get_secret_value"):
            item = item.get_secret_value()
        if not isinstance(item, str):
            raise ValueError(f"item {index + 1} is not text")
        if item.strip():
            result.append(item.strip())
    return result


SecretList = Annotated[list[SecretText], NoDecode, BeforeValidator(parse_secret_list)]
"""A list of `SecretText` from `a,b` or a JSON array (for a secret holding a comma); each shown as the mask."""
