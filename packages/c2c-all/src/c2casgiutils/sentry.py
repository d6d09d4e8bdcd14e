"""Sentry set-up from `config.settings.sentry` (`C2C__SENTRY__...`), in one call.

```python
from c2casgiutils import sentry
sentry.init()   # does nothing (returns False) when neither C2C__SENTRY__DSN nor SENTRY_DSN is set
```

Fixes over the copy-pasted snippet of c2casgiutils 0.14: `event_scrubber` is a list of extra field
names to scrub (a string used to break every capture), tags from `C2C__SENTRY__TAG_<NAME>` are
set, and probe and metrics routes are never traced.

Credentials never leave the process: `scrub_event` redacts them (as `[REDACTED]`) everywhere in
an event, local variables included (the `secret`, `code` and `state` query values, credential-named
keys, headers and parameters, tokens, URL passwords, and the application's configured secrets
wherever they appear; see its docstring), and `init` installs it as `before_send` and
`before_send_transaction`, before the application's own hooks (`init(before_send=...)`), which get
the scrubbed event.

Events and transactions captured while a request is handled (or a broadcast handler runs for one)
get the `request_id` tag (`tag_request_id`): the same id as the log lines (c2c-headers'
`RequestIdMiddleware` and `RequestIdFilter`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import sentry_sdk
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

from c2c_headers.request_id import current_request_id
from c2casgiutils._scrub import Scrubber, settings_secrets
from c2casgiutils._settings import SentrySettings

LOG = logging.getLogger(__name__)

# Paths (relative to the application root) that are polled by machines and never worth a trace.
UNTRACED_PATH_PARTS = ("/health_checks", "/health", "/metrics", "/c2c/health")

__all__ = ["REQUEST_ID_TAG", "UNTRACED_PATH_PARTS", "EventHook", "init", "scrub_event", "sdk_options", "tag_request_id"]

REQUEST_ID_TAG = "request_id"
"""The tag holding the request id (`tag_request_id`)."""

EventHook = Callable[[dict[str, Any], dict[str, Any]], "dict[str, Any] | None"]
"""The signature of `sentry_sdk.init`'s `before_send` and `before_send_transaction`."""


def _configured_secrets() -> tuple[str, ...]:
    """Every secret of the application's settings (`SecretText` fields, the Redis password...); none unreadable."""
    try:
        from c2casgiutils import config  # settings are read at call time

        return tuple(settings_secrets(config.settings))
    except Exception:  # an event is never lost because the settings cannot be read now
        return ()


_UNSCRUBBED = "[REDACTED: the event could not be scrubbed]"
_SAFE_EVENT_KEYS = ("event_id", "timestamp", "level", "platform", "environment", "release", "dist", "logger", "tags")
_SAFE_FRAME_KEYS = ("filename", "abs_path", "function", "module", "lineno", "in_app")


def _bare(event: dict[str, Any]) -> dict[str, Any]:
    """What is safe to send of an event the scrubber failed on: no value, message or variable, only where."""
    bare: dict[str, Any] = {name: event[name] for name in _SAFE_EVENT_KEYS if name in event}
    exception = event.get("exception")
    values = exception.get("values") if isinstance(exception, dict) else None
    if isinstance(values, list):
        bare["exception"] = {"values": [_bare_exception(value) for value in values if isinstance(value, dict)]}
    if "message" in event or "logentry" in event:
        bare["message"] = _UNSCRUBBED
    return bare


def _bare_exception(value: dict[str, Any]) -> dict[str, Any]:
    frames = (value.get("stacktrace") or {}).get("frames") if isinstance(value.get("stacktrace"), dict) else None
    bare: dict[str, Any] = {"type": str(value.get("type", "")), "value": _UNSCRUBBED}
    if isinstance(frames, list):
        bare["stacktrace"] = {
            "frames": [
                {name: frame[name] for name in _SAFE_FRAME_KEYS if name in frame}
                for frame in frames
                if isinstance(frame, dict)
            ]
        }
    return bare


def _scrub(event: dict[str, Any], extra_names: Iterable[str] = ()) -> dict[str, Any]:
    try:
        scrubber = Scrubber(_configured_secrets(), extra_names)
        scrubber.collect(event)
        scrubbed: dict[str, Any] = scrubber.walk(event)
    except Exception as error:  # never lost (the SDK drops an event whose hook raises), never sent raw
        LOG.warning("Sentry: an event could not be scrubbed (%s); sending only where it happened", type(error).__name__)
        return _bare(event)
    return scrubbed


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """`event` without the credentials it carries (a `before_send` hook).

    Covered, in every part of the event (the request, breadcrumbs, log messages and their
    parameters, exception values, extras, contexts, and the local variables of every frame, at any
    depth):

    - the values of the `secret`, `code` and `state` query parameters, and of every parameter with
      a credential name (`c2c_config.is_credential_name`), in URLs, query strings and bare
      `name=value&...` strings; the SDK stores the request's query string URL-decoded, so the
      pieces without `=` that follow a redacted value are dropped with it;
    - the values under credential-named keys and variables (`c2casgiutils._scrub.is_credential_name`:
      `password`, `clientSecret`, `refreshtoken`, `Authorization`, `cookie`, `session`, the SDK's
      default denylist, the names of `C2C__SENTRY__EVENT_SCRUBBER`) and of credential-named
      headers (an ASGI scope's `(b'cookie', b'...')` pairs; also by c2c-config's rule: `X-Key`);
    - `Bearer`/`Basic`/`Token` credentials, JWTs, GitHub tokens, URL passwords and long user-infos,
      and credential-named values in text (`name=value`, `name: value`, `'name': 'value'`);
    - each value found so, and every secret of the application's settings (`SecretText` fields
      such as `C2C__AUTH__SECRET`, the JWT and broadcast secrets, the GitHub client secret; the
      Redis password), replaced wherever else it appears (at least 6 characters), in its escaped
      forms too (`str`/`bytes` repr, JSON, URL encoding).

    Source lines are redacted like any text. Local variables stay on
    (`C2C__SENTRY__INCLUDE_LOCAL_VARIABLES`, as in 0.14): they are scrubbed, not dropped. Should the
    scrubbing fail, the event keeps only its exception types and frame locations (never sent raw:
    the SDK would drop an event whose hook raises).
    """
    del hint
    return _scrub(event)


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


def _chained(user_hook: EventHook | None, extra_names: Iterable[str] = ()) -> EventHook:
    names = tuple(extra_names)

    def hook(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        scrubbed = _scrub(tag_request_id(event, hint), names)
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
    extra = [item.strip().lower() for item in (settings.event_scrubber or "").split(",") if item.strip()]
    options: dict[str, Any] = {
        "before_send": _chained(before_send, extra),
        "before_send_transaction": _chained(before_send_transaction, extra),
    }
    for name, value in settings.model_dump().items():
        if value is None or name in ("event_scrubber", "traces_sample_rate"):
            continue
        options[name] = value
    if extra:
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
