"""Credentials out of the access logs: `RedactSecretsFilter` and `install_access_log_filters`.

The shared secret may come as the `secret` query parameter (`C2C__AUTH__SECRET_IN_QUERY`, on by
default for compatibility), and the GitHub OAuth callback carries `code` and `state` in its query.
An ASGI server's access log writes the request target, query included, so those values would land
in the logs, as would any other credential a client puts in a query (`?token=`, `?password=`,
`?api_key=`: every name `c2c_config.is_credential_name` accepts). `RedactSecretsFilter` rewrites
them as `secret=[REDACTED]`:

- uvicorn (`uvicorn.access`): the record's arguments are `(client, method, path_with_query,
  http_version, status)`; every string argument is redacted;
- granian (`granian.access`): the record's argument is a mapping (`path`, `query_string`, headers
  named in the format...); `query_string` is redacted as a query, every other string as text;
- any other record: the message and its string arguments, wherever a `?query` appears.

`c2casgiutils.startup()` calls `install_access_log_filters()`, which puts one filter on the
`uvicorn.access` and `granian.access` loggers and on each of their handlers (idempotent: calling
it again adds nothing). Covered: every record logged on those loggers (the logger's filter runs
before any handler, Sentry's breadcrumbs included) and every record reaching their handlers,
also propagated from child loggers (a logger's own filters do not see those). Not covered: a
handler added to them after `startup()`, and records of other loggers that propagate to the root
handlers. A logging configuration loaded before the application (uvicorn's `--log-config`)
should name the filter itself, as the scaffold's `logging.yaml` does:

```yaml
filters:
  redact_secrets:
    (): c2casgiutils.logging_filters.RedactSecretsFilter
loggers:
  uvicorn.access:
    filters: [redact_secrets]
```

`redact_query` and `redact_text` are the functions the filter (and `c2casgiutils.sentry`, for
events) uses: names are compared after URL decoding, case-insensitively.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from c2c_config import is_credential_name

__all__ = [
    "ACCESS_LOGGERS",
    "REDACTED",
    "REDACTED_PARAMETERS",
    "RedactSecretsFilter",
    "install_access_log_filters",
    "redact_query",
    "redact_text",
]

REDACTED = "[REDACTED]"
"""What replaces a redacted value."""

REDACTED_PARAMETERS = frozenset({"secret", "code", "state"})
"""The query parameters whose values are always redacted: the shared secret, the OAuth code and state.

By default (no `parameters` given) every parameter with a credential name is redacted too
(`c2c_config.is_credential_name`: `token`, `password`, `client_secret`, `api_key`...)."""

ACCESS_LOGGERS = ("uvicorn.access", "granian.access")
"""The access loggers `install_access_log_filters` equips by default."""

# A query in free text: from `?` to the end of the URL (white space, quotes, angle brackets, fragment).
_QUERY_IN_TEXT = re.compile(r"\?([^\s\"'<>#]*)")


def _is_redacted_by_default(name: str) -> bool:
    return name.casefold() in REDACTED_PARAMETERS or is_credential_name(name)


def _matcher(parameters: Iterable[str] | Callable[[str], bool] | None) -> Callable[[str], bool]:
    """Whether a (decoded) parameter name is redacted: `parameters` (names, case-insensitive, or a
    predicate), else the default."""
    if parameters is None:
        return _is_redacted_by_default
    if callable(parameters):
        return parameters
    names = frozenset(name.casefold() for name in parameters)
    return lambda name: name.casefold() in names


def redact_query(query: str, parameters: Iterable[str] | Callable[[str], bool] | None = None) -> str:
    """`query` (`a=1&secret=x`, no `?`) with the values of `parameters` redacted.

    By default: `REDACTED_PARAMETERS` and every credential name (`c2c_config.is_credential_name`);
    `parameters` may also be a predicate on the decoded name.

    Everything else is kept byte for byte. A name matches after URL decoding (`%73ecret`,
    `Secret`), as the application reads it; an empty value is left empty.
    """
    if "=" not in query:
        return query
    redacted = _matcher(parameters)
    pieces = query.split("&")
    for index, piece in enumerate(pieces):
        name, separator, value = piece.partition("=")
        if separator and value and redacted(unquote_plus(name, errors="replace")):
            pieces[index] = f"{name}={REDACTED}"
    return "&".join(pieces)


def redact_text(text: str, parameters: Iterable[str] | None = None) -> str:
    """`text` with the query of every URL or request target in it (`...?a=1&secret=x`) redacted."""
    if "?" not in text:
        return text
    return _QUERY_IN_TEXT.sub(lambda match: "?" + redact_query(match.group(1), parameters), text)


class RedactSecretsFilter(logging.Filter):
    """A logging filter that redacts credential query values in access-log records.

    Redacted by default: `secret`, `code`, `state` and every credential name
    (`c2c_config.is_credential_name`). Never drops a record. `parameters` replaces the redacted
    names; `name` is `logging.Filter`'s.
    Use it on a logger or a handler (`logging.config` `()` factory, or `addFilter`).
    """

    def __init__(self, name: str = "", parameters: Iterable[str] | None = None) -> None:
        super().__init__(name)
        self.parameters: frozenset[str] | None = (
            None if parameters is None else frozenset(item.casefold() for item in parameters)
        )

    def _value(self, value: Any, key: object = None) -> Any:
        if not isinstance(value, str):
            return value
        if key == "query_string":
            return redact_query(value, self.parameters)
        return redact_text(value, self.parameters)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place (its message and arguments); always keep it."""
        if not super().filter(record):
            return True  # another logger's record: left alone, never dropped
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg, self.parameters)
        args = record.args
        if isinstance(args, Mapping):
            record.args = {key: self._value(value, key) for key, value in args.items()}
        elif isinstance(args, tuple):
            record.args = tuple(self._value(value) for value in args)
        if record.args and "?" in str(record.msg):
            self._collapse(record)
        return True

    def _collapse(self, record: logging.LogRecord) -> None:
        """A query split between the format and the arguments (`"?%s"`): redact the formatted message."""
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the handler's to report, not ours
            return
        redacted = redact_text(message, self.parameters)
        if redacted != message:
            record.msg, record.args = redacted, None


def _equip(filterer: logging.Filterer) -> bool:
    if any(isinstance(existing, RedactSecretsFilter) for existing in filterer.filters):
        return False
    filterer.addFilter(RedactSecretsFilter())
    return True


def install_access_log_filters(loggers: Iterable[str] = ACCESS_LOGGERS) -> int:
    """Put a `RedactSecretsFilter` on each named logger and each of its handlers; return how many were added.

    Idempotent: a logger or handler that has one already is left alone. See the module docstring
    for what is covered.
    """
    added = 0
    for name in loggers:
        logger = logging.getLogger(name)
        added += _equip(logger)
        for handler in logger.handlers:
            added += _equip(handler)
    return added
