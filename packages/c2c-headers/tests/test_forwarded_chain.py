"""ForwardedHeadersMiddleware behind a real nginx, in front of real uvicorn processes (issue 14 items 5, 6, 16).

    client 127.0.0.2 / ::1 --> nginx (appends its element) --> uvicorn (TCP, or --uds) --> echo app

The echo application answers ``url_for``, ``scope["client"]``, the scheme and the ``Host`` it
sees, as JSON, under one path per middleware configuration (``/<mode>/echo``). nginx runs from a
temporary prefix (nothing from /etc/nginx) with these servers:

- ``append``: the usual configuration: ``X-Forwarded-For $proxy_add_x_forwarded_for``,
  ``X-Forwarded-Proto $scheme`` and a ``Forwarded`` header built from ``$remote_addr`` appended to
  the client's; the client's ``X-Forwarded-Host``/``-Port`` pass through untouched;
- ``front`` -> ``inner``: a proxy whose upstream is another nginx on a unix socket, which appends
  ``unix:`` to ``X-Forwarded-For`` (what nginx writes for a unix-socket client);
- ``uds``: uvicorn's own sample, nginx to ``uvicorn --uds`` (the application sees no client address);
- ``nohost``: a proxy that sends no ``Host`` but a public port (``X-Forwarded-Port: 8443``);
- ``hostlast``: a ``Forwarded`` element ending with the client's host (``...;host=$http_host``) and
  ``Host $host``, the configuration a client can forge a whole element through (``,`` ``;`` ``=``
  in its ``Host``: nginx passes them); ``hostfirst``: the element starting with it, as the
  README recommends, behind a fixed upstream ``Host``.

Every process started here is stopped at teardown, even when a test fails.
"""

from __future__ import annotations

import os
import shutil
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

CLIENT_V4 = "127.0.0.2"  # not nginx's address towards uvicorn (127.0.0.1): the app can tell them apart

ECHO_APP = '''
"""Echo what the application sees, behind one ForwardedHeadersMiddleware per first path segment."""
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from c2c_headers import ForwardedHeadersMiddleware


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "url": str(request.url_for("echo", mode=request.path_params["mode"])),
            "client": list(request.client) if request.client else None,
            "scheme": request.url.scheme,
            "host": request.headers.get("host"),
        }
    )


inner = Starlette(routes=[Route("/{mode}/echo", echo, name="echo")])
MODES = {
    "xf": ForwardedHeadersMiddleware(inner, trusted_hosts="127.0.0.1"),
    "xf-chain": ForwardedHeadersMiddleware(inner, trusted_hosts="127.0.0.0/8"),
    "xf-nohost": ForwardedHeadersMiddleware(inner, trusted_hosts="127.0.0.1", trust_host=False),
    "xf-socket": ForwardedHeadersMiddleware(inner, trusted_hosts="127.0.0.1, unix:"),
    "xf-uds": ForwardedHeadersMiddleware(inner, trusted_hosts=os.environ.get("ECHO_SOCKET", "unix:")),
    "fw": ForwardedHeadersMiddleware(inner, trusted_hosts="127.0.0.1", headers_type="forwarded"),
    "fw-chain": ForwardedHeadersMiddleware(inner, trusted_hosts="127.0.0.0/8", headers_type="forwarded"),
}


async def app(scope, receive, send):
    mode = scope.get("path", "/").split("/")[1] if scope["type"] != "lifespan" else ""
    await MODES.get(mode, inner)(scope, receive, send)
'''

