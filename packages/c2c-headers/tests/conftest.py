"""Package-local fixtures of c2c-headers: the `engine` fixture, ``--native``, Hypothesis profiles."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# --import-mode=importlib does not put test folders on sys.path: make the helpers module importable.
sys.path.insert(0, str(Path(__file__).parent))

# Hypothesis: `dev` (default, fast) and `ci` (more examples), chosen by HYPOTHESIS_PROFILE. No
# deadline: a timing threshold is a timed assertion, and the machine is shared.
settings.register_profile("dev", max_examples=40, deadline=None)
settings.register_profile(
    "ci", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def _native_version() -> str | None:
    try:
        module = importlib.import_module("c2c_headers_native")
    except ModuleNotFoundError:
        return None
    return str(getattr(module, "__version__", "unknown version"))


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--native`` (missing native fails) / ``--no-native`` (native tests deselected)."""
    parser.addoption(
        "--native",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="c2c-headers: --native requires the native engine (missing = failure); --no-native deselects it; "
        "default: run it when installed, skip otherwise",
    )


def _native_option(config: pytest.Config) -> bool | None:
    value = config.getoption("native", default=None)
    return None if value is None else bool(value)


def pytest_report_header(config: pytest.Config) -> str:
    """Say which header engines run (and the native version)."""
    option = _native_option(config)
    version = _native_version()
    if option is False:
        return "c2c-headers engines: python (native deselected by --no-native)"
    if version is None:
        if option:
            return "c2c-headers engines: python, native REQUIRED BUT NOT INSTALLED (tests will fail)"
        return "c2c-headers engines: python (native not installed: skipped)"
    return f"c2c-headers engines: python, native {version}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the native-marked tests under ``--no-native``."""
    if _native_option(config) is not False:
        return
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        (deselected if item.get_closest_marker("native") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture(
    scope="session",
    params=["python", pytest.param("native", marks=pytest.mark.native)],
    ids=["python", "native"],
)
def engine(request: pytest.FixtureRequest) -> str:
    """The header engine name to pass as ``engine=``: every ArmorHeaderMiddleware test runs on both."""
    name: str = request.param
    if name == "native" and _native_version() is None:
        if _native_option(request.config):
            pytest.fail("--native was given but c2c_headers_native is not importable (install c2c-headers[native])")
        pytest.skip("c2c_headers_native is not installed (install c2c-headers[native]; --native makes this an error)")
    return name
