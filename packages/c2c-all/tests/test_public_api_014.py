"""Every public name of c2casgiutils 0.14 is importable from its module, with its kind and compatible parameters.

The list (`data/c2casgiutils-0.14-public-api.json`) holds facts about 0.14's API: each name's kind as
`inspect` reports it on that release, its parameters (name, required or not) and, for a class, its
public members. A 0.14 service calls these with keywords and positionally, so for each callable:

- every parameter 0.14 had is still accepted, by name (or through `**kwargs`);
- no parameter is required that 0.14 did not require;
- the parameters 0.14 had keep their relative order (positional calls mean the same);
- a class keeps its public members.

What cannot be kept is listed in `KNOWN_DIFFERENCES`, and each entry must be explained in
docs/migration.md (the test checks that the guide names it).
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from typing import Any

import pytest

_DATA = json.loads((Path(__file__).parent / "data" / "c2casgiutils-0.14-public-api.json").read_text(encoding="utf-8"))
MODULES: dict[str, dict[str, dict[str, Any]]] = _DATA["modules"]
MIGRATION_GUIDE = Path(__file__).parents[3] / "docs" / "migration.md"

# (module, name) -> {"members": names 0.14 had that ours cannot keep, "why": the word the guide uses}
KNOWN_DIFFERENCES: dict[tuple[str, str], dict[str, Any]] = {
    # Pure ASGI instead of Starlette's BaseHTTPMiddleware (streaming, background tasks, context
    # variables, 50x less overhead): there is no `dispatch` to override.
    ("c2casgiutils.headers", "ArmorHeaderMiddleware"): {"members": {"dispatch"}, "guide": "dispatch"},
}
NAMES = [(module, name) for module, names in sorted(MODULES.items()) for name in sorted(names)]


def test_the_list_is_complete() -> None:
    assert len(MODULES) == 16
    assert len(NAMES) == 110


def _kind(value: object) -> str:
    if inspect.isclass(value):
        return "class"
    if inspect.iscoroutinefunction(value):
        return "coroutine function"
    if inspect.isfunction(value) or inspect.isbuiltin(value) or inspect.ismethod(value):
        return "function"
    if isinstance(value, str | int | float | bytes):
        return "constant"
    return "object"


def _signature(value: Any) -> inspect.Signature | None:
    if inspect.isclass(value):
        try:
            return inspect.signature(value)
        except (TypeError, ValueError):
            return None
    return inspect.signature(value)


@pytest.mark.parametrize(("module_name", "name"), NAMES, ids=[f"{m}:{n}" for m, n in NAMES])
def test_public_name(module_name: str, name: str) -> None:
    expected = MODULES[module_name][name]
    module = importlib.import_module(module_name)
    assert hasattr(module, name), f"{module_name}.{name} is missing"
    value = getattr(module, name)
    kind = expected["kind"]
    assert _kind(value) == kind, f"{module_name}.{name} is a {_kind(value)}, 0.14 has a {kind}"

    known = KNOWN_DIFFERENCES.get((module_name, name), {})
    for member in expected.get("members", []):
        if member in known.get("members", ()):
            continue
        assert hasattr(value, member), f"{module_name}.{name} has no member {member!r} (0.14 has)"

    parameters = expected.get("parameters")
    if not parameters:
        return
    signature = _signature(value)
    assert signature is not None, f"{module_name}.{name}: no signature to compare"
    ours = signature.parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ours.values())
    old_names = [p["name"] for p in parameters]
    old_required = {p["name"] for p in parameters if p["required"]}
    for old in old_names:
        assert old in ours or takes_kwargs, f"{module_name}.{name} no longer accepts {old!r}"
    for new_name, new in ours.items():
        if new.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if new.default is inspect.Parameter.empty and new_name not in old_required:
            # A FastAPI dependency parameter named `_` (0.14's access guards) is never passed by callers.
            assert new_name.startswith("_"), f"{module_name}.{name} requires {new_name!r}, which 0.14 did not"
    # Keyword-only parameters may come in any order; positional ones keep 0.14's.
    positional = [n for n, p in ours.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    positions = [positional.index(old) for old in old_names if old in positional]
    assert positions == sorted(positions), f"{module_name}.{name}: 0.14's parameters changed order"


@pytest.mark.parametrize("key", sorted(KNOWN_DIFFERENCES), ids=lambda key: f"{key[0]}:{key[1]}")
def test_known_differences_are_in_the_migration_guide(key: tuple[str, str]) -> None:
    guide = MIGRATION_GUIDE.read_text(encoding="utf-8")
    assert KNOWN_DIFFERENCES[key]["guide"] in guide, f"docs/migration.md does not explain {key}"


def test_a_plain_import_reaches_the_submodules_as_in_014() -> None:
    import c2casgiutils

    assert inspect.ismodule(c2casgiutils.tools.logging_)
    assert inspect.ismodule(c2casgiutils.tools.headers)
    assert inspect.ismodule(c2casgiutils.redis_utils)
    assert inspect.ismodule(c2casgiutils.broadcast)


# --- used as 0.14 services use them ----------------------------------------------------------------


def test_routers_are_relative_as_in_014(monkeypatch: pytest.MonkeyPatch) -> None:
    """0.14's routers carried no paths of their own: a service includes them under its own prefix."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from c2casgiutils import auth, health_checks
    from c2casgiutils.tools import headers, logging_

    monkeypatch.setenv("C2C__HEALTH_CHECKS__DETAILS", "always")
    app = FastAPI()
    app.include_router(health_checks.router, prefix="/hc")
    app.include_router(headers.router, prefix="/debug/headers")
    app.include_router(logging_.router, prefix="/debug/logging")
    app.dependency_overrides[auth.require_read_only_access] = lambda: None
    with TestClient(app) as client:
        report = client.get("/hc/")
        assert report.status_code == 200, report.text
        assert report.json()["status_code"] == 200
        assert client.get("/hc/livez").status_code == 200
        seen = client.get("/debug/headers/", headers={"X-Test": "1"})
        assert seen.status_code == 200 and seen.json()["headers"]["x-test"] == "1"
        assert client.get("/debug/headers/one/two").status_code == 200
        level = client.get("/debug/logging/level", params={"name": "root"})
        assert level.status_code == 200 and level.json()["name"] == "root"
    assert {route.path for route in logging_.router.routes} == {"/level", "/overrides"}  # type: ignore[attr-defined]


def test_factory_add_takes_014s_keyword() -> None:
    from c2casgiutils import health_checks

    factory = health_checks.Factory()
    check = health_checks.Wrong()
    assert factory.add(item=check) is check


def test_star_import_of_auth_gives_settings() -> None:
    namespace: dict[str, Any] = {}
    exec("from c2casgiutils.auth import *", namespace)  # noqa: S102 - the import a 0.14 module may do
    from c2casgiutils import config

    assert namespace["settings"] is config.settings
