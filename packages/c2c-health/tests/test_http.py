"""The HTTP check and the probe command against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import http.server
import logging
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from c2c_config import describe_error
from c2c_health import GENERIC_ERROR, HTTP, TIMEOUT_ERROR, Factory, HTTPProbeError, fetch_status
from c2c_health import _http as c2c_health_http
from c2c_health.__main__ import main
from c2c_health._http import mask_password, parse_status_line
from c2c_testing import free_port

MakeFactory = Callable[..., Factory]


@dataclass
class Dependency:
    """An asyncio HTTP/1.1 server: answers `status`, or hangs, or talks garbage; records the requests."""

    port: int = 0
    status: int = 200
    mode: str = "http"  # http | hang | garbage | stream (100 KB without a line break)
    requests: list[bytes] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at teardown: a hanging handler returns and closes its connection (Python 3.12's
    `Server.wait_closed()` waits for every connection)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health?verbose=1"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            if self.mode == "hang":
                await self.released.wait()
            elif self.mode == "garbage":
                writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
            elif self.mode == "stream":
                writer.write(b"\x00" * 100_000)
            else:
                body = b'{"status": "ok"}'
                writer.write(f"HTTP/1.1 {self.status} Whatever\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def dependency() -> AsyncIterator[Dependency]:
    dep = Dependency()
    server = await asyncio.start_server(dep.handle, "127.0.0.1", 0)
    dep.port = server.sockets[0].getsockname()[1]
    yield dep
    dep.released.set()
    server.close()
    await server.wait_closed()


async def _outcome(factory: Factory) -> object:
    (outcome,) = (await factory.run()).outcomes
    return outcome


@pytest.mark.parametrize(
    ("status", "expected", "healthy"),
    [
        (200, 200, True),
        (204, 200, False),
        (204, {200, 204}, True),
        (503, 200, False),
        (301, 301, True),  # redirects are not followed
    ],
)
async def test_status_against_expected(
    make_factory: MakeFactory, dependency: Dependency, status: int, expected: int | set[int], healthy: bool
) -> None:
    dependency.status = status
    factory = make_factory()
    factory.add(HTTP(dependency.url, expected, tags=["readiness"]))
    (outcome,) = (await factory.run()).outcomes
    assert outcome.status_code == (200 if healthy else 500)
    assert outcome.payload["status"] == status
    assert outcome.payload["url"] == dependency.url
    if healthy:
        assert outcome.public_payload == {}
    else:
        assert outcome.public_payload == {"error": f"the dependency answered {status}"}
        assert "127.0.0.1" not in str(outcome.public_payload)
    (request,) = dependency.requests
    assert request.startswith(b"GET /health?verbose=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{dependency.port}\r\n".encode() in request


async def test_credentials_become_basic_auth_and_are_never_shown(
    make_factory: MakeFactory, dependency: Dependency
) -> None:
    factory = make_factory(details="always")
    factory.add(HTTP(f"http://probe:s3cr%40t@127.0.0.1:{dependency.port}/", headers={"X-Probe": "1"}))
    (outcome,) = (await factory.run()).outcomes
    assert outcome.status_code == 200
    assert "s3cr" not in str(outcome.payload)
    (request,) = dependency.requests
    assert b"Authorization: Basic " + base64.b64encode(b"probe:s3cr@t") + b"\r\n" in request
    assert b"X-Probe: 1\r\n" in request


async def test_hanging_dependency_times_out(make_factory: MakeFactory, dependency: Dependency) -> None:
    dependency.mode = "hang"
    factory = make_factory(timeout=0.3)
    factory.add(HTTP(dependency.url))
    start = time.monotonic()
    (outcome,) = (await factory.run()).outcomes
    assert time.monotonic() - start < 5
    # Bounded within the check's time (90 % of it): the report names the URL that did not answer.
    assert outcome.status_code == 500
    assert outcome.payload == {"url": dependency.url, "status": None, "error": "TimeoutError: no answer within 0.27 s"}
    assert outcome.public_payload == {"error": "the dependency is not reachable"}
    assert outcome.payload["error"] != TIMEOUT_ERROR


async def test_not_http_and_refused_fail(make_factory: MakeFactory, dependency: Dependency) -> None:
    dependency.mode = "garbage"
    factory = make_factory()
    factory.add(HTTP(dependency.url, name="garbage"))
    factory.add(HTTP(f"http://127.0.0.1:{free_port()}/", name="refused"))
    garbage, refused = (await factory.run()).outcomes
    assert garbage.status_code == refused.status_code == 500
    assert garbage.payload["error"].startswith("HTTPProbeError: not an HTTP response: ")
    assert refused.payload["error"].startswith("ConnectionRefusedError: ")
    assert "Connect call failed" in refused.payload["error"]
    assert garbage.public_payload == {"error": "the dependency did not answer HTTP"}
    assert refused.public_payload == {"error": "the dependency is not reachable"}
    assert GENERIC_ERROR not in str(refused.public_payload)


async def test_a_stream_without_line_breaks_is_not_http(
    make_factory: MakeFactory, dependency: Dependency, caplog: pytest.LogCaptureFixture
) -> None:
    """A port that streams binary data: asyncio's reader gives up at 64 KiB without a line break
    (a `ValueError`); that is a dependency answering no HTTP, an ordinary failure, not an exception."""
    dependency.mode = "stream"
    factory = make_factory()
    factory.add(HTTP(dependency.url, name="stream"))
    with caplog.at_level(logging.WARNING):
        (outcome,) = (await factory.run()).outcomes
    assert outcome.status_code == 500
    assert outcome.payload["error"] == "HTTPProbeError: not an HTTP response: no line break within 64 KiB"
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_refused_connection_is_an_ordinary_failure(
    make_factory: MakeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A dependency that is down fails the check like any failing result: one WARNING, no traceback.

    Not "failed with an exception" at ERROR with a traceback (an error-tracker event per incident),
    and the payload has the documented shape: the URL (credentials masked), the status (none), the error.
    """
    port = free_port()
    factory = make_factory(details="always")
    factory.add(HTTP(f"http://probe:s3cret@127.0.0.1:{port}/health?token=abc", name="down"))
    with caplog.at_level(logging.DEBUG, logger="c2c_health"):
        (outcome,) = (await factory.run()).outcomes
    assert outcome.status_code == 500
    assert outcome.payload == {
        "url": f"http://probe:***@127.0.0.1:{port}/health?token=***",
        "status": None,
        "error": describe_error(ConnectionRefusedError(111, f"Connect call failed ('127.0.0.1', {port})")),
    }
    records = [record for record in caplog.records if record.levelno >= logging.INFO]
    assert [(record.levelno, record.exc_info) for record in records] == [(logging.WARNING, None)]
    (record,) = records
    message = record.getMessage()
    assert "is failing with status 500" in message
    assert "exception" not in message
    assert f"127.0.0.1:{port}" in message
    assert "s3cret" not in message
    assert "abc" not in message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "is not an http:// or https:// URL"),
        ("http:///path", "is not an http:// or https:// URL"),
        ("http://user:pw@host:99999/", "out of range"),
    ],
)
def test_invalid_url_rejected_at_construction(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        HTTP(url)
    assert "pw@" not in str(info.value)


def test_expected_status_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="at least one status code"):
        HTTP("http://127.0.0.1/", expected_status=())


