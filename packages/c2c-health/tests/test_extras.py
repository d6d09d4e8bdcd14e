"""Built-in checks whose extra is missing fail at construction with the extra to install.

Runs in both CI cells: without the extras the import really fails; with them, it is made to fail
by hiding the module (a `None` entry in `sys.modules` makes its import raise ModuleNotFoundError).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

import c2c_health
from c2c_health import HTTP, Alembic, Check, Redis, SQLAlchemy


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize(
    ("hidden", "build", "message"),
    [
        (
            "redis",
            lambda: Redis(),
            r"the Redis health check needs '(redis|c2c_config\.redis)': install c2c-health\[redis\]",
        ),
        (
            "sqlalchemy",
            lambda: SQLAlchemy(None),  # type: ignore[arg-type]
            r"the SQLAlchemy health check needs 'sqlalchemy': install c2c-health\[sqlalchemy\]",
        ),
        (
            "alembic",
            lambda: Alembic(None),  # type: ignore[arg-type]
            r"the Alembic health check needs 'alembic': install c2c-health\[alembic\]",
        ),
    ],
    ids=["redis", "sqlalchemy", "alembic"],
)
def test_missing_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, hidden: str, build: Callable[[], Check], message: str
) -> None:
    if _installed(hidden):
        monkeypatch.setitem(sys.modules, hidden, None)
        # c2c_config.redis may already be imported: hide it too, so the import runs again.
        monkeypatch.setitem(sys.modules, "c2c_config.redis", None)
    with pytest.raises(ModuleNotFoundError, match=message):
        build()


def test_core_needs_no_extra() -> None:
    # The package and its stdlib-only HTTP check import and build without any extra.
    check: Any = HTTP("http://127.0.0.1:8080/health")
    assert check.name == "HTTP"
    assert set(c2c_health.__all__) >= {"Check", "Result", "Factory", "FACTORY", "Redis", "SQLAlchemy", "Alembic"}
    assert c2c_health.__all__ == sorted(c2c_health.__all__, key=lambda name: (not name.isupper(), name))


def test_lazy_names_are_stable_and_complete() -> None:
    for name in c2c_health.__all__:
        assert getattr(c2c_health, name) is getattr(c2c_health, name), name
    assert set(c2c_health.__all__) <= set(dir(c2c_health))
    assert isinstance(c2c_health.__version__, str)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        c2c_health.Nope  # noqa: B018


def test_probe_command_loads_only_the_standard_library() -> None:
    code = (
        "import sys, c2c_health.__main__; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'fastapi', 'starlette', "
        "'c2c_config', 'prometheus_client', 'sqlalchemy', 'redis'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == "[]\n"
