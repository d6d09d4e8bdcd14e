"""`check --url` against real servers: uvicorn behind a real nginx that adds X-Forwarded-*.

The check reads the service's request-headers tool (`/c2c/headers/`, with the secret): through
nginx, requests arrive with `X-Forwarded-For`/`-Proto`, so proxy headers `none` is reported;
straight to uvicorn, nothing is.

The credentials of `--url` (the secret, the URL's user-info and credential-named query values)
against a recording HTTP server on 127.0.0.1: sent to a loopback host or over https, refused over
plain http to another host unless `--allow-insecure-http`, and never shown in a message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.server
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from c2c_testing import Nginx, free_port, stop_process, wait_for_port
from c2casgiutils import config
from c2casgiutils.check import CheckOptions, Finding, run_check
from c2casgiutils.check._remote import MASK, display_url, remote_findings

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


# --- the credentials of --url: where they are sent, and never in a message ---------------------------------
#
# A real HTTP server on 127.0.0.1 records every request it receives. It is the service for loopback
# URLs, and the environment's HTTP proxy (`HTTP_PROXY`) for URLs on another host: what the check
# would send to a remote host over plain http reaches it as `GET http://service.example/...`, so
# "nothing was sent" is observed, not assumed.

TOOL_ANSWER = json.dumps({"headers": {"host": "service.example", "user-agent": "python-httpx"}}).encode()


@dataclasses.dataclass
class Recorded:
    """One request the recording server received."""

    method: str
    target: str
    headers: dict[str, str]


class RecordingServer:
    """A threaded HTTP server on 127.0.0.1 that records requests and answers the tool's JSON (or `status`)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.status = 200
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                recorder.requests.append(
                    Recorded(self.command, self.path, {name.lower(): value for name, value in self.headers.items()})
                )
                body = TOOL_ANSWER if recorder.status == 200 else b"{}"
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _answer  # http.server's names
            do_CONNECT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def recorder_server() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


@pytest.fixture
def recorder(recorder_server: RecordingServer) -> RecordingServer:
    recorder_server.requests.clear()
    recorder_server.status = 200
    return recorder_server


def _through_proxy(monkeypatch: pytest.MonkeyPatch, port: int) -> str:
    """Make `port` on 127.0.0.1 the environment's HTTP proxy (as httpx reads it); return its URL."""
    proxy = f"http://127.0.0.1:{port}"
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setenv("https_proxy", proxy)
    return proxy


def _texts(findings: list[Finding]) -> str:
    return "\n".join(f"{finding.message}\n{finding.fix}" for finding in findings)


