"""The metrics server and the instrumentation, scraped over real HTTP."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from c2c_testing import free_port, wait_for_port
from c2casgiutils import config, prometheus


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


WORKER = textwrap.dedent(
    """
    import logging, sys, time
    from prometheus_client import Counter
    logging.basicConfig(level=logging.INFO)
    from c2casgiutils import config, prometheus
    served = prometheus.start_server(int(sys.argv[1]), addr="127.0.0.1")
    Counter("c2c_test_worker_requests", "test counter").inc(int(sys.argv[2]))
    print("served" if served else "not-served", flush=True)
    time.sleep(float(sys.argv[3]))
    """
)


def test_port_zero_disables() -> None:
    assert prometheus.start_server(0) is False


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port held by another "program": a real listening socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


def test_taken_port_says_so_plainly(
    held_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No multiprocess mode, port held: one WARNING naming the port and both remedies.

    The port is the one of `C2C__PROMETHEUS__PORT` (read at call time). The holder may be another
    program or a sibling worker of the same server (`--workers 2` without `PROMETHEUS_MULTIPROC_DIR`),
    which cannot be told apart here: the message names the setting and the variable.
    """
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("C2C__PROMETHEUS__PORT", str(held_port))
    config.reload()
    try:
        with caplog.at_level(logging.INFO, logger="c2casgiutils.prometheus"):
            assert prometheus.start_server(addr="127.0.0.1") is False
    finally:
        monkeypatch.delenv("C2C__PROMETHEUS__PORT")
        config.reload()
    records = [record for record in caplog.records if record.name == "c2casgiutils.prometheus"]
    assert len(records) == 1
    (record,) = records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"port 127.0.0.1:{held_port} is already in use, by another program or by another worker" in message
    assert "C2C__PROMETHEUS__PORT" in message
    assert "PROMETHEUS_MULTIPROC_DIR" in message


def test_taken_port_in_multiprocess_mode_is_info(
    held_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="c2casgiutils.prometheus"):
        assert prometheus.start_server(held_port, addr="127.0.0.1") is False
    (record,) = [record for record in caplog.records if record.name == "c2casgiutils.prometheus"]
    assert record.levelno == logging.INFO
    assert "another worker" in record.getMessage()


def test_other_bind_errors_raise() -> None:
    """Only a taken port is forgiven: an address this machine does not have is an error."""
    with pytest.raises(OSError, match="annot assign requested address"):
        prometheus.start_server(free_port(), addr="192.0.2.1")


def test_port_comes_from_the_setting() -> None:
    """`C2C__PROMETHEUS__PORT` chooses the port the metrics are served on (real HTTP scrape)."""
    port = free_port()
    script = textwrap.dedent(
        """
        import time
        from c2casgiutils import prometheus
        print("served" if prometheus.start_server(addr="127.0.0.1") else "not-served", flush=True)
        time.sleep(10)
        """
    )
    env = {**os.environ, "C2C__PROMETHEUS__PORT": str(port)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "served"
        wait_for_port("127.0.0.1", port, timeout=10)
        assert "python_info" in _scrape(port)
    finally:
        process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_multiprocess_workers_share_one_server(tmp_path: Path) -> None:
    """Two worker processes: one serves, the other logs the port is taken; the counts add up."""
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    first = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(port), "3", "8"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "served"
        wait_for_port("127.0.0.1", port, timeout=10)
        second = subprocess.run(
            [sys.executable, "-c", WORKER, str(port), "4", "0"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert second.stdout.strip() == "not-served"
        # Said, not silent, at INFO: another worker serving is the normal case in multiprocess mode.
        assert f"INFO:c2casgiutils.prometheus:Prometheus port 127.0.0.1:{port} is already in use" in second.stderr
        assert "another worker" in second.stderr
        metrics = _scrape(port)
        assert "c2c_test_worker_requests_total 7.0" in metrics
    finally:
        first.kill()
        first.wait(10)
        if first.stdout is not None:
            first.stdout.close()


async def test_instrumentation_labels_route_templates() -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/c2c/health_checks")
    async def health() -> dict[str, str]:
        return {}

    instrumentator = prometheus.instrument(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for item_id in range(3):
            assert (await client.get(f"/items/{item_id}")).status_code == 200
        assert (await client.get("/c2c/health_checks")).status_code == 200
    from prometheus_client import generate_latest

    text = generate_latest(instrumentator.registry).decode()
    assert 'handler="/items/{item_id}"' in text
    assert 'handler="/items/0"' not in text  # templates, not raw paths: bounded labels
    # Probe routes are not instrumented (the default registry may hold other metrics about health checks).
    assert 'handler="/c2c/health_checks"' not in text


def test_a_scrape_waits_for_a_file_a_worker_is_creating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker creates a metric's file empty, then sizes it: a scrape in between read an empty file
    (`struct.error`) and the whole scrape was a 500. It reads the files again meanwhile; a file that
    stays unreadable is still an error (a failed scrape, not an empty one)."""
    import threading

    from prometheus_client import generate_latest
    from prometheus_client.mmap_dict import MmapedDict

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    written: Any = MmapedDict(str(tmp_path / "counter_1.db"))  # type: ignore[no-untyped-call]
    written.write_value('["c2c_test_total", "c2c_test_total", {}, "help"]', 3.0, 0.0)
    written.close()
    being_created = tmp_path / "counter_2.db"
    being_created.touch()  # what `open(..., "a+b")` leaves until the worker sizes the file

    def finish_creating() -> None:
        created: Any = MmapedDict(str(being_created))  # type: ignore[no-untyped-call]
        created.close()  # the worker's next step: size and initialise it

    timer = threading.Timer(0.05, finish_creating)
    timer.start()
    try:
        text = generate_latest(prometheus.registry()).decode()
    finally:
        timer.join()
    assert "c2c_test_total 3.0" in text

    (tmp_path / "counter_3.db").touch()  # never sized: an error, not a silent empty scrape
    with pytest.raises(Exception, match="unpack_from requires a buffer"):
        generate_latest(prometheus.registry())
