#!/usr/bin/env python3
"""Check that each package's CHANGELOG.md starts with an entry for the package's version.

The version is `[project].version` of the package's pyproject.toml, or `[package].version` of its
Cargo.toml when the version is dynamic (the native package). The top entry is the first `## `
heading: `## 0.1.0`, `## 0.1.0 - unreleased` or `## 0.1.0 - 2026-11-25` all match version 0.1.0.

Usage: scripts/check-changelogs.py [--release] [PACKAGE_DIR ...]   (default: every packages/*)
  --release: the top entry must also be dated (`## X.Y.Z - YYYY-MM-DD`), not "unreleased"; packages
             classified `Private :: Do Not Upload` (never published) are skipped.
Exit status 0 when every package matches, 1 otherwise (one line per problem on stderr).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADING = re.compile(r"^## +\[?(?P<version>[^\s\]]+)\]?(?P<rest>.*)$")
DATED = re.compile(r"^\s*[-–]\s*\d{4}-\d{2}-\d{2}\s*$")


PRIVATE = "Private :: Do Not Upload"


def is_private(directory: Path) -> bool:
    """Whether the package is never published (PyPI refuses the `Private ::` classifiers)."""
    project = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return PRIVATE in project.get("classifiers", [])


def package_version(directory: Path) -> tuple[str, str]:
    """(distribution name, version) of the package in `directory`."""
    project = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name = str(project["name"])
    if "version" in project:
        return name, str(project["version"])
    if "version" not in project.get("dynamic", []):
        raise ValueError(f"{directory}: pyproject.toml has neither a version nor a dynamic one")
    cargo = directory / "Cargo.toml"
    if not cargo.is_file():
        raise ValueError(f"{directory}: dynamic version but no Cargo.toml to read it from")
    return name, str(tomllib.loads(cargo.read_text(encoding="utf-8"))["package"]["version"])


def top_entry(changelog: Path) -> tuple[str, str] | None:
    """(version, rest of the heading) of the first `## ` heading, or None."""
    for line in changelog.read_text(encoding="utf-8").splitlines():
        match = HEADING.match(line)
        if match:
            return match["version"], match["rest"]
    return None


def check(directory: Path, release: bool) -> list[str]:
    """The problems of one package (empty when its changelog matches)."""
    try:
        name, version = package_version(directory)
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as error:
        return [f"{directory.name}: cannot read the version: {error}"]
    changelog = directory / "CHANGELOG.md"
    if not changelog.is_file():
        return [f"{name} {version}: no CHANGELOG.md"]
    entry = top_entry(changelog)
    if entry is None:
        return [f"{name} {version}: CHANGELOG.md has no '## <version>' entry"]
    top, rest = entry
    if top != version:
        return [f"{name} {version}: the top CHANGELOG.md entry is {top!r}, expected '## {version}'"]
    if release and not DATED.match(rest):
        return [f"{name} {version}: the top CHANGELOG.md entry is not dated ('## {version} - YYYY-MM-DD')"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--release", action="store_true", help="also require a dated top entry")
    parser.add_argument("packages", nargs="*", type=Path, help="package directories (default: packages/*)")
    args = parser.parse_args(argv)
    directories: list[Path] = args.packages or sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))
    problems: list[str] = []
    for directory in directories:
        if args.release and is_private(directory):
            print(f"{directory.name}: private, not released")
            continue
        found = check(directory, args.release)
        problems += found
        if not found:
            name, version = package_version(directory)
            print(f"{name} {version}: CHANGELOG.md ok")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
