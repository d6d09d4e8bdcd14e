"""Sentry set-up from `config.settings.sentry` (`C2C__SENTRY__...`), in one call.

```python
from c2casgiutils import sentry
sentry.init()   # does nothing (returns False) when neither C2C__SENTRY__DSN nor SENTRY_DSN is set
```

Fixes over the copy-pasted snippet of c2casgiutils 0.14: `event_scrubber` is a list of extra field
names to scrub (a string used to break every capture), tags from `C2C__SENTRY__TAG_<NAME>` are
set, and probe and metrics routes are never traced.

The values of the `secret`, `code` and `state` query parameters never leave the process:
`scrub_event` redacts them (as `[REDACTED]`) in every URL, query string, breadcrumb, message and
extra of an event, and `init` installs it as `before_send` and `before_send_transaction`, before
the application's own hooks (`init(before_send=...)`), which get the scrubbed event.

Events and transactions captured while a request is handled (or a broadcast handler runs for one)
get the `request_id` tag (`tag_request_id`): the same id as the log lines (c2c-headers'
`RequestIdMiddleware` and `RequestIdFilter`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

import sentry_sdk
from sentry_sdk._types import AnnotatedValue  # the SDK wraps trimmed request data in it
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

from c2c_headers.request_id import current_request_id
from c2casgiutils._settings import SentrySettings
from c2casgiutils.logging_filters import REDACTED, REDACTED_PARAMETERS, redact_query, redact_text

LOG = logging.getLogger(__name__)

# Paths (relative to the application root) that are polled by machines and never worth a trace.
UNTRACED_PATH_PARTS = ("/health_checks", "/health", "/metrics", "/c2c/health")

__all__ = ["REQUEST_ID_TAG", "UNTRACED_PATH_PARTS", "EventHook", "init", "scrub_event", "sdk_options", "tag_request_id"]

REQUEST_ID_TAG = "request_id"
"""The tag holding the request id (`tag_request_id`)."""

EventHook = Callable[[dict[str, Any], dict[str, Any]], "dict[str, Any] | None"]
"""The signature of `sentry_sdk.init`'s `before_send` and `before_send_transaction`."""

# Keys whose string value is a query string: the SDK's request (decoded), httpx/stdlib breadcrumbs (raw).
_DECODED_QUERY_KEYS = frozenset({"query_string"})
_RAW_QUERY_KEYS = frozenset({"http.query", "query"})


def _plain_name(name: str) -> str:
    """A parameter name as compared: decoded, case-folded, without the `b'` of a bytes repr (local variables)."""
    plain = unquote_plus(name, errors="replace").strip()
    return plain.removeprefix("b'").removeprefix('b"').lstrip("'\"").casefold()


def _redact_decoded_query(query: str) -> str:
    """A query the SDK already URL-decoded: a redacted value also swallows the pieces without `=` after it.

    Decoding turned a `%26` inside a value into `&`: what follows, up to the next `name=`, is
    still part of that value.
    """
    pieces: list[str] = []
    swallowing = False
    for piece in query.split("&"):
        name, separator, value = piece.partition("=")
        if separator and _plain_name(name) in REDACTED_PARAMETERS:
            pieces.append(f"{name}={REDACTED}" if value else piece)
            swallowing = bool(value)
        elif swallowing and not separator:
            continue
        else:
            swallowing = False
            pieces.append(piece)
    return "&".join(pieces)


def _configured_secrets() -> tuple[str, ...]:
    """The shared secret (`C2C__AUTH__SECRET`) as it may appear: plain and URL-encoded; none when unset or tiny."""
    try:
        from c2casgiutils import config  # settings are read at call time

        secret = config.settings.auth.secret
        value = secret.get_secret_value() if secret is not None else ""
    except Exception:  # an event is never lost because the settings cannot be read now
        return ()
    if len(value) < 6:  # replacing a very short value everywhere would garble the event, and protect nothing
        return ()
    return tuple(sorted({value, quote(value, safe=""), quote_plus(value)}, key=len, reverse=True))


