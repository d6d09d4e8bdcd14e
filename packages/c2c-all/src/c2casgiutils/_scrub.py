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

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from pydantic import BaseModel
from sentry_sdk._types import AnnotatedValue  # the SDK wraps trimmed request data in it
from sentry_sdk.scrubber import DEFAULT_DENYLIST

from c2c_config import SecretText, redact_url
from c2c_config import is_credential_name as is_query_credential
from c2casgiutils.logging_filters import REDACTED, REDACTED_PARAMETERS, redact_text

MIN_COLLECTED = 6
"""Collected values shorter than this are redacted where they stand, but not replaced everywhere
(replacing a 3-character value in every string would garble the event and protect nothing)."""

# Keys whose string value is a query string: the SDK's request (decoded), httpx/stdlib breadcrumbs (raw).
_DECODED_QUERY_KEYS = frozenset({"query_string"})
_RAW_QUERY_KEYS = frozenset({"http.query", "query"})
# Source code: only collected values are replaced there.
_SOURCE_KEYS = frozenset({"context_line", "pre_context", "post_context"})

_CREDENTIAL_WORDS = re.compile(
    r"(?:^|_)(?:password|passwd|pwd|passphrase|secrets?|tokens?|api_?key|access_?key|private_?key|signing_?key"
    r"|encryption_?key|credentials?|authorization|auth|cookies?|session(?:_?id)?|csrf(?:_?token)?"
    r"|xsrf(?:_?token)?|jwt|sid)(?:$|_)"
)
_DENYLIST = frozenset(name.casefold().replace("-", "_").replace(".", "_") for name in DEFAULT_DENYLIST)
_BYTES_REPR = re.compile(r"""^b(?P<quote>['"])(?P<inner>.*)(?P=quote)$""", re.DOTALL)
_AUTH_SCHEME = re.compile(
    r"\b(?P<scheme>Bearer|Basic|Token|Digest|Negotiate)(?P<space>\s+)(?P<token>[A-Za-z0-9._~+/-]+=*)", re.IGNORECASE
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_NAMED_VALUE = re.compile(r"(?P<name>[A-Za-z0-9_.%-]+)=(?P<value>[^;&\s,'\"<>]+)")
_URL_PASSWORD = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^:@/?#\s]*:(?P<password>[^@/?#\s]+)@")


def _unwrapped(text: str) -> str:
    """`text` without the `b'...'` of a bytes repr (header names and values in local variables)."""
    match = _BYTES_REPR.match(text)
    return match["inner"] if match else text


def normalized_name(name: object) -> str:
    """A key, header or parameter name as compared: decoded, case-folded, `-`, `.` and spaces as `_`."""
    plain = unquote_plus(_unwrapped(str(name).strip()), errors="replace").strip()
    return plain.casefold().replace("-", "_").replace(".", "_").replace(" ", "_")


def is_credential_name(name: object, extra: frozenset[str] = frozenset()) -> bool:
    """Whether a key, variable or header called `name` holds a credential.

    Names made of words like password, secret, token, api_key, authorization, auth, cookie, session,
    csrf or jwt (`client_secret`, `X-Api-Key`, `c2c-jwt-auth`, `sentinel_password`), the Sentry SDK's
    default denylist, and `extra` (normalized names: `C2C__SENTRY__EVENT_SCRUBBER`).

    Whole words, where `c2c_config.is_credential_name` (the rule for query parameters, which the
    scrubber applies to queries) takes fragments: a local variable called `key`, `code`, `state`,
    `passed` or `author` stays readable in an event, while a query parameter so named is hidden.
    """
    normalized = normalized_name(name)
    return bool(normalized) and (
        normalized in _DENYLIST or normalized in extra or _CREDENTIAL_WORDS.search(normalized) is not None
    )


def _token_like(token: str) -> bool:
    """A credential after `Bearer`/`Basic`...: long enough, and not a plain word of prose."""
    return len(token) >= 8 and (not token.isalpha() or len(token) >= 20)


def _is_pair(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], str)


