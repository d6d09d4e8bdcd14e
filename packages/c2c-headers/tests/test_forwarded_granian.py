"""The forwarded and request-id middlewares under granian behind a real nginx, where granian's scope differs.

    client 127.0.0.2 --> nginx --> granian (TCP, or --uds) --> the middlewares --> echo app

test_forwarded_chain.py runs the same nginx recipes in front of uvicorn; granian builds two scopes
differently, and the middlewares must give the same answers:

- on a unix socket (``granian --uds``) the peer is ``("", "0")``, not None as under uvicorn: it has
  no address, and a socket literal in ``trusted_hosts`` (``unix:``) trusts it (README: "that peer
  is trusted when `trusted_hosts` holds `*` or a socket literal");
- a request without ``Host`` gets an empty ``Host`` header: ``X-Forwarded-Port`` alone then applies
  to the server address (README: "its `Host` header, else `scope["server"]`'s address when the
  proxy sent no `Host`").

Both engines (``python`` and ``auto``, native when installed) are served by the same process, one
path prefix each. Every process started here is stopped at teardown, even when a test fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from _c2c_processes import port_ready, socket_ready, stop, wait_started

from c2c_testing import Nginx, free_port

pytestmark = pytest.mark.slow

CLIENT = "127.0.0.2"  # not nginx's address towards granian (127.0.0.1): the app can tell them apart
ENGINES = ("python", "auto")

ECHO_APP = '''
"""Echo what the application sees, behind the middlewares configured by the first path segment."""
import json

from c2c_headers import ForwardedHeadersMiddleware
from c2c_headers.request_id import RequestIdMiddleware


async def echo(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            done = "startup" if message["type"] == "lifespan.startup" else "shutdown"
            await send({"type": f"lifespan.{done}.complete"})
            if done == "shutdown":
                return
    host = [value.decode("latin-1") for name, value in scope["headers"] if name == b"host"]
    seen = {
        "client": list(scope["client"]) if scope.get("client") else None,
        "scheme": scope["scheme"],
        "host": host,
        "server": list(scope["server"]) if scope.get("server") else None,
        "request_id": scope.get("state", {}).get("request_id"),
    }
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(seen).encode()})


MODES = {}
for engine in ("python", "auto"):
    MODES[f"{engine}-xf"] = ForwardedHeadersMiddleware(echo, trusted_hosts="127.0.0.1", engine=engine)
    MODES[f"{engine}-uds"] = ForwardedHeadersMiddleware(
        RequestIdMiddleware(echo, trusted_hosts="unix:"), trusted_hosts="unix:", engine=engine
    )
MODES["rid-uds"] = RequestIdMiddleware(echo, trusted_hosts="unix:")


async def app(scope, receive, send):
    mode = scope.get("path", "/").split("/")[1] if scope["type"] != "lifespan" else ""
    await MODES.get(mode, echo)(scope, receive, send)
'''

NGINX_HTTP = """
    server {{  # uds: granian on a unix socket, nginx's own request id
        listen 127.0.0.1:{uds};
        location / {{
            proxy_pass http://unix:{app_socket}:;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Request-ID $request_id;
            add_header X-Nginx-Request-ID $request_id always;
        }}
    }}
    server {{  # nohost: no Host header upstream, a public port
        listen 127.0.0.1:{nohost};
        location / {{
            proxy_pass http://127.0.0.1:{app};
            proxy_set_header Host "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Port 8443;
        }}
    }}"""


def _granian(directory: Path, log: Path, *where: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("C2C", "GRANIAN_"))}
    env["PYTHONPATH"] = str(directory)
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", *where, "--workers", "1", "--no-ws", "echo_app:app"]
    with log.open("wb") as output:
        return subprocess.Popen(
            argv, cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


@dataclass
class Chain:
    ports: dict[str, int]
    app_socket: Path

    def get(self, server: str, path: str, **headers: str) -> httpx.Response:
        transport = httpx.HTTPTransport(local_address=CLIENT)
        with httpx.Client(transport=transport, timeout=10) as client:
            response = client.get(f"http://127.0.0.1:{self.ports[server]}{path}", headers=headers)
        assert response.status_code == 200, response.text
        return response


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    # A short directory: unix socket paths are limited to about 100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="c2cgr-"))
    (directory / "echo_app.py").write_text(textwrap.dedent(ECHO_APP), encoding="utf-8")
    ports = {name: free_port() for name in ("app", "uds", "nohost")}
    app_socket = directory / "app.sock"
    http = NGINX_HTTP.format(app_socket=app_socket, **ports)
    nginx = Nginx(directory / "nginx", http, [ports["uds"], ports["nohost"]])
    processes: list[subprocess.Popen[bytes]] = []
    try:
        tcp = _granian(directory, directory / "granian-tcp.log", "--host", "127.0.0.1", "--port", str(ports["app"]))
        processes.append(tcp)
        uds = _granian(directory, directory / "granian-uds.log", "--uds", str(app_socket))
        processes.append(uds)
        nginx.start()
        wait_started(tcp, port_ready(ports["app"]), directory / "granian-tcp.log", "granian")
        wait_started(uds, socket_ready(app_socket), directory / "granian-uds.log", "granian --uds")
        yield Chain(ports, app_socket)
    finally:
        nginx.stop()
        for process in processes:
            stop(process)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_granian_unix_socket_peer_is_trusted_through_a_socket_literal(chain: Chain, engine: str) -> None:
    """nginx -> ``granian --uds``: the peer ``("", "0")`` has no address; ``unix:`` trusts it."""
    answer: dict[str, Any] = chain.get("uds", f"/{engine}-uds/echo", **{"X-Forwarded-For": "198.51.100.9"}).json()
    # the client's own X-Forwarded-For entry is left of nginx's: the client is the address nginx appended
    assert (answer["client"], answer["scheme"]) == ([CLIENT, 0], "https")


@pytest.mark.parametrize("mode", ["python-uds", "auto-uds", "rid-uds"])
def test_granian_unix_socket_peer_request_id_is_kept(chain: Chain, mode: str) -> None:
    """RequestIdMiddleware(trusted_hosts="unix:") keeps the id nginx set over the socket, with or without
    ForwardedHeadersMiddleware outside it."""
    response = chain.get("uds", f"/{mode}/echo")
    nginx_id = response.headers["x-nginx-request-id"]
    assert len(nginx_id) == 32
    assert response.json()["request_id"] == nginx_id


@pytest.mark.parametrize("engine", ENGINES)
def test_granian_forwarded_port_without_host(chain: Chain, engine: str) -> None:
    """nginx sends no Host, granian adds an empty one: the forwarded port applies to the server address."""
    for _ in range(2):  # the second request repeats a known combination (the native rewriter's path)
        answer: dict[str, Any] = chain.get("nohost", f"/{engine}-xf/echo").json()
        assert answer["host"] == ["127.0.0.1:8443"]
        assert answer["server"] == ["127.0.0.1", 8443]
        assert answer["client"] == [CLIENT, 0]


@pytest.mark.parametrize("engine", ENGINES)
def test_granian_http_1_0_without_host_from_the_trusted_peer(chain: Chain, engine: str) -> None:
    """The same directly (HTTP/1.0, no Host, from the trusted 127.0.0.1): the port of the server address."""
    request = f"GET /{engine}-xf/echo HTTP/1.0\r\nX-Forwarded-Port: 8443\r\nX-Forwarded-Proto: https\r\n\r\n"
    with socket.create_connection(("127.0.0.1", chain.ports["app"]), timeout=10) as connection:
        connection.sendall(request.encode())
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
    answer = httpx.Response(200, content=body).json()
    assert (answer["scheme"], answer["host"], answer["server"]) == ("https", ["127.0.0.1:8443"], ["127.0.0.1", 8443])
