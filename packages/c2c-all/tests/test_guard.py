"""The /c2c body guard: bodies bounded (`C2C__TOOLS__MAX_BODY_SIZE`), access checked before any body is read.

Issue 14 item 8: an anonymous 200 MB POST to `/c2c/logging/level` used to be read and parsed
before its 403 (+400 MB of RSS in the server). `test_large_anonymous_bodies_cost_no_memory` runs a
real uvicorn subprocess and measures its peak RSS (`VmHWM`) around such requests; the other tests
drive the application in process, with a `receive` that records what the application read.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _c2c_all_env import clear_c2c_variables
from fastapi import FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import c2c_auth
import c2casgiutils
from c2c_testing import free_port, stop_process, wait_for_port
from c2casgiutils import auth, config
from c2casgiutils._app import create_app
from c2casgiutils._guard import ACCESS_CHECK_FAILED_MESSAGE, BodyGuardMiddleware, too_large_message

SECRET = "guard-test-secret-value-of-32-bytes!"
KEY = {"X-API-Key": SECRET}
MB = 1024 * 1024


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Secret mode, no Redis; put back afterwards."""
    clear_c2c_variables(monkeypatch)
    monkeypatch.setenv("C2C__AUTH__SECRET", SECRET)
    config.reload()
    yield monkeypatch
    clear_c2c_variables(monkeypatch)
    config.reload()


@contextlib.asynccontextmanager
async def _started(sub_app: FastAPI | None = None) -> AsyncIterator[FastAPI]:
    app = FastAPI()
    app.mount("/c2c", sub_app or create_app())
    await c2casgiutils.startup(app)
    try:
        yield app
    finally:
        await c2casgiutils.shutdown()


