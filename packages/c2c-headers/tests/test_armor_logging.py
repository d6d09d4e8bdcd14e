"""A refused configuration is logged at ERROR (rule, header, reason), not only raised.

An ASGI server may swallow the exception of a failed startup (uvicorn's `--lifespan auto` logs
it at INFO): the ERROR line is what an operator sees.
"""

from __future__ import annotations

import logging

import pytest

from c2c_headers import ArmorHeaderMiddleware


async def _app(scope: object, receive: object, send: object) -> None:  # pragma: no cover - never called
    del scope, receive, send


def test_invalid_rule_is_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="c2c_headers")
    with pytest.raises(ValueError, match="'bad'") as raised:
        ArmorHeaderMiddleware(_app, {"bad": {"headers": {"X-Evil": "a\r\nSet-Cookie: x=1"}}})
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    text = errors[0].getMessage()
    assert errors[0].name == "c2c_headers"
    assert "rule 'bad'" in text
    assert "header 'X-Evil'" in text
    assert "control character" in text
    assert str(raised.value) in text


def test_invalid_field_is_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="path_match"):
        ArmorHeaderMiddleware(_app, {"paths": {"path_match": "(", "headers": {"X-A": "1"}}})
    assert [record.levelno for record in caplog.records if "path_match" in record.getMessage()] == [logging.ERROR]


def test_valid_configuration_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    ArmorHeaderMiddleware(_app, {"ok": {"headers": {"X-A": "1"}}})
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