async def test_fetch_status_rejects_line_breaks_in_headers(dependency: Dependency) -> None:
    with pytest.raises(ValueError, match="line break"):
        await fetch_status(dependency.url, headers={"X": "a\r\nInjected: 1"})
    assert dependency.requests == []


@given(st.integers(100, 999), st.sampled_from(["1.0", "1.1"]), st.text(alphabet="abcdefghij XYZ-", max_size=20))
@example(200, "1.1", "")
def test_parse_status_line_valid(status: int, version: str, reason: str) -> None:
    line = f"HTTP/{version} {status} {reason}\r\n".encode()
    assert parse_status_line(line) == status
    assert parse_status_line(f"HTTP/{version} {status}\r\n".encode()) == status


@given(st.binary(max_size=40))
@example(b"")
@example(b"HTTP/1.1 2000 OK\r\n")
@example(b"HTTP/1.1 \xd9\xa0\xd9\xa1\xd9\xa2 OK\r\n")  # non-ASCII digits
@example(b"SSH-2.0-OpenSSH_9.2\r\n")
def test_parse_status_line_never_crashes(line: bytes) -> None:
    try:
        status = parse_status_line(line)
    except HTTPProbeError as error:
        assert str(error).startswith("not an HTTP response: ")
    else:
        assert 0 <= status <= 999
        assert line.startswith(b"HTTP/")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:pw@h/", "http://u:***@h/"),
        ("http://:pw@h:80/x?y=1", "http://:***@h:80/x?y=1"),
        ("https://u:p@ss@h/", "https://u:***@h/"),  # an unencoded @ in the password
        ("http://u@h/", "http://u@h/"),
        ("http://h/p", "http://h/p"),
        ("http://[::1/", "<invalid URL>"),
        (
            "http://localhost:8080/c2c/health_checks?secret=s3&checks=db",
            "http://localhost:8080/c2c/health_checks?secret=***&checks=db",
        ),
        ("http://u:pw@h/x?token=t&api_key=k&state=s", "http://u:***@h/x?token=***&api_key=***&state=***"),
    ],
)
def test_mask_password(url: str, shown: str) -> None:
    assert mask_password(url) == shown


async def test_fetch_status_not_http(dependency: Dependency) -> None:
    dependency.mode = "garbage"
    with pytest.raises(HTTPProbeError):
        await fetch_status(dependency.url)


