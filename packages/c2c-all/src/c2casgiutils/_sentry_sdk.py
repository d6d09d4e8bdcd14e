"""What differs between sentry-sdk 2.x and 3.x, for `SentrySettings.model_dump()` and `c2casgiutils.sentry`.

sentry-sdk 3 sends spans, never transactions (`before_send_span`, no `before_send_transaction`),
and replaced `send_default_pii`, `include_source_context`, `include_local_variables` and
`event_scrubber` with one `data_collection` option. This module reads the installed SDK's options
(`sentry_sdk.consts.DEFAULT_OPTIONS`, in both majors) and imports nothing of the settings.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol, cast

import sentry_sdk
from sentry_sdk.consts import DEFAULT_OPTIONS

from c2c_config import parse_string_list

LOG = logging.getLogger("c2casgiutils.sentry")

SDK_OPTIONS = frozenset(DEFAULT_OPTIONS)
"""The keyword arguments the installed sentry-sdk's `init` accepts."""

SPANS_ONLY = "before_send_transaction" not in SDK_OPTIONS
"""Whether the installed sentry-sdk (3.x) sends spans, never transactions: `before_send_span`, not
`before_send_transaction`, and `data_collection` instead of `send_default_pii`."""

DATA_COLLECTION_FIELDS = ("send_default_pii", "include_source_context", "include_local_variables", "event_scrubber")
"""The 2.x options that sentry-sdk 3's `data_collection` stands for."""

# Header-name fragments of the client's address (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`...).
_ADDRESS_HEADER_TERMS = ("forwarded", "real-ip", "client-ip", "remote-addr")


class SentryFields(Protocol):
    """The settings' fields read here (`SentrySettings`)."""

    send_default_pii: bool | None
    include_source_context: bool
    include_local_variables: bool
    event_scrubber: str | None


def extra_scrubbed_names(settings: SentryFields) -> list[str]:
    """The names of `C2C__SENTRY__EVENT_SCRUBBER` (a comma list or a JSON array, as every list setting), lower-cased."""
    return [item.lower() for item in parse_string_list(settings.event_scrubber) if item]


def data_collection(settings: SentryFields) -> dict[str, Any]:
    """sentry-sdk 3's `data_collection` for the 2.x options of the settings (`send_default_pii`...).

    Without `send_default_pii`, as with 2.x: no user identity or client address, no cookies, and
    the headers that carry the client's address are filtered. The names of
    `C2C__SENTRY__EVENT_SCRUBBER` are added to the SDK's own sensitive terms (cookies, headers,
    query parameters, local variables). `include_local_variables` and `include_source_context`
    become `stack_frame_variables` and `frame_context_lines`.
    """
    extra = extra_scrubbed_names(settings)
    pii = bool(settings.send_default_pii)
    key_values: dict[str, Any] = {"mode": "denylist", "terms": extra}
    return {
        "user_info": pii,
        "cookies": key_values if pii else {"mode": "off"},
        "http_headers": {"request": {"mode": "denylist", "terms": extra if pii else [*extra, *_ADDRESS_HEADER_TERMS]}},
        "url_query_params": key_values,
        "stack_frame_variables": key_values if settings.include_local_variables else False,
        "frame_context_lines": bool(settings.include_source_context),
    }


def adapt_dump(settings: SentryFields, data: dict[str, Any]) -> dict[str, Any]:
    """`data` (the settings' fields) as keyword arguments the installed sentry-sdk's `init` accepts.

    What `SentrySettings.model_dump()` returns (python mode), so that the c2casgiutils README's
    `sentry_sdk.init(**config.settings.sentry.model_dump())` works on sentry-sdk 2.x and 3.x:

    - on sentry-sdk 3, `send_default_pii`, `include_source_context`, `include_local_variables`
      and `event_scrubber` become one `data_collection` (`data_collection`); with names in
      `event_scrubber`, `before_send` is the scrubbing of `c2casgiutils.sentry.init` (2.x's
      event scrubber hid those names in every part of an event, 3.x's terms do not);
    - on sentry-sdk 2.x, `event_scrubber` is an `EventScrubber` (the SDK's default denylist and
      the names of the setting), not the setting's text, which made every capture fail;
    - a field the installed SDK does not know is left out, with a warning.
    """
    adapted = dict(data)
    if SPANS_ONLY:
        replaced = [name for name in DATA_COLLECTION_FIELDS if name in adapted]
        for name in replaced:
            del adapted[name]
        if replaced:
            adapted["data_collection"] = data_collection(settings)
        if extra_scrubbed_names(settings) and "event_scrubber" in replaced:
            # 2.x's event scrubber hid the named fields anywhere in an event (extras, contexts...);
            # 3.x's terms cover only the request and the variables: the scrubbing of `sentry.init`.
            sentry = cast("Any", importlib.import_module("c2casgiutils.sentry"))  # it imports the settings
            adapted["before_send"] = sentry.scrubbing_hook(extra_scrubbed_names(settings))
    elif "event_scrubber" in adapted:
        extra = extra_scrubbed_names(settings)
        adapted["event_scrubber"] = None
        if extra:
            from sentry_sdk.scrubber import (  # type: ignore[import-not-found,unused-ignore]  # sentry-sdk 2.x only
                DEFAULT_DENYLIST,
                EventScrubber,
            )

            adapted["event_scrubber"] = EventScrubber(denylist=[*DEFAULT_DENYLIST, *extra])
    for name in [name for name in adapted if name not in SDK_OPTIONS]:
        LOG.warning("C2C__SENTRY__%s is ignored: sentry-sdk %s has no such option", name.upper(), sentry_sdk.VERSION)
        del adapted[name]
    return adapted
