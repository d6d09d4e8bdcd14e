"""The release check (`scripts/release-check`) and the changelog check (`scripts/check-changelogs.py`).

The release check builds every distribution once per session (`uv build --all-packages
--no-sources`, the native abi3 wheel included) into a temporary directory and checks them in fresh
virtual environments; each test asserts one of its steps from the `ok:` lines it prints. The
changelog check is tested on small package directories made here, and on the workspace itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

RELEASE_CHECK = ROOT / "scripts" / "release-check"
CHECK_CHANGELOGS = ROOT / "scripts" / "check-changelogs.py"


def _env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith(("C2C__", "VIRTUAL_ENV"))}
    # `uv run --no-sync` in the script (cookiecutter) uses this test's environment, not the checkout's .venv.
    env["UV_PROJECT_ENVIRONMENT"] = sys.prefix
    return env


@dataclass(frozen=True)
class ReleaseRun:
    dist: Path
    returncode: int
    output: str
    seconds: float

    def ok_lines(self) -> list[str]:
        return [line.removeprefix("ok: ") for line in self.output.splitlines() if line.startswith("ok: ")]


@pytest.fixture(scope="session")
def release_run(tmp_path_factory: pytest.TempPathFactory) -> ReleaseRun:
    # scripts/test reruns the root tests with C2C_HEADERS_ENGINE=python; the release check builds and
    # installs the same files whatever the engine (its native step names the engine): run it once.
    if os.environ.get("C2C_HEADERS_ENGINE") == "python":
        pytest.skip("the release check does not depend on C2C_HEADERS_ENGINE; it runs in the default pass")
    dist = tmp_path_factory.mktemp("dist")
    start = time.monotonic()
    result = subprocess.run(
        ["bash", str(RELEASE_CHECK), "--dist", str(dist)],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1500,
        check=False,
    )
    return ReleaseRun(dist, result.returncode, result.stdout, time.monotonic() - start)


def _assert_ok(run: ReleaseRun, expected: str) -> None:
    assert any(line.startswith(expected) for line in run.ok_lines()), (
        f"no 'ok: {expected}...' line (exit {run.returncode}):\n{run.output[-6000:]}"
    )


# --- the release check ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_release_check_passes(release_run: ReleaseRun) -> None:
    print(f"release check: {release_run.seconds:.0f} s")
    assert release_run.returncode == 0, release_run.output[-6000:]
    assert release_run.output.rstrip().endswith("release check: all green")


@pytest.mark.slow
def test_changelog_step(release_run: ReleaseRun) -> None:
    _assert_ok(release_run, "changelogs match the versions")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["c2c-config", "c2c-headers", "c2c-health", "c2c-broadcast", "c2c-auth", "c2c-all"])
def test_pure_distributions(release_run: ReleaseRun, name: str) -> None:
    wheel = name.replace("-", "_") + "-"
    assert any(
        path.name.startswith(wheel) and path.name.endswith("-py3-none-any.whl") for path in release_run.dist.iterdir()
    )
    assert any(path.name.startswith(wheel) and path.name.endswith(".tar.gz") for path in release_run.dist.iterdir())
    _assert_ok(release_run, f"{name} ")
    _assert_ok(release_run, f"{name} alone: import ")


@pytest.mark.slow
def test_native_wheel_is_abi3(release_run: ReleaseRun) -> None:
    wheels = [path.name for path in release_run.dist.glob("c2c_headers_native-*.whl")]
    assert len(wheels) == 1 and "-cp311-abi3-" in wheels[0], wheels
    _assert_ok(release_run, "c2c-headers-native ")


@pytest.mark.slow
def test_metadata(release_run: ReleaseRun) -> None:
    _assert_ok(release_run, "twine check --strict")
    _assert_ok(release_run, "every wheel ships py.typed; our packages require each other by bounded ranges")


@pytest.mark.slow
def test_unified_api_from_wheels(release_run: ReleaseRun) -> None:
    _assert_ok(release_run, "c2c-all[all] ")


@pytest.mark.slow
def test_headers_alone(release_run: ReleaseRun) -> None:
    _assert_ok(release_run, "c2c-headers alone: installed with --no-index, nothing else installed (c2c-headers)")


@pytest.mark.slow
def test_headers_native(release_run: ReleaseRun) -> None:
    _assert_ok(release_run, 'c2c-headers[native]: ArmorHeaderMiddleware(app, engine="native")')


@pytest.mark.slow
def test_scaffold_on_wheels(release_run: ReleaseRun) -> None:
    _assert_ok(release_run, "scaffold: locked with c2c-all from its wheels/ directory")
    _assert_ok(release_run, "scaffold: the generated project's tests pass")


@pytest.mark.slow
def test_refuses_a_native_wheel_that_is_not_abi3(release_run: ReleaseRun, tmp_path: Path) -> None:
    assert release_run.returncode == 0
    dist = tmp_path / "dist"
    shutil.copytree(release_run.dist, dist)
    (native,) = dist.glob("c2c_headers_native-*-abi3-*.whl")
    native.rename(native.with_name(native.name.replace("-cp311-abi3-", "-cp311-cp311-")))
    result = subprocess.run(
        ["bash", str(RELEASE_CHECK), "--dist", str(dist), "--no-build", "--no-scaffold"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 1
    assert "is not an abi3 wheel" in result.stderr


# --- the changelog check ---------------------------------------------------------------------------------


def _package(
    root: Path,
    name: str,
    changelog: str | None,
    version: str | None = "1.2.0",
    cargo_version: str | None = None,
    private: bool = False,
) -> Path:
    directory = root / name
    directory.mkdir()
    fields = [f'name = "{name}"']
    fields.append(f'version = "{version}"' if version else 'dynamic = ["version"]')
    if private:
        fields.append('classifiers = ["Private :: Do Not Upload"]')
    (directory / "pyproject.toml").write_text("[project]\n" + "\n".join(fields) + "\n")
    if cargo_version:
        (directory / "Cargo.toml").write_text(f'[package]\nname = "{name}"\nversion = "{cargo_version}"\n')
    if changelog is not None:
        (directory / "CHANGELOG.md").write_text(changelog)
    return directory


def _check_changelogs(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK_CHANGELOGS), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("changelog", "ok"),
    [
        # the top entry is the version
        ("# Changelog\n\n## 1.2.0\n\n- x\n\n## 1.1.0\n", True),
        ("# Changelog\n\n## 1.2.0 - unreleased\n\n- x\n", True),
        ("## [1.2.0] - 2026-11-25\n", True),
        # it is not
        ("# Changelog\n\n## 1.1.0\n\n- x\n", False),
        ("# Changelog\n\n## 1.2.0rc1\n", False),
        ("# Changelog\n\n## 1.2.01\n", False),
        ("# Changelog\n\n## 1.1.0\n\n## 1.2.0\n", False),
        ("# Changelog\n\nnothing yet\n", False),
        (None, False),
    ],
)
def test_changelog_top_entry(tmp_path: Path, changelog: str | None, ok: bool) -> None:
    result = _check_changelogs(_package(tmp_path, "pkg", changelog))
    assert (result.returncode == 0) is ok, result.stdout + result.stderr
    if not ok:
        assert result.stderr.startswith("pkg 1.2.0: ")


def test_changelog_version_from_cargo(tmp_path: Path) -> None:
    native = _package(tmp_path, "native", "## 0.3.0\n", version=None, cargo_version="0.3.0")
    assert _check_changelogs(native).returncode == 0
    (native / "Cargo.toml").write_text('[package]\nname = "native"\nversion = "0.4.0"\n')
    result = _check_changelogs(native)
    assert result.returncode == 1
    assert "native 0.4.0: the top CHANGELOG.md entry is '0.3.0', expected '## 0.4.0'" in result.stderr


@pytest.mark.parametrize(
    ("heading", "ok"),
    [("## 1.2.0 - 2026-11-25", True), ("## 1.2.0 - unreleased", False), ("## 1.2.0", False)],
)
def test_changelog_release_needs_a_date(tmp_path: Path, heading: str, ok: bool) -> None:
    package = _package(tmp_path, "pkg", heading + "\n")
    assert _check_changelogs(package).returncode == 0
    assert (_check_changelogs("--release", package).returncode == 0) is ok


def test_changelog_release_skips_private_packages(tmp_path: Path) -> None:
    private = _package(tmp_path, "private", "## 1.2.0 - unreleased\n", private=True)
    result = _check_changelogs("--release", private)
    assert result.returncode == 0
    assert "private, not released" in result.stdout


def test_workspace_changelogs() -> None:
    result = _check_changelogs()
    assert result.returncode == 0, result.stderr
    names = {line.split()[0] for line in result.stdout.splitlines()}
    assert names == {p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml")}
