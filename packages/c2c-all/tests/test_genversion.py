"""`c2casgiutils-genversion` writes versions.json from the running environment's metadata."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from c2casgiutils.scripts import genversion


def test_versions_content() -> None:
    result = genversion.versions("abc123", "1.2.3")
    assert result["main"] == {"git_hash": "abc123", "git_tag": "1.2.3"}
    assert result["packages"]["c2c-all"] == "0.1.0"
    assert "fastapi" in result["packages"]
    assert genversion.versions("abc")["main"] == {"git_hash": "abc"}


def test_console_script(tmp_path: Path) -> None:
    script = shutil.which("c2casgiutils-genversion", path=str(Path(sys.executable).parent))
    assert script is not None, "the console script is installed with the package"
    subprocess.run([script, "v1", "deadbeef"], cwd=tmp_path, check=True, capture_output=True)
    content = json.loads((tmp_path / "versions.json").read_text())
    assert content["main"] == {"git_hash": "deadbeef", "git_tag": "v1"}
    assert content["packages"]["c2c-config"] == "0.1.0"


def test_too_many_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        genversion.main(["a", "b", "c"])
    assert info.value.code == 2
    assert "expected [GIT_TAG] GIT_HASH" in capsys.readouterr().err
