"""granian as a first-class server (issue 18, item 3): the middlewares, the demo and its /c2c app under it.

Everything here runs in a real granian process (`python -m granian --interface asgi`, one worker,
a free loopback port), as uvicorn runs elsewhere in the suite. The scope granian 2.8 builds differs
from uvicorn's in ways our code reads:

- `client` and `server` ports are `str` (uvicorn: `int`); only the host part is read by our code;
- `root_path` comes from `--url-path-prefix` and `path` includes it (as the ASGI spec says), for
  every request, even one outside the prefix;
- `http_version` is "1.1" or "2" (h2c with prior knowledge, `--http auto`), and "1" for HTTP/1.0;
- a request without `Host` (HTTP/1.0) gets an empty one: header rules see the netloc "" where
  uvicorn gives them the server address;
- no proxy-header handling of its own: `ForwardedHeadersMiddleware` alone rewrites the scope;
- no `--lifespan on`: what it does with an invalid header rule is asserted at the end (and
  documented in the root README, "Servers").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from c2c_testing import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0  # a generous bound: this only says the start does not hang
SECRET = "granian-test-secret-long-enough"
PREFIX = "/prefix"
UNTRUSTED = "127.0.0.2"  # a loopback address that is not in the trusted hosts (127.0.0.1)

PROBE_APP = '''
"""The header middlewares around an application that answers with the scope it was given."""
import json

from c2c_headers import CSP_NONCE, ArmorHeaderMiddleware, ForwardedHeadersMiddleware
from c2c_headers.request_id import RequestIdMiddleware


async def echo(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            done = "startup" if message["type"] == "lifespan.startup" else "shutdown"
            await send({"type": f"lifespan.{done}.complete"})
            if done == "shutdown":
                return
    seen = {name: scope.get(name) for name in ("client", "server", "scheme", "root_path", "path", "http_version")}
    seen["host"] = dict(scope["headers"]).get(b"host", b"").decode()
    seen["peer"] = scope.get("c2c.peer")
    seen["state"] = {name: str(value) for name, value in scope.get("state", {}).items()}
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": json.dumps(seen).encode()})


RULES = {
    # Relative to root_path: matches <prefix>/page only when the prefix is cut off.
    "page": {
        "path_match": r"^/page$",
        "headers": {
            "Content-Security-Policy": {"default-src": ["'self'"], "script-src": ["'self'", CSP_NONCE]},
            "X-Page-Rule": "applied",
        },
    },
}
app = ForwardedHeadersMiddleware(
    RequestIdMiddleware(ArmorHeaderMiddleware(echo, headers_config=RULES), trusted_hosts="127.0.0.1"),
    trusted_hosts="127.0.0.1",
    headers_type="x-forwarded",
)
'''

# An invalid rule (a header value with a line feed), three ways of building the middleware.
INVALID_RULE = '{"injected": {"headers": {"X-Custom": "a\\nSet-Cookie: x=1"}}}'
INVALID_APPS = {
    # Starlette builds its middleware stack on the first ASGI call: the lifespan startup.
    "add_middleware": f"""
from fastapi import FastAPI
from c2c_headers import ArmorHeaderMiddleware

app = FastAPI()


@app.get("/")
async def root():
    return {{"ok": True}}


app.add_middleware(ArmorHeaderMiddleware, headers_config={INVALID_RULE})
""",
    # Pure ASGI wrapping: built when granian's worker imports the module.
    "at_import": f"""
from fastapi import FastAPI
from c2c_headers import ArmorHeaderMiddleware

app = ArmorHeaderMiddleware(FastAPI(), headers_config={INVALID_RULE})
""",
    # Built inside the application's own lifespan.
    "in_lifespan": f"""
import contextlib
from fastapi import FastAPI
from c2c_headers import ArmorHeaderMiddleware


@contextlib.asynccontextmanager
async def lifespan(app):
    ArmorHeaderMiddleware(app, headers_config={INVALID_RULE})
    yield


