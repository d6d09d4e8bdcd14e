"""The walk behind `c2casgiutils.sentry.scrub_event`: what never leaves the process in a Sentry event.

Two passes over the event. The first collects the credentials it can recognise: the values under
credential-named keys (at any depth: local variables hold `kwargs={'headers': {'Authorization':
...}}`, `cparams={'password': ...}`), the values of credential-named header pairs (an ASGI scope's
`[b'cookie', b'...']`), URL passwords, `Authorization` tokens, JWTs, and every secret of the
application's settings (`SecretText` fields, the Redis password). The second replaces each of those
values wherever it appears (a password collected from one frame is also hidden in another frame's
positional arguments), and applies the rules to every string: credential-named keys and pairs
redacted, URL credentials (`redact_url`), `Bearer`/`Basic`/`Token` credentials, JWTs and
`name=value` pairs with a credential name (cookies, form bodies, queries).

Source lines (`context_line`, `pre_context`, `post_context`) are redacted like any text, but
nothing is collected from them: `password=settings.password` in the code hides no other string.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from pydantic import BaseModel

# The SDK wraps trimmed request data in it: defined in `sentry_sdk.utils` up to 2.2x, then in
# `sentry_sdk._types` (which `utils` imports it from, without re-exporting it for a type checker).
from sentry_sdk.utils import AnnotatedValue  # type: ignore[attr-defined,unused-ignore]

from c2c_config import SecretText, is_credential_setting, redact_url
from c2c_config import is_credential_name as is_query_credential
from c2casgiutils.logging_filters import REDACTED, REDACTED_PARAMETERS, redact_query, redact_text

MAX_FRAMES = 200
"""The most traceback frames whose credential-named locals `Scrubber.collect_locals` reads."""
MAX_LOCAL_LENGTH = 8192
"""A credential-named local longer than this is not remembered from the frame (the event's copy, cut
by the SDK, is still scrubbed where it stands)."""
MAX_LOCAL_ITEMS = 100
"""A list, tuple or mapping under a credential name: its items are remembered up to this many."""

MIN_COLLECTED = 6
"""Collected values shorter than this are redacted where they stand, but not replaced everywhere
(replacing a 3-character value in every string would garble the event and protect nothing)."""

# Keys whose string value is a query string: the SDK's request (decoded), httpx/stdlib breadcrumbs (raw).
_DECODED_QUERY_KEYS = frozenset({"query_string"})
_RAW_QUERY_KEYS = frozenset({"http.query", "query"})
# Source code: only collected values are replaced there.
_SOURCE_KEYS = frozenset({"context_line", "pre_context", "post_context"})

# Names c2c-config's rule does not hold for credentials, kept as whole names: Symfony's session
# cookie and the client's address (sentry-sdk 2.x's default denylist has them too; 3.x removed it).
_DENYLIST = frozenset({"symfony", "x_forwarded_for", "x_real_ip"})
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SEPARATORS = re.compile(r"[\W_]+")
_BYTES_REPR = re.compile(r"""^b(?P<quote>['"])(?P<inner>.*)(?P=quote)$""", re.DOTALL)
# Every pattern below starts only where a run of its characters starts (a lookbehind) and takes its
# runs possessively, with bounded lengths: the time stays linear in the length of a string (strings
# come from requests and exceptions: untrusted).
_AUTH_SCHEME = re.compile(
    r"(?<![A-Za-z0-9])(?P<scheme>Bearer|Basic|Token|Digest|Negotiate)(?P<space>\s{1,8}+)"
    r"(?P<token>[A-Za-z0-9._~+/-]{1,4096}+=*+)",
    re.IGNORECASE,
)
_JWT = re.compile(r"(?<![A-Za-z0-9_])eyJ[A-Za-z0-9_-]{4,8192}+\.[A-Za-z0-9_-]{4,8192}+\.[A-Za-z0-9_-]{0,8192}+")
_GITHUB_TOKEN = re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{20,255}+|github_pat_[A-Za-z0-9_]{20,255}+)")
# `name=value`, `name: value`, `'name': 'value'`, `name='value'` (queries, cookies, YAML, reprs).
_NAMED_VALUE = re.compile(
    r"(?<![A-Za-z0-9_.%-])(?P<name>[A-Za-z0-9_.%-]{1,64}+)(?P<separator>['\"]?\s{0,2}[=:]\s{0,2}['\"]?)"
    r"(?P<value>[^;&\s,'\"<>]{1,4096}+)"
)
# A `name=value` pair of a query string inside a longer text: `_NAMED_VALUE` reads
# `https://h/x?access_token=...` as `https` = `//h/x?access_token=...` and never sees the pair.
_QUERY_PAIR = re.compile(r"(?<=[?&;])(?P<name>[A-Za-z0-9_.%-]{1,64}+)=(?P<value>[^&;#\s'\"<>]{1,4096}+)")
_URL_PASSWORD = re.compile(
    r"(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]{0,31}+://[^:@/?#\s]{0,256}+:(?P<password>[^@/?#\s]{1,1024}+)@"
)
# The same at the end of a string the SDK cut short: the password's end, and its `@`, cut off.
_URL_PASSWORD_CUT = re.compile(
    r"(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]{0,31}+://[^:@/?#\s]{0,256}+:(?P<password>[^@/?#\s]{1,1024}+)$"
)
# A long user-info without a password is a token (`https://ghp_...@github.com/`).
_URL_TOKEN_USER = re.compile(
    r"(?<![a-zA-Z0-9+.-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]{0,31}+://)(?P<user>[^:@/?#\s]{20,1024}+)@"
)


def _unwrapped(text: str) -> str:
    """`text` without the `b'...'` of a bytes repr (header names and values in local variables)."""
    match = _BYTES_REPR.match(text)
    return match["inner"] if match else text


def normalized_name(name: object) -> str:
    """A key, header or parameter name as compared: decoded, camelCase split, case-folded, separators as `_`."""
    plain = unquote_plus(_unwrapped(str(name).strip()), errors="replace").strip()
    return _WORD_SEPARATORS.sub("_", _CAMEL_HUMP.sub("_", plain)).casefold().strip("_")


def is_credential_name(name: object, extra: frozenset[str] = frozenset()) -> bool:
    """Whether a key or variable called `name` holds a credential.

    c2c-config's rule for variables (`c2c_config.is_credential_name(name, variable=True)`: the
    toolkit's one vocabulary, without `key`, `code`, `state`, and with `auth` and `pass` as words:
    `password`, `clientSecret`, `refreshtoken`, `Authorization`, `cookie`, `session`, `PHPSESSID`,
    `ticket`, `db_pass` hold one, `key`, `author`, `bypass` and `status_code` do not), on the name
    without its `b'...'` repr; `symfony`, `X-Forwarded-For` and `X-Real-IP`; and `extra`
    (`C2C__SENTRY__EVENT_SCRUBBER`). Query parameters and header names get the full rule
    (`Scrubber._in_query`, `Scrubber._sensitive_header`).
    """
    if type(name) is str and len(name) <= _CACHED_NAME_LENGTH:
        return _credential_name(name, extra)
    return _credential_name.__wrapped__(name, extra)


_CACHED_NAME_LENGTH = 128
"""Names up to this length have their answer cached (an event's keys repeat: every log record, every frame)."""


@functools.lru_cache(maxsize=4096)
def _credential_name(name: object, extra: frozenset[str]) -> bool:
    normalized = normalized_name(name)
    if not normalized:
        return False
    if normalized in _DENYLIST or normalized in extra:
        return True
    return is_query_credential(_unwrapped(str(name).strip()), variable=True)


def _token_like(token: str) -> bool:
    """A credential after `Bearer`/`Basic`...: long enough, and not a plain word of prose."""
    return len(token) >= 8 and (not token.isalpha() or len(token) >= 20)


def _basic_credentials(token: str) -> list[str]:
    """What a `Basic` token hides: `user:password` and the password (found elsewhere in clear)."""
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        return []
    _, separator, password = decoded.partition(":")
    return [decoded, password] if separator and password else []


def _is_pair(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], str)


