"""The toolkit's modules that c2casgiutils 0.14's modules imported at their top are still attributes of them.

0.14's modules imported their siblings (`from c2casgiutils import broadcast`, `from c2casgiutils.tools
import logging_ as logging_tools`...), and services' tests reach them through those names:
`mock.patch("c2casgiutils.cli.logging_tools.startup")`, `monkeypatch.setattr(module.config, "settings",
...)`. `REFERENCES` is the list of those names in 0.14.0 (read from the released wheel's modules):
each must be the very module ours uses, so that a patch through it has the effect it had.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from unittest import mock

import pytest

from c2casgiutils import cli

# module -> {attribute: the module it is}, in c2casgiutils 0.14.0 (the toolkit's own modules only).
REFERENCES: dict[str, dict[str, str]] = {
    "c2casgiutils": {
        "auth": "c2casgiutils.auth",
        "broadcast": "c2casgiutils.broadcast",
        "config": "c2casgiutils.config",
        "health_checks": "c2casgiutils.health_checks",
        "redis_utils": "c2casgiutils.redis_utils",
        "tools": "c2casgiutils.tools",
    },
    "c2casgiutils.broadcast": {
        "config": "c2casgiutils.config",
        "interface": "c2casgiutils.broadcast.interface",
        "local": "c2casgiutils.broadcast.local",
        "redis": "c2casgiutils.broadcast.redis",
        "redis_utils": "c2casgiutils.redis_utils",
        "types": "c2casgiutils.broadcast.types",
        "utils": "c2casgiutils.broadcast.utils",
    },
    "c2casgiutils.broadcast.local": {
        "interface": "c2casgiutils.broadcast.interface",
        "utils": "c2casgiutils.broadcast.utils",
    },
    "c2casgiutils.broadcast.redis": {
        "interface": "c2casgiutils.broadcast.interface",
        "local": "c2casgiutils.broadcast.local",
        "utils": "c2casgiutils.broadcast.utils",
    },
    "c2casgiutils.cli": {"broadcast": "c2casgiutils.broadcast", "logging_tools": "c2casgiutils.tools.logging_"},
    "c2casgiutils.health_checks": {"config": "c2casgiutils.config", "redis_utils": "c2casgiutils.redis_utils"},
    "c2casgiutils.tools": {
        "auth": "c2casgiutils.auth",
        "config": "c2casgiutils.config",
        "headers": "c2casgiutils.tools.headers",
        "logging_": "c2casgiutils.tools.logging_",
        "logging_tools": "c2casgiutils.tools.logging_",
    },
    "c2casgiutils.tools.headers": {"auth": "c2casgiutils.auth"},
    "c2casgiutils.tools.logging_": {
        "auth": "c2casgiutils.auth",
        "broadcast": "c2casgiutils.broadcast",
        "config": "c2casgiutils.config",
        "redis_utils": "c2casgiutils.redis_utils",
    },
}
PAIRS = [(module, name) for module, names in sorted(REFERENCES.items()) for name in sorted(names)]


@pytest.mark.parametrize(("module_name", "name"), PAIRS, ids=[f"{m}.{n}" for m, n in PAIRS])
def test_module_reference(module_name: str, name: str) -> None:
    module = importlib.import_module(module_name)
    assert getattr(module, name) is importlib.import_module(REFERENCES[module_name][name])


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'logging_tool'"):
        getattr(cli, "logging_tool")  # noqa: B009


async def test_patching_through_cli_patches_what_init_calls() -> None:
    # As a 0.14 service's test of its command-line entry point does.
    with (
        mock.patch("c2casgiutils.cli.broadcast.startup") as broadcast_startup,
        mock.patch("c2casgiutils.cli.logging_tools.startup") as logging_startup,
    ):
        await cli.init(argparse.Namespace(logging_config=None))
    broadcast_startup.assert_awaited_once_with()
    logging_startup.assert_awaited_once_with()


def test_importing_cli_stays_cheap() -> None:
    # The two references are imported on first access, not with the module (FastAPI, the broadcaster).
    code = "import sys, c2casgiutils.cli; print(sorted({'fastapi', 'c2c_broadcast'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