app = FastAPI(lifespan=lifespan)
""",
}


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no {path})"
    return f"last lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class Granian:
    """One granian process (main + one worker, in its own process group) and its log."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, target: str, log: Path, env: dict[str, str], cwd: Path, *options: str) -> Granian:
        port = free_port()
        argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--workers", "1", "--no-ws", *options, target]
        with log.open("wb") as output:
            process = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return cls(process, port, log)

    def wait_answering(self, path: str = "/") -> None:
        """Until an HTTP answer (any status) comes back; fails when granian exits or takes too long."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"granian exited with status {self.process.returncode} while starting\n{_tail(self.log)}")
            try:
                httpx.get(self.url + path, timeout=2)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    pytest.fail(f"granian did not answer in {START_TIMEOUT:g} s\n{_tail(self.log)}")
                time.sleep(0.1)

    def stop(self) -> int | None:
        """SIGTERM to the main process (it stops its worker), then SIGKILL to the group; always reaped."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.process.returncode


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("C2C__", "DEMO_", "GRANIAN_"))}
    env.update(extra)
    return env


# -- the header middlewares ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Granian]:
    directory = tmp_path_factory.mktemp("granian-probe")
    (directory / "probe_app.py").write_text(PROBE_APP)
    server = Granian.start(
        "probe_app:app", directory / "granian.log", _clean_env(PYTHONPATH=str(directory)), directory,
        "--url-path-prefix", PREFIX,
    )  # fmt: skip
    try:
        server.wait_answering(PREFIX + "/")
        yield server
    finally:
        server.stop()


def _echo(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    seen: dict[str, Any] = json.loads(response.text)
    return seen


FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example"}


def test_security_headers_and_nonce_relative_to_root_path(probe: Granian) -> None:
    response = httpx.get(f"{probe.url}{PREFIX}/page", timeout=10)
    seen = _echo(response)
    assert (seen["root_path"], seen["path"]) == (PREFIX, f"{PREFIX}/page")  # path includes root_path
    nonce = seen["state"]["nonce"]
    assert response.headers["content-security-policy"] == f"default-src 'self'; script-src 'self' 'nonce-{nonce}'"
    assert response.headers["x-page-rule"] == "applied"  # the rule saw /page, relative to root_path
    assert response.headers["cache-control"] == "no-store"  # a nonce response is not cached
    assert response.headers["x-content-type-options"] == "nosniff"  # the default rules too
    assert response.headers["x-frame-options"] == "DENY"
    other = httpx.get(f"{probe.url}{PREFIX}/other", timeout=10)
    assert "x-page-rule" not in other.headers
    assert "nonce" not in _echo(other)["state"]
    assert "'nonce-" not in other.headers["content-security-policy"]  # the default CSP
    assert (
        httpx.get(f"{probe.url}{PREFIX}/page", timeout=10).headers["content-security-policy"]
        != (response.headers["content-security-policy"])
    )  # a new nonce per request


def test_forwarded_headers_from_the_trusted_peer(probe: Granian) -> None:
    response = httpx.get(f"{probe.url}{PREFIX}/", headers={**FORWARDED, "X-Request-ID": "proxy-id-1"}, timeout=10)
    seen = _echo(response)
    assert seen["client"] == ["203.0.113.9", 0]
    assert (seen["scheme"], seen["host"], seen["server"]) == ("https", "public.example", ["public.example", 443])
    # The real peer as granian reported it: the address, and the port as a str (granian 2.8).
    peer_host, peer_port = seen["peer"]
    assert peer_host == "127.0.0.1" and isinstance(peer_port, str) and int(peer_port) > 0
    assert response.headers["x-request-id"] == "proxy-id-1" == seen["state"]["request_id"]  # a trusted proxy's id
    assert "strict-transport-security" in response.headers


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(probe: Granian) -> None:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=UNTRUSTED), timeout=10) as client:
        response = client.get(f"{probe.url}{PREFIX}/", headers={**FORWARDED, "X-Request-ID": "forged-id"})
    seen = _echo(response)
    client_host, client_port = seen["client"]
    assert client_host == UNTRUSTED and isinstance(client_port, str)  # untouched, as granian built it
    assert (seen["scheme"], seen["host"]) == ("http", f"127.0.0.1:{probe.port}")
    assert seen["server"] == ["127.0.0.1", str(probe.port)]
    assert seen["peer"] is None  # no rewrite, nothing recorded
    generated = response.headers["x-request-id"]
    assert generated != "forged-id" and generated == seen["state"]["request_id"]
    assert len(generated) == 32 and int(generated, 16) >= 0


