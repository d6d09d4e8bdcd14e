"""A request id followed end to end, with real processes (issue 15 item 2, the proof).

    client 127.0.0.2 --> nginx (X-Request-ID: $request_id) --> uvicorn replica A
        A logs (JSON, c2casgiutils/logging-json.yaml), broadcasts "rid_echo" through a real
        redis-server and sends a Sentry event --> replica B (another uvicorn process) runs the
        handler, which logs and sends a Sentry event --> the local recording Sentry server.

nginx's id must appear in A's response header and state, in A's JSON log line, in B's handler log
line (carried by the broadcast's `context` field) and as the `request_id` tag of both Sentry
events. A client talking to A directly (an untrusted peer) cannot choose its id. The replicas are
stopped with SIGTERM (uvicorn's graceful shutdown: they drain and exit 0).
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from c2c_testing import Nginx, RedisServer, free_port
from c2casgiutils.logging_json import CONFIG_PATH

pytestmark = pytest.mark.slow

START_TIMEOUT = 60.0  # a generous bound: this only says the start does not hang
CLIENT = "127.0.0.2"  # not nginx's address towards uvicorn (127.0.0.1)

APP = '''
"""A replica: RequestIdMiddleware behind ForwardedHeadersMiddleware, a broadcast, Sentry."""
import contextlib
import logging
import os

import sentry_sdk
from fastapi import FastAPI, Request

import c2casgiutils
from c2casgiutils import broadcast, sentry
from c2c_headers import ForwardedHeadersMiddleware
from c2c_headers.request_id import RequestIdMiddleware

LOG = logging.getLogger("rid_app")


async def rid_echo(**params):
    LOG.warning("broadcast handler ran on pid %d", os.getpid())
    sentry_sdk.capture_message(f"handler on {os.getpid()}")
    return os.getpid()


@contextlib.asynccontextmanager
async def lifespan(app):
    sentry.init()
    await c2casgiutils.startup(app)
    await broadcast.subscribe("rid_echo", rid_echo)
    yield
    await c2casgiutils.shutdown()


api = FastAPI(lifespan=lifespan)


@api.get("/ready")
async def ready():
    return {"channels": list(broadcast.status().channels), "healthy": broadcast.status().healthy}


@api.get("/call")
async def call(request: Request):
    LOG.warning("calling the other replicas from pid %d", os.getpid())
    sentry_sdk.capture_message(f"caller on {os.getpid()}")
    answers = await broadcast.broadcast("rid_echo", expect_answers=True, timeout=10)
    return {
        "state": request.state.request_id,
        "client": request.client.host,
        "answers": sorted(answer.payload for answer in answers),
    }


app = ForwardedHeadersMiddleware(RequestIdMiddleware(api, trusted_hosts="127.0.0.1"), trusted_hosts="127.0.0.1")
'''

NGINX_HTTP = """
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{app};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Request-ID $request_id;
            # nginx's own id, told to the client independently of the application.
            add_header X-Nginx-Request-ID $request_id always;
        }}
    }}"""


class _Recorder(http.server.BaseHTTPRequestHandler):
    """The local Sentry server: records every envelope item."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        items = []
        for line in body.splitlines():
            try:
                items.append(json.loads(line))
            except ValueError:
                continue
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.items.extend(items)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def sentry_server() -> Iterator[tuple[str, Callable[[], list[dict[str, Any]]]]]:
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Recorder)
    server.items = []  # type: ignore[attr-defined]
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def events() -> list[dict[str, Any]]:
        with server.lock:  # type: ignore[attr-defined]
            return [item for item in server.items if "message" in item]  # type: ignore[attr-defined]

    yield f"http://publickey@127.0.0.1:{port}/42", events
    server.shutdown()
    server.server_close()
    thread.join(5)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no {path})"
    return f"last lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"{what} exited with status {process.returncode} while starting\n{_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not start in {START_TIMEOUT:g} s\n{_tail(log)}")
        time.sleep(0.05)


def _replica_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).json()
        except httpx.HTTPError:
            return False
        return bool(answer["healthy"]) and "rid_echo" in answer["channels"]

    return ready


@dataclass
class Setup:
    directory: Path
    nginx_port: int
    replicas: dict[str, tuple[subprocess.Popen[bytes], int, Path]] = field(default_factory=dict)
    events: Callable[[], list[dict[str, Any]]] = list

    def log_lines(self, name: str) -> list[dict[str, Any]]:
        """The replica's stderr: JSON lines (a line that is not JSON fails the test)."""
        text = self.replicas[name][2].read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.terminate()  # SIGTERM: uvicorn drains and runs the lifespan shutdown
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(10)


