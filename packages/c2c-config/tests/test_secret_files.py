"""Secret settings read from the files `<variable>_FILE` names (Docker and Kubernetes secrets)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from c2c_config import (
    C2CSettings,
    ConfigError,
    SecretList,
    SecretText,
    Section,
    find_unknown_variables,
    secret_file_variables,
)


class VaultSection(Section):
    token: SecretText | None = None
    accepted: SecretList = []
    url: str = "https://vault.example"


class VaultSettings(C2CSettings):
    vault: VaultSection = VaultSection()


def test_every_secret_setting_has_a_file_variant() -> None:
    assert secret_file_variables(VaultSettings) == {
        "C2C__VAULT__TOKEN_FILE": ("vault", "token"),
        "C2C__VAULT__ACCEPTED_FILE": ("vault", "accepted"),
    }


def test_a_secret_is_read_from_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("s3cr3t value\n\n")  # the trailing line breaks are no part of it
    (tmp_path / "accepted").write_text("old-one,older-one\r\n")
    monkeypatch.setenv("c2c__vault__token_file", str(tmp_path / "token"))  # names are case-insensitive
    monkeypatch.setenv("C2C__VAULT__ACCEPTED_FILE", str(tmp_path / "accepted"))
    vault = VaultSettings().vault
    assert vault.token is not None
    assert vault.token.get_secret_value() == "s3cr3t value"
    assert [secret.get_secret_value() for secret in vault.accepted] == ["old-one", "older-one"]
    assert "s3cr3t" not in repr(vault)
    assert find_unknown_variables(VaultSettings) == []  # the _FILE variables are known


def test_an_empty_file_is_an_empty_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("\n")
    monkeypatch.setenv("C2C__VAULT__TOKEN_FILE", str(tmp_path / "token"))
    assert VaultSettings().vault.token == ""


def test_both_or_an_unreadable_file_are_refused_without_showing_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("from-the-file")
    monkeypatch.setenv("C2C__VAULT__TOKEN", "from-the-variable")
    monkeypatch.setenv("C2C__VAULT__TOKEN_FILE", str(tmp_path / "token"))
    with pytest.raises(ConfigError, match="C2C__VAULT__TOKEN_FILE: C2C__VAULT__TOKEN is set too") as refused:
        VaultSettings()
    assert "from-the" not in str(refused.value)
    monkeypatch.delenv("C2C__VAULT__TOKEN")
    for unreadable, error in ((tmp_path / "missing", "FileNotFoundError"), (tmp_path, "IsADirectoryError")):
        monkeypatch.setenv("C2C__VAULT__TOKEN_FILE", str(unreadable))
        with pytest.raises(ConfigError, match=f"cannot read the file \\({error}\\)") as refused:
            VaultSettings()
        assert str(unreadable) in str(refused.value)
    (tmp_path / "binary").write_bytes(b"\xff\xfe secret")
    monkeypatch.setenv("C2C__VAULT__TOKEN_FILE", str(tmp_path / "binary"))
    with pytest.raises(ConfigError, match="UnicodeDecodeError"):
        VaultSettings()


def test_a_misspelt_file_variable_is_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("C2C__VAULT__TOKENN_FILE", "/run/secrets/token")
    monkeypatch.setenv("C2C__VAULT__URL_FILE", "/run/secrets/url")  # not a secret: no file variant
    names = {unknown.name: unknown.suggestion for unknown in find_unknown_variables(VaultSettings)}
    assert names["C2C__VAULT__TOKENN_FILE"] == "C2C__VAULT__TOKEN_FILE"
    assert "C2C__VAULT__URL_FILE" in names
    with caplog.at_level(logging.WARNING, logger="c2c_config"):
        VaultSettings()
    assert any("C2C__VAULT__TOKENN_FILE" in record.getMessage() for record in caplog.records)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40))
def test_any_text_comes_back_but_its_trailing_line_breaks(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_bytes(text.encode())
    monkeypatch.setenv("C2C__VAULT__TOKEN_FILE", str(tmp_path / "token"))
    token = VaultSettings().vault.token
    assert token is not None
    assert token.get_secret_value() == text.rstrip("\r\n")  # carriage returns inside kept as they are
