"""`check --url` against real servers: uvicorn behind a real nginx that adds X-Forwarded-*.

The check reads the service's request-headers tool (`/c2c/headers/`, with the secret): through
nginx, requests arrive with `X-Forwarded-For`/`-Proto`, so proxy headers `none` is reported;
straight to uvicorn, nothing is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from c2c_testing import free_port, stop_process, wait_for_port
from c2casgiutils import config
from c2casgiutils.check import CheckOptions, run_check

SECRET = "s" * 40

APP = """
import c2casgiutils
from fastapi import FastAPI

app = FastAPI()
app.mount("/c2c", c2casgiutils.app)
"""

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
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
    }}
}}
"""


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        pytest.fail("nginx is missing: install it with `apt-get install nginx` (as root)", pytrace=False)
    return found


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(direct URL, URL through nginx) of the service's /c2c application."""
    (tmp_path / "url_checked_app.py").write_text(APP)
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env.update({"C2C__AUTH__SECRET": SECRET, "C2C__PROMETHEUS__PORT": "0"})
    app_port, proxy_port = free_port(), free_port()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    nginx_conf = prefix / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""  # as root, workers would become `nobody`
    nginx_conf.write_text(NGINX_CONF.format(prefix=prefix, port=proxy_port, upstream=app_port, user=user))
    uvicorn = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "url_checked_app:app", "--host=127.0.0.1", f"--port={app_port}"]
        + ["--lifespan=on", "--no-proxy-headers", "--log-level=warning"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    nginx = subprocess.Popen(
        [_nginx(), "-p", str(prefix), "-c", str(nginx_conf), "-e", str(prefix / "error.log")],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", app_port, timeout=60)
        wait_for_port("127.0.0.1", proxy_port, timeout=60)
        yield f"http://127.0.0.1:{app_port}/c2c", f"http://127.0.0.1:{proxy_port}/c2c"
    finally:
        stop_process(nginx)
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
