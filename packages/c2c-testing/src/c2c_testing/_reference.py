"""A real c2casgiutils 0.14.0 environment (the library we replace, from PyPI), built once and reused.

The reference library is never a dependency of the workspace: it lives in a virtual environment of
its own, built with uv next to the repository (`.venv-c2casgiutils-014-py<version>/`, one per
Python version, git-ignored) and reused while it is complete. Tests run its interpreter in
subprocesses (a 0.14 service's test suite, 0.14 replicas beside ours on one Redis...).

Building is serialised by an exclusive lock on a file beside the environment, so parallel pytest
processes never race: the first one builds, the others wait for it and reuse the result. The
environment counts as complete only once its marker file (written last, atomically) matches what
this module would build; anything else is removed and built again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

C2CASGIUTILS_014_VERSION = "0.14.0"
# What a 0.14 service and its test suite need: the library with every extra, plus what it imports
# without declaring (FastAPI only in its extras, Jinja2 nowhere), SQLAlchemy's asyncio support
# (greenlet) for its SQLAlchemy checks on SQLite (aiosqlite), uvicorn to serve replicas, PyJWT for
# services that read the session cookie, and the test tools.
C2CASGIUTILS_014_REQUIREMENTS: tuple[str, ...] = (
    f"c2casgiutils[all]=={C2CASGIUTILS_014_VERSION}",
    "fastapi",
    "jinja2",
    "httpx",
    "pytest",
    "pytest-asyncio",
    "uvicorn",
    "sqlalchemy[asyncio]",
    "aiosqlite",
    "pyjwt",
)
# Directory name of the environment, under the pytest rootdir unless the variable below is set.
REFERENCE_VENV_NAME = ".venv-c2casgiutils-014"
REFERENCE_VENV_ENV = "C2C_TESTING_C2CASGIUTILS_014_VENV"
MARKER_NAME = "c2c-testing-complete.json"
# Bounds of each uv command and of the wait for another process's build.
COMMAND_TIMEOUT = 900.0
LOCK_TIMEOUT = 1800.0


class ReferenceEnvironmentError(RuntimeError):
    """The c2casgiutils 0.14 environment could not be built; the message names the failing command."""


def reference_venv_location(rootdir: Path) -> Path:
    """Where the environment lives: `$C2C_TESTING_C2CASGIUTILS_014_VENV`, else
    `<rootdir>/.venv-c2casgiutils-014-py<major>.<minor>` (this Python's version).

    One per Python version: test runs on two versions at once (the CI's two lanes) would otherwise
    take turns rebuilding one environment for their own version while the other run's tests use it.
    A configured directory is used as it is: give each Python version its own.
    """
    configured = os.environ.get(REFERENCE_VENV_ENV)
    return Path(configured).absolute() if configured else rootdir / f"{REFERENCE_VENV_NAME}-py{_python_version()}"


def venv_python(location: Path) -> Path:
    """The interpreter of the virtual environment at `location`."""
    return location / "bin" / "python"


def find_uv() -> list[str]:
    """The command that runs uv: `uv` from PATH, else `python -m uv` (the uv wheel in this interpreter)."""
    found = shutil.which("uv")
    if found is not None:
        return [found]
    return [sys.executable, "-m", "uv"]


def _expected_marker(requirements: Sequence[str], python: str) -> dict[str, object]:
    return {"requirements": list(requirements), "python": python}


def _python_request() -> str:
    # The same interpreter as the tests (uv resolves a venv's interpreter to its base one), so that
    # the environment builds without downloading a Python; the marker records its version.
    return sys.executable


def _python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def is_complete(location: Path, requirements: Sequence[str] = C2CASGIUTILS_014_REQUIREMENTS) -> bool:
    """Whether the environment at `location` was fully built for `requirements` and this Python version."""
    marker = location / MARKER_NAME
    try:
        content = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return content == _expected_marker(requirements, _python_version()) and venv_python(location).exists()


@contextlib.contextmanager
def _exclusive_lock(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing); wait at most `timeout` seconds for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    import fcntl  # POSIX only, like the servers of this plugin

    with path.open("a+b") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    message = (
                        f"c2c-testing: waited {timeout:.0f} s for the lock {path} (another process building the "
                        "c2casgiutils 0.14 environment?); remove it if no such process is running"
                    )
                    raise ReferenceEnvironmentError(message) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _as_text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def _run(command: Sequence[str], *, cwd: Path, timeout: float) -> str:
    """Run one build command; any failure is a `ReferenceEnvironmentError` naming it, with its output."""
    shown = " ".join(command)
    # VIRTUAL_ENV of the calling environment (e.g. `uv run`) must not steer uv: every command names
    # its target explicitly.
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    try:
        completed = subprocess.run(
            list(command),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as error:
        message = f"c2c-testing: cannot build the c2casgiutils 0.14 environment: `{shown}` cannot run ({error})"
        raise ReferenceEnvironmentError(message) from None
    except subprocess.TimeoutExpired as error:
        output = _as_text(error.stdout) + _as_text(error.stderr)
        message = (
            f"c2c-testing: cannot build the c2casgiutils 0.14 environment: `{shown}` did not finish in "
            f"{timeout:.0f} s\n{_tail(output)}"
        )
        raise ReferenceEnvironmentError(message) from None
    if completed.returncode != 0:
        message = (
            f"c2c-testing: cannot build the c2casgiutils 0.14 environment: `{shown}` failed with exit status "
            f"{completed.returncode}\n{_tail(completed.stdout + completed.stderr)}"
        )
        raise ReferenceEnvironmentError(message)
    return completed.stdout


def ensure_c2casgiutils_014(
    location: Path,
    *,
    requirements: Sequence[str] = C2CASGIUTILS_014_REQUIREMENTS,
    uv: Sequence[str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
    lock_timeout: float = LOCK_TIMEOUT,
) -> Path:
    """Build (or reuse) the c2casgiutils 0.14.0 environment at `location`; return its interpreter.

    Reused as is when its marker says it is complete for `requirements` and this Python's version.
    Otherwise, under an exclusive lock on `<location>.lock`: remove what is there, `uv venv`,
    `uv pip install` the requirements, check that `c2casgiutils` 0.14.0 imports, and write the marker
    last. Raises `ReferenceEnvironmentError` naming the command that failed.
    """
    location = location.absolute()
    if is_complete(location, requirements):
        return venv_python(location)
    uv_command = list(uv) if uv is not None else find_uv()
    lock_path = location.with_name(location.name + ".lock")
    with _exclusive_lock(lock_path, lock_timeout):
        # Another process may have finished the build while this one waited for the lock.
        if is_complete(location, requirements):
            return venv_python(location)
        if location.exists():
            shutil.rmtree(location)
        cwd = location.parent
        _run(
            [*uv_command, "venv", "--no-progress", "--python", _python_request(), str(location)],
            cwd=cwd,
            timeout=timeout,
        )
        python = venv_python(location)
        _run(
            [*uv_command, "pip", "install", "--no-progress", "--python", str(python), *requirements],
            cwd=cwd,
            timeout=timeout,
        )
        probe = "import importlib.metadata, c2casgiutils; print(importlib.metadata.version('c2casgiutils'))"
        installed = _run([str(python), "-c", probe], cwd=cwd, timeout=timeout).strip()
        if installed != C2CASGIUTILS_014_VERSION:
            message = (
                f"c2c-testing: the environment {location} has c2casgiutils {installed!r}, "
                f"not {C2CASGIUTILS_014_VERSION} (requirements: {' '.join(requirements)})"
            )
            raise ReferenceEnvironmentError(message)
        marker = location / MARKER_NAME
        partial = marker.with_suffix(".tmp")
        partial.write_text(json.dumps(_expected_marker(requirements, _python_version())), encoding="utf-8")
        partial.replace(marker)
        return python