async def test_no_secret_over_plain_http_to_a_remote_host(
    recorder: RecordingServer, settings_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _through_proxy(monkeypatch, recorder.port)

    refused = await run_check(CheckOptions(url="http://service.example/c2c", timeout=10))
    assert [finding.id for finding in refused] == ["C2C-E010"]
    assert "plain http to service.example" in refused[0].message
    assert "the secret (X-API-Key)" in refused[0].message and "nothing was sent" in refused[0].message
    assert "--allow-insecure-http" in refused[0].fix
    assert recorder.requests == []  # not even a request without the secret

    # Credentials in the URL itself are refused the same way, and not shown.
    url = "http://admin:Zq7-user-password@service.example/c2c?api_key=Zq7-query-key"
    refused = await remote_findings(url, None, config.settings, 10)
    assert [finding.id for finding in refused] == ["C2C-E010"]
    assert "user-info" in refused[0].message and "query parameters" in refused[0].message
    assert "http://***@service.example/c2c?api_key=***" in refused[0].message
    assert "Zq7" not in _texts(refused)
    assert recorder.requests == []

    # Asked for: sent (through the proxy, in clear: the proxy reads the secret).
    allowed = await run_check(CheckOptions(url="http://service.example/c2c", timeout=10, allow_insecure_http=True))
    assert allowed == []
    (request,) = recorder.requests
    assert (request.method, request.target) == ("GET", "http://service.example/c2c/headers/")
    assert request.headers["x-api-key"] == SECRET

    # No credential to send: plain http is fine.
    recorder.requests.clear()
    assert await remote_findings("http://service.example/c2c", None, config.settings, 10) == []
    (request,) = recorder.requests
    assert "x-api-key" not in request.headers and "authorization" not in request.headers

    # https: the proxy only tunnels (CONNECT), the secret never reaches it in clear.
    recorder.requests.clear()
    tunnelled = await run_check(CheckOptions(url="https://service.example/c2c", timeout=10))
    assert [finding.id for finding in tunnelled] == ["C2C-E008"]  # the recorder is no TLS server
    assert [request.method for request in recorder.requests] == ["CONNECT"]
    assert all(SECRET not in value for request in recorder.requests for value in request.headers.values())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_http_gets_the_secret_directly(
    recorder: RecordingServer, settings_env: None, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    # A proxy of the environment that answers nothing: a loopback URL is reached directly.
    _through_proxy(monkeypatch, free_port())
    assert await run_check(CheckOptions(url=f"http://{host}:{recorder.port}/c2c/", timeout=10)) == []
    (request,) = recorder.requests
    assert (request.method, request.target) == ("GET", "/c2c/headers/")
    assert request.headers["x-api-key"] == SECRET


async def test_url_credentials_never_in_messages(recorder: RecordingServer, settings_env: None) -> None:
    url = f"http://admin:Zq7-url-password@127.0.0.1:{recorder.port}/c2c?secret=Zq7-query-secret&page=1"
    recorder.status = 500
    (answered,) = await run_check(CheckOptions(url=url, timeout=10))
    assert answered.id == "C2C-E008"
    shown = f"http://***@127.0.0.1:{recorder.port}/c2c"
    assert answered.message == (
        f"cannot read the request headers of {shown}?secret=***&page=1: "
        f"ValueError: GET {shown}/headers/?secret=***&page=1 answered 500"
    )
    (request,) = recorder.requests  # loopback: the URL's credentials were sent (Basic), and the query
    assert request.headers["authorization"].startswith("Basic ")
    assert request.target == "/c2c/headers/?secret=Zq7-query-secret&page=1"

    closed = f"http://admin:Zq7-url-password@127.0.0.1:{free_port()}/c2c"
    (unreachable,) = await run_check(CheckOptions(url=closed, timeout=10))
    assert unreachable.id == "C2C-E008" and "ConnectError" in unreachable.message
    assert "Zq7" not in _texts([answered, unreachable])

    # A password the URL parser cuts ('/' in it): the rest would be taken for the host.
    (cut,) = await run_check(CheckOptions(url="http://admin:Zq7/pass@evil.example/c2c", timeout=10))
    assert cut.id == "C2C-E008"
    assert cut.message.startswith("--url http://***@evil.example/c2c is ambiguous: write a '/', '?' or '#'")
    # httpx's own message would name a piece of the password ("Invalid port: 'Zq7'").
    (invalid,) = await run_check(CheckOptions(url="http://admin@127.0.0.1:port/c2c", timeout=10))
    assert invalid.message == "--url http://***@127.0.0.1:port/c2c is not a valid URL"
    (detailed,) = await run_check(CheckOptions(url="http://127.0.0.1:port/c2c", timeout=10))
    assert detailed.message == "--url http://127.0.0.1:port/c2c is not a valid URL: Invalid port: 'port'"
    (scheme,) = await run_check(CheckOptions(url="ftp://admin:Zq7-password@127.0.0.1/c2c", timeout=10))
    assert scheme.message == "--url ftp://***@127.0.0.1/c2c is not an http:// or https:// URL with a host"


def test_command_line_hides_and_refuses(recorder: RecordingServer, tmp_path: Path) -> None:
    """The real command: `--url` with credentials; plain http to a remote host needs --allow-insecure-http."""
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env = {name: value for name, value in env.items() if name.lower() not in ("no_proxy", "all_proxy")}
    env.update({"C2C__AUTH__SECRET": SECRET, "C2C__AUTH__SECRET_IN_QUERY": "false"})
    env["HTTP_PROXY"] = env["http_proxy"] = f"http://127.0.0.1:{recorder.port}"

    def check(*arguments: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "c2casgiutils", "check", *arguments]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False)

    recorder.status = 500
    leaked = check("--url", f"http://admin:Zq7-cli-password@127.0.0.1:{recorder.port}/c2c")
    assert leaked.returncode == 1, leaked.stdout + leaked.stderr
    assert f"C2C-E008 [error] cannot read the request headers of http://***@127.0.0.1:{recorder.port}/c2c" in (
        leaked.stdout
    )
    assert "Zq7" not in leaked.stdout + leaked.stderr and SECRET not in leaked.stdout + leaked.stderr

    recorder.requests.clear()
    recorder.status = 200
    refused = check("--url", "http://service.example/c2c", "--json")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    (finding,) = json.loads(refused.stdout)
    assert finding["id"] == "C2C-E010" and "--allow-insecure-http" in finding["fix"]
    assert recorder.requests == []

    allowed = check("--url", "http://service.example/c2c", "--allow-insecure-http")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "Deploy check: no problem found." in allowed.stdout
    (request,) = recorder.requests
    assert request.headers["x-api-key"] == SECRET

    assert "--allow-insecure-http" in check("--help").stdout


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://admin:pw@host/c2c?secret=x&a=1#key=y", "http://***@host/c2c?secret=***&a=1#key=***"),
        ("https://host:8443/c2c/", "https://host:8443/c2c/"),
        ("http://[::1]:8080/c2c", "http://[::1]:8080/c2c"),
        ("http://u:p@ss/w@host/c2c", "http://***@host/c2c"),  # to the last '@'
        ("admin:pw@host/c2c", "***@host/c2c"),  # no scheme
        (" http://a:b@h/c2c", " http://***@h/c2c"),
        ("http://h/c2c?secret=a b&c=1", "http://h/c2c?secret=***&c=1"),  # one URL: a space does not end it
        ("http://h/c2c?x=1?token=t#a?sig=s", "http://h/c2c?x=1?token=***#a?sig=***"),
        ("http://h/c2c?%6Bey=k&code=c&country_code=ch", "http://h/c2c?%6Bey=***&code=***&country_code=ch"),
    ],
)
def test_display_url(url: str, shown: str) -> None:
    assert display_url(url) == shown


