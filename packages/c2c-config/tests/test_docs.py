"""The settings reference generator (`python -m c2c_config docs`), run in this process."""

from __future__ import annotations

import datetime
import enum
import sys
import types
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field, SecretStr

from c2c_config import C2CSettings, Duration, RedisOptions, SecretText, Section, StringList
from c2c_config import _docs as docs
from c2c_config.__main__ import main


class Colour(enum.Enum):
    """An enumeration rendered as its values."""

    RED = "red"
    BLUE = "blue"


class Inner(Section):
    """A nested section: its fields are named through the outer one."""

    depth: int = Field(default=3, description="How deep")
    tags: dict[str, str] = Field(default_factory=dict, json_schema_extra={"env_pattern": "TAG_<NAME>"})


class Everything(C2CSettings):
    """One field per kind of type and default the generator renders."""

    name: str = Field(default="", description="An empty string")
    label: str = Field(default="x|y", description="A pipe | and a\nnewline")
    count: int | None = Field(default=None, description="Unset")
    age: Duration = Field(default=datetime.timedelta(minutes=90), description="A duration")
    enabled: bool = Field(default=True, description="A boolean")
    hosts: StringList = Field(default_factory=lambda: ["a", "b"], description="A list")
    none_yet: StringList = Field(default_factory=list, description="An empty list")
    options: RedisOptions = Field(default_factory=lambda: {"ssl": True}, description="Options")  # type: ignore[arg-type]
    no_options: dict[str, int] = Field(default_factory=dict, description="An empty mapping")
    colour: Colour = Field(default=Colour.BLUE, description="An enumeration")
    mode: Literal["lax", "strict"] = Field(default="lax", description="A literal")
    token: SecretText = Field(default=SecretText("hunter2"), description="A secret")
    password: SecretStr | None = Field(default=None, description="Another secret")
    where: str = Field(default="/", json_schema_extra={"doc_default": "the working directory"}, description="Doc")
    inner: Inner = Field(default_factory=Inner)


class Required(BaseModel):
    """A model with a required field and a free-form list."""

    needed: str
    values: list[int] = Field(default_factory=lambda: [1])


def _rows() -> dict[str, list[str]]:
    table = docs.render_reference(Everything)
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows[cells[0].strip("`")] = cells
    return rows


def test_reference_renders_each_kind_of_type_and_default() -> None:
    rows = _rows()
    assert rows["C2C__NAME"][1:3] == ["string", "empty"]
    assert rows["C2C__COUNT"][1:3] == ["integer, optional", "unset"]
    assert rows["C2C__AGE"][1:3] == ["duration", "`PT1H30M`"]
    assert rows["C2C__ENABLED"][1:3] == ["boolean", "`true`"]
    assert rows["C2C__HOSTS"][1:3] == ["comma-separated list of strings", "`a,b`"]
    assert rows["C2C__NONE_YET"][2] == "empty"
    assert rows["C2C__OPTIONS"][1:3] == ["key=value options, comma-separated", "`ssl=True`"]
    assert rows["C2C__NO_OPTIONS"][1:3] == ["mapping", "empty"]
    assert rows["C2C__COLOUR"][1:3] == ["one of: red, blue", "`blue`"]
    assert rows["C2C__MODE"][1:3] == ["one of: lax, strict", "`lax`"]
    assert rows["C2C__TOKEN"][1:3] == ["secret string", "hidden"]
    assert rows["C2C__PASSWORD"][1:3] == ["secret string, optional", "unset"]
    assert rows["C2C__WHERE"][2] == "the working directory"
    assert "C2C__INNER__TAG_<NAME>" in rows
    assert rows["C2C__INNER__DEPTH"][1:] == ["integer", "`3`", "How deep"]


def test_reference_escapes_pipes_and_newlines_in_descriptions() -> None:
    row = _rows()["C2C__LABEL"]
    assert row[3] == "A pipe \\| and a newline"
    assert "hunter2" not in docs.render_reference(Everything)


