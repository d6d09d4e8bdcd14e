"""The c2casgiutils 0.14 environment: reuse, rebuild, one build at a time, failures as errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from c2c_testing import _reference
from c2c_testing._reference import (
    C2CASGIUTILS_014_REQUIREMENTS,
    MARKER_NAME,
    REFERENCE_VENV_ENV,
    ReferenceEnvironmentError,
    ensure_c2casgiutils_014,
    is_complete,
    reference_venv_location,
    venv_python,
)

pytest_plugins = ["pytester"]
INNER = ("-p", "no:asyncio")

# A stand-in for uv: `venv ... LOCATION` makes a venv whose python prints the version 0.14.0,
# `pip install` does nothing; every call is logged (one line each) and the venv step is slow, so
# that concurrent builds would overlap if the lock did not serialise them.
FAKE_UV = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    log = Path(sys.argv[1])
    args = sys.argv[2:]
    with log.open("a") as handle:
        handle.write(" ".join(args[:2]) + "\\n")
    if args[0] == "venv":
        location = Path(args[-1])
        (location / "bin").mkdir(parents=True)
        python = location / "bin" / "python"
        python.write_text("#!/bin/sh\\necho 0.14.0\\n")
        python.chmod(0o755)
        time.sleep(0.5)
    """
)


@pytest.fixture
def fake_uv(tmp_path: Path) -> tuple[list[str], Path]:
    script = tmp_path / "fake_uv.py"
    script.write_text(FAKE_UV)
    log = tmp_path / "uv-calls.log"
    return [sys.executable, str(script), str(log)], log


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(REFERENCE_VENV_ENV, raising=False)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert reference_venv_location(tmp_path) == tmp_path / f".venv-c2casgiutils-014-py{version}"
    monkeypatch.setenv(REFERENCE_VENV_ENV, str(tmp_path / "elsewhere"))
    assert reference_venv_location(Path("/nowhere")) == tmp_path / "elsewhere"


def test_two_python_versions_never_share_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The CI runs the whole workspace on one Python and the isolation runs on another, at the same
    # time: one environment would be rebuilt by each for its own version while the other uses it.
    monkeypatch.delenv(REFERENCE_VENV_ENV, raising=False)
    locations = set()
    for version in ("3.11", "3.13"):
        monkeypatch.setattr(_reference, "_python_version", lambda version=version: version)
        locations.add(reference_venv_location(tmp_path))
    assert locations == {tmp_path / ".venv-c2casgiutils-014-py3.11", tmp_path / ".venv-c2casgiutils-014-py3.13"}


def test_builds_then_reuses(fake_uv: tuple[list[str], Path], tmp_path: Path) -> None:
    uv, log = fake_uv
    location = tmp_path / "venv"
    python = ensure_c2casgiutils_014(location, uv=uv)
    assert python == venv_python(location)
    assert _calls(log) == ["venv --no-progress", "pip install"]
    marker = json.loads((location / MARKER_NAME).read_text())
    assert marker["requirements"] == list(C2CASGIUTILS_014_REQUIREMENTS)
    assert is_complete(location)
    # Reused as is: uv is not called again.
    assert ensure_c2casgiutils_014(location, uv=uv) == python
    assert len(_calls(log)) == 2


def test_changed_requirements_rebuild_from_scratch(fake_uv: tuple[list[str], Path], tmp_path: Path) -> None:
    uv, log = fake_uv
    location = tmp_path / "venv"
    ensure_c2casgiutils_014(location, uv=uv)
    (location / "leftover").write_text("from the previous build")
    ensure_c2casgiutils_014(location, uv=uv, requirements=[*C2CASGIUTILS_014_REQUIREMENTS, "extra-package"])
    assert not (location / "leftover").exists()
    assert len(_calls(log)) == 4


def test_partial_build_is_not_reused(fake_uv: tuple[list[str], Path], tmp_path: Path) -> None:
    uv, log = fake_uv
    location = tmp_path / "venv"
    (location / "bin").mkdir(parents=True)
    (location / "bin" / "python").write_text("")  # no marker: an interrupted build
    assert not is_complete(location)
    ensure_c2casgiutils_014(location, uv=uv)
    assert _calls(log)[0] == "venv --no-progress"


def test_parallel_builds_build_once(fake_uv: tuple[list[str], Path], tmp_path: Path) -> None:
    uv, log = fake_uv
    location = tmp_path / "venv"
    results: list[Path | BaseException] = []

    def build() -> None:
        try:
            results.append(ensure_c2casgiutils_014(location, uv=uv))
        except BaseException as error:  # reported by the assertion below
            results.append(error)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [venv_python(location)] * 3
    assert _calls(log) == ["venv --no-progress", "pip install"]


def test_failed_command_is_named(tmp_path: Path) -> None:
    failing = [sys.executable, "-c", "import sys; print('no network here'); sys.exit(3)"]
    with pytest.raises(ReferenceEnvironmentError) as raised:
        ensure_c2casgiutils_014(tmp_path / "venv", uv=failing)
    message = str(raised.value)
    assert f"`{' '.join(failing)} venv --no-progress --python" in message
    assert "exit status 3" in message
    assert "no network here" in message


def test_missing_uv_is_named(tmp_path: Path) -> None:
    with pytest.raises(ReferenceEnvironmentError, match=r"`/nonexistent/uv venv .*` cannot run"):
        ensure_c2casgiutils_014(tmp_path / "venv", uv=["/nonexistent/uv"])


def test_wrong_version_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "uv.py"
    script.write_text(FAKE_UV.replace("echo 0.14.0", "echo 0.13.1"))
    with pytest.raises(ReferenceEnvironmentError, match="has c2casgiutils '0.13.1', not 0.14.0"):
        ensure_c2casgiutils_014(tmp_path / "venv", uv=[sys.executable, str(script), str(tmp_path / "log")])
    assert not is_complete(tmp_path / "venv")


def test_fixture_failure_is_an_error_not_a_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(REFERENCE_VENV_ENV, str(tmp_path / "venv"))
    monkeypatch.setattr(_reference, "find_uv", lambda: ["/nonexistent/uv"])
    pytester.makepyfile("def test_uses_it(c2casgiutils_014_python):\n    pass\n")
    result = pytester.runpytest_inprocess(*INNER, "-rA")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cannot build the c2casgiutils 0.14 environment: `/nonexistent/uv venv*"])
    assert "skipped" not in result.stdout.str().lower()


@pytest.mark.slow
def test_the_real_environment(c2casgiutils_014_python: Path) -> None:
    """The fixture's venv (built from PyPI on first use): 0.14.0 and what a 0.14 service tests with."""
    probe = (
        "import importlib.metadata as m, c2casgiutils, c2casgiutils.tools.logging_, fastapi, jinja2, httpx, pytest, "
        "pytest_asyncio, uvicorn, aiosqlite, jwt, sqlalchemy.ext.asyncio, redis; print(m.version('c2casgiutils'))"
    )
    completed = subprocess.run(
        [str(c2casgiutils_014_python), "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "0.14.0"
    # Not the workspace's environment: nothing of c2c-all is there.
    isolated = subprocess.run(
        [str(c2casgiutils_014_python), "-c", "import importlib.util as u; print(u.find_spec('c2c_config') is None)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert isolated.stdout.strip() == "True", isolated.stderr