# -- the probe command ------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/hang"):
            self.server.release.wait(10)  # type: ignore[attr-defined]
            return
        status = int(self.path.strip("/") or 200)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def threaded_server() -> Iterator[str]:
    """A stdlib HTTP server in a thread: `/<status>` answers that status, `/hang` never answers."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.release.set()  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize(
    ("path", "code", "stderr"),
    [
        ("/200", 0, ""),
        ("/204", 0, ""),
        ("/503", 1, "unhealthy: http://127.0.0.1:{port}/503 answered 503\n"),
        ("/302", 1, "unhealthy: http://127.0.0.1:{port}/302 answered 302\n"),
    ],
)
def test_probe_command_exit_codes(
    threaded_server: str, capsys: pytest.CaptureFixture[str], path: str, code: int, stderr: str
) -> None:
    assert main([threaded_server + path, "--quiet"]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == stderr.format(port=threaded_server.rsplit(":", 1)[1])


def test_probe_command_timeout(threaded_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    assert main([threaded_server + "/hang", "--timeout", "0.3"]) == 1
    assert time.monotonic() - start < 5
    assert capsys.readouterr().err == f"unhealthy: no answer from {threaded_server}/hang within 0.3 s\n"


def _run_main(argv: list[str]) -> int:
    """`main(argv)`, with argparse's exit (bad arguments) turned into its status."""
    try:
        return main(argv)
    except SystemExit as exit_:
        assert isinstance(exit_.code, int)
        return exit_.code


@pytest.mark.parametrize(
    ("argv", "stderr"),
    [
        (["http://u:pw@127.0.0.1:{free}/"], "unhealthy: cannot connect to http://u:***@127.0.0.1:{free}/: "),
        (["ftp://x/"], "unhealthy: 'ftp://x/' is not an http:// or https:// URL with a host"),
        # Bad arguments exit 1 too: Docker reserves 2.
        (["http://x/", "--timeout", "0"], "unhealthy: bad arguments: argument --timeout: '0' is not a positive"),
        ([], "unhealthy: bad arguments: the following arguments are required: url"),
    ],
)
def test_probe_command_failures_exit_1_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], stderr: str
) -> None:
    port = free_port()
    assert _run_main([arg.format(free=port) for arg in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(stderr.format(free=port))
    assert err.count("\n") == 1
    assert "pw@" not in err


def test_probe_command_as_a_process(threaded_server: str) -> None:
    healthy = subprocess.run(
        [sys.executable, "-m", "c2c_health", threaded_server + "/200"], capture_output=True, text=True, timeout=60
    )
    assert (healthy.returncode, healthy.stdout) == (0, f"healthy: {threaded_server}/200 answered 200\n")
    failing = subprocess.run(
        [sys.executable, "-m", "c2c_health", threaded_server + "/500"], capture_output=True, text=True, timeout=60
    )
    assert (failing.returncode, failing.stderr) == (1, f"unhealthy: {threaded_server}/500 answered 500\n")


# -- https ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made by the openssl command)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_dependency(certificate: tuple[Path, Path]) -> AsyncIterator[Dependency]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    dep = Dependency()
    server = await asyncio.start_server(dep.handle, "127.0.0.1", 0, ssl=context)
    dep.port = server.sockets[0].getsockname()[1]
    yield dep
    dep.released.set()
    server.close()
    await server.wait_closed()


async def test_https_verifies_the_certificate(
    make_factory: MakeFactory, tls_dependency: Dependency, certificate: tuple[Path, Path]
) -> None:
    url = tls_dependency.url.replace("http://", "https://")
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    factory = make_factory(timeout=10)
    factory.add(HTTP(url, name="system-cas"))
    factory.add(HTTP(url, name="private-ca", ssl_context=trusting))
    system, private = (await factory.run()).outcomes
    assert system.status_code == 500
    assert "CERTIFICATE_VERIFY_FAILED" in system.payload["error"]
    assert (private.status_code, private.payload["status"]) == (200, 200)
    assert len(tls_dependency.requests) == 1  # the unverified connection sent nothing


async def test_the_system_cas_are_loaded_once_off_the_loop(
    monkeypatch: pytest.MonkeyPatch, make_factory: MakeFactory, tls_dependency: Dependency
) -> None:
    """Loading the system CAs takes tens of ms: once per process, in a thread, not at each probe on the loop."""
    monkeypatch.setattr(c2c_health_http, "_default_context", None)
    threads: list[str] = []
    create = ssl.create_default_context

    def counting() -> ssl.SSLContext:
        threads.append(threading.current_thread().name)
        return create()

    monkeypatch.setattr(ssl, "create_default_context", counting)
    url = tls_dependency.url.replace("http://", "https://")
    factory = make_factory(timeout=10)
    factory.add(HTTP(url, name="system-cas"))
    for _ in range(3):
        (outcome,) = (await factory.run()).outcomes
        assert "CERTIFICATE_VERIFY_FAILED" in outcome.payload["error"]  # still verified, by the system CAs
    assert len(threads) == 1
    assert threads[0] != threading.main_thread().name