class Scrubber:
    """One event's walk: `collect` then `walk` (see the module's docstring)."""

    def __init__(self, secrets: Iterable[str] = (), extra_names: Iterable[str] = ()) -> None:
        self.extra = frozenset(normalized_name(name) for name in extra_names)
        self.collected: set[str] = set()
        for secret in secrets:
            self._remember(secret)

    # -- pass 1 ---------------------------------------------------------------------------------

    def _remember(self, value: object) -> None:
        if isinstance(value, bool) or value is None:
            return
        text = str(value)
        for form in {text, _unwrapped(text)}:
            if len(form) >= MIN_COLLECTED:
                self.collected.update({form, quote(form, safe=""), quote_plus(form)})
                self._remember_in_text(form)

    def _remember_in_text(self, text: str) -> None:
        for match in _URL_PASSWORD.finditer(text):
            password = match["password"]
            if len(password) >= MIN_COLLECTED:
                self.collected.update({password, unquote(password)})
        for match in _AUTH_SCHEME.finditer(text):
            if _token_like(match["token"]):
                self.collected.add(match["token"])
        self.collected.update(match.group(0) for match in _JWT.finditer(text))
        for match in _NAMED_VALUE.finditer(text):
            if self._sensitive(match["name"]) and len(match["value"]) >= MIN_COLLECTED:
                self.collected.add(match["value"])

    def _sensitive(self, name: object) -> bool:
        return is_credential_name(name, self.extra)

    def _in_query(self, name: object) -> bool:
        """A query parameter to redact: the access log's rule (`REDACTED_PARAMETERS`, c2c-config's rule)."""
        plain = unquote_plus(_unwrapped(str(name).strip()), errors="replace").strip()
        return plain.casefold() in REDACTED_PARAMETERS or is_query_credential(plain) or self._sensitive(name)

    def collect(self, value: Any) -> None:
        """Pass 1: remember the credentials `value` holds (see the module's docstring)."""
        if isinstance(value, AnnotatedValue):
            self.collect(value.value)
        elif isinstance(value, str):
            self._remember_in_text(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key in _SOURCE_KEYS:
                    continue
                if self._sensitive(key) and not isinstance(item, dict):
                    self._remember_all(item)
                else:
                    self.collect(item)
        elif isinstance(value, list | tuple):
            if _is_pair(value) and self._sensitive(value[0]):
                self._remember_all(value[1])
                return
            for item in value:
                self.collect(item)

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
        for value in sorted(self.collected, key=len, reverse=True):
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def _named_value(self, match: re.Match[str]) -> str:
        return f"{match['name']}={REDACTED}" if self._sensitive(match["name"]) else match.group(0)

    def _auth_scheme(self, match: re.Match[str]) -> str:
        if not _token_like(match["token"]):
            return match.group(0)
        return f"{match['scheme']}{match['space']}{REDACTED}"

    def text(self, value: str, key: object) -> str:
        """One string of the event, scrubbed (`key`: the key it stands under, if any)."""
        value = self._replace_collected(value)
        if key in _DECODED_QUERY_KEYS:
            return _redact_decoded_query(value, self._in_query)
        if key in _RAW_QUERY_KEYS:
            return _redact_raw_query(value, self._in_query)
        value = redact_url(redact_text(value))
        value = _AUTH_SCHEME.sub(self._auth_scheme, value)
        value = _JWT.sub(REDACTED, value)
        if "=" in value:
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

    def walk(self, value: Any, key: object = None) -> Any:
        """Pass 2: `value` scrubbed (strings, mappings, lists; `AnnotatedValue` in place)."""
        if isinstance(value, dict | list) and (key in _DECODED_QUERY_KEYS or key in _RAW_QUERY_KEYS):
            return self._query_pairs(value)
        if isinstance(value, str):
            if key is not None and key not in _SOURCE_KEYS and self._sensitive(key) and value:
                return REDACTED
            return self.text(value, key)
        if isinstance(value, dict):
            return {
                name: REDACTED
                if self._sensitive(name) and item not in (None, True, False, "") and not isinstance(item, dict)
                else self.walk(item, name)
                for name, item in value.items()
            }
        if isinstance(value, list | tuple):
            if key in _SOURCE_KEYS:
                return [self.text(item, key) if isinstance(item, str) else item for item in value]
            if _is_pair(value) and self._sensitive(value[0]) and not isinstance(value[1], dict):
                return [value[0], REDACTED]
            return [self.walk(item) for item in value]
        if isinstance(value, AnnotatedValue):
            value.value = self.walk(value.value, key)
        return value


def _redact_raw_query(query: str, sensitive: Callable[[str], bool]) -> str:
    """A raw query (`a=1&token=x`, names still `%`-encoded): the values of the names `sensitive` accepts redacted."""
    pieces = query.split("&")
    for index, piece in enumerate(pieces):
        name, separator, value = piece.partition("=")
        if separator and value and sensitive(name):
            pieces[index] = f"{name}={REDACTED}"
    return "&".join(pieces)


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


def settings_secrets(settings: BaseModel) -> Iterator[str]:
    """Every credential in `settings`: `SecretText` values, values under credential names, URL passwords."""
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
        if is_credential_name(name):
            yield value
        yield from (match["password"] for match in _URL_PASSWORD.finditer(value))