class _Scrubber:
    """Walks an event: query values redacted, and the configured secret wherever it appears."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = secrets

    def text(self, value: str, key: object) -> str:
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        if key in _DECODED_QUERY_KEYS:
            return _redact_decoded_query(value)
        if key in _RAW_QUERY_KEYS:
            return redact_query(value)
        value = redact_text(value)
        if "=" in value and any(f"{name}=" in value.casefold() for name in REDACTED_PARAMETERS):
            value = _redact_decoded_query(value)  # a bare query (`secret=...&a=1`) in a variable or extra
        return value

    def pairs(self, value: dict[Any, Any] | list[Any]) -> Any:
        """A query as a mapping or a list of pairs: the values of the redacted names replaced."""
        if isinstance(value, dict):
            return {
                name: REDACTED if _plain_name(str(name)) in REDACTED_PARAMETERS else self.walk(item)
                for name, item in value.items()
            }
        return [
            [pair[0], REDACTED]
            if isinstance(pair, list | tuple) and len(pair) == 2 and _plain_name(str(pair[0])) in REDACTED_PARAMETERS
            else self.walk(pair)
            for pair in value
        ]

    def walk(self, value: Any, key: object = None) -> Any:
        if isinstance(value, str):
            return self.text(value, key)
        if isinstance(value, dict | list) and (key in _DECODED_QUERY_KEYS or key in _RAW_QUERY_KEYS):
            return self.pairs(value)
        if isinstance(value, dict):
            return {name: self.walk(item, name) for name, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.walk(item) for item in value]
        if isinstance(value, AnnotatedValue):
            value.value = self.walk(value.value, key)
        return value


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """`event` with the `secret`, `code` and `state` query values redacted everywhere (a `before_send` hook).

    Covered: the request URL, query string and headers (a `Referer`), breadcrumbs (their message,
    URL and `http.query`), log messages and their parameters, exception values, extras, contexts
    and local variables: every string holding `?...name=value` or a bare `name=value&...` query,
    and the query fields themselves. The SDK stores the request's query string URL-decoded, so a
    value that contained an encoded `&` would be cut there: the pieces without `=` that follow a
    redacted value are dropped with it, and the configured shared secret (`C2C__AUTH__SECRET`, at
    least 6 characters) is replaced wherever it appears, whatever surrounds it.
    """
    del hint
    scrubbed: dict[str, Any] = _Scrubber(_configured_secrets()).walk(event)
    return scrubbed


def tag_request_id(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """`event` with the `request_id` tag: the id of the request being handled (a `before_send` hook).

    The id is c2c-headers' `current_request_id()` (set by `RequestIdMiddleware`, and around a
    broadcast handler by the request id carrier); nothing is added outside a request, and a
    `request_id` tag already set (`sentry_sdk.set_tag`) is kept.
    """
    del hint
    request_id = current_request_id()
    if request_id is None:
        return event
    tags = event.get("tags")
    if tags is None:
        event["tags"] = tags = {}
    if isinstance(tags, dict):
        tags.setdefault(REQUEST_ID_TAG, request_id)
    return event


def _chained(user_hook: EventHook | None) -> EventHook:
    def hook(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        scrubbed = scrub_event(tag_request_id(event, hint), hint)
        return scrubbed if user_hook is None else user_hook(scrubbed, hint)

    return hook


def _traces_sampler(rate: float, untraced: Iterable[str]) -> Any:
    parts = tuple(untraced)

    def sampler(context: dict[str, Any]) -> float:
        scope = context.get("asgi_scope") or {}
        path = str(scope.get("path", "")) if isinstance(scope, dict) else ""
        if path and any(part in path for part in parts):
            return 0.0
        parent = context.get("parent_sampled")
        if parent is not None:
            return 1.0 if parent else 0.0
        return rate

    return sampler


def sdk_options(
    settings: SentrySettings,
    untraced: Iterable[str] = UNTRACED_PATH_PARTS,
    *,
    before_send: EventHook | None = None,
    before_send_transaction: EventHook | None = None,
) -> dict[str, Any]:
    """The keyword arguments for `sentry_sdk.init` built from `settings` (tags excluded).

    `before_send` and `before_send_transaction` are `tag_request_id` and `scrub_event`, followed by
    the given hooks.
    """
    options: dict[str, Any] = {
        "before_send": _chained(before_send),
        "before_send_transaction": _chained(before_send_transaction),
    }
    for name, value in settings.model_dump().items():
        if value is None or name in ("event_scrubber", "traces_sample_rate"):
            continue
        options[name] = value
    if settings.event_scrubber:
        extra = [item.strip().lower() for item in settings.event_scrubber.split(",") if item.strip()]
        options["event_scrubber"] = EventScrubber(denylist=[*DEFAULT_DENYLIST, *extra])
    if settings.traces_sample_rate is not None:
        options["traces_sampler"] = _traces_sampler(settings.traces_sample_rate, untraced)
    return options


def init(
    settings: SentrySettings | None = None,
    untraced: Iterable[str] = UNTRACED_PATH_PARTS,
    *,
    before_send: EventHook | None = None,
    before_send_transaction: EventHook | None = None,
) -> bool:
    """Initialise Sentry when a DSN is configured (`C2C__SENTRY__DSN`, else `SENTRY_DSN`); return whether it did.

    Events and transactions go through `tag_request_id` and `scrub_event`, then through `before_send` /
    `before_send_transaction` when given.
    """
    if settings is None:
        from c2casgiutils import config  # settings are read at call time

        settings = config.settings.sentry
    if not settings.dsn and not os.environ.get("SENTRY_DSN"):
        return False
    options = sdk_options(settings, untraced, before_send=before_send, before_send_transaction=before_send_transaction)
    sentry_sdk.init(**options)
    for tag, value in settings.tags.items():
        sentry_sdk.set_tag(tag, value)
    LOG.info("Sentry is enabled (environment %s)", settings.environment)
    return True
