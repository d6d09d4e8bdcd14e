"""`c2c_testing.Nginx`: a real nginx from a temporary prefix, proxying to a real HTTP server."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from c2c_testing import MissingBinaryError, Nginx, ServerError, free_port, nginx_binary


@pytest.fixture
def upstream() -> Iterator[int]:
    """A plain HTTP server on 127.0.0.1 answering the request's X-Forwarded-For."""

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (self.headers.get("X-Forwarded-For") or "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_proxies_and_stops(tmp_path: Path, upstream: int) -> None:
    port = free_port()
    http_block = f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}"""
    with Nginx(tmp_path / "nginx", http_block, [port]) as nginx:
        answer = httpx.get(f"http://127.0.0.1:{port}/", headers={"X-Forwarded-For": "192.0.2.1"}, timeout=10)
        assert answer.status_code == 200
        assert answer.text == "192.0.2.1, 127.0.0.1"
        assert nginx.config_path.read_text().count("/etc/nginx") == 1  # only in the comment
        pid = nginx.process.pid if nginx.process else 0
    assert nginx.process is None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the master and its workers are gone
    nginx.stop()  # idempotent


def test_a_bad_configuration_is_a_server_error_with_the_log(tmp_path: Path) -> None:
    nginx = Nginx(tmp_path / "nginx", "    no_such_directive on;", [free_port()])
    with pytest.raises(ServerError, match="no_such_directive"):
        nginx.start(timeout=10)
    nginx.stop()


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(MissingBinaryError, match="nginx"):
        nginx_binary()
