"""The documented wiring (`startup`, `start_server`, `/c2c` mounted, `instrument`) served by a real uvicorn.

uvicorn's h11 protocol accepts any method token (as granian does), so a client can send `FOO`: the
request metrics must not grow with the methods a client invents. The metrics are scraped from the
real metrics server, in one process and with two workers (`PROMETHEUS_MULTIPROC_DIR` or not).
"""

from __future__ import annotations

import os
import random
import string
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from c2c_testing import free_port, stop_process, wait_for_port
from c2casgiutils.prometheus import OTHER_METHOD, STANDARD_METHODS

# start_server() before startup(): the metrics server is up before the broadcaster's state gauge exists.
APP = textwrap.dedent(
    """
    import contextlib

    from fastapi import FastAPI, Request

    import c2casgiutils
    from c2casgiutils import prometheus


    @contextlib.asynccontextmanager
    async def lifespan(app):
        prometheus.start_server(addr="127.0.0.1")
        await c2casgiutils.startup(app)
        yield
        await c2casgiutils.shutdown()


    app = FastAPI(lifespan=lifespan)
    app.mount("/c2c", c2casgiutils.app)


    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}


    @app.api_route("/echo", methods=["GET", "PURGE"])
    async def echo(request: Request) -> dict[str, str]:
        return {"method": request.method}


    prometheus.instrument(app)
    """
)

