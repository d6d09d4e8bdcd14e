"""JSON logs: `JsonFormatter` (one JSON object per line) and the logging configuration using it.

Each record becomes one line (newlines in a message or a traceback are escaped by JSON)::

    {"time": "2026-12-05T20:41:07.123Z", "level": "INFO", "logger": "uvicorn.access",
     "message": "127.0.0.1:5000 - \\"GET /api HTTP/1.1\\" 200", "request_id": "4f1c...",
     "exception": null}

- `time`: when the record was made, ISO 8601 in UTC, milliseconds, `Z`;
- `level`, `logger`, `message` (the formatted message);
- `request_id`: `record.request_id` as set by c2c-headers' `RequestIdFilter` (else the current
  request id); null outside a request;
- `exception`: the formatted traceback (and stack, when `stack_info`), null without one.

Plain text stays the default. `CONFIG_PATH` is a ready `logging.config.dictConfig` file (YAML)
shipped in this package: the console handler on stderr with `JsonFormatter`, `RequestIdFilter` and
the access-log `RedactSecretsFilter`. Give it to uvicorn::

    uvicorn --log-config "$(python -m c2casgiutils.logging_json)" app:app

(`python -m c2casgiutils.logging_json` prints the path), or load it yourself with `configure()`.
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from pathlib import Path
from typing import Any

import yaml

from c2c_headers.request_id import NO_REQUEST_ID, current_request_id

__all__ = ["CONFIG_PATH", "FIELDS", "JsonFormatter", "configure"]

CONFIG_PATH = Path(__file__).with_name("logging-json.yaml")
"""The shipped logging configuration (YAML, `dictConfig` schema) using `JsonFormatter`."""

FIELDS = ("time", "level", "logger", "message", "request_id", "exception")
"""The keys of every line, in this order."""


class JsonFormatter(logging.Formatter):
    """Format a record as one line of JSON with the keys of `FIELDS` (see the module docstring).

    Use it as a `logging.config` formatter: `"()": c2casgiutils.logging_json.JsonFormatter`.
    """

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """ISO 8601 in UTC with milliseconds (`datefmt` is ignored)."""
        del datefmt
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        request_id: Any = getattr(record, "request_id", None)
        if request_id is None:
            request_id = current_request_id()
        if request_id == NO_REQUEST_ID or not isinstance(request_id, str):
            request_id = None
        exception = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            exception = record.exc_text
        elif record.exc_text:
            exception = record.exc_text
        if record.stack_info:
            stack = self.formatStack(record.stack_info)
            exception = f"{exception}\n{stack}" if exception else stack
        line = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id,
            "exception": exception,
        }
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(path: Path = CONFIG_PATH) -> None:
    """Load a YAML logging configuration (default: the shipped JSON one) with `logging.config.dictConfig`."""
    logging.config.dictConfig(yaml.safe_load(path.read_text(encoding="utf-8")))


if __name__ == "__main__":
    print(CONFIG_PATH)
