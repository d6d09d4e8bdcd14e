"""Regenerate the re-exporting modules of c2casgiutils from their members' `__all__`.

`c2casgiutils.headers`, `.health_checks`, `.auth`, `.broadcast` and `.broadcast.types` hold only
imports and `__all__` (CONVENTIONS G); `packages/c2c-all/tests/test_reexports.py` fails when one
drifts from its member. Run `uv run python scripts/sync-reexports.py` after changing a member's
public names.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "packages" / "c2c-all" / "src" / "c2casgiutils"

MODULES = [
    ("headers.py", "c2c_headers", "Security and forwarded headers: the public surface of c2c-headers"),
    ("health_checks.py", "c2c_health", "Health checks: the public surface of c2c-health"),
    ("auth.py", "c2c_auth", "Authentication of the admin tools: the public surface of c2c-auth"),
    ("broadcast/__init__.py", "c2c_broadcast", "Broadcast to every replica: the public surface of c2c-broadcast"),
    ("broadcast/types.py", "c2c_broadcast.types", "The answer types of a broadcast: `c2c_broadcast.types`"),
]


def render(member: str, doc: str) -> str:
    """The source of a module re-exporting `member`'s public names (submodules become our own)."""
    module = importlib.import_module(member)
    names = [name for name in module.__all__ if name != "__version__"]
    plain = [name for name in names if not inspect.ismodule(getattr(module, name))]
    submodules = [name for name in names if inspect.ismodule(getattr(module, name))]
    ours = "c2casgiutils" + member.removeprefix(member.split(".")[0]).replace("c2c_", "")
    ours = {"c2c_broadcast": "c2casgiutils.broadcast"}.get(member, ours)
    lines = [f'"""{doc} (re-exported, nothing else here)."""', "", f"from {member} import ("]
    lines += [f"    {name}," for name in plain] + [")", ""]
    lines += [f"from {ours} import {name}" for name in submodules]
    if submodules:
        lines.append("")
    lines += ["__all__ = ["] + [f'    "{name}",' for name in sorted(names)] + ["]", ""]
    return "\n".join(lines)


def main() -> None:
    """Write every re-exporting module."""
    for path, member, doc in MODULES:
        (TARGET / path).write_text(render(member, doc), encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
