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
wherever they appear; see its docstring), and `init` installs it as `before_send`,
`before_send_transaction` (sentry-sdk 2.x), `before_send_span` and `before_send_log`, before the
application's own hooks (`init(before_send=...)`), which get the scrubbed event.

Events and transactions captured while a request is handled (or a broadcast handler runs for one)
get the `request_id` tag (`tag_request_id`), spans and Sentry logs a `request_id` attribute: the
same id as the log lines (c2c-headers' `RequestIdMiddleware` and `RequestIdFilter`).

sentry-sdk 2.20 to 3.x: on 3.x (`SPANS_ONLY`), the settings' `send_default_pii`,
`include_source_context`, `include_local_variables` and `event_scrubber` become one
`data_collection` with 2.x's privacy defaults, and the logging integration is enabled as 2.x had
it (ERROR records are events).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import sentry_sdk

from c2c_headers.request_id import current_request_id
from c2casgiutils._scrub import Scrubber, settings_secrets
from c2casgiutils._sentry_sdk import SDK_OPTIONS as _SDK_OPTIONS
from c2casgiutils._sentry_sdk import SPANS_ONLY, extra_scrubbed_names
from c2casgiutils._settings import SentrySettings

LOG = logging.getLogger(__name__)

# Paths (relative to the application root) that are polled by machines and never worth a trace.
UNTRACED_PATH_PARTS = ("/health_checks", "/health", "/metrics", "/c2c/health")

__all__ = [
    "REQUEST_ID_TAG",
    "SPANS_ONLY",
    "UNTRACED_PATH_PARTS",
    "EventHook",
    "init",
    "scrub_event",
    "scrubbing_hook",
    "sdk_options",
    "tag_request_id",
]

REQUEST_ID_TAG = "request_id"
"""The tag holding the request id (`tag_request_id`)."""

EventHook = Callable[[dict[str, Any], dict[str, Any]], "dict[str, Any] | None"]
"""The signature of `sentry_sdk.init`'s `before_send`, `before_send_transaction`, `before_send_span` and
`before_send_log` (an event, a span or a log as a dict, and a hint)."""


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


def _scrub(
    event: dict[str, Any],
    extra_names: Iterable[str] = (),
    kind: str = "an event",
    fallback: Callable[[dict[str, Any]], dict[str, Any]] = _bare,
    hint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`event` scrubbed; should that fail, `fallback(event)`: what of it is safe to send. With the
    hook's `hint`, the credential-named locals of the exception's frames are collected too."""
    try:
        scrubber = Scrubber(_configured_secrets(), extra_names)
        scrubber.collect_locals(_hinted_exception(hint))
        scrubber.collect(event)
        scrubbed: dict[str, Any] = scrubber.walk(event)
    except Exception as error:  # never lost (the SDK drops an event whose hook raises), never sent raw
        LOG.warning("Sentry: %s could not be scrubbed (%s); sending what is safe of it", kind, type(error).__name__)
        return fallback(event)
    return scrubbed


def _hinted_exception(hint: dict[str, Any] | None) -> BaseException | None:
    exc_info = (hint or {}).get("exc_info")
    if isinstance(exc_info, tuple) and len(exc_info) >= 2 and isinstance(exc_info[1], BaseException):
        return exc_info[1]
    return None


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """`event` without the credentials it carries (a `before_send` hook).

    Covered, in every part of the event (the request, breadcrumbs, log messages and their
    parameters, exception values, extras, contexts, and the local variables of every frame, at any
    depth):

    - the values of the `secret`, `code` and `state` query parameters, and of every parameter with
      a credential name (`c2c_config.is_credential_name`), in URLs, query strings and bare
      `name=value&...` strings; the SDK stores the request's query string URL-decoded, so the
      pieces without `=` that follow a redacted value are dropped with it;
    - the values under credential-named keys and variables (`c2c_config.is_credential_name(name,
      variable=True)`: `password`, `clientSecret`, `refreshtoken`, `Authorization`, `cookie`,
      `session`, `PHPSESSID`, `ticket`; and `X-Forwarded-For`, the names of
      `C2C__SENTRY__EVENT_SCRUBBER`) and of credential-named headers (an ASGI scope's
      `(b'cookie', b'...')` pairs, by c2c-config's full rule: `X-Key`);
    - `Bearer`/`Basic`/`Token` credentials (and a `Basic` one's decoded password), JWTs, GitHub
      tokens, URL passwords and long user-infos,
      and credential-named values in text (`name=value`, `name: value`, `'name': 'value'`);
    - each value found so, and every secret of the application's settings (`SecretText` fields
      such as `C2C__AUTH__SECRET`, the JWT and broadcast secrets, the GitHub client secret; the
      Redis password), replaced wherever else it appears (at least 6 characters), in its escaped
      forms too (`str`/`bytes` repr, JSON, URL encoding).

    Source lines are redacted like any text. Local variables stay on
    (`C2C__SENTRY__INCLUDE_LOCAL_VARIABLES`, as in 0.14): they are scrubbed, not dropped. Should the
    scrubbing fail, the event keeps only its exception types and frame locations (never sent raw:
    the SDK would drop an event whose hook raises).

    With the hook's `hint`, the values of the credential-named local variables of the exception's
    frames are collected from the frames themselves: the SDK's own scrubber has already replaced
    them in the event, and the same value may stand under another name in another frame.
    """
    return _scrub(event, hint=hint)


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


def _deliberate_unavailability(hint: dict[str, Any] | None) -> bool:
    """Whether the event is a 503 the toolkit answered on purpose (`c2c_auth.TemporarilyUnavailable`:
    Redis or GitHub down, a cap reached), already logged at WARNING: no error event for each request."""
    exc_info = (hint or {}).get("exc_info")
    if not isinstance(exc_info, tuple) or len(exc_info) < 2:
        return False
    from c2c_auth import TemporarilyUnavailable

    return isinstance(exc_info[1], TemporarilyUnavailable)


def _chained(user_hook: EventHook | None, extra_names: Iterable[str] = ()) -> EventHook:
    names = tuple(extra_names)

    def hook(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        if _deliberate_unavailability(hint):
            return None
        scrubbed = _scrub(tag_request_id(event, hint), names, hint=hint)
        return scrubbed if user_hook is None else user_hook(scrubbed, hint)

    return hook


def scrubbing_hook(extra_names: Iterable[str] = ()) -> EventHook:
    """A `before_send` hook: the request id tag and the scrubbing of `scrub_event`, `extra_names` hidden too."""
    return _chained(None, extra_names)


def _with_request_id_attribute(item: dict[str, Any]) -> dict[str, Any]:
    request_id = current_request_id()
    attributes = item.get("attributes")
    if request_id is not None and isinstance(attributes, dict):
        attributes.setdefault(REQUEST_ID_TAG, request_id)
    return item


def _chained_attributes(user_hook: EventHook | None, extra_names: Iterable[str], kind: str) -> EventHook:
    """The hook for a Sentry log or a streamed span: the `request_id` attribute, scrubbed, then `user_hook`."""
    names = tuple(extra_names)

    def without_text(item: dict[str, Any]) -> dict[str, Any]:
        """A span cannot be dropped, a log is kept: without its text."""
        bare = {name: item[name] for name in _SAFE_TELEMETRY_KEYS if name in item}
        bare["attributes"] = {}
        bare["name" if kind == "span" else "body"] = _UNSCRUBBED
        return bare

    def hook(item: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        scrubbed = _scrub(_with_request_id_attribute(item), names, f"a {kind}", without_text)
        return scrubbed if user_hook is None else user_hook(scrubbed, hint)

    return hook


_SAFE_TELEMETRY_KEYS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "timestamp",
    "start_timestamp",
    "end_timestamp",
    "status",
    "is_segment",
    "level",
    "severity_text",
    "severity_number",
)


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


def _with_error_log_events(integrations: Iterable[Any], options: dict[str, Any]) -> list[Any]:
    """`integrations`, and on sentry-sdk 3 the logging one as 2.x had it by default (unless given or disabled).

    sentry-sdk 3 no longer enables its logging integration by default: a record logged at ERROR
    (a failed health check's traceback, an unhandled error logged by a framework) would no longer
    be an event. As in 2.x: records at ERROR and above are events, those at INFO and above are
    breadcrumbs, none is sent as a Sentry log (pass your own `LoggingIntegration` for that).
    """
    given = list(integrations)
    disabled = options.get("disabled_integrations") or ()
    names = {getattr(item, "identifier", None) for item in [*given, *disabled]}
    if "logging" in names:
        return given
    from sentry_sdk.integrations.logging import LoggingIntegration  # the SDK's own module, 2.x and 3.x

    levels: dict[str, Any] = {"level": None, "event_level": logging.ERROR, "breadcrumb_level": logging.INFO}  # 3.x's
    return [*given, LoggingIntegration(**levels)]


def _check_options(options: dict[str, Any], hooks: dict[str, EventHook | None]) -> None:
    if SPANS_ONLY and hooks["before_send_transaction"] is not None:
        raise TypeError(
            f"sentry-sdk {sentry_sdk.VERSION} sends spans, not transactions: "
            "give before_send_span instead of before_send_transaction"
        )
    unknown = sorted(
        [name for name in options if name not in _SDK_OPTIONS]
        + [name for name, hook in hooks.items() if hook is not None and name not in _SDK_OPTIONS]
    )
    if unknown:
        raise TypeError(f"sentry-sdk {sentry_sdk.VERSION} has no option {', '.join(map(repr, unknown))}")


def _hooks(hooks: dict[str, EventHook | None], extra: list[str], *, stream: bool) -> dict[str, EventHook]:
    """The request id and the scrubbing before each of the application's hooks the SDK has."""
    built = {"before_send": _chained(hooks["before_send"], extra)}
    if not SPANS_ONLY:
        built["before_send_transaction"] = _chained(hooks["before_send_transaction"], extra)
    if "before_send_log" in _SDK_OPTIONS:
        built["before_send_log"] = _chained_attributes(hooks["before_send_log"], extra, "log")
    span_hook = hooks["before_send_span"]
    if "before_send_span" in _SDK_OPTIONS and (SPANS_ONLY or stream):
        built["before_send_span"] = _chained_attributes(span_hook, extra, "span")
    elif span_hook is not None:
        built["before_send_span"] = span_hook  # sentry-sdk 2.x warns that it needs trace_lifecycle="stream"
    return built


def sdk_options(
    settings: SentrySettings,
    untraced: Iterable[str] = UNTRACED_PATH_PARTS,
    *,
    before_send: EventHook | None = None,
    before_send_transaction: EventHook | None = None,
    before_send_span: EventHook | None = None,
    before_send_log: EventHook | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The keyword arguments for `sentry_sdk.init` built from `settings` (tags excluded), then `options`.

    `before_send`, `before_send_transaction` (sentry-sdk 2.x), `before_send_span` (3.x, or 2.x with
    `trace_lifecycle="stream"`) and `before_send_log` are the request id (a tag, or an attribute)
    and the scrubbing of `scrub_event`, followed by the given hooks. `options` are any other
    `sentry_sdk.init` options (`integrations=[...]`, `enable_logs=True`...); on sentry-sdk 3, a
    `data_collection` given there updates the one built from the settings key by key.

    Raises:
        TypeError: `before_send_transaction` with sentry-sdk 3 (which sends spans, not
            transactions: give `before_send_span`), or an option the installed SDK does not know.
    """
    hooks = {
        "before_send": before_send,
        "before_send_transaction": before_send_transaction,
        "before_send_span": before_send_span,
        "before_send_log": before_send_log,
    }
    _check_options(options, hooks)
    extra = extra_scrubbed_names(settings)
    built = {
        **{
            name: value
            for name, value in settings.model_dump().items()  # adapted to the installed SDK (`adapt_dump`)
            if value is not None and name != "traces_sample_rate"  # a sampler instead, below
        },
        **_hooks(hooks, extra, stream=options.get("trace_lifecycle") == "stream"),
    }
    if SPANS_ONLY:
        built["data_collection"] = {**built["data_collection"], **options.pop("data_collection", {})}
        built["integrations"] = _with_error_log_events(options.pop("integrations", []), options)
    if settings.traces_sample_rate is not None:
        built["traces_sampler"] = _traces_sampler(settings.traces_sample_rate, untraced)
    built.update(options)
    return built


def init(
    settings: SentrySettings | None = None,
    untraced: Iterable[str] = UNTRACED_PATH_PARTS,
    *,
    before_send: EventHook | None = None,
    before_send_transaction: EventHook | None = None,
    before_send_span: EventHook | None = None,
    before_send_log: EventHook | None = None,
    **options: Any,
) -> bool:
    """Initialise Sentry when a DSN is given (`dsn=`, `C2C__SENTRY__DSN`, else `SENTRY_DSN`); return whether it did.

    Events, transactions (sentry-sdk 2.x), spans and Sentry logs go through the request id and the
    scrubbing of `scrub_event`, then through `before_send`, `before_send_transaction`,
    `before_send_span` or `before_send_log` when given. The 503s the toolkit answers on purpose
    (`c2c_auth.TemporarilyUnavailable`: Redis or GitHub unavailable, the bearer-token cap) send no
    error event: they are logged at WARNING, and one event per request would flood the project.
    `options` are other `sentry_sdk.init` options (see `sdk_options`, which raises `TypeError` for
    one the installed SDK does not know).
    """
    if settings is None:
        from c2casgiutils import config  # settings are read at call time

        settings = config.settings.sentry
    if not settings.dsn and not options.get("dsn") and not os.environ.get("SENTRY_DSN"):
        return False
    built = sdk_options(
        settings,
        untraced,
        before_send=before_send,
        before_send_transaction=before_send_transaction,
        before_send_span=before_send_span,
        before_send_log=before_send_log,
        **options,
    )
    sentry_sdk.init(**built)
    for tag, value in settings.tags.items():
        sentry_sdk.set_tag(tag, value)
    LOG.info("Sentry is enabled (sentry-sdk %s, environment %s)", sentry_sdk.VERSION, settings.environment)
    return True
