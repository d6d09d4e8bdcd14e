"""Test configuration of the tile service: settings first, then one TestClient per test.

The settings are read at import time (c2casgiutils' and ours), so the environment is set before
the application is imported. Redis is real: its URL comes from C2C__REDIS__URL.
"""

import atexit
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

_DATA_DIR = Path(tempfile.mkdtemp(prefix="tileservice-tests-"))
atexit.register(shutil.rmtree, _DATA_DIR, ignore_errors=True)

ADMIN_SECRET = "tileservice-admin-secret"
JWT_SECRET = "tileservice-jwt-signing-key-of-the-test-suite-0123456789"

os.environ.update(
    {
        # Shared-secret authentication: login with /auth/login?secret=...
        "C2C__AUTH__SECRET": ADMIN_SECRET,
        "C2C__AUTH__JWT__SECRET": JWT_SECRET,
        # The test client talks plain HTTP, and the application reads the cookie outside /c2c.
        "C2C__AUTH__JWT__COOKIE__SECURE": "false",
        "C2C__AUTH__JWT__COOKIE__PATH": "/",
        "C2C__HTTP": "true",
        "TILESERVICE__LAYERS": "osm, ortho ,relief",
        "TILESERVICE__MAIN_DATABASE": str(_DATA_DIR / "main.sqlite3"),
        "TILESERVICE__CACHE_DATABASE": str(_DATA_DIR / "cache.sqlite3"),
    }
)

from fastapi.testclient import TestClient  # noqa: E402
from tileservice.main import app  # noqa: E402

from c2casgiutils import auth  # noqa: E402
from c2casgiutils.auth import AuthInfo, UserInfo  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """The suite needs a real Redis."""
    del config
    if not os.environ.get("C2C__REDIS__URL"):
        message = "Set C2C__REDIS__URL to a running Redis (redis://host:port/0) to run the tile service tests"
        raise pytest.UsageError(message)


@pytest.fixture
def client() -> Iterator[TestClient]:
    """A client of the application; its lifespan runs for this test only."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def logged_in_client(client: TestClient) -> TestClient:
    """A client logged in with the shared secret (the session cookie is in its jar)."""
    response = client.get("/auth/login", params={"secret": ADMIN_SECRET})
    assert response.status_code == 200, response.text
    return client


@pytest.fixture
def as_test_user() -> Iterator[None]:
    """Every request is made by the logged-in user `test` (the usual way to test protected routes)."""
    app.dependency_overrides[auth.get_auth] = lambda: AuthInfo(is_logged_in=True, user=UserInfo(login="test"))
    yield
    app.dependency_overrides.clear()


class _FakeGitHub(http.server.BaseHTTPRequestHandler):
    """GitHub's OAuth and REST endpoints, as far as the c2c login needs them."""

    def _json(self, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        if self.path == "/login/oauth/access_token" and form.get("code") == ["the-code"]:
            self._json({"access_token": "gho_tileservice", "token_type": "bearer", "scope": "repo"})
        else:
            self._json({"error": "bad_verification_code"}, status=400)

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer gho_tileservice":
            self._json({"message": "Bad credentials"}, status=401)
        elif self.path == "/user":
            self._json({"login": "octocat", "name": "The Octocat", "html_url": "https://github.com/octocat"})
        elif self.path == "/repos/camptocamp/tileservice":
            self._json(
                {"full_name": "camptocamp/tileservice", "permissions": {"pull": True, "push": True, "admin": False}}
            )
        else:
            self._json({"message": "Not Found"}, status=404)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def fake_github() -> Iterator[str]:
    """A stand-in for github.com and api.github.com on a free loopback port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeGitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def github_service(fake_github: str, tmp_path: Path) -> Iterator[str]:
    """The service served by uvicorn with GitHub authentication (as in production); its base URL."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "C2C__AUTH__SECRET"}
    env.update(
        {
            "C2C__AUTH__GITHUB__CLIENT_ID": "tileservice-client",
            "C2C__AUTH__GITHUB__CLIENT_SECRET": "tileservice-client-secret",
            "C2C__AUTH__GITHUB__REPOSITORY": "camptocamp/tileservice",
            "C2C__AUTH__GITHUB__AUTHORIZE_URL": f"{fake_github}/login/oauth/authorize",
            "C2C__AUTH__GITHUB__TOKEN_URL": f"{fake_github}/login/oauth/access_token",
            "C2C__AUTH__GITHUB__USER_URL": f"{fake_github}/user",
            "C2C__AUTH__GITHUB__REPO_URL": f"{fake_github}/repos",
        }
    )
    log = (tmp_path / "uvicorn.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tileservice.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=Path(__file__).parent.parent,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"the service did not start on {base_url}:\n{log.read()}")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