class _Exchange:
    """One request driven by hand: the body chunks offered, what the application read, what it answered."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.read = 0  # chunks handed to the application
        self.status: int | None = None
        self.body = b""
        self.headers: list[tuple[bytes, bytes]] = []

    async def receive(self) -> dict[str, Any]:
        if self.read < len(self.chunks):
            self.read += 1
            return {
                "type": "http.request",
                "body": self.chunks[self.read - 1],
                "more_body": self.read < len(self.chunks),
            }
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def json(self) -> Any:
        return json.loads(self.body)


async def _drive(
    app: Any, method: str, path: str, chunks: list[bytes], headers: dict[str, str] | None = None, query: str = ""
) -> _Exchange:
    exchange = _Exchange(chunks)
    raw_headers = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver"), *raw_headers],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    await app(scope, exchange.receive, exchange.send)
    return exchange


LEVEL = json.dumps({"name": "c2c_guard_test", "level": "DEBUG"}).encode()
CHUNKED = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}


async def test_anonymous_write_is_refused_before_the_body_is_read(environment: pytest.MonkeyPatch) -> None:
    """FastAPI read (and parsed) the body before running the access dependency: now nothing is read."""
    async with _started() as app:
        exchange = await _drive(app, "POST", "/c2c/logging/level", [LEVEL, b"x" * 1000], CHUNKED)
        assert exchange.status == 403
        # 0.14's answer: read-only access is checked first, then read-write.
        assert exchange.json() == {"detail": "You don't have read-only access to this resource"}
        assert exchange.read == 0, "the body was read before access was checked"
        # Not even a malformed body is looked at (it used to be a 422 before the 403).
        exchange = await _drive(app, "POST", "/c2c/logging/level", [b"{not json"], CHUNKED)
        assert (exchange.status, exchange.read) == (403, 0)
        # A wrong secret: the same refusal, nothing read.
        exchange = await _drive(app, "POST", "/c2c/logging/level", [LEVEL], {**CHUNKED, "X-API-Key": "wrong"})
        assert (exchange.status, exchange.read) == (403, 0)


def _says_close_exactly_when_the_body_is_unread(exchange: _Exchange) -> bool:
    """`Connection: close` when, and only when, the answer came before the whole body was read.

    Which refusals read nothing depends on what runs before the route: Sentry's request-body
    extraction (active in the process once any test called `sentry_sdk.init`) reads the whole body
    first, and then the connection may well be reused.
    """
    unread = exchange.read < len(exchange.chunks)
    return ((b"connection", b"close") in exchange.headers) == unread


async def test_an_answer_before_the_whole_body_says_connection_close(environment: pytest.MonkeyPatch) -> None:
    """The client must not reuse a connection whose request body was left unread (granian may close it)."""
    close = (b"connection", b"close")
    async with _started() as app:
        refused = await _drive(app, "POST", "/c2c/logging/level", [LEVEL, b" "], CHUNKED)
        assert refused.status == 403
        assert _says_close_exactly_when_the_body_is_unread(refused), (refused.read, refused.headers)
        sized = {"Content-Type": "application/json", "Content-Length": str(len(LEVEL))}
        refused = await _drive(app, "POST", "/c2c/logging/level", [LEVEL], sized)
        assert refused.status == 403
        assert _says_close_exactly_when_the_body_is_unread(refused), (refused.read, refused.headers)
        # Refused by the guard itself, from the headers alone: nothing was read.
        large = await _drive(app, "POST", "/c2c/logging/level", [b"x"], {"Content-Length": str(MB), **KEY})
        assert large.status == 413 and close in large.headers and large.read == 0
        invalid = await _drive(app, "POST", "/c2c/logging/level", [LEVEL], {"Content-Length": "x", **KEY})
        assert invalid.status == 400 and close in invalid.headers and invalid.read == 0
        # The body read to its end, or no body at all: the connection stays open.
        served = await _drive(app, "POST", "/c2c/logging/level", [LEVEL], {**sized, **KEY})
        assert served.status == 200 and close not in served.headers, served.body
        page = await _drive(app, "GET", "/c2c/health_checks", [])
        assert page.status == 200 and close not in page.headers


@pytest.mark.parametrize(("mode", "expected"), [({}, 403), ({"C2C__AUTH__TEST__USERNAME": "tester"}, 200)])
async def test_other_modes_decide_as_the_route_would(
    environment: pytest.MonkeyPatch, mode: dict[str, str], expected: int
) -> None:
    """No authentication: refused unread; test mode (everyone logged in): served; the limit in both."""
    environment.delenv("C2C__AUTH__SECRET")
    for name, value in mode.items():
        environment.setenv(name, value)
    config.reload()
    async with _started() as app:
        exchange = await _drive(app, "POST", "/c2c/logging/level", [LEVEL], CHUNKED)
        assert exchange.status == expected, exchange.body
        assert exchange.read == (0 if expected == 403 else 1)
        large = await _drive(app, "POST", "/c2c/logging/level", [b" " * 70_000], {"Content-Length": "70000"})
        assert (large.status, large.read) == (413, 0)  # and the limit holds in every mode


async def test_declared_length_over_the_limit_is_refused_unread(environment: pytest.MonkeyPatch) -> None:
    async with _started() as app:
        headers = {"Content-Type": "application/json", "Content-Length": str(200 * MB), **KEY}
        exchange = await _drive(app, "POST", "/c2c/logging/level", [b"x" * 1024] * 10, headers)
        assert exchange.status == 413
        assert exchange.json() == {"detail": too_large_message(64 * 1024)}
        assert exchange.read == 0
        for bad in ("abc", "-1", "1e3", "١٢"):
            exchange = await _drive(app, "POST", "/c2c/logging/level", [LEVEL], {"Content-Length": bad, **KEY})
            assert exchange.status == 400, bad
            assert exchange.json() == {"detail": "Invalid Content-Length header"}


async def test_streamed_body_over_the_limit_stops_at_the_limit(environment: pytest.MonkeyPatch) -> None:
    """A logged-in caller's chunked body: counted as it streams, 413 as soon as it passes the limit."""
    async with _started() as app:
        exchange = await _drive(app, "POST", "/c2c/logging/level", [LEVEL[:5], LEVEL[5:]], {**CHUNKED, **KEY})
        assert exchange.status == 200, exchange.body  # within the limit: served
        assert exchange.json()["level"] == "DEBUG"
        exchange = await _drive(app, "DELETE", "/c2c/logging/level", [], KEY, query="name=c2c_guard_test")
        assert exchange.status == 200, exchange.body
        chunks = [b" " * 16 * 1024] * 64  # 1 MiB of JSON white space, in 16 KiB chunks
        exchange = await _drive(app, "POST", "/c2c/logging/level", chunks, {**CHUNKED, **KEY})
        assert exchange.status == 413
        assert exchange.json() == {"detail": too_large_message(64 * 1024)}
        assert exchange.read == 5, "the guard reads one chunk past the limit, then stops"


