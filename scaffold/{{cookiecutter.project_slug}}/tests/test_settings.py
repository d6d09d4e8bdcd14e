"""The service's settings: comma lists from the environment, no wildcard outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from {{ cookiecutter.project_slug }}.settings import Settings

PREFIX = "{{ cookiecutter.__env_prefix }}"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEVELOPMENT", "ALLOWED_HOSTS", "CORS_ORIGINS"):
        monkeypatch.delenv(PREFIX + name, raising=False)
    settings = Settings()
    assert settings.allowed_hosts == ["localhost", "127.0.0.1"]
    assert settings.cors_origins == []
    assert not settings.development


def test_lists_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PREFIX + "ALLOWED_HOSTS", "api.example.com, 127.0.0.1")
    monkeypatch.setenv(PREFIX + "CORS_ORIGINS", "https://app.example.com")
    settings = Settings()
    assert settings.allowed_hosts == ["api.example.com", "127.0.0.1"]
    assert settings.cors_origins == ["https://app.example.com"]


@pytest.mark.parametrize("name", ["ALLOWED_HOSTS", "CORS_ORIGINS"])
def test_wildcard_refused_outside_development(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.delenv(PREFIX + "DEVELOPMENT", raising=False)
    monkeypatch.setenv(PREFIX + name, "*")
    with pytest.raises(ValidationError, match=f"{PREFIX}{name}: '\\*' is refused outside development"):
        Settings()


def test_wildcard_allowed_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PREFIX + "DEVELOPMENT", "true")
    monkeypatch.setenv(PREFIX + "ALLOWED_HOSTS", "*")
    assert Settings().allowed_hosts == ["*"]