@pytest.fixture
def setup(redis_server: RedisServer, sentry_server: tuple[str, Callable[[], list[dict[str, Any]]]]) -> Iterator[Setup]:
    dsn, events = sentry_server
    directory = Path(tempfile.mkdtemp(prefix="c2crid-"))
    (directory / "rid_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith(("C2C__", "SENTRY_"))}
    env.update({"C2C__REDIS__URL": redis_server.url, "C2C__SENTRY__DSN": dsn, "C2C__BROADCAST__CONNECT_TIMEOUT": "5"})
    result = Setup(directory, free_port(), events=events)
    nginx: Nginx | None = None
    try:
        for name in ("a", "b"):
            port = free_port()
            log = directory / f"{name}.log"
            with log.open("wb") as output:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "rid_app:app",
                        "--app-dir",
                        str(directory),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--no-proxy-headers",
                        "--log-config",
                        str(CONFIG_PATH),
                    ],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            result.replicas[name] = (process, port, log)
        http = NGINX_HTTP.format(port=result.nginx_port, app=result.replicas["a"][1])
        nginx = Nginx(directory / "nginx", http, [result.nginx_port]).start()
        for name, (process, port, log) in result.replicas.items():
            _wait_until(_replica_ready(port), process, log, f"replica {name}")
        yield result
    finally:
        if nginx is not None:
            nginx.stop()
        for process, _, _ in result.replicas.values():
            _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def _wait_for(condition: Callable[[], Any], what: str, seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not seen within {seconds:g} s: {what}")
        time.sleep(0.05)


def _untrusted_client_cannot_choose_its_id(setup: Setup) -> None:
    """A client talking to A directly (not a trusted proxy): its id is replaced, and that one travels."""
    port_a = setup.replicas["a"][1]
    transport = httpx.HTTPTransport(local_address=CLIENT)
    with httpx.Client(transport=transport, timeout=15) as client:
        response = client.get(
            f"http://127.0.0.1:{port_a}/call",
            headers={"X-Request-ID": "chosen-by-client", "X-Forwarded-For": "1.2.3.4"},
        )
    assert response.status_code == 200, response.text
    generated = response.json()["state"]
    assert generated != "chosen-by-client" and len(generated) == 32
    assert response.headers["X-Request-ID"] == generated
    pid_b = setup.replicas["b"][0].pid
    handled = _wait_for(
        lambda: (
            len(
                found := [
                    line for line in setup.log_lines("b") if line["message"] == f"broadcast handler ran on pid {pid_b}"
                ]
            )
            == 2
            and found
        ),
        "replica B's second handler log line",
    )
    assert handled[1]["request_id"] == generated


def test_nginx_request_id_through_logs_broadcast_and_sentry(setup: Setup) -> None:
    transport = httpx.HTTPTransport(local_address=CLIENT)
    with httpx.Client(transport=transport, timeout=15) as client:
        response = client.get(f"http://127.0.0.1:{setup.nginx_port}/call")
    assert response.status_code == 200, response.text
    nginx_id = response.headers["X-Nginx-Request-ID"]
    assert len(nginx_id) == 32
    body = response.json()
    # A kept nginx's id: the peer is nginx (127.0.0.1), though the client became 127.0.0.2.
    assert body["client"] == CLIENT
    assert body["state"] == nginx_id
    assert response.headers.get_list("X-Request-ID") == [nginx_id]
    pid_a, pid_b = setup.replicas["a"][0].pid, setup.replicas["b"][0].pid
    assert body["answers"] == sorted([pid_a, pid_b])

    # A's log: the route's line and the access log line carry nginx's id.
    lines_a = setup.log_lines("a")
    calling = [line for line in lines_a if line["message"] == f"calling the other replicas from pid {pid_a}"]
    assert [line["request_id"] for line in calling] == [nginx_id]
    assert calling[0]["logger"] == "rid_app" and calling[0]["level"] == "WARNING"
    access = [line for line in lines_a if line["logger"] == "uvicorn.access" and "/call" in line["message"]]
    assert [line["request_id"] for line in access] == [nginx_id]

    # B's log: the broadcast handler's line carries the caller's id (another process).
    handled = _wait_for(
        lambda: [line for line in setup.log_lines("b") if line["message"] == f"broadcast handler ran on pid {pid_b}"],
        "replica B's handler log line",
    )
    assert [line["request_id"] for line in handled] == [nginx_id]
    # Outside a request, no id: B's startup lines.
    assert any(line["request_id"] is None for line in setup.log_lines("b"))

    # Sentry: A's event and B's handler event both carry the tag.
    def tagged() -> dict[str, str]:
        return {event["message"]: event.get("tags", {}).get("request_id") for event in setup.events()}

    keys = (f"caller on {pid_a}", f"handler on {pid_b}", f"handler on {pid_a}")
    events = _wait_for(
        lambda: all((found := tagged()).get(key) for key in keys) and found,
        "the Sentry events of A and B",
    )
    assert events[f"caller on {pid_a}"] == nginx_id
    assert events[f"handler on {pid_b}"] == nginx_id
    assert events[f"handler on {pid_a}"] == nginx_id  # A handles its own broadcast too

    _untrusted_client_cannot_choose_its_id(setup)

    # SIGTERM: each replica drains and runs its lifespan shutdown (uvicorn then re-raises the signal).
    for name, (process, _, log) in setup.replicas.items():
        assert _stop(process) in (0, -signal.SIGTERM), _tail(log)
        messages = [line["message"] for line in setup.log_lines(name)]
        assert "Application shutdown complete." in messages, messages
        assert messages[-1].startswith("Finished server process"), messages
