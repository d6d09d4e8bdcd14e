"""`c2casgiutils-genversion [GIT_TAG] GIT_HASH`: write `versions.json`, served at `/c2c/versions`.

The package list comes from the metadata of the environment this command runs in
(`importlib.metadata`), not from whichever `pip` is on PATH (c2casgiutils 0.14 failed in uv
environments, which have no pip).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "versions"]


def versions(git_hash: str, git_tag: str | None = None) -> dict[str, Any]:
    """The content of `versions.json`: `{"main": {"git_hash", "git_tag"?}, "packages": {name: version}}`."""
    main: dict[str, str] = {"git_hash": git_hash}
    if git_tag:
        main["git_tag"] = git_tag
    packages = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            packages[name.lower()] = distribution.version
    return {"main": main, "packages": dict(sorted(packages.items()))}


def main(argv: list[str] | None = None) -> int:
    """Run the command line."""
    parser = argparse.ArgumentParser(prog="c2casgiutils-genversion", description=__doc__)
    parser.add_argument("values", nargs="+", metavar="[GIT_TAG] GIT_HASH")
    parser.add_argument("--output", type=Path, default=Path("versions.json"), help="default: ./versions.json")
    args = parser.parse_args(argv)
    if len(args.values) > 2:
        parser.error("expected [GIT_TAG] GIT_HASH")
    git_tag, git_hash = (args.values[0], args.values[1]) if len(args.values) == 2 else (None, args.values[0])
    args.output.write_text(json.dumps(versions(git_hash, git_tag), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
