"""The unknown-variable warning appears once per process (issue 15, item 4).

Every package reads its own settings class and applications reload them: the warning about a
`C2C__` variable nobody reads used to be repeated at each load (8 times at a c2casgiutils start).
"""

from __future__ import annotations

import logging
import threading

import pytest

from c2c_config import C2CSettings, CoreSettings, RedisSettings, get_settings, reload_settings


class OtherPackageSettings(C2CSettings):
    """Another package's settings class sharing the `redis` section."""

    redis: RedisSettings = RedisSettings()


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with nothing reported yet."""
    monkeypatch.setattr("c2c_config._base._REPORTED_VARIABLES", set(), raising=False)


def _warnings(caplog: pytest.LogCaptureFixture, variable: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "c2c_config" and f"Ignored environment variable: {variable} " in record.getMessage()
    ]


def test_once_across_classes_and_reloads(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("C2C__REDIS__URLL", "redis://localhost")
    with caplog.at_level(logging.WARNING, logger="c2c_config"):
        CoreSettings()
        OtherPackageSettings()
        get_settings(CoreSettings)
        reload_settings(CoreSettings)
        reload_settings(OtherPackageSettings)
    assert _warnings(caplog, "C2C__REDIS__URLL") == [
        "Ignored environment variable: C2C__REDIS__URLL is not a known setting; did you mean C2C__REDIS__URL?"
    ]


def test_each_variable_reported(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Once per variable: a second typo, or one appearing later, still gets its line."""
    monkeypatch.setenv("C2C__REDIS__URLL", "redis://localhost")
    with caplog.at_level(logging.WARNING, logger="c2c_config"):
        CoreSettings()
        monkeypatch.setenv("C2C__PROMETHEUS__PROT", "9100")
        CoreSettings()
        CoreSettings()
    assert len(_warnings(caplog, "C2C__REDIS__URLL")) == 1
    assert len(_warnings(caplog, "C2C__PROMETHEUS__PROT")) == 1


def test_once_under_concurrent_loads(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("C2C__REDIS__URLL", "redis://localhost")
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait(timeout=10)
        for _ in range(5):
            OtherPackageSettings()

    with caplog.at_level(logging.WARNING, logger="c2c_config"):
        threads = [threading.Thread(target=load) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
    assert len(_warnings(caplog, "C2C__REDIS__URLL")) == 1
