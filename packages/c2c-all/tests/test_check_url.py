"""`check --url` against real servers: uvicorn behind a real nginx that adds X-Forwarded-*.

The check reads the service's request-headers tool (`/c2c/headers/`, with the secret): through
nginx, requests arrive with `X-Forwarded-For`/`-Proto`, so proxy headers `none` is reported;
straight to uvicorn, nothing is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from c2c_testing import Nginx, free_port, stop_process, wait_for_port
from c2casgiutils import config
from c2casgiutils.check import CheckOptions, run_check

SECRET = "s" * 40

APP = """
import c2casgiutils
from fastapi import FastAPI

app = FastAPI()
app.mount("/c2c", c2casgiutils.app)
"""

NGINX_HTTP = """
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 5s;
            proxy_read_timeout 20s;
        }}
    }}"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(direct URL, URL through nginx) of the service's /c2c application."""
    (tmp_path / "url_checked_app.py").write_text(APP)
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env.update({"C2C__AUTH__SECRET": SECRET, "C2C__PROMETHEUS__PORT": "0"})
    app_port, proxy_port = free_port(), free_port()
    nginx = Nginx(tmp_path / "nginx", NGINX_HTTP.format(port=proxy_port, upstream=app_port), [proxy_port])
    uvicorn = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "url_checked_app:app", "--host=127.0.0.1", f"--port={app_port}"]
        + ["--lifespan=on", "--no-proxy-headers", "--log-level=warning"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    try:
        nginx.start()
        wait_for_port("127.0.0.1", app_port, timeout=60)
        yield f"http://127.0.0.1:{app_port}/c2c", f"http://127.0.0.1:{proxy_port}/c2c"
    finally:
        nginx.stop()
        stop_process(uvicorn)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("C2C__AUTH__SECRET", SECRET)
    monkeypatch.setenv("C2C__AUTH__SECRET_IN_QUERY", "false")
    config.reload()
    yield
    monkeypatch.undo()
    config.reload()


async def test_url_through_nginx(service: tuple[str, str], settings_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    direct, proxied = service
    findings = await run_check(CheckOptions(url=proxied, timeout=10))
    assert [finding.id for finding in findings] == ["C2C-W003"]
    assert "x-forwarded-for, x-forwarded-proto" in findings[0].message
    assert await run_check(CheckOptions(url=direct, timeout=10)) == []

    monkeypatch.setenv("C2C__PROXY_HEADERS__TYPE", "x-forwarded")
    assert await run_check(CheckOptions(url=proxied, timeout=10)) == []

    wrong = await run_check(CheckOptions(url=proxied, secret="not the secret", timeout=10))
    assert [finding.id for finding in wrong] == ["C2C-E008"]
