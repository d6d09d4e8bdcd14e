"""The settings machinery: `C2C__SECTION__FIELD` variables, readable errors, typo detection, reload."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import logging
import os
import re
import threading
import types
import typing
import urllib.parse
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import pydantic
from pydantic import BaseModel, BeforeValidator, SecretBytes, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from c2c_config._types import (
    REDIS_OPTION_TYPES,
    OptionType,
    SecretText,
    _parse_redis_options,
    _split_options,
    parse_options,
)

LOG = logging.getLogger("c2c_config")

ENV_PREFIX = "C2C__"
ENV_DELIMITER = "__"

REDACTED = "***"
"""What replaces a URL password, a credential query parameter's value or a credential option's value."""

# A scheme: only where a run of scheme characters starts (the lookbehind), so that a long word is
# scanned once, not once per letter (the text is untrusted: the time stays linear in its length).
_SCHEME = r"(?<![a-zA-Z0-9+.-])[a-zA-Z0-9+.-]++://"
# user:password@ after a scheme; the password runs to the last '@' before the authority ends (a '/',
# '?', '#' or a space), so that an unencoded '@' in it is hidden too (as urllib reads
# `https://u:p@ss@h/`: password `p@ss`), and an '@' in the query is not taken for one.
_URL_CREDENTIALS = re.compile(rf"(?P<scheme>{_SCHEME})(?P<user>[^:@/?#\s]*+):(?P<password>[^/?#\s]*)@")
# A URL with a query or a fragment: `head` up to the first '?' or '#' (or the next URL: `a://b/c://d?`
# is two), `rest` from it to the next space.
_URL_PARAMETERS = re.compile(rf"(?P<head>{_SCHEME}(?:(?!://)[^\s?#])*+)(?P<rest>[?#]\S*+)")
# A parameter name, after the '?' or '#' that starts the query or fragment, or after a '&' or ';'.
_PARAMETER_NAME = re.compile(r"(?<=[?#&;])(?P<name>[^=&;#?\s]++)=")
# The characters that open a quoted or bracketed URL in a text, and the one that closes it.
_CLOSERS = {"'": "'", '"': '"', "`": "`", "<": ">", "(": ")", "[": "]", "{": "}"}
_TRAILING_PUNCTUATION = "'\"`>)]},.;:!"
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")

CREDENTIAL_FRAGMENTS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "auth",
    "credential",
    "signature",
    "apikey",
    "accesskey",
    "clientkey",
    "privatekey",
    "secretkey",
    "signingkey",
    "encryptionkey",
    "session",
    "sessid",
    "csrf",
    "xsrf",
    "jwt",
    "cookie",
    "bearer",
)
"""A name that contains one of these holds a credential (the toolkit's one vocabulary, `is_credential_name`).

The name is compared `%`-decoded, case-folded, with every character other than a letter or a
digit removed (`Sentinel_Password`, `pass%77ord`, `X-Amz-Security-Token`, `client-secret` all
match). `pass` covers `password`, `passwd`, `passphrase`, `passcode`; `token` covers
`access_token`, `refresh_token`, `id_token`; `auth` covers `oauth_token`, `authorization`.
A name such as `author` or `bypass` is masked as well: hiding too much in a log line is harmless.
`username`/`user` are not credentials (as in user-info, `user:***@`, the user name stays visible).
"""
CREDENTIAL_WORDS = frozenset({"key", "pass", "pw", "sid", "sig", "otp", "pin", "ticket", "verifier"})
"""A name with one of these as a whole word holds a credential (`X-Client-Key`, `sigValue`,
`code_verifier`); words are split at punctuation, digits and lower-to-upper case changes, so
`Keep-Alive`, `keyboard` and `signal` stay readable."""
CREDENTIAL_NAMES = frozenset({"code", "state"})
"""A name that is one of these as a whole holds a credential: the OAuth callback's `code` and `state`
(`country_code`, `error_code` stay readable)."""
# Local variables and keys of an error report (`variable=True`) are named by programmers, not by
# protocols: `key`, `code`, `state`, `author` or `bypass` hold no credential there, and hiding them
# would hide what the report is for. `auth` counts as a word there, `pass` through its long forms.
_VARIABLE_FRAGMENTS = (
    *(fragment for fragment in CREDENTIAL_FRAGMENTS if fragment not in ("pass", "auth")),
    "passw",
    "passphrase",
    "passcode",
    "authorization",
)
_VARIABLE_WORDS = (CREDENTIAL_WORDS - {"key"}) | {"auth"}
# The words of a name: an upper-case run (an acronym), a capitalised or lower-case word, a number.
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def is_credential_name(name: str, *, variable: bool = False) -> bool:
    """Whether a value called `name` holds a credential: the one rule of the toolkit's redactions.

    A query parameter, a header, an option or a setting (the default): when the name contains one
    of `CREDENTIAL_FRAGMENTS`, has one of `CREDENTIAL_WORDS` as a word, is one of
    `CREDENTIAL_NAMES`, or ends with `key` (`api_key`, `subscription-key`). The access logs,
    `redact_url`, the Redis options, the `/c2c` tools and the Sentry scrubber's queries and headers
    all ask this.

    `variable=True`, for the local variables and keys of an error report (the Sentry scrubber):
    the same vocabulary without what programmers use for other things (`key`, `code`, `state`;
    `auth` and `pass` as words only, so `author` and `bypass` stay readable).

    Answers for names up to 128 characters are cached: names repeat (every access-log line's
    parameters, every event's keys).
    """
    if len(name) <= _CACHED_NAME_LENGTH:
        return _credential_name(name, variable)
    return _credential_name.__wrapped__(name, variable)


_CACHED_NAME_LENGTH = 128


@functools.lru_cache(maxsize=4096)
def _credential_name(name: str, variable: bool) -> bool:
    plain = urllib.parse.unquote_plus(name)
    compact = _NOT_ALPHANUMERIC.sub("", plain.casefold())
    if not compact:
        return False
    words = {word.casefold() for word in _WORD.findall(plain)}
    words.add(compact)  # the whole name is a word too, whatever its case (`siG`, `PIN`)
    if variable:
        return any(fragment in compact for fragment in _VARIABLE_FRAGMENTS) or not words.isdisjoint(_VARIABLE_WORDS)
    return (
        compact in CREDENTIAL_NAMES
        or compact.endswith("key")
        or any(fragment in compact for fragment in CREDENTIAL_FRAGMENTS)
        or not words.isdisjoint(CREDENTIAL_WORDS)
    )


_NAMING_SUFFIXES = ("_url", "_uri", "_cookie", "_header", "_name", "_parameter")


def is_credential_setting(name: str, is_credential: Callable[[str], bool] = is_credential_name) -> bool:
    """Whether a text setting (or option) called `name` holds a credential.

    A credential name (`is_credential`, by default `is_credential_name`: `api_token`,
    `client_secret`), unless the name says that the value is where or under which name a
    credential goes (`token_url`, `state_cookie`, `auth_header`, `secret_name`): those are
    shown, and a URL's password is hidden by `redact_url` wherever the URL is.
    """
    return is_credential(name) and not name.casefold().endswith(_NAMING_SUFFIXES)


def _mask_parameters(rest: str) -> str:
    """The query and fragment `rest` (from its '?' or '#') with the values of credential parameters replaced."""
    pieces: list[str] = []
    position = 0
    for match in _PARAMETER_NAME.finditer(rest):
        if match.start() < position or not is_credential_name(match["name"]):
            continue
        # The value runs to the next '&' (redis-py, like `urllib.parse.parse_qs`, splits on '&' only):
        # a ';', '#' or '?' in it stays hidden with it.
        end = rest.find("&", match.end())
        end = len(rest) if end < 0 else end
        if end == match.end():
            continue  # an empty value: nothing to hide
        pieces += [rest[position : match.end()], REDACTED]
        position = end
    pieces.append(rest[position:])
    return "".join(pieces)


def _redact_parameters(match: re.Match[str]) -> str:
    rest = match["rest"]
    trailer = ""
    opener = match.string[match.start() - 1] if match.start() else ""
    closer = _CLOSERS.get(opener)
    if closer is not None:
        # `'redis://h/0?password=x',` in a repr: the quote (and what follows it) is not the password's.
        # The last `closer` followed only by punctuation ends the URL.
        punctuation = re.escape(_TRAILING_PUNCTUATION.replace(closer, ""))
        end = re.search(f"{re.escape(closer)}[{punctuation}]*$", rest)
        if end is not None:
            rest, trailer = rest[: end.start()], rest[end.start() :]
    return match["head"] + _mask_parameters(rest) + trailer


def redact_url(url: str) -> str:
    """Hide the credentials of the URLs in a text, for logs and messages; never raises.

    The one redaction helper of the toolkit: it works on any text (an error message holding
    several URLs, a `repr`); the rest of the text is left as it is, and a text without credentials
    is returned unchanged. Its time is linear in the length of the text. In every `scheme://` URL
    of the text (the scheme being the whole run of letters, digits, `+`, `.` and `-` before `://`):

    - the password of the user-info is replaced by `***`, the user name kept
      (`redis://:secret@host` → `redis://:***@host`, `https://u:p@ss@h/` → `https://u:***@h/`);
    - the value of every query (or fragment) parameter whose name holds a credential (see
      `CREDENTIAL_FRAGMENTS`: `password`, `sentinel_password`, `token`, `access_token`, `secret`,
      `api_key`, `key`, `sig`...; case-insensitive, `%`-encoded names decoded) is replaced by
      `***`: `redis://h:6379/0?password=XYZ&db=1` → `redis://h:6379/0?password=***&db=1`. Names
      start after the '?' or '#', or after a '&' or a ';'; a value runs to the next '&' or space
      (redis-py splits a query on '&' only), or, in a URL right after a quote or an opening
      bracket, to the last matching closing quote or bracket (`'redis://h?password=x'` keeps
      its closing quote). An empty value is left as is.

    A user-info password with a space, a '/', a '?' or a '#' cannot be told from the text around
    it, nor a query value with a space: where the URL is an object (SQLAlchemy's `URL`), render it
    without its password instead. (`c2c_health._http.mask_password` is the copy the probe
    `python -m c2c_health` keeps so that it imports the standard library only; it hides the
    user-info password only, and a test checks that both agree on URLs without credential
    parameters.)
    """
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", url)
    return _URL_PARAMETERS.sub(_redact_parameters, text)


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
    leaves = leaves | set(secret_file_variables(settings_cls))
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


def _clean_message(message: str) -> str:
    # pydantic prefixes messages raised by our validators with "Value error, ".
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


# --- what an error message may echo of an options value ---------------------------------------------

# The validators of the `k=v` option types, and the option names each accepts (None: any name).
_OPTION_VALIDATORS: dict[Callable[..., Any], Mapping[str, OptionType] | None] = {
    parse_options: None,
    _parse_redis_options: REDIS_OPTION_TYPES,
}

_COMMA_ADVICE = ' (a value holding a comma must be quoted: password="a,b")'


@dataclasses.dataclass(frozen=True)
class RedactedOptions:
    """A `k=v` options text as an error message may show it (see `redact_options`)."""

    shown: str
    """The text with credential values hidden: `password=***,socket_timeout=abc`."""
    hidden: tuple[str, ...]
    """The pieces of the original text that `shown` hides (to hide them from a message too)."""
    comma: bool
    """Whether pieces after a hidden value were hidden with it (a value holding an unquoted comma)."""


def redact_option_values(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of parsed options with the value of each credential option (`is_credential_name`) replaced by `***`.

    For a `repr` or a log line: `{'password': 'x', 'ssl': True}` → `{'password': '***', 'ssl': True}`.
    """
    return {key: REDACTED if is_credential_name(str(key)) else value for key, value in options.items()}


def _option_hidden(key: str, types: Mapping[str, OptionType] | None) -> bool:
    """Whether the value of option `key` is hidden: a credential, or an unknown name close to one (`pasword`)."""
    if is_credential_name(key):
        return True
    if types is None or key in types:
        return False
    credentials = [name for name in types if is_credential_name(name)]
    return bool(difflib.get_close_matches(key.casefold(), credentials, n=1, cutoff=0.6))


_OPTION_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")


def _looks_like_option(key: str, types: Mapping[str, OptionType] | None) -> bool:
    """Whether `key` (of a `key=value` piece) names an option rather than continues a password holding a comma.

    Any name when the names are free; with `types`, a known name, a snake_case one with an
    underscore (`sentinel_kwargs`, as redis-py's are) or one close to a known name (`sockettimeout`).
    """
    if types is None or key in types or _OPTION_NAME.fullmatch(key):
        return True
    return bool(difflib.get_close_matches(key, list(types), n=1, cutoff=0.8))


def _redact_json_options(text: str, types: Mapping[str, OptionType] | None) -> RedactedOptions | None:
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(decoded, dict):
        return None
    hidden = [value for key, value in decoded.items() if _option_hidden(key, types) and isinstance(value, str)]
    shown = {key: REDACTED if _option_hidden(key, types) else value for key, value in decoded.items()}
    return RedactedOptions(json.dumps(shown, ensure_ascii=False), tuple(hidden), comma=False)


def redact_options(value: str, types: Mapping[str, OptionType] | None = None) -> RedactedOptions | None:
    """A `k=v,k2=v2` (or JSON object) options text with its credentials hidden, or None when it does not parse.

    Split as `parse_options` splits it (commas outside double quotes); then:

    - the value of an option whose name holds a credential (`is_credential_name`: `password`,
      `ssl_password`, `sentinel_password`, `token`...) is shown as `***`; with `types`, so is the
      value of an unknown name close to a known credential name (a misspelt `pasword`, `passwd`);
    - the pieces after such a value that are not options themselves are hidden with it: they are
      the rest of a password holding an unquoted comma (`password=ab,cd` and `password=ab,cd=x`
      are shown `password=***`). A piece is an option when it is `k=v` and, with `types`, its
      name is known, snake_case with an underscore (`sentinel_kwargs=1`: an unknown option, shown
      so that the error about it can name it) or close to a known name (`sockettimeout=5`);
    - with `types`, a piece that is not `k=v` is shown only when it is a known option name
      (`ssl`): otherwise it may be a password written without its name (`password:xyz`) and
      is shown `***`;
    - everything else is kept as written.

    None when the text cannot be split (an unbalanced double quote, a `{` that is not a JSON
    object): then nothing of it may be shown, since where a password starts or ends is unknown.
    Never raises.
    """
    text = value.strip()
    if text.startswith("{"):
        return _redact_json_options(text, types)
    try:
        items = _split_options(text)
    except ValueError:
        return None
    shown: list[str] = []
    hidden: list[str] = []
    in_secret = comma = False
    for item in items:
        key, sep, raw = (part.strip() for part in item.partition("="))
        is_option = bool(sep and key) and _looks_like_option(key, types)
        if in_secret and not is_option:
            hidden += [piece for piece in (item, key, raw) if piece]
            comma = True
        elif sep and key and _option_hidden(key, types):
            shown.append(f"{key}={REDACTED}" if raw else f"{key}=")
            hidden += [raw] if raw else []
            in_secret = True
        elif not sep and (is_credential_name(item) or (types is not None and item not in types)):
            shown.append(REDACTED)
            hidden.append(item)
            in_secret = True
        else:
            shown.append(item)
            in_secret = False
    return RedactedOptions(",".join(shown), tuple(hidden), comma)


def _options_types(info: FieldInfo | None) -> tuple[bool, Mapping[str, OptionType] | None]:
    """Whether the field is a `k=v` options field (`Options`, `RedisOptions`), and the names it accepts."""
    if info is not None:
        for item in info.field.metadata:
            if isinstance(item, BeforeValidator) and item.func in _OPTION_VALIDATORS:
                return True, _OPTION_VALIDATORS[item.func]
    return False, None


def _cut(text: str) -> str:
    return text[:200] + ("…" if len(text) > 200 else "")


def _describe_input(info: FieldInfo | None, value: Any) -> str:
    """The value an error message echoes: secrets hidden, URLs redacted, options' credentials hidden, cut short.

    For a `k=v` options field (`C2C__REDIS__OPTIONS`), the text is shown as `redact_options` gives
    it (`password=***,socket_timeout=abc`); when it cannot be split (an unbalanced quote), only its
    length is shown (`<25 characters, not shown>`), since a password could be anywhere in it.
    """
    if info is not None and info.secret:
        return "<hidden>"
    is_options, types = _options_types(info)
    if is_options and isinstance(value, str):
        redacted = redact_options(value, types)
        if redacted is None:
            return f"<{len(value)} characters, not shown>"
        return repr(_cut(redact_url(redacted.shown)))
    text = value if isinstance(value, str) else repr(value)
    text = redact_url(str(text))
    return repr(_cut(text)) if isinstance(value, str) else text[:200]


def _describe_message(info: FieldInfo | None, value: Any, message: str) -> str:
    """pydantic's message for a value, without the pieces of an options value `_describe_input` hides.

    `parse_options` names the piece it refuses (`Redis option 'cd' is not of the form key=value`),
    which is the end of a password holding an unquoted comma in `password=ab,cd`: it is shown
    `'***'`, with advice to quote the value.
    """
    message = redact_url(_clean_message(message))
    is_options, types = _options_types(info)
    redacted = redact_options(value, types) if is_options and isinstance(value, str) else None
    if redacted is None:
        return message
    shown = message
    for piece in sorted(redacted.hidden, key=len, reverse=True):
        shown = shown.replace(repr(piece), repr(REDACTED))
    if shown != message and redacted.comma:
        shown += _COMMA_ADVICE
    return shown


def explain_validation_error(settings_cls: type[BaseModel], error: ValidationError) -> ConfigError:
    """Turn pydantic's error into a `ConfigError` naming each variable; values of secrets are hidden.

    What each problem echoes of a value goes through `_describe_input` (a secret is `<hidden>`,
    URLs through `redact_url`, options through `redact_options`), and its message through
    `_describe_message` (URLs redacted, the pieces of an options value that are hidden replaced
    by `'***'`).
    """
    problems = []
    for item in error.errors(include_url=False, include_context=False):
        location = tuple(item["loc"])
        info = _field_at(settings_cls, location)
        variable = env_var_name(location) if location else "settings"
        if item["type"] == "missing":
            problems.append(f"{variable}: required, not set")
            continue
        given = _describe_input(info, item.get("input"))
        message = _describe_message(info, item.get("input"), item["msg"])
        if item["type"] in ("model_type", "model_attributes_type", "dict_type") or isinstance(item.get("input"), dict):
            problems.append(f"{variable}: {message}")
        else:
            problems.append(f"{variable}={given}: {message}")
    return ConfigError(problems)


SECRET_FILE_SUFFIX = "_FILE"  # noqa: S105 - a variable name suffix, no password
"""`<secret variable>_FILE` names a file holding the secret (`C2C__AUTH__SECRET_FILE=/run/secrets/c2c`)."""


def secret_file_variables(settings_cls: type[BaseModel]) -> dict[str, tuple[str, ...]]:
    """`C2C__..._FILE` variable name -> the path of the secret field it sets, for every secret setting."""
    return {info.env_var + SECRET_FILE_SUFFIX: info.path for info in iter_fields(settings_cls) if info.secret}


class SecretFilesSource(PydanticBaseSettingsSource):
    """The secret settings read from the files that `<variable>_FILE` names (Docker and Kubernetes secrets).

    The file's text is the value, without its trailing line breaks (an empty file is as an empty variable).
    Setting both the variable and its `_FILE` variant, or naming a file that cannot be read, is a
    `ConfigError` naming the variable (and the path, never the content).
    """

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """Unused: `__call__` reads every secret file at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        environ = {name.upper(): value for name, value in os.environ.items() if name.upper().startswith(ENV_PREFIX)}
        values: dict[str, Any] = {}
        problems = []
        for variable, path in secret_file_variables(self.settings_cls).items():
            filename = environ.get(variable)
            if filename is None:
                continue
            direct = variable.removesuffix(SECRET_FILE_SUFFIX)
            if direct in environ:
                problems.append(f"{variable}: {direct} is set too; set one of them")
                continue
            try:
                with open(filename, encoding="utf-8", newline="") as handle:  # the text as it is
                    text = handle.read().rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as error:
                problems.append(f"{variable}={filename!r}: cannot read the file ({type(error).__name__})")
                continue
            target = values
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = text
        if problems:
            raise ConfigError(problems)
        return values


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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment, then the secret files its `_FILE` variables name (`SecretFilesSource`)."""
        return init_settings, env_settings, SecretFilesSource(settings_cls), dotenv_settings, file_secret_settings

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
