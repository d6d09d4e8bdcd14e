"""Request ids against real servers: uvicorn's access log and the app's log, nginx as the trusted proxy.

    client 127.0.0.1 / 127.0.0.2 --> [nginx "set" | nginx "pass"] --> uvicorn (TCP) --> app

The app is ``ForwardedHeadersMiddleware(RequestIdMiddleware(echo), ...)``, both trusting 127.0.0.1
(nginx, and the test itself when it calls uvicorn directly); it logs one line per request and
answers the id and the client it sees. uvicorn runs with a ``--log-config`` whose one handler carries
`RequestIdFilter` and prints ``%(request_id)s %(name)s %(message)s``. nginx's ``set`` server
overwrites ``X-Request-ID`` with its ``$request_id`` (and tells the client which one); ``pass``
passes the client's header through. Every process is stopped at teardown, even when a test fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from c2c_testing import Nginx, free_port, wait_for_port

pytestmark = pytest.mark.slow

START_TIMEOUT = 60.0  # a bound for "does not hang": under coverage on two cores a start takes seconds
HEX32 = r"[0-9a-f]{32}"

APP = """
import json
import logging

from c2c_headers import ForwardedHeadersMiddleware, RequestIdMiddleware

LOG = logging.getLogger("rid_app")


async def echo(scope, receive, send):
    LOG.info("handling %s", scope["path"])
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    body = json.dumps({"id": scope["state"]["request_id"], "client": scope["client"][0]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


app = ForwardedHeadersMiddleware(RequestIdMiddleware(echo, trusted_hosts="127.0.0.1"), trusted_hosts="127.0.0.1")
"""

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "c2c_headers.RequestIdFilter"}},
    "formatters": {"plain": {"format": "%(request_id)s %(name)s %(message)s"}},
    "handlers": {
        "out": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "filters": ["request_id"],
            "formatter": "plain",
        }
    },
    "loggers": {
        name: {"handlers": ["out"], "level": "INFO", "propagate": False}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "rid_app")
    },
}

NGINX_HTTP = """
    server {{  # set: nginx's own id replaces the client's
        listen 127.0.0.1:{set};
        location / {{
            proxy_pass http://127.0.0.1:{app};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Request-ID $request_id;
            add_header X-Nginx-Request-ID $request_id always;
        }}
    }}
    server {{  # pass: the client's X-Request-ID goes through untouched
        listen 127.0.0.1:{pass_};
        location / {{
            proxy_pass http://127.0.0.1:{app};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}"""


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(10)


def _wait_port(process: subprocess.Popen[bytes], port: int, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            wait_for_port("127.0.0.1", port, timeout=0.2)
            return
        except TimeoutError:
            pass
        if process.poll() is not None:
            pytest.fail(f"{what} exited with status {process.returncode} while starting\n{_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not start in {START_TIMEOUT:g} s\n{_tail(log)}")


@dataclass
class Servers:
    ports: dict[str, int]
    log: Path

    def get(self, server: str, *, local: str = "127.0.0.1", **headers: str) -> httpx.Response:
        transport = httpx.HTTPTransport(local_address=local)
        with httpx.Client(transport=transport, timeout=10) as client:
            response = client.get(f"http://127.0.0.1:{self.ports[server]}/{server}", headers=headers)
        assert response.status_code == 200, response.text
        return response

    def lines_with(self, request_id: str) -> list[str]:
        """The log lines of that id (waiting up to 5 s for both of them: the app's and the access line)."""
        deadline = time.monotonic() + 5
        while True:
            text = self.log.read_text(encoding="utf-8", errors="replace")
            lines = [line for line in text.splitlines() if line.startswith(f"{request_id} ")]
            if len(lines) >= 2 or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    directory = Path(tempfile.mkdtemp(prefix="c2crid-"))
    (directory / "rid_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    (directory / "logging.json").write_text(json.dumps(LOG_CONFIG), encoding="utf-8")
    ports = {name: free_port() for name in ("app", "set", "pass")}
    log = directory / "uvicorn.log"
    processes: list[subprocess.Popen[bytes]] = []
    http = NGINX_HTTP.format(app=ports["app"], set=ports["set"], pass_=ports["pass"])
    nginx = Nginx(directory / "nginx", http, [ports["set"], ports["pass"]])
    try:
        with log.open("wb") as output:
            uvicorn = subprocess.Popen(
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
                    str(ports["app"]),
                    "--no-proxy-headers",  # ForwardedHeadersMiddleware does it (and records the peer)
                    "--lifespan",
                    "off",
                    "--log-config",
                    str(directory / "logging.json"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        processes.append(uvicorn)
        nginx.start()
        _wait_port(uvicorn, ports["app"], log, "uvicorn")
        yield Servers(ports, log)
    finally:
        nginx.stop()
        for process in processes:
            _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def _assert_logged(servers: Servers, request_id: str, path: str) -> None:
    """uvicorn's access line and the app's line both carry the id (through the handler's filter)."""
    lines = servers.lines_with(request_id)
    assert any(f" rid_app handling {path}" in line for line in lines), (request_id, _tail(servers.log))
    assert any(" uvicorn.access " in line and f"GET {path} " in line for line in lines), (
        request_id,
        _tail(servers.log),
    )


def _check(response: httpx.Response, expected: str | Callable[[str], bool]) -> str:
    request_id = response.headers["x-request-id"]
    assert response.headers.get_list("x-request-id") == [request_id]
    assert response.json()["id"] == request_id
    if isinstance(expected, str):
        assert request_id == expected
    else:
        assert expected(request_id), request_id
    return request_id


def _generated(value: str) -> bool:
    return re.fullmatch(HEX32, value) is not None


def test_uvicorn_keeps_a_trusted_peers_id_and_logs_it(servers: Servers) -> None:
    response = servers.get("app", **{"X-Request-ID": "direct-trusted-1"})
    _check(response, "direct-trusted-1")
    _assert_logged(servers, "direct-trusted-1", "/app")


def test_uvicorn_generates_for_an_untrusted_peer_and_logs_it(servers: Servers) -> None:
    response = servers.get("app", local="127.0.0.2", **{"X-Request-ID": "forged-direct"})
    request_id = _check(response, _generated)
    _assert_logged(servers, request_id, "/app")
    assert not servers.lines_with("forged-direct")


def test_nginx_sets_the_id_and_the_app_keeps_it(servers: Servers) -> None:
    """The client (127.0.0.2) becomes scope["client"], yet nginx (the real peer) is the one trusted."""
    response = servers.get("set", local="127.0.0.2", **{"X-Request-ID": "forged-via-nginx"})
    nginx_id = response.headers["x-nginx-request-id"]
    assert _generated(nginx_id)  # nginx's $request_id: 32 hex digits
    _check(response, nginx_id)
    assert response.json()["client"] == "127.0.0.2"  # ForwardedHeadersMiddleware rewrote the client
    _assert_logged(servers, nginx_id, "/set")


def test_nginx_passing_the_header_through_keeps_a_well_formed_one(servers: Servers) -> None:
    response = servers.get("pass", local="127.0.0.2", **{"X-Request-ID": "client-chosen-1"})
    _check(response, "client-chosen-1")  # the proxy is trusted: it must set or strip the header
    assert response.json()["client"] == "127.0.0.2"
    _assert_logged(servers, "client-chosen-1", "/pass")


def test_nginx_passing_a_malformed_header_through_gets_a_new_id(servers: Servers) -> None:
    response = servers.get("pass", local="127.0.0.2", **{"X-Request-ID": "<script>alert(1)</script>"})
    request_id = _check(response, _generated)
    _assert_logged(servers, request_id, "/pass")


def test_uvicorns_error_log_of_a_failed_request_carries_the_id(servers: Servers) -> None:
    """The middleware leaves the id set when the app raises: uvicorn logs the failure in that context."""
    with httpx.Client(timeout=10) as client:
        response = client.get(f"http://127.0.0.1:{servers.ports['app']}/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    lines = servers.lines_with("boom-1")
    assert any(" uvicorn.error Exception in ASGI application" in line for line in lines), _tail(servers.log)
    assert any(" rid_app handling /boom" in line for line in lines)
