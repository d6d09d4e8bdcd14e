"""The demo (`examples/demo/app.py`) under a real uvicorn: its "Versions" link and `/c2c/replicas`.

Without a `versions.json` next to it, `/c2c/versions` answers the installed distributions (it was
a 404 with raw JSON in the browser); `/c2c/replicas` lists the one replica (local broadcast) with
its header engine, the demo's application version and its health.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from c2c_testing import free_port, stop_process, wait_for_port

REPO = Path(__file__).resolve().parent.parent
SECRET = "replicas-demo-secret-value"  # a test value, not a credential
KEY = {"X-API-Key": SECRET}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("C2C__", "DEMO_"))}
    env |= {
        "C2C__AUTH__SECRET": SECRET,
        "C2C__TOOLS__VERSIONS_FILE": str(tmp_path / "versions.json"),  # absent
        "DEMO_DATABASE": str(tmp_path / "demo.sqlite3"),
        "PYTHONPATH": str(REPO),
    }
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "examples.demo.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with (tmp_path / "demo.log").open("wb") as log:
        process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process, timeout=10)


def test_demo_versions_link_and_replicas(demo: str, tmp_path: Path) -> None:
    page = httpx.get(f"{demo}/c2c/", headers=KEY, timeout=10)
    assert page.status_code == 200
    assert 'href="/c2c/versions"' in page.text and 'href="#replicas"' in page.text

    versions = httpx.get(f"{demo}/c2c/versions", headers=KEY, timeout=10)
    assert versions.status_code == 200, (tmp_path / "demo.log").read_text()[-2000:]
    assert versions.json()["main"] == {}
    assert {"c2c-all", "fastapi", "uvicorn"} <= set(versions.json()["packages"])

    answer = httpx.get(f"{demo}/c2c/replicas", headers=KEY, timeout=10)
    assert answer.status_code == 200, answer.text
    [row] = answer.json()["replicas"]
    assert row["status"] == "ok"
    assert row["application_version"]  # FastAPI's app.version: there is no versions.json
    assert row["engines"] and set(row["engines"]) <= {"native", "python"}
    assert row["health"]["status_code"] is not None
    assert httpx.get(f"{demo}/c2c/replicas", timeout=10).status_code in (401, 403)