# Any text a user may put in a URL or a secret, recognisable by its prefix so that a hit is no accident.
_CREDENTIAL = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=20
).map(lambda text: "Zq7" + text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    user=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", max_size=6),
    password=_CREDENTIAL,
    query_secret=_CREDENTIAL,
    secret=st.none() | _CREDENTIAL,
    encode=st.booleans(),
    status=st.sampled_from([500, 403]),
    scheme=st.sampled_from(["http://", "http://", "HTTP://", " http://", ""]),
)
def test_no_credential_in_any_message(
    recorder: RecordingServer,
    user: str,
    password: str,
    query_secret: str,
    secret: str | None,
    encode: bool,
    status: int,
    scheme: str,
) -> None:
    """Whatever the URL's password, query credentials and secret (typed raw or encoded), no finding shows them.

    Raw text may make another URL (a '/' or '#' in the password cuts the authority): the check then
    refuses it or cannot parse it, and says so without a piece of the password. Only the recording
    server on 127.0.0.1 is ever contacted.
    """
    recorder.status = status

    def written(text: str) -> str:
        return urllib.parse.quote(text, safe="") if encode else text

    url = f"{scheme}{user}:{written(password)}@127.0.0.1:{recorder.port}/c2c?token={written(query_secret)}&page=2"
    findings = asyncio.run(remote_findings(url, secret, config.Settings(), 5))
    assert [finding.id for finding in findings] in (["C2C-E008"], ["C2C-E010"])
    shown = _texts(findings)
    for credential in (password, query_secret, secret):
        if credential:
            for form in {credential, written(credential), urllib.parse.quote_plus(credential)}:
                assert form not in shown, (form, shown)
            assert repr(credential)[1:-1] not in shown


def test_display_url_of_a_hostile_url_is_linear() -> None:
    """200 000 characters of `://` without an '@' (a quadratic pattern took seconds at 10 000, an
    audit found): shown as given, at once."""
    url = "x://" * 50_000
    assert display_url(url) == url
    assert display_url(url + "u:p@h") == "x://" + MASK + "@h"