PROBES = ["/c2c/livez", "/c2c/readyz", "/c2c/health_checks", "/c2c/health", "/c2c/health_checks/history"]


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    metrics_port: int
    log: Path

    def scrape(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as error:  # the serving worker's traceback is in its log
            raise AssertionError(
                f"the scrape failed ({error}); the workers' log:\n{self.log.read_text()[-4000:]}"
            ) from error

    def scrape_showing(self, *lines: str) -> str:
        """Scrape until every line is there (at most 10 s), then return the scrape.

        The instrumentation counts a request once its response is sent, so the client can have the
        response before the count is written (in the worker's memory or its multiprocess file).
        """
        deadline = time.monotonic() + 10
        while True:
            text = self.scrape()
            if all(line in text for line in lines) or time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    def http_series(self, *, showing: str = "") -> set[tuple[str, frozenset[tuple[str, str]]]]:
        """The request metrics' series (`http_*`), by sample name and labels, once `showing` is scraped."""
        return {
            (sample.name, frozenset(sample.labels.items()))
            for family in text_string_to_metric_families(self.scrape_showing(showing))
            for sample in family.samples
            if sample.name.startswith("http_")
        }


def _serve(directory: Path, *, workers: int, multiprocess: bool) -> Served:
    (directory / "served_app.py").write_text(APP)
    port, metrics_port = free_port(), free_port()
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith(("C2C__", "SENTRY_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["C2C__PROMETHEUS__PORT"] = str(metrics_port)
    if multiprocess:
        (directory / "metrics").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(directory / "metrics")
    argv = [sys.executable, "-m", "uvicorn", "served_app:app", "--app-dir", str(directory)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--http", "h11", "--workers", str(workers)]
    log = directory / "uvicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(argv, cwd=directory, env=env, stdout=output, stderr=subprocess.STDOUT)
    served = Served(process, f"http://127.0.0.1:{port}", metrics_port, log)
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < workers:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        wait_for_port("127.0.0.1", port, timeout=30)
        wait_for_port("127.0.0.1", metrics_port, timeout=30)
    except BaseException:
        stop_process(process)
        raise
    return served


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One worker, no multiprocess mode."""
    server = _serve(tmp_path_factory.mktemp("served"), workers=1, multiprocess=False)
    try:
        yield server
    finally:
        stop_process(server.process)


def _invented_method() -> str:
    return "M" + "".join(random.choices(string.ascii_uppercase + string.digits, k=8))


def test_invented_methods_add_no_series(served: Served) -> None:
    """50 methods a client makes up add no series: they are all counted as `other`."""
    with httpx.Client(base_url=served.url, timeout=10) as client:
        for path in ("/nope", "/items/1", "/echo"):
            client.request(_invented_method(), path)
            assert client.get(path).status_code in {200, 404}
        before = served.http_series(showing='http_requests_total{handler="/echo",method="GET",status="200"} 1.0')
        for index in range(50):
            response = client.request(_invented_method(), ("/nope", "/items/1", "/echo")[index % 3])
            assert response.status_code in {404, 405}
    after = served.http_series()
    assert after == before
    methods = {value for _, labels in after for name, value in labels if name == "method"}
    assert methods <= STANDARD_METHODS | {OTHER_METHOD}
    assert OTHER_METHOD in methods


def test_the_application_still_sees_the_real_method(served: Served) -> None:
    """Only the instrumentation sees `other`: a route accepting PURGE gets PURGE."""
    with httpx.Client(base_url=served.url, timeout=10) as client:
        response = client.request("PURGE", "/echo")
        assert response.status_code == 200
        assert response.json() == {"method": "PURGE"}
        assert client.get("/echo").json() == {"method": "GET"}
    series = served.http_series(showing='method="other",status="200"')
    labels = {("handler", "/echo"), ("method", OTHER_METHOD), ("status", "200")}
    assert ("http_requests_total", frozenset(labels)) in series
    assert not any(("method", "PURGE") in labels for _, labels in series)


def test_probe_routes_are_not_counted(served: Served) -> None:
    """livez, readyz, the health reports and their history, under /c2c: polled by machines, left out."""
    with httpx.Client(base_url=served.url, timeout=10) as client:
        for path in PROBES:
            assert client.get(path).status_code < 500
            client.head(path)
        assert client.get("/items/7").status_code == 200
    series = served.http_series(showing='handler="/items/{item_id}"')
    handlers = {value for _, labels in series for name, value in labels if name == "handler"}
    assert "/items/{item_id}" in handlers  # the metrics are there, the probes are not
    assert not {handler for handler in handlers if handler.startswith("/c2c/")}, handlers


def test_unknown_paths_add_no_series(served: Served) -> None:
    """Paths nobody routes (scanners), under /c2c too, are all counted under one `handler="none"`."""
    with httpx.Client(base_url=served.url, timeout=10) as client:
        assert client.get(f"/unknown/{_invented_method()}").status_code == 404
        before = served.http_series(showing='handler="none"')
        for index in range(30):
            path = f"/c2c/{_invented_method()}" if index % 2 else f"/{_invented_method()}/x"
            assert client.get(path).status_code == 404
    after = served.http_series()
    assert after == before
    handlers = {value for _, labels in after for name, value in labels if name == "handler"}
    assert "none" in handlers
    assert not [handler for handler in handlers if handler.startswith(("/unknown", "/M", "/c2c/M"))], handlers


def test_broadcast_state_is_served_in_multiprocess_mode(tmp_path: Path) -> None:
    """Two workers sharing `PROMETHEUS_MULTIPROC_DIR`: `<prefix>broadcast_healthy` is in the scrape too.

    The serving worker reads the shared files and its own state (the gauge is read at scrape time,
    on the default registry, which multiprocess mode does not serve by itself).
    """
    server = _serve(tmp_path, workers=2, multiprocess=True)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/items/1").status_code == 200
        healthy = 'c2casgiutils_broadcast_healthy{kind="local"} 1.0'
        counted = 'http_requests_total{handler="/items/{item_id}",method="GET",status="200"} 1.0'
        text = server.scrape_showing(healthy, counted)
        assert healthy in text
        assert counted in text
    finally:
        stop_process(server.process)


def test_two_workers_without_multiprocess_mode_are_told_to_set_it(tmp_path: Path) -> None:
    """`--workers 2` without `PROMETHEUS_MULTIPROC_DIR`: the worker that finds the port taken names the variable."""
    server = _serve(tmp_path, workers=2, multiprocess=False)
    try:
        log = server.log.read_text()
    finally:
        stop_process(server.process)
    (line,) = [line for line in log.splitlines() if "Prometheus metrics not served" in line]
    assert f"port 127.0.0.1:{server.metrics_port} is already in use" in line
    assert "another worker of this server" in line
    assert "PROMETHEUS_MULTIPROC_DIR" in line
    assert "C2C__PROMETHEUS__PORT" in line
