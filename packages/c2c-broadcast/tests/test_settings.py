"""The `broadcast` settings section from `C2C__BROADCAST__*` variables."""

from __future__ import annotations

import datetime

import pytest

import c2c_broadcast
from c2c_broadcast import BroadcastSettings, Settings
from c2c_config import ConfigError, iter_fields


def test_defaults() -> None:
    settings = Settings().broadcast
    assert settings.secret is None
    assert settings.default_timeout == datetime.timedelta(seconds=10)
    assert settings.heartbeat_interval < settings.replica_ttl
    assert settings.legacy_wait == datetime.timedelta(seconds=2)
    assert settings.max_message_size == 1024 * 1024


def test_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__BROADCAST__SECRET", "s3cret")
    monkeypatch.setenv("C2C__BROADCAST__HEARTBEAT_INTERVAL", "2s")
    monkeypatch.setenv("C2C__BROADCAST__REPLICA_TTL", "PT6S")
    monkeypatch.setenv("C2C__BROADCAST__LEGACY_WAIT", "1.5")
    monkeypatch.setenv("C2C__REDIS__BROADCAST_PREFIX", "svc_")
    settings = Settings()
    assert settings.broadcast.secret is not None
    assert settings.broadcast.secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)  # never shown
    assert settings.broadcast.heartbeat_interval == datetime.timedelta(seconds=2)
    assert settings.broadcast.replica_ttl == datetime.timedelta(seconds=6)
    assert settings.broadcast.legacy_wait == datetime.timedelta(seconds=1.5)
    assert settings.redis.broadcast_prefix == "svc_"


def test_empty_secret_means_no_signing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__BROADCAST__SECRET", "")
    assert Settings().broadcast.secret is None


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"C2C__BROADCAST__REPLICA_TTL": "5", "C2C__BROADCAST__HEARTBEAT_INTERVAL": "5"}, "REPLICA_TTL must be longer"),
        ({"C2C__BROADCAST__HEARTBEAT_INTERVAL": "0"}, "HEARTBEAT_INTERVAL must be positive"),
        ({"C2C__BROADCAST__MAX_MESSAGE_SIZE": "10"}, "C2C__BROADCAST__MAX_MESSAGE_SIZE"),
        ({"C2C__BROADCAST__DEFAULT_TIMEOUT": "soon"}, "C2C__BROADCAST__DEFAULT_TIMEOUT"),
        ({"C2C__BROADCAST__MAX_PENDING_HANDLERS": "0"}, "C2C__BROADCAST__MAX_PENDING_HANDLERS"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        Settings()


def test_every_field_is_described() -> None:
    for field in iter_fields(BroadcastSettings):
        assert field.field.description, field.env_var


def test_section_is_exported_for_the_unified_settings() -> None:
    assert "BroadcastSettings" in c2c_broadcast.__all__
    assert Settings.model_fields["broadcast"].annotation is BroadcastSettings
    assert c2c_broadcast.__all__ == sorted(c2c_broadcast.__all__)
