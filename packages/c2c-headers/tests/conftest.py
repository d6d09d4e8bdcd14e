"""Package-local fixtures of c2c-headers: the `engine` fixture, ``--native``, Hypothesis profiles."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

# --import-mode=importlib does not put test folders on sys.path: make the helpers module importable.
sys.path.insert(0, str(Path(__file__).parent))


def _native_version() -> str | None:
    try:
        module = importlib.import_module("c2c_headers_native")
    except ModuleNotFoundError:
        return None
    return str(getattr(module, "__version__", "unknown version"))


def _native_option(config: pytest.Config) -> bool | None:
    # `--native` / `--no-native` are registered by the c2c-testing plugin (they work from any directory).
    value = config.getoption("native", default=None)
    return None if value is None else bool(value)


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


@pytest.fixture(scope="module")
def native_required(request: pytest.FixtureRequest) -> None:
    """Skip (or, under ``--native``, fail) a module that needs c2c-headers-native when it is missing
    (``pytestmark = pytest.mark.usefixtures("native_required")``)."""
    if _native_version() is not None:
        return
    if _native_option(request.config):
        pytest.fail("--native was given but c2c_headers_native is not importable (install c2c-headers[native])")
    pytest.skip(f"{request.module.__name__} needs c2c_headers_native (install c2c-headers[native])")
