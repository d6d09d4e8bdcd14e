"""The root README's Quick start and `scripts/demo`, as a newcomer meets them (issue 15, item 4).

`scripts/demo` runs here against a stand-in `uv` (the real one would sync the shared environment):
what is checked is what the newcomer reads while waiting, and what happens on a taken port.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from c2c_testing import free_port

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
SETTINGS = (REPO / "docs/settings.md").read_text(encoding="utf-8")

FAKE_UV = """#!/bin/sh
case "$1" in
    sync) sleep "${FAKE_SYNC_SECONDS:-0}"; exit "${FAKE_SYNC_STATUS:-0}" ;;
    run) echo "uv $*"; exit 0 ;;
esac
exit 9
"""


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_quick_start_keeps_two_commands_with_their_time() -> None:
    quick_start = _section("Quick start")
    (block,) = re.findall(r"```sh\n(.*?)```", quick_start, flags=re.DOTALL)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["scripts/demo", "scripts/test"]
    for command in commands:
        assert (REPO / command).is_file()
        assert os.access(REPO / command, os.X_OK)
        assert re.search(rf"`{command}`: .*?\d+ (minutes|s)\b", quick_start, flags=re.DOTALL), command
    assert "DEMO_PORT" in quick_start
    assert "C2C__PROMETHEUS__PORT" in quick_start


def test_readme_links_and_variables_exist() -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" not in target:
            assert (REPO / target).exists(), target
    for variable in set(re.findall(r"\bC2C__[A-Z0-9_]+", README)):
        assert f"`{variable}" in SETTINGS, f"{variable} is not in docs/settings.md"
    demo = (REPO / "scripts/demo").read_text(encoding="utf-8")
    for variable in set(re.findall(r"\bDEMO_[A-Z]+", README)):
        assert variable in demo, variable


@dataclass
class DemoCopy:
    """Where the copy is and the environment to run it with (not shown in failure reports)."""

    root: Path
    env: dict[str, str] = field(repr=False)


@pytest.fixture
def demo_copy(tmp_path: Path) -> DemoCopy:
    """A copy of scripts/demo with a stand-in `uv` and a `.venv/bin/python` without site-packages.

    Without site-packages the native engine is not importable: the script takes it for a first run.
    """
    (tmp_path / "scripts").mkdir()
    shutil.copy2(REPO / "scripts/demo", tmp_path / "scripts/demo")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "uv").write_text(FAKE_UV)
    (bin_dir / "uv").chmod(0o755)
    (tmp_path / ".venv/bin").mkdir(parents=True)
    python = tmp_path / ".venv/bin/python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    python.chmod(0o755)
    env = {name: value for name, value in os.environ.items() if not name.startswith(("C2C__", "DEMO_", "FAKE_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return DemoCopy(tmp_path, env)


def _run(root: Path, env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(root / "scripts/demo"), *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_first_run_says_so_and_shows_progress(demo_copy: DemoCopy) -> None:
    root, env = demo_copy.root, demo_copy.env
    port = free_port()
    done = _run(root, {**env, "FAKE_SYNC_SECONDS": "6", "DEMO_PORT": str(port)})
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("First run: installing the workspace and building the Rust header engine")
    assert "about a minute the first time" in lines[0]
    assert re.fullmatch(r"\.+ done in \d+ s", lines[1]), lines[1]  # dots while uv works, then the time
    assert f"Demo: http://127.0.0.1:{port}/c2c/" in done.stderr
    assert f"--port {port}" in done.stdout  # then uvicorn, on DEMO_PORT


def test_quick_sync_is_silent(demo_copy: DemoCopy) -> None:
    root, env = demo_copy.root, demo_copy.env
    done = _run(root, {**env, "DEMO_PORT": str(free_port())})
    assert done.returncode == 0, done.stderr
    assert "done in" not in done.stderr
    assert done.stderr.splitlines()[1].startswith("Demo: ")  # no dots: nothing to wait for


def test_failed_sync_stops_the_demo(demo_copy: DemoCopy) -> None:
    root, env = demo_copy.root, demo_copy.env
    done = _run(root, {**env, "FAKE_SYNC_STATUS": "3", "DEMO_PORT": str(free_port())})
    assert done.returncode == 3
    assert "uv sync failed (exit 3)" in done.stderr
    assert "uv run" not in done.stdout


def test_taken_port_is_named(demo_copy: DemoCopy) -> None:
    root, env = demo_copy.root, demo_copy.env
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        done = _run(root, {**env, "DEMO_PORT": str(port)})
    assert done.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "DEMO_PORT=8081 scripts/demo" in done.stderr
    assert "uv run" not in done.stdout


def test_server_granian_runs_the_demo_under_granian(demo_copy: DemoCopy) -> None:
    root, env = demo_copy.root, demo_copy.env
    port = free_port()
    done = _run(root, {**env, "DEMO_PORT": str(port)}, "--server", "granian", "--log-level", "debug")
    assert done.returncode == 0, done.stderr
    assert f"Demo: http://127.0.0.1:{port}/c2c/" in done.stderr and "server: granian" in done.stderr
    convert, start = done.stdout.splitlines()
    # The logging configuration converted to the JSON granian reads, then granian with it.
    assert convert.startswith("uv run --no-sync python -c ") and convert.endswith(
        "examples/demo/logging.yaml .venv/c2c-demo-logging.json"
    )
    assert start == (
        f"uv run --no-sync python -m granian --interface asgi --host 127.0.0.1 --port {port} --workers 1"
        " --log-config .venv/c2c-demo-logging.json --log-level debug examples.demo.app:app"
    )
    # The default stays uvicorn, and --server=uvicorn says so explicitly.
    for arguments in ((), ("--server=uvicorn",)):
        done = _run(root, {**env, "DEMO_PORT": str(port)}, *arguments)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("uv run --no-sync uvicorn examples.demo.app:app"), done.stdout
    done = _run(root, {**env, "DEMO_PORT": str(port)}, "--server", "gunicorn")
    assert done.returncode == 2
    assert "unknown server 'gunicorn'" in done.stderr and "uv run" not in done.stdout