NGINX_HTTP = """
    # RFC 7239 node: an IPv6 address is quoted and bracketed (nginx's documented recipe).
    map $remote_addr $forwarded_node {{
        ~^[0-9.]+$ $remote_addr;
        ~^[0-9A-Fa-f:.]+$ "\\"[$remote_addr]\\"";
        default unknown;
    }}
    server {{  # append: the usual appending proxy
        listen 127.0.0.1:{append};
        listen [::1]:{append};
        location / {{
            proxy_pass http://127.0.0.1:{app};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Forwarded "$http_forwarded, for=$forwarded_node;proto=$scheme";
        }}
    }}
    server {{  # front: its upstream is the inner nginx, on a unix socket
        listen 127.0.0.1:{front};
        location / {{
            proxy_pass http://unix:{inner_socket}:;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
    server {{  # inner: on a unix socket, so it appends "unix:"
        listen unix:{inner_socket};
        location / {{
            proxy_pass http://127.0.0.1:{app};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
    server {{  # uds: uvicorn's own sample, uvicorn on a unix socket
        listen 127.0.0.1:{uds};
        location / {{
            proxy_pass http://unix:{app_socket}:;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
        }}
    }}
    server {{  # hostlast: the client's host last in the element, and forwarded as the Host
        listen 127.0.0.1:{hostlast};
        location / {{
            proxy_pass http://127.0.0.1:{app};
            proxy_set_header Host $host;
            proxy_set_header Forwarded "$http_forwarded, for=$forwarded_node;proto=$scheme;host=$http_host";
        }}
    }}
    server {{  # hostfirst: the client's host first in the element, a fixed Host upstream
        listen 127.0.0.1:{hostfirst};
        location / {{
            proxy_pass http://127.0.0.1:{app};
            proxy_set_header Host internal;
            proxy_set_header Forwarded "$http_forwarded, host=$http_host;for=$forwarded_node;proto=$scheme";
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


def _uvicorn(directory: Path, log: Path, *where: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ECHO_SOCKET": str(directory / "app.sock")}
    with log.open("wb") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "echo_app:app",
                "--app-dir",
                str(directory),
                *where,
                # uvicorn's own proxy-headers handling would rewrite the client first.
                "--no-proxy-headers",
                "--lifespan",
                "off",
                "--log-level",
                "warning",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


@dataclass
class Chain:
    ports: dict[str, int]

    def response(self, server: str, path: str, *, local: str = CLIENT_V4, **headers: str) -> httpx.Response:
        host = "[::1]" if ":" in local else "127.0.0.1"
        transport = httpx.HTTPTransport(local_address=local)
        with httpx.Client(transport=transport, timeout=10) as client:
            return client.get(f"http://{host}:{self.ports[server]}{path}", headers=headers)

    def get(self, server: str, path: str, *, local: str = CLIENT_V4, **headers: str) -> dict[str, Any]:
        response = self.response(server, path, local=local, **headers)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def origin(self, server: str, local: str = CLIENT_V4) -> str:
        host = "[::1]" if ":" in local else "127.0.0.1"
        return f"http://{host}:{self.ports[server]}"


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    # A short directory: unix socket paths are limited to about 100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="c2cfw-"))
    (directory / "echo_app.py").write_text(textwrap.dedent(ECHO_APP), encoding="utf-8")
    ports = {name: free_port() for name in ("app", "append", "front", "uds", "nohost", "hostlast", "hostfirst")}
    processes: list[subprocess.Popen[bytes]] = []
    http = NGINX_HTTP.format(inner_socket=directory / "inner.sock", app_socket=directory / "app.sock", **ports)
    listening = ("append", "front", "uds", "nohost", "hostlast", "hostfirst")
    nginx = Nginx(directory / "nginx", http, [ports[name] for name in listening])
    try:
        tcp = _uvicorn(directory, directory / "uvicorn-tcp.log", "--host", "127.0.0.1", "--port", str(ports["app"]))
        processes.append(tcp)
        uds = _uvicorn(directory, directory / "uvicorn-uds.log", "--uds", str(directory / "app.sock"))
        processes.append(uds)
        nginx.start()
        wait_started(tcp, port_ready(ports["app"]), directory / "uvicorn-tcp.log", "uvicorn")
        wait_started(uds, socket_ready(directory / "app.sock"), directory / "uvicorn-uds.log", "uvicorn --uds")
        yield Chain(ports)
    finally:
        nginx.stop()
        for process in processes:
            stop(process)
        shutil.rmtree(directory, ignore_errors=True)


# --- item 5: RFC 7239 -----------------------------------------------------------------------------


FORGED_HOSTS = [
    # closes the proxy's element and appends one of its own (the last one: read as the proxy's)
    "app.example,for=203.0.113.9;proto=https;host=app.example",
    # the same against a quoted host=
    'app.example",for=203.0.113.9;proto=https;host="app.example',
    # a downgrade: another scheme and host
    "app.example,for=203.0.113.9;proto=http;host=localhost",
]


@pytest.mark.parametrize("forged", FORGED_HOSTS)
def test_a_host_cannot_forge_the_proxy_s_element(chain: Chain, forged: str) -> None:
    """nginx passes `,` `;` `=` `"` in a Host. Written last in the proxy's own element, the client's
    host would carry a whole element of its own, client address and scheme included: the request,
    whose Host is then no host[:port], is refused (400) and never reaches the application. With the
    host written first (the README's recipe), a forged parameter duplicates the proxy's: the element
    is malformed and nothing of it is believed."""
    refused = chain.response("hostlast", "/fw/echo", Host=forged)
    assert refused.status_code == 400, refused.text
    assert refused.text == "Invalid Host header"
    honest = chain.get("hostlast", "/fw/echo", Host="app.example")
    assert (honest["client"][0], honest["scheme"], honest["host"]) == (CLIENT_V4, "http", "app.example")

    injected = chain.get("hostfirst", "/fw/echo", Host=forged)
    assert injected["client"][0] == "127.0.0.1"  # nginx itself: nothing believed
    assert injected["scheme"] == "http"
    honest = chain.get("hostfirst", "/fw/echo", Host="app.example")
    assert (honest["client"][0], honest["scheme"], honest["host"]) == (CLIENT_V4, "http", "app.example")


@pytest.mark.parametrize("local", [CLIENT_V4, "::1"])
def test_unterminated_quote_cannot_forge(chain: Chain, local: str) -> None:
    """The open quote must not swallow nginx's element (an IPv6 one is quoted and bracketed)."""
    answer = chain.get("append", "/fw/echo", local=local, Forwarded='host=evil.com;proto=https;for="')
    assert answer["client"] == [local, 0]
    assert answer["scheme"] == "http"
    assert answer["url"] == f"{chain.origin('append', local)}/fw/echo"


def test_separate_proxy_line_wins(chain: Chain) -> None:
    """A proxy adding its own line after the client's (directly against uvicorn, the peer trusted)."""
    with httpx.Client(timeout=10) as client:
        response = client.get(
            f"http://127.0.0.1:{chain.ports['app']}/fw/echo",
            headers=[("Forwarded", 'host=evil.com;proto=https;for="'), ("Forwarded", "for=198.51.100.7;proto=http")],
        )
    answer = response.json()
    assert (answer["client"], answer["scheme"]) == (["198.51.100.7", 0], "http")
    assert answer["url"] == f"http://127.0.0.1:{chain.ports['app']}/fw/echo"


# --- item 6: client addresses are IP addresses ----------------------------------------------------


@pytest.mark.parametrize("forged", ["<script>alert(1)</script>", "unknown", "fe80::1%<b>x</b>"])
def test_x_forwarded_for_garbage_is_never_the_client(chain: Chain, forged: str) -> None:
    """The client (127.0.0.2) is itself a trusted proxy here: the walk stops at its garbage entry."""
    answer = chain.get("append", "/xf-chain/echo", **{"X-Forwarded-For": forged})
    assert answer["client"] == [CLIENT_V4, 0]


@pytest.mark.parametrize("node", ["unknown", "_hidden", '"<script>"'])
def test_forwarded_for_non_address_keeps_the_last_trusted(chain: Chain, node: str) -> None:
    answer = chain.get("append", "/fw-chain/echo", Forwarded=f"for={node}")
    assert answer["client"] == [CLIENT_V4, 0]


# --- item 16: X-Forwarded-Host/-Port passed through, unix sockets, no Host ------------------------


def test_passed_through_host_is_believed_by_default_and_not_with_trust_host_off(chain: Chain) -> None:
    """nginx's usual configuration passes the client's X-Forwarded-Host/-Port through untouched."""
    forged = {"X-Forwarded-Host": "client-chosen.example", "X-Forwarded-Port": "8443"}
    believed = chain.get("append", "/xf/echo", **forged)
    assert believed["url"] == "http://client-chosen.example:8443/xf/echo"  # the documented default (0.14)
    ignored = chain.get("append", "/xf-nohost/echo", **forged)
    assert ignored["url"] == f"{chain.origin('append')}/xf-nohost/echo"
    assert ignored["client"] == [CLIENT_V4, 0]


def test_unix_socket_hop_in_x_forwarded_for(chain: Chain) -> None:
    """front -> inner (on a socket, appends "unix:") -> uvicorn: a trusted "unix:" hop is walked over."""
    answer = chain.get("front", "/xf-socket/echo")
    assert answer["client"] == [CLIENT_V4, 0]


def test_uvicorn_on_a_unix_socket(chain: Chain) -> None:
    """uvicorn --uds: no client address; the socket path in trusted_hosts trusts nginx there."""
    answer = chain.get("uds", "/xf-uds/echo")
    assert (answer["client"], answer["scheme"]) == ([CLIENT_V4, 0], "https")
    assert answer["url"].startswith("https://127.0.0.1:")


def test_forwarded_port_without_host(chain: Chain) -> None:
    answer = chain.get("nohost", "/xf/echo")
    assert answer["host"] == "127.0.0.1:8443"  # nginx sent none: the middleware wrote it
    assert answer["url"] == "http://127.0.0.1:8443/xf/echo"
    assert answer["client"] == [CLIENT_V4, 0]