async def test_the_limit_is_a_setting(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("C2C__TOOLS__MAX_BODY_SIZE", "20")
    config.reload()
    assert config.settings.tools.max_body_size == 20
    async with _started() as app:
        exchange = await _drive(app, "POST", "/c2c/logging/level", [LEVEL], {**CHUNKED, **KEY})
        assert exchange.status == 413
        assert exchange.json() == {"detail": too_large_message(20)}


async def test_login_is_bounded_but_not_access_checked(environment: pytest.MonkeyPatch) -> None:
    """POST /c2c/auth/login carries the secret in its body: anonymous, it must still be read (and bounded)."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with _started() as app:
        exchange = await _drive(app, "POST", "/c2c/auth/login", [f"secret={SECRET}".encode()], form)
        assert exchange.status == 303, exchange.body  # a form login goes back to the page
        assert any(name == b"set-cookie" for name, _ in exchange.headers)
    environment.setenv("C2C__TOOLS__MAX_BODY_SIZE", "100")
    config.reload()
    async with _started() as app:
        body = f"secret={SECRET}&came_from=/{'x' * 200}".encode()
        exchange = await _drive(app, "POST", "/c2c/auth/login", [body], form)
        assert exchange.status == 413
        assert exchange.json() == {"detail": too_large_message(100)}


async def test_an_overridden_get_auth_still_decides(environment: pytest.MonkeyPatch) -> None:
    """`dependency_overrides[get_auth]` (0.14 test suites): the route decides with the override, as before."""
    sub_app = create_app()
    sub_app.dependency_overrides[auth.get_auth] = lambda: auth.AuthInfo(
        is_logged_in=True, user=auth.UserInfo(login="someone")
    )
    async with _started(sub_app) as app:
        exchange = await _drive(app, "POST", "/c2c/logging/level", [LEVEL], CHUNKED)
        assert exchange.status == 200, exchange.body
        # The limit still applies.
        exchange = await _drive(app, "POST", "/c2c/logging/level", [b" " * 70_000], CHUNKED)
        assert exchange.status == 413


async def test_stale_cookie_cleared_on_the_refusal(environment: pytest.MonkeyPatch) -> None:
    """The guard's access check is the route's: a forged session cookie is cleared on the 403."""
    async with _started() as app:
        cookie = {"Cookie": "c2c-jwt-auth=forged.token.value", **CHUNKED}
        exchange = await _drive(app, "POST", "/c2c/logging/level", [LEVEL], cookie)
        assert (exchange.status, exchange.read) == (403, 0)
        cleared = [value for name, value in exchange.headers if name == b"set-cookie"]
        assert cleared and all(b"Max-Age=0" in value for value in cleared), exchange.headers


async def test_a_failing_access_check_is_a_503_not_a_400(
    environment: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Anything but an HTTPException raised before the body would be FastAPI's "error parsing the body"."""

    async def broken_get_auth(*args: object) -> None:
        raise RuntimeError("authentication backend broken")

    environment.setattr(c2c_auth, "get_auth", broken_get_auth)
    async with _started() as app:
        exchange = await _drive(app, "POST", "/c2c/logging/level", [LEVEL], CHUNKED)
    assert (exchange.status, exchange.read) == (503, 0)
    assert exchange.json() == {"detail": ACCESS_CHECK_FAILED_MESSAGE}
    assert "Access check before the body failed" in caplog.text


# --- the guard alone, fed arbitrary chunkings ------------------------------------------------------------


def _echo_app(limit: int) -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    app.add_middleware(BodyGuardMiddleware, max_body_size=limit)
    return app


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    limit=st.integers(min_value=0, max_value=300),
    sizes=st.lists(st.integers(min_value=0, max_value=120), max_size=8),
    declare=st.booleans(),
)
async def test_guard_accepts_exactly_the_bodies_within_the_limit(limit: int, sizes: list[int], declare: bool) -> None:
    app = _echo_app(limit)
    chunks = [b"a" * size for size in sizes] or [b""]
    total = sum(sizes)
    headers = {"Content-Type": "application/octet-stream"}
    headers.update({"Content-Length": str(total)} if declare else {"Transfer-Encoding": "chunked"})
    exchange = await _drive(app, "POST", "/echo", chunks, headers)
    if total > limit:
        assert exchange.status == 413
        consumed = sum(len(chunk) for chunk in chunks[: exchange.read])
        assert exchange.read == 0 if declare else consumed - len(chunks[exchange.read - 1]) <= limit
    else:
        assert exchange.status == 200, exchange.body
        assert exchange.json() == {"size": total}


