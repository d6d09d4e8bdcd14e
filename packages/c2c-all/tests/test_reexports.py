"""`c2casgiutils.<module>` re-exports its member package: the same objects, every public name, no copy."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import c2casgiutils

PAIRS = [
    ("c2casgiutils.headers", "c2c_headers"),
    ("c2casgiutils.health_checks", "c2c_health"),
    ("c2casgiutils.auth", "c2c_auth"),
    ("c2casgiutils.broadcast", "c2c_broadcast"),
    ("c2casgiutils.broadcast.types", "c2c_broadcast.types"),
]


# Names a unified module defines itself, as c2casgiutils 0.14 had them: `auth.settings` (the
# toolkit's settings, also in `from c2casgiutils.auth import *`) and `health_checks.router` (the
# report at the router's root, where `c2c_health.router` serves `/health_checks` and `/health`).
OWN = {"c2casgiutils.auth": {"settings"}, "c2casgiutils.health_checks": {"router"}}


@pytest.mark.parametrize(("ours", "member"), PAIRS, ids=[ours for ours, _ in PAIRS])
def test_same_objects(ours: str, member: str) -> None:
    unified = importlib.import_module(ours)
    original = importlib.import_module(member)
    own = OWN.get(ours, set())
    public = [name for name in original.__all__ if name != "__version__"]
    assert sorted(unified.__all__) == sorted(set(public) | own), "every public name, and only those"
    for name in public:
        if name in own:
            assert getattr(unified, name) is not getattr(original, name), name
            continue
        value = getattr(original, name)
        if inspect.ismodule(value):  # a submodule is re-exported as our own module (its own pair here)
            assert getattr(unified, name).__name__ == f"{ours}.{name}", name
            continue
        assert getattr(unified, name) is value, name


def test_config_reexports_machinery() -> None:
    import c2c_config
    from c2casgiutils import config

    for name in ("ConfigError", "Duration", "StringList", "RedisSettings", "ProxyHeadersSettings"):
        assert getattr(config, name) is getattr(c2c_config, name)


def test_import_is_cheap() -> None:
    """`import c2casgiutils` loads neither FastAPI nor the members; attributes load them on demand."""
    code = (
        "import sys, c2casgiutils\n"
        "members = ('fastapi', 'c2c_auth', 'c2c_health', 'c2c_broadcast', 'c2c_headers')\n"
        "heavy = [m for m in members if m in sys.modules]\n"
        "print(heavy)\n"
        "print(c2casgiutils.headers.CSP_NONCE)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["[]", "'nonce'"]


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        c2casgiutils.nope  # noqa: B018 - the attribute access is the test
