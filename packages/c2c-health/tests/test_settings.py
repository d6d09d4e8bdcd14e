"""The health_checks settings section, read from the environment at use time."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator

import pytest

from c2c_config import ConfigError, reload_settings
from c2c_health import Check, Factory, HealthChecksSettings, Result, Settings


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set C2C__ variables, and restore the process-wide settings afterwards."""
    yield monkeypatch
    monkeypatch.undo()
    reload_settings(Settings)


def test_defaults() -> None:
    section = HealthChecksSettings()
    assert section.timeout == datetime.timedelta(seconds=5)
    assert section.cache_ttl == datetime.timedelta(0)
    assert section.details == "authorized"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"C2C__HEALTH_CHECKS__TIMEOUT": "0.5"}, {"timeout": datetime.timedelta(seconds=0.5)}),
        ({"C2C__HEALTH_CHECKS__TIMEOUT": "PT2S"}, {"timeout": datetime.timedelta(seconds=2)}),
        ({"C2C__HEALTH_CHECKS__CACHE_TTL": "1m30"}, {"cache_ttl": datetime.timedelta(seconds=90)}),
        ({"c2c__health_checks__details": "always"}, {"details": "always"}),
    ],
)
def test_from_environment(
    environment: pytest.MonkeyPatch, variables: dict[str, str], expected: dict[str, object]
) -> None:
    for name, value in variables.items():
        environment.setenv(name, value)
    section = Settings().health_checks
    for field, wanted in expected.items():
        assert getattr(section, field) == wanted


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "C2C__HEALTH_CHECKS__TIMEOUT",
            "0",
            "C2C__HEALTH_CHECKS__TIMEOUT='0': the health-check timeout must be longer",
        ),
        # c2c-config may put 0.14's words ("Invalid time delta: ") before its own.
        ("C2C__HEALTH_CHECKS__TIMEOUT", "5x", "C2C__HEALTH_CHECKS__TIMEOUT='5x': .*invalid duration '5x'"),
        ("C2C__HEALTH_CHECKS__CACHE_TTL", "-1", "C2C__HEALTH_CHECKS__CACHE_TTL='-1'"),
        ("C2C__HEALTH_CHECKS__DETAILS", "sometimes", "C2C__HEALTH_CHECKS__DETAILS='sometimes'"),
    ],
)
def test_bad_values_name_the_variable(environment: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    environment.setenv(name, value)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Settings()


async def test_default_factory_reads_the_settings_at_each_run(environment: pytest.MonkeyPatch) -> None:
    class Counting(Check):
        calls = 0

        async def check(self) -> Result:
            Counting.calls += 1
            return Result()

    factory = Factory()  # default settings provider: get_settings(Settings)
    factory.add(Counting())
    environment.setenv("C2C__HEALTH_CHECKS__CACHE_TTL", "60")
    reload_settings(Settings)
    await asyncio.gather(factory.run(), factory.run())
    assert Counting.calls == 1
    environment.setenv("C2C__HEALTH_CHECKS__CACHE_TTL", "0")
    reload_settings(Settings)
    await factory.run()
    await factory.run()
    assert Counting.calls == 3
