"""The README: its echo example runs as written, and its settings table matches the code."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import c2c_broadcast
from c2c_broadcast import BroadcastResponse, BroadcastSettings
from c2c_config import env_var_name

README = Path(__file__).parent.parent / "README.md"


def _echo_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- echo-example:start -->\n```python\n(.*?)```\n<!-- echo-example:end -->", text, re.S)
    assert match is not None, "the echo example markers are missing"
    return match.group(1)


async def test_echo_example_runs_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "readme_echo_app.py"
    source.write_text(_echo_example())
    spec = importlib.util.spec_from_file_location("readme_echo_app", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "readme_echo_app", module)
    spec.loader.exec_module(module)
    app: Any = module.app
    async with app.router.lifespan_context(app):
        answers = await module.echo_handler(message="hello")
        assert len(answers) == 1
        (answer,) = answers
        assert isinstance(answer, BroadcastResponse)
        assert isinstance(answer.payload, module.EchoResponse)
        assert answer.payload.result is None  # the example's EchoResponse(message=...) sets no field
        assert "c2c_decorated_readme_echo_app._echo_handler" in c2c_broadcast.get_broadcaster().get_subscribers()
    await c2c_broadcast.shutdown()


def _typed_example() -> str:
    text = README.read_text()
    pattern = r"<!-- echo-example-typed:start -->\n```python\n(.*?)```\n<!-- echo-example-typed:end -->"
    match = re.search(pattern, text, re.S)
    assert match is not None, "the typed echo example markers are missing"
    return match.group(1)


async def test_typed_echo_example_echoes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    source = tmp_path / "readme_typed_echo_app.py"
    source.write_text(_typed_example())
    spec = importlib.util.spec_from_file_location("readme_typed_echo_app", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "readme_typed_echo_app", module)
    spec.loader.exec_module(module)
    app: Any = module.app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/echo", params={"message": "hello"})
    assert response.json() == ["Broadcast echo: hello"]


def test_typed_echo_example_passes_mypy_strict(tmp_path: Path) -> None:
    mypy_api = pytest.importorskip("mypy.api")
    source = tmp_path / "readme_typed_echo_app.py"
    source.write_text(_typed_example())
    out, err, status = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(source)]
    )
    assert status == 0, out + err


def test_settings_table_lists_every_broadcast_variable() -> None:
    text = README.read_text()
    for name in BroadcastSettings.model_fields:
        variable = env_var_name(("broadcast", name))
        assert f"`{variable}`" in text, variable
        description = BroadcastSettings.model_fields[name].description
        assert description and description in text, f"{variable}: description differs from the code"


def test_public_names_are_documented() -> None:
    text = README.read_text()
    for name in ("startup", "subscribe", "unsubscribe", "broadcast", "decorate", "shutdown", "cleanup", "status"):
        assert f"`{name}(" in text, name
    for name in ("BroadcastResponse", "ErrorAnswer", "MissingAnswer", "BroadcastUnavailableError", "Metrics"):
        assert name in text, name
