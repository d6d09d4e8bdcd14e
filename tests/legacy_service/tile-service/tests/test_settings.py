"""The service's own settings, built with c2casgiutils' helpers."""

import pytest
from tileservice.config import Settings, settings
from tileservice.main import WRITE_AUTH_CONFIG

from c2casgiutils.config import GitHubAccessType


def test_layers_from_a_comma_separated_variable() -> None:
    assert settings.layers == ["osm", "ortho", "relief"]
    assert settings.tile_origins == []


def test_access_types_are_github_access_types(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.admin_access_type is GitHubAccessType.PUSH
    assert WRITE_AUTH_CONFIG.github_access_type_read_write is GitHubAccessType.PUSH
    monkeypatch.setenv("TILESERVICE__ADMIN_ACCESS_TYPE", "admin")
    monkeypatch.setenv("TILESERVICE__TILE_ORIGINS", "https://map.example.com,  https://geo.example.org")
    custom = Settings()
    assert custom.admin_access_type is GitHubAccessType.ADMIN
    assert custom.admin_access_type.value == "admin"
    assert custom.tile_origins == ["https://map.example.com", "https://geo.example.org"]


def test_invalid_access_type_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILESERVICE__ADMIN_ACCESS_TYPE", "owner")
    with pytest.raises(ValueError, match="admin_access_type"):
        Settings()