_HEADER_KEYS = frozenset({"headers", "cookies"})


def _escaped_forms(text: str) -> set[str]:
    """`text` as it may appear in an event: itself, in a `str` or `bytes` repr, JSON-escaped, URL-encoded."""
    plain = {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
    # Each also in a `str` and a `bytes` repr (a JSON body in a local variable is a repr of the JSON).
    forms = plain | {repr(form)[1:-1] for form in plain}
    forms |= {repr(form.encode("utf-8", "surrogatepass"))[2:-1] for form in plain}
    encoded = text.encode("utf-8", "surrogatepass")
    # URL-encoded as `quote` (a path: `/` kept), `quote(safe="")`, `quote_plus` (a form), in either
    # case of hexadecimal digits; base64 (standard and URL-safe, with and without padding) and hex.
    urls = {quote(encoded), quote(encoded, safe=""), quote_plus(encoded, safe="")}
    forms |= urls | {_PERCENT_ESCAPE.sub(lambda match: match.group(0).lower(), url) for url in urls}
    for coded in (base64.b64encode(encoded), base64.urlsafe_b64encode(encoded)):
        forms |= {coded.decode("ascii"), coded.decode("ascii").rstrip("=")}
    forms |= {encoded.hex(), encoded.hex().upper()}
    return forms


_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


class Scrubber:
    """One event's walk: `collect` then `walk` (see the module's docstring)."""

    def __init__(self, secrets: Iterable[str] = (), extra_names: Iterable[str] = ()) -> None:
        self.extra = frozenset(normalized_name(name) for name in extra_names)
        self.collected: set[str] = set()
        self._ordered: list[str] | None = None
        self._keys: dict[str, str] = {}  # pass 2: each mapping key as scrubbed
        known = tuple(secrets)
        if known:
            self.collected.update(_forms_of_secrets(known, self.extra))

    # -- pass 1 ---------------------------------------------------------------------------------

    def _remember(self, value: object) -> None:
        if isinstance(value, bool) or value is None:
            return
        text = str(value)
        plain = {text, _unwrapped(text)}
        if "%" in text:
            plain.add(unquote(text, errors="surrogatepass"))
        for form in plain:
            if len(form) >= MIN_COLLECTED:
                self.collected.update(variant for variant in _escaped_forms(form) if len(variant) >= MIN_COLLECTED)
        self._remember_in_text(text, credential=True)
        self._ordered = None

    def _remember_in_text(self, text: str, credential: bool = False) -> None:
        """Remember the credentials a text holds. `credential`: the text is itself a credential's
        value (an `Authorization` header's): whatever follows its scheme is the token, even a plain
        word (elsewhere `Bearer something` may be prose)."""
        found: list[str] = []
        if "://" in text:
            found += [match["password"] for match in _URL_PASSWORD.finditer(text)]
            found += [match["user"] for match in _URL_TOKEN_USER.finditer(text)]
        for match in _AUTH_SCHEME.finditer(text):
            if credential or _token_like(match["token"]):
                found.append(match["token"])
                if match["scheme"].casefold() == "basic":
                    found += _basic_credentials(match["token"])
        if "eyJ" in text:
            found += [match.group(0) for match in _JWT.finditer(text)]
        if "gh" in text:
            found += [match.group(0) for match in _GITHUB_TOKEN.finditer(text)]
        if "=" in text or ":" in text:
            found += [match["value"] for match in _NAMED_VALUE.finditer(text) if self._sensitive(match["name"])]
        if "=" in text and ("?" in text or "&" in text or ";" in text):
            found += [match["value"] for match in _QUERY_PAIR.finditer(text) if self._in_query(match["name"])]
        for value in found:
            if len(value) >= MIN_COLLECTED:
                self.collected.update(
                    variant
                    for variant in _escaped_forms(unquote(value, errors="surrogatepass")) | {value}
                    if len(variant) >= MIN_COLLECTED
                )
                self._ordered = None

    def _sensitive(self, name: object) -> bool:
        return is_credential_name(name, self.extra)

    def _sensitive_header(self, name: object) -> bool:
        """A header (or cookie) name: the variable rule, or c2c-config's (`X-Key`, `X-Hub-Signature`)."""
        return self._sensitive(name) or is_query_credential(_unwrapped(str(name).strip()))

    def _in_query(self, name: object) -> bool:
        """A query parameter to redact: the access log's rule (`REDACTED_PARAMETERS`, c2c-config's rule)."""
        plain = unquote_plus(_unwrapped(str(name).strip()), errors="replace").strip()
        return plain.casefold() in REDACTED_PARAMETERS or is_query_credential(plain) or self._sensitive(name)

    def collect(self, value: Any, key: object = None) -> None:
        """Pass 1: remember the credentials `value` holds (see the module's docstring)."""
        if isinstance(value, AnnotatedValue):
            self.collect(value.value, key)
        elif isinstance(value, str):
            self._remember_in_text(value)
        elif isinstance(value, dict):
            sensitive = self._sensitive_header if key in _HEADER_KEYS else self._sensitive
            for name, item in value.items():
                if name in _SOURCE_KEYS:
                    continue
                if sensitive(name) and not isinstance(item, dict):
                    self._remember_all(item)
                else:
                    self.collect(item, name)
        elif isinstance(value, list | tuple):
            if _is_pair(value) and self._sensitive_header(value[0]):
                self._remember_all(value[1])
                return
            for item in value:
                self.collect(item, key if key in _HEADER_KEYS else None)

    def collect_locals(self, error: BaseException | None) -> None:
        """Pass 1, from the exception itself (a `before_send` hint's): the credential-named local
        variables of its frames, and of the exceptions it chains. The SDK's own scrubber has
        already replaced those variables in the event (`password` → `[Filtered]`), so the event
        alone would not tell that value when another frame holds it under another name.

        Bounded: at most `MAX_FRAMES` frames; a value is remembered when it is text, bytes or a
        number, or a flat list, tuple or mapping of those (nothing is walked deeper or called).
        """
        seen: set[int] = set()
        frames = 0
        while error is not None and id(error) not in seen and frames < MAX_FRAMES:
            seen.add(id(error))
            trace = error.__traceback__
            while trace is not None and frames < MAX_FRAMES:
                frames += 1
                for name, value in trace.tb_frame.f_locals.items():
                    if self._sensitive(name):
                        self._remember_local(value)
                trace = trace.tb_next
            error = error.__cause__ or error.__context__

    def _remember_local(self, value: object, flat: bool = True) -> None:
        if isinstance(value, bytes | bytearray):
            value = bytes(value[:MAX_LOCAL_LENGTH]).decode("utf-8", "replace")
        if isinstance(value, str):
            if len(value) <= MAX_LOCAL_LENGTH:
                self._remember(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._remember(value)
        elif flat and isinstance(value, list | tuple) and len(value) <= MAX_LOCAL_ITEMS:
            for item in value:
                self._remember_local(item, flat=False)
        elif flat and isinstance(value, dict) and len(value) <= MAX_LOCAL_ITEMS:
            for item in value.values():
                self._remember_local(item, flat=False)

    def _remember_all(self, value: Any) -> None:
        """A credential-named value: itself (or each item of a list) remembered."""
        if isinstance(value, AnnotatedValue):
            self._remember_all(value.value)
        elif isinstance(value, list | tuple):
            for item in value:
                self._remember_all(item)
        elif isinstance(value, dict):
            self.collect(value)
        else:
            self._remember(value)

    # -- pass 2 ---------------------------------------------------------------------------------

    def _replace_collected(self, text: str) -> str:
        if self._ordered is None:
            self._ordered = sorted(self.collected, key=len, reverse=True)
        for value in self._ordered:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def _named_value(self, match: re.Match[str]) -> str:
        if not self._sensitive(match["name"]):
            return match.group(0)
        return f"{match['name']}{match['separator']}{REDACTED}"

    def _auth_scheme(self, match: re.Match[str]) -> str:
        if not _token_like(match["token"]):
            return match.group(0)
        return f"{match['scheme']}{match['space']}{REDACTED}"

    def _cut_credential(self, text: str) -> str:
        """A string the SDK cut to `max_value_length` (`...` at its end): what it cut may be a
        credential's beginning, which no longer matches the whole (a collected value, a URL's password)."""
        body = text[:-3]
        if self._ordered is None:
            self._ordered = sorted(self.collected, key=len, reverse=True)
        for value in self._ordered:
            for size in range(min(len(value) - 1, len(body)), MIN_COLLECTED - 1, -1):
                if body.endswith(value[:size]):
                    return f"{body[:-size]}{REDACTED}..."
        match = _URL_PASSWORD_CUT.search(body)
        if match is not None:
            return f"{body[: match.start('password')]}{REDACTED}..."
        return text

    def text(self, value: str, key: object) -> str:
        """One string of the event, scrubbed (`key`: the key it stands under, if any)."""
        value = self._replace_collected(value)
        if value.endswith("..."):
            value = self._cut_credential(value)
        if key in _DECODED_QUERY_KEYS:
            return _redact_decoded_query(value, self._in_query)
        if key in _RAW_QUERY_KEYS:
            return redact_query(value, self._in_query)
        value = redact_url(redact_text(value))
        if "://" in value:
            value = _URL_TOKEN_USER.sub(lambda match: f"{match['scheme']}{REDACTED}@", value)
        value = _AUTH_SCHEME.sub(self._auth_scheme, value)
        if "eyJ" in value:
            value = _JWT.sub(REDACTED, value)
        if "gh" in value:
            value = _GITHUB_TOKEN.sub(REDACTED, value)
        if "=" in value or ":" in value:
            value = _NAMED_VALUE.sub(self._named_value, value)
            if any(f"{name}=" in value.casefold() for name in REDACTED_PARAMETERS):
                value = _redact_decoded_query(value, self._in_query)  # a bare query: `secret=...&a=1`
        return value

    def _query_pairs(self, value: dict[Any, Any] | list[Any]) -> Any:
        """A query as a mapping or a list of pairs: the values of the redacted names replaced."""
        if isinstance(value, dict):
            return {name: REDACTED if self._in_query(name) else self.walk(item) for name, item in value.items()}
        return [
            [pair[0], REDACTED] if _is_pair(pair) and self._in_query(pair[0]) else self.walk(pair) for pair in value
        ]

    def _key(self, name: object, taken: dict[Any, Any]) -> object:
        """A mapping's key, scrubbed as any text: a token cache's or a sessions dict's keys are the
        credentials (`{token: user}`), and the SDK turns a logged dict's keys into attribute names.
        Two keys scrubbed alike stay two keys (`[REDACTED] (2)`)."""
        if not isinstance(name, str):
            return name
        cleaned = self._keys.get(name)
        if cleaned is None:  # keys repeat (every frame has `filename`, `vars`...): scrubbed once per event
            cleaned = self._keys[name] = self.text(name, None)
        if cleaned == name:
            return name
        candidate, count = cleaned, 1
        while candidate in taken:
            count += 1
            candidate = f"{cleaned} ({count})"
        return candidate

    def walk(self, value: Any, key: object = None) -> Any:
        """Pass 2: `value` scrubbed (strings, mappings, lists; `AnnotatedValue` in place)."""
        if isinstance(value, dict | list) and (key in _DECODED_QUERY_KEYS or key in _RAW_QUERY_KEYS):
            return self._query_pairs(value)
        if isinstance(value, str):
            if key is not None and key not in _SOURCE_KEYS and self._sensitive(key) and value:
                return REDACTED
            return self.text(value, key)
        if isinstance(value, dict):
            sensitive = self._sensitive_header if key in _HEADER_KEYS else self._sensitive
            scrubbed: dict[Any, Any] = {}
            for name, item in value.items():
                hidden = sensitive(name) and item not in (None, True, False, "") and not isinstance(item, dict)
                scrubbed[self._key(name, scrubbed)] = REDACTED if hidden else self.walk(item, name)
            return scrubbed
        if isinstance(value, list | tuple):
            if key in _SOURCE_KEYS:
                return [self.text(item, key) if isinstance(item, str) else item for item in value]
            if _is_pair(value) and self._sensitive_header(value[0]) and not isinstance(value[1], dict):
                return [value[0], REDACTED]
            return [self.walk(item, key if key in _HEADER_KEYS else None) for item in value]
        if isinstance(value, AnnotatedValue):
            value.value = self.walk(value.value, key)
        return value


def _redact_decoded_query(query: str, sensitive: Callable[[str], bool]) -> str:
    """A query the SDK already URL-decoded: a redacted value also swallows the pieces without `=` after it.

    Decoding turned a `%26` inside a value into `&`: what follows, up to the next `name=`, is
    still part of that value.
    """
    pieces: list[str] = []
    swallowing = False
    for piece in query.split("&"):
        name, separator, value = piece.partition("=")
        if separator and sensitive(name):
            pieces.append(f"{name}={REDACTED}" if value else piece)
            swallowing = bool(value)
        elif swallowing and not separator:
            continue
        else:
            swallowing = False
            pieces.append(piece)
    return "&".join(pieces)


@functools.lru_cache(maxsize=8)
def _forms_of_secrets(secrets: tuple[str, ...], extra: frozenset[str]) -> frozenset[str]:
    """What a scrubber collects from the settings' `secrets`: the same for every event until they change."""
    scrubber = Scrubber((), ())
    scrubber.extra = extra
    for secret in secrets:
        scrubber._remember(secret)
    return frozenset(scrubber.collected)


def settings_secrets(settings: BaseModel) -> Iterator[str]:
    """Every credential in `settings`: `SecretText` values, values under credential names, URL passwords.

    A plain text counts when its field holds a credential (`c2c_config.is_credential_setting`:
    `api_token`, not `token_url` or `state_cookie`); the password of any URL counts wherever it is.
    """
    for name in type(settings).model_fields:
        yield from _secrets_in(getattr(settings, name, None), name)


def _secrets_in(value: Any, name: object) -> Iterator[str]:
    if isinstance(value, BaseModel):
        yield from settings_secrets(value)
    elif isinstance(value, SecretText):
        yield value.get_secret_value()
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _secrets_in(item, key)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secrets_in(item, name)
    elif isinstance(value, str):
        if is_credential_setting(str(name)):
            yield value
        yield from (match["password"] for match in _URL_PASSWORD.finditer(value))
