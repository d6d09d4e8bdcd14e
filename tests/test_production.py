"""The demo behind a real TLS-terminating nginx, three uvicorn replicas, one real (persistent) Redis.

A production-like deployment on loopback:

    client (127.0.0.2) --https, SNI/Host public.example--> nginx (127.0.0.1:P, self-signed CA)
        --http, X-Forwarded-{For,Proto,Host,Port}--> 3 x uvicorn examples.demo.app:app --> redis-server

What it proves, all through the proxy:

- the URLs the application builds (`request.url`, `base_url`, the trailing-slash redirect) are
  `https://public.example:P/...`, and the client address is the real client's, not a forged one;
- the security headers arrive: HSTS over https (`C2C__HTTP` unset), a CSP with a per-request nonce
  on `/c2c/` matching the page's `nonce=` attributes;
- a log level changed through one replica reaches all three (three answers, three pids, each
  replica asked directly shows it), also after `redis-server` restarted mid-run, and the overrides
  persisted in Redis survive that restart (Redis runs with the append-only file here);
- a killed replica is reported missing (or already forgotten), within the broadcast timeout, and
  nginx keeps serving from the live replicas.

nginx comes from the Debian package (`apt-get install nginx`); a missing nginx is an error, never a
skip. Every process started here is stopped at teardown, even when the test fails.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from c2c_testing import Nginx, RedisServer, RedisServerFactory, free_port, nginx_binary, wait_for_port
from c2casgiutils.tools.logging_ import BROADCAST_TIMEOUT

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PUBLIC_HOST = "public.example"
# The client connects from another loopback address than nginx uses towards the replicas, so the
# application can tell the real client (127.0.0.2, untrusted) from the proxy (127.0.0.1, trusted).
CLIENT_ADDRESS = "127.0.0.2"
SECRET = "production-test-secret"
KEY = {"X-API-Key": SECRET}
LOGGING_PREFIX = "c2c_logging_level_"
# Upper bounds of waits (never timings asserted): process start, registry fill, recovery after Redis.
START_TIMEOUT = 60.0  # three replicas importing at once on two cores, under coverage in CI
RECOVERY_TIMEOUT = 30.0
HSTS = "max-age=31536000; includeSubDomains; preload"


# --- TLS ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """A throw-away CA and the server certificate it signed for `PUBLIC_HOST`."""

    ca: Path
    certificate: Path  # leaf then CA, as nginx wants the chain
    key: Path


def _make_certificates(directory: Path) -> Certificates:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "c2c production test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PUBLIC_HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(PUBLIC_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    certificates = Certificates(
        ca=directory / "ca.pem", certificate=directory / "server.pem", key=directory / "server.key"
    )
    certificates.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certificates.certificate.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    certificates.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    certificates.key.chmod(0o600)
    return certificates


# --- processes ------------------------------------------------------------------------------------


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no {path})"
    return f"last lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes], *, group: bool = False, timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL (to the whole process group with `group`); always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            if group:
                # The master (not reaped yet, so its id is still ours) did not stop: kill its
                # workers with it, since nginx workers outlive a killed master.
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
    process.wait(timeout)


class Replica:
    """One uvicorn process of the demo application (its own port, Prometheus port and log)."""

    def __init__(self, directory: Path, redis_url: str, database: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / f"replica-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("C2C__", "DEMO_"))}
        env.update(
            {
                "C2C__REDIS__URL": redis_url,
                "C2C__AUTH__SECRET": SECRET,
                "C2C__PROXY_HEADERS__TYPE": "x-forwarded",
                "C2C__PROXY_HEADERS__TRUSTED_HOSTS": "127.0.0.1",
                "C2C__PROMETHEUS__PORT": str(free_port()),
                # The registry forgets a killed replica after a few heartbeats.
                "C2C__BROADCAST__HEARTBEAT_INTERVAL": "1",
                # Re-read the stored overrides often: a change broadcast while a replica reconnects
                # is applied by it at the next synchronisation.
                "C2C__TOOLS__LOGGING__SYNC_INTERVAL": "5",
                "DEMO_ALLOWED_HOSTS": f"{PUBLIC_HOST},127.0.0.1",
                "DEMO_DATABASE": str(database),
                "DEMO_PORT": str(self.port),
            }
        )
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "examples.demo.app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-config",
                    str(REPO / "examples/demo/logging.yaml"),
                    # uvicorn's own proxy-headers handling (on by default for 127.0.0.1) would rewrite
                    # the client before ForwardedHeadersMiddleware sees it: the application's
                    # middleware alone must do the work here.
                    "--no-proxy-headers",
                ],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"replica on port {self.port} exited while starting\n{_tail(self.log_path)}")
            try:
                wait_for_port("127.0.0.1", self.port, timeout=0.5)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"replica on port {self.port} did not listen in {START_TIMEOUT:g} s\n{_tail(self.log_path)}"
                    )

    def get(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(self.url + path, params=params, headers=KEY, timeout=20)

    def level(self, name: str) -> str:
        response = self.get("/c2c/logging/level", name=name)
        assert response.status_code == 200, response.text
        return str(response.json()["level"])

    def stop(self) -> None:
        _stop(self.process)


NGINX_HTTP = """
    upstream demo {{
{servers}
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {host};
        ssl_certificate {certificate};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://demo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_connect_timeout 5s;
            proxy_read_timeout 60s;
        }}
    }}"""


def start_nginx(directory: Path, certificates: Certificates, upstreams: list[int]) -> Nginx:
    """nginx terminating TLS on 127.0.0.1:`port` for `PUBLIC_HOST`, balancing over the replicas."""
    port = free_port()
    http = NGINX_HTTP.format(
        servers="\n".join(f"        server 127.0.0.1:{upstream};" for upstream in upstreams),
        port=port,
        host=PUBLIC_HOST,
        certificate=certificates.certificate,
        key=certificates.key,
    )
    return Nginx(directory, http, [port]).start(timeout=START_TIMEOUT)


class PublicClient:
    """An https client of `https://public.example:<port>` resolved to nginx, trusting only the test CA."""

    def __init__(self, port: int, ca: Path) -> None:
        self.port = port
        self.origin = f"https://{PUBLIC_HOST}:{port}"
        context = ssl.create_default_context(cafile=str(ca))
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(verify=context, local_address=CLIENT_ADDRESS),
            timeout=60,
            follow_redirects=False,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Host": f"{PUBLIC_HOST}:{self.port}", **kwargs.pop("headers", {})}
        # Connect to nginx's address, but send the public name as SNI (and check the certificate
        # against it) and as Host: what a resolver pointing public.example at nginx would give.
        return self._client.request(
            method,
            f"https://127.0.0.1:{self.port}{path}",
            headers=headers,
            extensions={"sni_hostname": PUBLIC_HOST},
            **kwargs,
        )

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def set_level(self, name: str, level: str) -> httpx.Response:
        return self.request(
            "POST", "/c2c/logging/level?replicas=true", json={"name": name, "level": level}, headers=KEY
        )

    def close(self) -> None:
        self._client.close()


@dataclass
class Stack:
    redis: RedisServer
    replicas: list[Replica]
    nginx: Nginx
    client: PublicClient
    directory: Path
    database: Path

    def start_replica(self) -> Replica:
        replica = Replica(self.directory, self.redis.url, self.database)
        self.replicas.append(replica)
        replica.wait_ready()
        return replica


@pytest.fixture
def persistent_redis(redis_server_factory: RedisServerFactory) -> RedisServer:
    # The overrides live in Redis: without persistence a restart would (rightly) lose them. Every
    # write is on disk before it is acknowledged, and SIGTERM (stop) rewrites nothing away.
    return redis_server_factory(args=["--appendonly", "yes", "--appendfsync", "always"])


@pytest.fixture
def stack(tmp_path: Path, persistent_redis: RedisServer) -> Iterator[Stack]:
    certificates = _make_certificates(tmp_path)
    nginx_binary()  # fail early, before starting anything, when nginx is missing
    database = tmp_path / "demo.sqlite3"
    replicas: list[Replica] = []
    nginx: Nginx | None = None
    client: PublicClient | None = None
    try:
        # Started together (they import for a few seconds each), then waited for.
        replicas.extend(Replica(tmp_path, persistent_redis.url, database) for _ in range(3))
        for replica in replicas:
            replica.wait_ready()
        nginx = start_nginx(tmp_path / "nginx", certificates, [replica.port for replica in replicas])
        client = PublicClient(nginx.ports[0], certificates.ca)
        yield Stack(persistent_redis, replicas, nginx, client, tmp_path, database)
    finally:
        if client is not None:
            client.close()
        if nginx is not None:
            nginx.stop()
        for replica in replicas:
            replica.stop()


def _wait_for_registry(stack: Stack, count: int) -> None:
    """Until a (harmless) level change is answered by `count` replicas: every replica registered."""
    deadline = time.monotonic() + START_TIMEOUT
    answers: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = stack.client.set_level("production_probe", "INFO")
        if response.status_code == 200:
            answers = response.json()["replicas"]
            if sum("payload" in answer for answer in answers) >= count:
                return
        time.sleep(0.5)
    pytest.fail(f"fewer than {count} replicas answered within {START_TIMEOUT:g} s: {answers}")


def _answered_pids(answers: list[dict[str, Any]], level: str) -> set[int]:
    assert all(answer["payload"]["level"] == level for answer in answers if "payload" in answer), answers
    return {int(answer["pid"]) for answer in answers if "payload" in answer}


# --- the tests -------------------------------------------------------------------------------------


def test_urls_and_security_headers_through_tls_proxy(stack: Stack) -> None:
    client = stack.client
    origin = client.origin

    # What the application sees: https, the public host and port, the real client (a forged
    # X-Forwarded-For entry sent by the client is left of the untrusted hop, so it is ignored).
    response = client.get("/c2c/headers/", headers={**KEY, "X-Forwarded-For": "203.0.113.7"})
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["client_info"]["url_str"] == f"{origin}/c2c/headers/"
    assert seen["client_info"]["base_url_str"] == f"{origin}/"
    assert seen["client_info"]["url"]["is_secure"] is True
    assert seen["scope"]["scheme"] == "https"
    assert seen["scope"]["client"][0] == CLIENT_ADDRESS
    assert seen["scope"]["server"] == [PUBLIC_HOST, client.port]
    assert seen["headers"]["host"] == f"{PUBLIC_HOST}:{client.port}"
    assert seen["headers"]["x-forwarded-for"] == f"203.0.113.7, {CLIENT_ADDRESS}"  # as nginx sent it

    # A URL the framework builds (the trailing-slash redirect) is absolute https, public host.
    redirect = client.get("/c2c/headers", headers=KEY)
    assert redirect.status_code == 307, redirect.text
    assert redirect.headers["location"] == f"{origin}/c2c/headers/"

    # Security headers over https: HSTS everywhere (C2C__HTTP is unset), CSP with a fresh nonce on
    # the admin page, matching its script and style tags.
    nonces = []
    for _ in range(2):
        page = client.get("/c2c/")
        assert page.status_code == 200, page.text
        assert page.headers["strict-transport-security"] == HSTS
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        csp = page.headers["content-security-policy"]
        match = re.search(r"script-src 'self' 'nonce-([A-Za-z0-9+/=]{24})'", csp)
        assert match is not None, csp
        nonce = match.group(1)
        assert f"style-src 'self' 'nonce-{nonce}'" in csp
        assert f'nonce="{nonce}"' in page.text
        nonces.append(nonce)
    assert nonces[0] != nonces[1]

    api = client.get("/")
    assert api.status_code == 200, api.text
    assert api.headers["strict-transport-security"] == HSTS
    assert "nonce-" not in api.headers["content-security-policy"]
    assert "default-src 'self'" in api.headers["content-security-policy"]

    # An unknown host (forwarded by nginx as X-Forwarded-Host) is refused by TrustedHostMiddleware,
    # inside the armor: the refusal carries the security headers too.
    refused = client.get("/", headers={"Host": f"evil.example:{client.port}"})
    assert refused.status_code == 400, refused.text
    assert refused.headers["strict-transport-security"] == HSTS

    # The echo broadcast, through the proxy, is answered by every replica.
    _wait_for_registry(stack, 3)
    echo = client.get("/api/echo", params={"message": "through nginx"})
    assert echo.status_code == 200, echo.text
    answers = echo.json()["answers"]
    assert {answer["pid"] for answer in answers} == {replica.pid for replica in stack.replicas}, answers
    assert {answer["payload"]["message"] for answer in answers} == {"Broadcast echo: through nginx"}


def test_level_reaches_every_replica_across_a_redis_restart(stack: Stack) -> None:
    client, redis = stack.client, stack.redis
    pids = {replica.pid for replica in stack.replicas}
    _wait_for_registry(stack, 3)

    # Changed through one replica (whichever nginx picked), applied by all three.
    response = client.set_level("production_test", "DEBUG")
    assert response.status_code == 200, response.text
    answers = response.json()["replicas"]
    assert len(answers) == 3, answers
    assert _answered_pids(answers, "DEBUG") == pids
    assert {replica.level("production_test") for replica in stack.replicas} == {"DEBUG"}
    kept = client.set_level("production_kept", "ERROR")
    assert kept.status_code == 200, kept.text
    assert redis.command("GET", LOGGING_PREFIX + "production_kept") == b"ERROR"

    redis.restart()

    # The persisted overrides survived the restart.
    assert redis.command("GET", LOGGING_PREFIX + "production_kept") == b"ERROR"
    assert redis.command("GET", LOGGING_PREFIX + "production_test") == b"DEBUG"

    # The next change reaches all three again once they reconnected (bounded wait, not a timing).
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    last: object = None
    while True:
        response = client.set_level("production_test", "WARNING")
        if response.status_code == 200:
            last = response.json()["replicas"]
            if _answered_pids(response.json()["replicas"], "WARNING") == pids:
                break
        else:
            last = (response.status_code, response.text)
        if time.monotonic() > deadline:
            pytest.fail(f"not every replica applied the change within {RECOVERY_TIMEOUT:g} s: {last}")
        time.sleep(0.5)
    assert {replica.level("production_test") for replica in stack.replicas} == {"WARNING"}

    overrides = client.get("/c2c/logging/overrides", headers=KEY)
    assert overrides.status_code == 200, overrides.text
    listed = overrides.json()["overrides"]
    assert {"name": "production_kept", "level": "ERROR"} in listed
    assert {"name": "production_test", "level": "WARNING"} in listed

    # A replica started after the restart restores the persisted overrides.
    late = stack.start_replica()
    assert late.level("production_kept") == "ERROR"
    assert late.level("production_test") == "WARNING"


def test_change_accepted_during_reconnection_is_applied_everywhere(stack: Stack) -> None:
    client, redis = stack.client, stack.redis
    _wait_for_registry(stack, 3)
    assert client.set_level("production_test", "DEBUG").status_code == 200
    redis.restart()

    # Right away, while the replicas reconnect: the first change Redis accepts (persisted).
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while (response := client.set_level("production_test", "WARNING")).status_code != 200:
        if time.monotonic() > deadline:
            pytest.fail(f"no change accepted within {RECOVERY_TIMEOUT:g} s: {response.status_code} {response.text}")
        time.sleep(0.2)
    assert redis.command("GET", LOGGING_PREFIX + "production_test") == b"WARNING"

    # What Redis says and what the replicas run must agree, once they reconnected.
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while (levels := [replica.level("production_test") for replica in stack.replicas]) != ["WARNING"] * 3:
        if time.monotonic() > deadline:
            pytest.fail(f"persisted WARNING, replicas run {levels}; answers were {response.json()['replicas']}")
        time.sleep(0.5)


def test_killed_replica_is_missing_not_a_hang(stack: Stack) -> None:
    client = stack.client
    _wait_for_registry(stack, 3)
    killed = stack.replicas[2]
    killed.process.kill()
    killed.process.wait(10)
    live = {replica.pid for replica in stack.replicas[:2]}

    started = time.monotonic()
    response = client.set_level("production_test", "INFO")
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    answers = response.json()["replicas"]
    assert _answered_pids(answers, "INFO") == live
    # Either listed as missing, or already forgotten by the registry (then only the live ones).
    missing = [answer for answer in answers if "payload" not in answer]
    assert len(answers) == 2 or (
        len(missing) == 1 and missing[0]["error"] == "MissingAnswer" and missing[0]["pid"] in (killed.pid, None)
    ), answers
    # Not a hang: bounded by the broadcast timeout (plus a generous margin), not by the client's.
    assert elapsed < BROADCAST_TIMEOUT + 10, elapsed

    # nginx keeps serving from the live replicas.
    for _ in range(6):
        page = client.get("/c2c/headers/", headers=KEY)
        assert page.status_code == 200, page.text
    assert {replica.level("production_test") for replica in stack.replicas[:2]} == {"INFO"}

    # Registered again by nobody: the registry forgets the dead replica (heartbeat 1 s).
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        answers = client.set_level("production_test", "INFO").json()["replicas"]
        if len(answers) == 2:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"the killed replica is still expected after {RECOVERY_TIMEOUT:g} s: {answers}")
        time.sleep(0.5)
    assert _answered_pids(answers, "INFO") == live
