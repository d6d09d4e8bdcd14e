"""Finding the server binaries, and the error that says how to install them."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INSTALL_COMMAND = "bash scripts/install-services.sh"
APT_COMMAND = "apt-get install -y --no-install-recommends redis-server redis-sentinel postgresql nginx"
# Debian installs the PostgreSQL server outside PATH, one directory per major version.
DEFAULT_POSTGRESQL_BIN_DIRS = "/usr/lib/postgresql/*/bin"
# os.pathsep-separated directories (glob patterns allowed) searched after PATH for initdb/postgres/psql.
POSTGRESQL_BIN_DIRS_ENV = "C2C_TESTING_POSTGRESQL_BIN_DIRS"

MISSING_TEMPLATE = (
    "c2c-testing: `{name}` was not found ({where}). The tests start real servers and need it.\n"
    "Install the test services with `{install}` (from the repository root, as root),\n"
    "or directly: `{apt}`."
)


class MissingBinaryError(RuntimeError):
    """A server binary the fixtures need is not installed; the message says how to install it."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        super().__init__(MISSING_TEMPLATE.format(name=name, where=where, install=INSTALL_COMMAND, apt=APT_COMMAND))


def find_executable(name: str) -> str:
    """Return the path of `name` found in PATH, or raise `MissingBinaryError`."""
    found = shutil.which(name)
    if found is None:
        raise MissingBinaryError(name, "searched PATH")
    return found


def _version_key(directory: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,): the newest major version wins.
    try:
        return tuple(int(part) for part in directory.parent.name.split("."))
    except ValueError:
        return (-1,)


def postgresql_search_dirs() -> list[Path]:
    """The directories searched, after PATH, for the PostgreSQL binaries (newest version first)."""
    patterns = os.environ.get(POSTGRESQL_BIN_DIRS_ENV, DEFAULT_POSTGRESQL_BIN_DIRS)
    dirs: list[Path] = []
    for pattern in filter(None, patterns.split(os.pathsep)):
        dirs.extend(sorted((Path(p) for p in glob.glob(pattern)), key=_version_key, reverse=True))
    return dirs


@dataclass(frozen=True)
class PostgreSQLBinaries:
    """The PostgreSQL programs of one installation (same major version)."""

    initdb: str
    postgres: str
    psql: str


def find_postgresql_binaries() -> PostgreSQLBinaries:
    """Locate initdb, postgres and psql of one PostgreSQL installation, or raise `MissingBinaryError`.

    PATH is searched first (a symbolic link is followed to its installation directory), then
    `C2C_TESTING_POSTGRESQL_BIN_DIRS` or `/usr/lib/postgresql/*/bin`.
    """
    candidates: list[Path] = []
    initdb_in_path = shutil.which("initdb")
    if initdb_in_path is not None:
        candidates.append(Path(initdb_in_path).resolve().parent)
        candidates.append(Path(initdb_in_path).parent)
    candidates.extend(postgresql_search_dirs())
    where = f"searched PATH and {os.environ.get(POSTGRESQL_BIN_DIRS_ENV, DEFAULT_POSTGRESQL_BIN_DIRS)}"
    for directory in candidates:
        initdb, postgres = directory / "initdb", directory / "postgres"
        if not (_is_executable(initdb) and _is_executable(postgres)):
            continue
        psql = directory / "psql"
        if _is_executable(psql):
            return PostgreSQLBinaries(str(initdb), str(postgres), str(psql))
        psql_in_path = shutil.which("psql")
        if psql_in_path is None:
            raise MissingBinaryError("psql", where)
        return PostgreSQLBinaries(str(initdb), str(postgres), psql_in_path)
    missing = "initdb" if initdb_in_path is None else "postgres"
    raise MissingBinaryError(missing, where)


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def binary_version(path: str) -> str:
    """First line of `<path> --version`, or a short note when it cannot run."""
    try:
        completed = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{path}: cannot run ({error})"
    lines = (completed.stdout or completed.stderr).strip().splitlines()
    return lines[0] if lines else f"{path}: no version output"