# --- a real server --------------------------------------------------------------------------------------

SERVER_APP = """\
import c2casgiutils
from fastapi import FastAPI

app = FastAPI(lifespan=c2casgiutils.lifespan)
app.mount("/c2c", c2casgiutils.app)
"""


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _stream(total: int, chunk: int = MB) -> Iterator[bytes]:
    block = b" " * chunk
    for _ in range(total // chunk):
        yield block


@pytest.fixture
def uvicorn_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    (tmp_path / "guard_app.py").write_text(SERVER_APP)
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env["C2C__AUTH__SECRET"] = SECRET
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "guard_app:app", "--app-dir", str(tmp_path), "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield f"http://127.0.0.1:{port}", process, log
    finally:
        stop_process(process, timeout=5)


def test_large_anonymous_bodies_cost_no_memory(uvicorn_server: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    """200 MB bodies (three in turn, then four anonymous at once) against a real uvicorn: refused at
    once, the server's peak RSS barely moves.

    Before the guard, the anonymous chunked POST alone raised the peak by about 400 MB (the body
    read, then parsed), and took seconds.
    """
    url, process, log = uvicorn_server
    with httpx.Client(base_url=url, timeout=30) as client:
        # Warm up: the routes, the JSON parsing and the logging tool have run once.
        assert client.get("/c2c/health").status_code == 200
        warm = client.post("/c2c/logging/level", json={"name": "c2c_guard_test", "level": "INFO"}, headers=KEY)
        assert warm.status_code == 200, warm.text
        before = _peak_rss_kib(process.pid)
        cases = [
            ({"Content-Type": "application/json"}, 403),  # anonymous, chunked
            ({"Content-Type": "application/json", "Content-Length": str(200 * MB)}, 413),  # declared
            ({"Content-Type": "application/json", **KEY}, 413),  # logged in, chunked: stopped at the limit
        ]
        for headers, expected in cases:
            start = time.monotonic()
            answer = client.post("/c2c/logging/level", content=_stream(200 * MB), headers=headers)
            elapsed = time.monotonic() - start
            assert answer.status_code == expected, (headers, answer.text)
            assert elapsed < 10, f"{elapsed:.1f} s for a refusal"

        def anonymous_post(_: int) -> int:
            with httpx.Client(base_url=url, timeout=30) as own:
                return own.post("/c2c/logging/level", content=_stream(200 * MB), headers=cases[0][0]).status_code

        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # four at once (1.3 GB before the guard)
            assert list(pool.map(anonymous_post, range(4))) == [403] * 4
        after = _peak_rss_kib(process.pid)
        assert client.get("/c2c/health").status_code == 200
    growth_mb = (after - before) / 1024
    print(f"uvicorn peak RSS {before / 1024:.0f} MB -> {after / 1024:.0f} MB under seven 200 MB bodies")
    assert growth_mb < 50, f"peak RSS grew by {growth_mb:.0f} MB; log:\n{log.read_text()[-2000:]}"
