"""Request ids in c2c-all: JSON logs, the shipped logging configuration, the Sentry tag, the broadcast carrier."""

from __future__ import annotations

import calendar
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import c2c_broadcast
from c2c_headers.request_id import RequestIdFilter, current_request_id, request_id_context
from c2casgiutils import sentry
from c2casgiutils._request_id import CARRIER, apply_request_id, install_broadcast_carrier
from c2casgiutils._settings import SentrySettings
from c2casgiutils.logging_json import CONFIG_PATH, FIELDS, JsonFormatter

ID = "4f1c0a9e" * 4


def _record(message: str = "hello %s", args: tuple[Any, ...] = ("world",), **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("app.module", logging.WARNING, __file__, 10, message, args, None)
    record.created = 1796500867.1234  # 2026-12-05T20:01:07.123Z
    record.msecs = 123.4
    for name, value in extra.items():
        setattr(record, name, value)
    return record


# -- JsonFormatter --------------------------------------------------------------------------------


def test_a_record_is_one_json_line_with_the_fields() -> None:
    line = JsonFormatter().format(_record("two\nlines %s", ("and\ttabs",), request_id=ID))
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-12-05T20:01:07.123Z",
        "level": "WARNING",
        "logger": "app.module",
        "message": "two\nlines and\ttabs",
        "request_id": ID,
        "exception": None,
    }
    assert tuple(json.loads(line)) == FIELDS


def test_request_id_from_the_filter_the_context_or_none() -> None:
    formatter = JsonFormatter()
    assert json.loads(formatter.format(_record()))["request_id"] is None
    with request_id_context(ID):
        assert json.loads(formatter.format(_record()))["request_id"] == ID  # no filter: the context
        filtered = _record()
        RequestIdFilter().filter(filtered)
        assert json.loads(formatter.format(filtered))["request_id"] == ID
    outside = _record()
    RequestIdFilter().filter(outside)  # "-" outside a request
    assert json.loads(formatter.format(outside))["request_id"] is None
    assert json.loads(formatter.format(_record(request_id=12)))["request_id"] is None


def test_exception_and_stack_are_formatted_into_the_line() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = _record(exc_info=sys.exc_info())
    line = formatter.format(record)
    assert "\n" not in line
    exception = json.loads(line)["exception"]
    assert exception.startswith("Traceback (most recent call last):") and exception.endswith("ValueError: bad\nvalue")
    assert json.loads(formatter.format(record))["exception"] == exception  # cached text reused
    text_only = _record(exc_text="already formatted")
    assert json.loads(formatter.format(text_only))["exception"] == "already formatted"
    stacked = _record(stack_info="Stack (most recent call last):\n  here")
    assert json.loads(formatter.format(stacked))["exception"] == "Stack (most recent call last):\n  here"
    both = _record(exc_text="error", stack_info="stack")
    assert json.loads(formatter.format(both))["exception"] == "error\nstack"


_CONFIGURED = """
import logging, sys
from c2casgiutils.logging_json import configure
from c2c_headers.request_id import request_id_context
configure()
logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/x?secret=s3cr3t", "1.1", 200)
with request_id_context(sys.argv[1]):
    logging.getLogger("app").warning("inside")
logging.getLogger("uvicorn.error").info("outside")
"""


def test_the_shipped_configuration_writes_json_with_ids_and_redaction() -> None:
    path = subprocess.run(
        [sys.executable, "-m", "c2casgiutils.logging_json"], capture_output=True, text=True, check=True, timeout=20
    ).stdout.strip()
    assert Path(path) == CONFIG_PATH and CONFIG_PATH.is_file()
    result = subprocess.run(
        [sys.executable, "-c", _CONFIGURED, ID], capture_output=True, text=True, check=True, timeout=20
    )
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(line["logger"], line["request_id"]) for line in lines] == [
        ("uvicorn.access", None),
        ("app", ID),
        ("uvicorn.error", None),
    ]
    assert "s3cr3t" not in result.stderr and "secret=[REDACTED]" in lines[0]["message"]
    assert lines[1]["message"] == "inside" and lines[1]["level"] == "WARNING"


# -- Sentry -----------------------------------------------------------------------------------------


def test_tag_request_id() -> None:
    assert sentry.tag_request_id({"message": "m"}) == {"message": "m"}
    with request_id_context(ID):
        assert sentry.tag_request_id({}) == {"tags": {"request_id": ID}}
        assert sentry.tag_request_id({"tags": {"a": "b"}}) == {"tags": {"a": "b", "request_id": ID}}
        assert sentry.tag_request_id({"tags": {"request_id": "set-by-app"}}) == {"tags": {"request_id": "set-by-app"}}
        assert sentry.tag_request_id({"tags": [["a", "b"]]}) == {"tags": [["a", "b"]]}  # left alone


def test_the_before_send_chain_tags_then_scrubs_then_calls_the_application() -> None:
    seen: list[dict[str, Any]] = []

    def mine(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        seen.append(event)
        return event

    options = sentry.sdk_options(SentrySettings(dsn="http://k@127.0.0.1:1/1"), before_send=mine)
    with request_id_context(ID):
        event = options["before_send"]({"message": "see ?secret=abc"}, {})
        log_hook = options.get("before_send_log")  # sentry-sdk 2.3x and later
        log = log_hook({"body": "see ?secret=abc", "attributes": {}}, {}) if log_hook else None
        if sentry.SPANS_ONLY:  # sentry-sdk 3: spans, an attribute each
            span = options["before_send_span"]({"name": "GET /x", "attributes": {"url.full": "/x?secret=abc"}}, {})
            assert span["attributes"] == {"url.full": "/x?secret=[REDACTED]", "request_id": ID}
        else:
            transaction = options["before_send_transaction"]({"type": "transaction"}, {})
            assert transaction["tags"] == {"request_id": ID}
    assert event["tags"] == {"request_id": ID} and "abc" not in event["message"]
    assert seen == [event]
    if log_hook is not None:
        assert log == {"body": "see ?secret=[REDACTED]", "attributes": {"request_id": ID}}


# -- The broadcast carrier --------------------------------------------------------------------------


@pytest.fixture
def _no_carrier() -> Iterator[None]:
    c2c_broadcast.remove_context_carrier(CARRIER)
    yield
    c2c_broadcast.remove_context_carrier(CARRIER)


@pytest.mark.usefixtures("_no_carrier")
def test_the_carrier_applies_well_formed_ids_only() -> None:
    install_broadcast_carrier()
    install_broadcast_carrier()
    assert c2c_broadcast.context_carriers().count("request_id") == 1
    with request_id_context("stale"):
        with apply_request_id(ID):
            assert current_request_id() == ID
        for bad in (None, "", "has space", "x" * 129, "é"):
            with apply_request_id(bad):
                assert current_request_id() is None, bad
        assert current_request_id() == "stale"


@pytest.mark.usefixtures("_no_carrier")
async def test_startup_installs_the_carrier(c2c_client_factory: Any) -> None:
    async with c2c_client_factory({}):
        assert "request_id" in c2c_broadcast.context_carriers()


def test_time_field_is_utc() -> None:
    record = _record()
    record.created = calendar.timegm((2026, 1, 2, 3, 4, 5, 0, 0, 0)) + 0.0079
    record.msecs = 7.9
    assert json.loads(JsonFormatter().format(record))["time"] == "2026-01-02T03:04:05.007Z"
