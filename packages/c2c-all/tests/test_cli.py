"""`cli.add_arguments` and `cli.load_logging_config` with real files."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from c2casgiutils import cli


def test_add_arguments() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert parser.parse_args([]).logging_config == "logging.yaml"
    assert parser.parse_args(["--logging-config", "x.yaml"]).logging_config == "x.yaml"


async def test_logging_config_applied(tmp_path: Path) -> None:
    config = tmp_path / "logging.yaml"
    config.write_text(
        "version: 1\ndisable_existing_loggers: false\nloggers:\n  c2c_cli_test:\n    level: ERROR\n", encoding="utf-8"
    )
    assert await cli.load_logging_config(config)
    assert logging.getLogger("c2c_cli_test").level == logging.ERROR


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("version: [1", "Cannot use the logging configuration"),
        ("- a list", "expected a mapping"),
        ("version: 1\nhandlers:\n  h:\n    class: no.such.Handler\n", "Cannot use the logging configuration"),
    ],
)
async def test_bad_logging_config_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str | None, message: str
) -> None:
    config = tmp_path / "logging.yaml"
    if content is not None:
        config.write_text(content, encoding="utf-8")
    assert await cli.load_logging_config(config) is False
    assert message in caplog.text