def test_reference_of_required_fields_and_plain_lists() -> None:
    table = docs.render_reference(Required)
    assert "| `C2C__NEEDED` | string | required |" in table
    assert "| `C2C__VALUES` | list | `1` |" in table


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (int | str, "integer or string"),
        (float, "number"),
        (list[int], "list"),
        (types.SimpleNamespace, "SimpleNamespace"),
    ],
)
def test_describe_type_of_plain_annotations(annotation: object, expected: str) -> None:
    assert docs.describe_type(annotation) == expected


def test_replace_generated_puts_the_table_between_the_markers() -> None:
    text = f"# Title\n\n{docs.BEGIN_MARKER}\n\nold\n{docs.END_MARKER}\n\nAfter.\n"
    replaced = docs.replace_generated(text, "new\n")
    assert replaced == f"# Title\n\n{docs.BEGIN_MARKER}\n\nnew\n\n{docs.END_MARKER}\n\nAfter.\n"
    assert docs.replace_generated("# Title\n", "t\n") == f"# Title\n\n{docs.BEGIN_MARKER}\n\nt\n\n{docs.END_MARKER}\n"
    assert docs.replace_generated("", "t\n") == f"{docs.BEGIN_MARKER}\n\nt\n\n{docs.END_MARKER}\n"


def test_load_settings_class() -> None:
    assert docs.load_settings_class("c2c_config:CoreSettings").__name__ == "CoreSettings"
    with pytest.raises(ValueError, match="expected module:Class"):
        docs.load_settings_class("c2c_config.CoreSettings")
    with pytest.raises(TypeError, match="is not a settings class"):
        docs.load_settings_class("c2c_config:redact_url")
    with pytest.raises(
        ValueError, match=r"cannot import 'no_such_module_here' .*c2casgiutils.config:Settings comes with c2c-all"
    ):
        docs.load_settings_class("no_such_module_here:Settings")
    with pytest.raises(ValueError, match="'c2c_config' has no 'NoSuchSettings'"):
        docs.load_settings_class("c2c_config:NoSuchSettings")


def test_the_command_says_what_it_cannot_import(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`python -m c2c_config docs c2casgiutils.config:Settings` with c2c-config alone: one line, no traceback."""
    from c2c_config.__main__ import main

    assert main(["docs", "no_such_module_here:Settings", str(tmp_path / "settings.md")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("python -m c2c_config docs: cannot import 'no_such_module_here'")
    assert "Traceback" not in error


def test_update_file_writes_then_reports_up_to_date(tmp_path: Path) -> None:
    target = tmp_path / "settings.md"
    assert docs.update_file(target, Everything, check=True) is False
    assert not target.exists(), "--check never writes"
    assert docs.update_file(target, Everything) is False
    assert docs.update_file(target, Everything) is True
    assert docs.update_file(target, Everything, check=True) is True


def test_command_line_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "settings.md"
    target.write_text("# Settings\n", encoding="utf-8")
    assert main(["docs", "c2c_config:CoreSettings", str(target), "--check"]) == 1
    assert "is stale: run python -m c2c_config docs c2c_config:CoreSettings" in capsys.readouterr().err
    assert main(["docs", "c2c_config:CoreSettings", str(target)]) == 0
    assert "C2C__REDIS__URL" in target.read_text(encoding="utf-8")
    assert main(["docs", "c2c_config:CoreSettings", str(target), "--check"]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


def test_module_entry_point_runs_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runpy

    target = tmp_path / "settings.md"
    monkeypatch.delitem(sys.modules, "c2c_config.__main__", raising=False)
    monkeypatch.setattr(sys, "argv", ["python -m c2c_config", "docs", "c2c_config:CoreSettings", str(target)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("c2c_config", run_name="__main__")
    assert exit_info.value.code == 0
    assert target.exists()