def test_http_version_1_1_and_2(probe: Granian) -> None:
    assert _echo(httpx.get(f"{probe.url}{PREFIX}/page", timeout=10))["http_version"] == "1.1"
    curl = shutil.which("curl")
    assert curl is not None, "curl is needed for the HTTP/2 (h2c) request"
    result = subprocess.run(
        [curl, "--silent", "--show-error", "--http2-prior-knowledge", "--include", "--max-time", "10",
         "-H", "X-Forwarded-Proto: https", f"{probe.url}{PREFIX}/page"],
        capture_output=True, text=True, timeout=20, check=True,
    )  # fmt: skip
    head, _, body = result.stdout.partition("\n\n")  # text mode: CRLF read as LF
    assert head.startswith("HTTP/2 200"), head
    seen = json.loads(body)
    assert (seen["http_version"], seen["scheme"]) == ("2", "https")
    headers = dict(line.split(": ", 1) for line in head.splitlines()[1:])
    assert headers["content-security-policy"].endswith(f"'nonce-{seen['state']['nonce']}'")
    assert headers["x-page-rule"] == "applied"
    assert headers["x-request-id"] == seen["state"]["request_id"]


def test_http_1_0_without_host(probe: Granian) -> None:
    """granian adds an empty Host (uvicorn adds none) and says "1" where the ASGI spec says "1.0"."""
    with socket.create_connection(("127.0.0.1", probe.port), timeout=10) as connection:
        connection.sendall(f"GET {PREFIX}/page HTTP/1.0\r\n\r\n".encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.decode("latin-1").partition("\r\n\r\n")
    assert head.startswith("HTTP/1.0 200"), head
    seen = json.loads(body)
    assert (seen["http_version"], seen["host"]) == ("1", "")
    # The rules still see the path relative to root_path; the netloc they see is "" (not the server address).
    assert "x-page-rule: applied" in head.lower()


# -- the demo and its /c2c app -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Granian]:
    """examples/demo/app.py under granian, with the environment scripts/demo gives it."""
    directory = tmp_path_factory.mktemp("granian-demo")
    env = _clean_env(
        C2C__HTTP="true",
        C2C__AUTH__JWT__COOKIE__SECURE="false",
        C2C__AUTH__SECRET=SECRET,
        C2C__PROMETHEUS__PORT="0",
        C2C__PROXY_HEADERS__TYPE="x-forwarded",
        C2C__PROXY_HEADERS__TRUSTED_HOSTS="127.0.0.1",
        DEMO_DATABASE=str(directory / "demo.sqlite3"),
        DEMO_ALLOWED_HOSTS="127.0.0.1,public.example",
    )
    server = Granian.start("examples.demo.app:app", directory / "granian.log", env, REPO)
    try:
        server.wait_answering("/c2c/livez")
        yield server
    finally:
        server.stop()


def test_demo_c2c_page_has_a_nonce_csp(demo: Granian) -> None:
    response = httpx.get(f"{demo.url}/c2c/", timeout=10)
    assert response.status_code == 200, response.text
    csp = response.headers["content-security-policy"]
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'nonce="{nonce}"' in response.text
    assert "strict-transport-security" not in response.headers  # C2C__HTTP=true


def test_demo_login_and_logging_level_change(demo: Granian) -> None:
    with httpx.Client(base_url=demo.url, timeout=10) as client:
        assert client.post("/c2c/logging/level", json={"name": "granian_test", "level": "DEBUG"}).status_code in (
            401,
            403,
        )
        assert client.get("/c2c/auth/login", headers={"X-API-Key": "wrong"}).status_code == 401
        login = client.get("/c2c/auth/login", headers={"X-API-Key": SECRET})
        assert login.status_code == 200, login.text
        assert client.get("/c2c/auth/status").json()["is_logged_in"] is True  # the session cookie
        changed = client.post("/c2c/logging/level", json={"name": "granian_test", "level": "DEBUG"})
        assert changed.status_code == 200, changed.text
        level = client.get("/c2c/logging/level", params={"name": "granian_test"})
        assert level.status_code == 200 and level.json()["level"] == "DEBUG", level.text


def test_demo_probes_and_health_checks(demo: Granian) -> None:
    for path in ("/c2c/livez", "/c2c/readyz", "/c2c/health_checks"):
        response = httpx.get(demo.url + path, timeout=10)
        assert response.status_code == 200, (path, response.text)
    names = {entity["name"] for entity in httpx.get(f"{demo.url}/c2c/readyz", timeout=10).json()["entities"]}
    assert names == {"SQLAlchemy"}  # not Redis nor the broadcast, shared by every replica


def test_demo_forwarded_host_reaches_trusted_host_check(demo: Granian) -> None:
    # TrustedHostMiddleware sees the public host only because ForwardedHeadersMiddleware rewrote it.
    assert httpx.get(f"{demo.url}/", headers={"X-Forwarded-Host": "public.example"}, timeout=10).status_code == 200
    refused = httpx.get(f"{demo.url}/", headers={"X-Forwarded-Host": "evil.example"}, timeout=10)
    assert refused.status_code == 400
    assert refused.headers["x-frame-options"] == "DENY"  # the 400 has the security headers too


def _read_response(connection: socket.socket) -> tuple[str, bytes]:
    """One HTTP/1.1 response (head, body) with a Content-Length; ("", b"") when the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return "", b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    text = head.decode("latin-1").lower()
    length = int(text.split("content-length:", 1)[1].split("\r\n", 1)[0])
    while len(body) < length:
        body += connection.recv(65536)
    return text, body


def _post_level(port: int, connection: socket.socket, headers: str = "") -> str:
    """POST /c2c/logging/level with the body sent 20 ms after the head; the response's head."""
    body = json.dumps({"name": "granian_keepalive", "level": "INFO"}).encode()
    head = "POST /c2c/logging/level HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    connection.sendall(f"{head}{headers}Content-Length: {len(body)}\r\n\r\n".encode())
    time.sleep(0.02)  # the refusal is on its way before the body arrives
    connection.sendall(body)
    return _read_response(connection)[0]


def test_demo_refusal_before_the_body_closes_the_connection(demo: Granian) -> None:
    """The /c2c guard refuses without reading the body: it says Connection: close (granian may close anyway)."""
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", demo.port), timeout=10) as connection:
            head = _post_level(demo.port, connection)
            assert head.startswith("http/1.1 403"), head
            assert "\r\nconnection: close" in head, head
    # A body read to its end keeps the connection: the next request on it is answered.
    with socket.create_connection(("127.0.0.1", demo.port), timeout=10) as connection:
        head = _post_level(demo.port, connection, f"X-API-Key: {SECRET}\r\n")
        assert head.startswith("http/1.1 200") and "connection: close" not in head, head
        connection.sendall(b"GET /c2c/livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(connection)[0].startswith("http/1.1 200")


# -- an invalid header rule: granian has no `--lifespan on` -----------------------------------------------


def _invalid_app(tmp_path: Path, kind: str) -> tuple[Path, dict[str, str]]:
    (tmp_path / f"invalid_{kind}.py").write_text(textwrap.dedent(INVALID_APPS[kind]))
    return tmp_path, _clean_env(PYTHONPATH=str(tmp_path))


def test_invalid_rule_through_add_middleware_starts_and_answers_500(tmp_path: Path) -> None:
    """The stack is built on the lifespan startup: granian logs a WARNING, goes on, and answers 500."""
    directory, env = _invalid_app(tmp_path, "add_middleware")
    server = Granian.start("invalid_add_middleware:app", tmp_path / "granian.log", env, directory)
    try:
        server.wait_answering()
        statuses = [httpx.get(server.url + "/", timeout=10).status_code for _ in range(2)]
        assert server.process.poll() is None  # still running
    finally:
        server.stop()
    assert statuses == [500, 500]
    log = server.log.read_text()
    assert "[WARNING] ASGI Lifespan errored, continuing without Lifespan support" in log, log
    # The reason is in the log: the middleware's own ERROR line, then each request's traceback.
    assert "ArmorHeaderMiddleware refused its configuration: headers_config rule 'injected'" in log, log
    assert log.count("ValueError: headers_config rule 'injected', header 'X-Custom'") >= 2, log


@pytest.mark.parametrize("kind", ["at_import", "in_lifespan"])
def test_invalid_rule_at_import_or_in_the_lifespan_stops_granian(tmp_path: Path, kind: str) -> None:
    """Raised while the worker loads the application or inside its lifespan: granian exits with 1."""
    directory, env = _invalid_app(tmp_path, kind)
    server = Granian.start(f"invalid_{kind}:app", tmp_path / "granian.log", env, directory)
    try:
        status = server.process.wait(START_TIMEOUT)  # a generous bound: only "it does not serve"
    finally:
        server.stop()
    log = server.log.read_text()
    assert status == 1, log
    assert "ValueError: headers_config rule 'injected', header 'X-Custom'" in log, log
    assert "[ERROR] Unexpected exit from worker-1" in log, log
