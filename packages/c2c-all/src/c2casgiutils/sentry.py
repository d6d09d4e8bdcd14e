"""Sentry set-up from `config.settings.sentry` (`C2C__SENTRY__...`), in one call.

```python
from c2casgiutils import sentry
sentry.init()   # does nothing (returns False) when neither C2C__SENTRY__DSN nor SENTRY_DSN is set
```

Fixes over the copy-pasted snippet of c2casgiutils 0.14: `event_scrubber` is a list of extra field
names to scrub (a string used to break every capture), tags from `C2C__SENTRY__TAG_<NAME>` are
set, and probe and metrics routes are never traced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

import sentry_sdk
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

from c2casgiutils._settings import SentrySettings

LOG = logging.getLogger(__name__)

# Paths (relative to the application root) that are polled by machines and never worth a trace.
UNTRACED_PATH_PARTS = ("/health_checks", "/health", "/metrics", "/c2c/health")

__all__ = ["UNTRACED_PATH_PARTS", "init", "sdk_options"]


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


def sdk_options(settings: SentrySettings, untraced: Iterable[str] = UNTRACED_PATH_PARTS) -> dict[str, Any]:
    """The keyword arguments for `sentry_sdk.init` built from `settings` (tags excluded)."""
    options: dict[str, Any] = {}
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


def init(settings: SentrySettings | None = None, untraced: Iterable[str] = UNTRACED_PATH_PARTS) -> bool:
    """Initialise Sentry when a DSN is configured (`C2C__SENTRY__DSN`, else `SENTRY_DSN`); return whether it did."""
    if settings is None:
        from c2casgiutils import config  # settings are read at call time

        settings = config.settings.sentry
    if not settings.dsn and not os.environ.get("SENTRY_DSN"):
        return False
    options = sdk_options(settings, untraced)
    sentry_sdk.init(**options)
    for tag, value in settings.tags.items():
        sentry_sdk.set_tag(tag, value)
    LOG.info("Sentry is enabled (environment %s)", settings.environment)
    return True
