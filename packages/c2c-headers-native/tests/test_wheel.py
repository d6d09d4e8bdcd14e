"""The release wheel: built by maturin, installed into a fresh virtual environment, used from there.

Slow (a release build with fat LTO, a venv, an install): marker ``slow``. It needs ``maturin`` and
``uv`` on PATH (both are part of the development setup) and fails, never skips, without them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
HEADERS_PACKAGE = PACKAGE.parent / "c2c-headers"

# Run inside the fresh environment: a few header behaviours through the public middleware.
SMOKE_TEST = """
import asyncio

import c2c_headers_native
from c2c_headers import CSP_NONCE, ArmorHeaderMiddleware


async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": b"ok"})


def run(middleware, path="/"):
    messages = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [(b"host", b"example.com")],
             "scheme": "http", "query_string": b"", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}
    asyncio.run(middleware(scope, receive, send))
    return dict(messages[0]["headers"]), scope


def test_native_is_the_default_engine():
    assert ArmorHeaderMiddleware(app).engine_name == "native"
    assert c2c_headers_native.__version__


def test_default_headers():
    headers, _ = run(ArmorHeaderMiddleware(app, engine="native"))
    assert headers[b"x-frame-options"] == b"DENY"
    assert b"default-src 'self'" in headers[b"content-security-policy"]


def test_nonce_rule():
    config = {"nonce": {"path_match": r"^/page$", "headers": {"Content-Security-Policy": {"script-src": [CSP_NONCE]}}}}
    headers, scope = run(ArmorHeaderMiddleware(app, headers_config=config, engine="native"), "/page")
    nonce = scope["state"]["nonce"]
    assert headers[b"content-security-policy"] == f"script-src 'nonce-{nonce}'".encode()
    assert headers[b"cache-control"] == b"no-store"


def test_unsupported_pattern_falls_back():
    config = {"look": {"path_match": "/(?!admin)", "headers": {"X-A": "1"}}}
    assert ArmorHeaderMiddleware(app, headers_config=config, engine="auto").engine_name == "python"
"""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: it is needed to build and install the wheel")
    return path


@pytest.mark.slow
def test_release_wheel_in_a_fresh_environment(tmp_path: Path) -> None:
    maturin, uv = _tool("maturin"), _tool("uv")
    dist = tmp_path / "dist"
    subprocess.run(
        [maturin, "build", "--release", "--locked", "--out", str(dist), "--interpreter", sys.executable],
        cwd=PACKAGE,
        check=True,
    )
    (wheel,) = dist.glob("*.whl")
    assert "-cp311-abi3-manylinux" in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for member in ("_native.abi3.so", "_native.pyi", "_translate.py", "py.typed", "__init__.py"):
        assert f"c2c_headers_native/{member}" in names, member

    venv = tmp_path / "venv"
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "--python", str(python), str(wheel), str(HEADERS_PACKAGE), "pytest"],
        check=True,
        env=env,
    )
    work = tmp_path / "smoke"
    work.mkdir()
    (work / "test_smoke.py").write_text(SMOKE_TEST)
    result = subprocess.run(
        [str(python), "-I", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(work), str(work)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
