"""The metrics server and the instrumentation, scraped over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import httpx
from fastapi import FastAPI

from c2c_testing import free_port, wait_for_port
from c2casgiutils import prometheus


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


WORKER = textwrap.dedent(
    """
    import logging, sys, time
    from prometheus_client import Counter
    logging.basicConfig(level=logging.INFO)
    from c2casgiutils import prometheus
    served = prometheus.start_server(int(sys.argv[1]), addr="127.0.0.1")
    Counter("c2c_test_worker_requests", "test counter").inc(int(sys.argv[2]))
    print("served" if served else "not-served", flush=True)
    time.sleep(float(sys.argv[3]))
    """
)


def test_port_zero_disables() -> None:
    assert prometheus.start_server(0) is False


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
        assert f"Prometheus port {port} is already served" in second.stderr  # said, not silent
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
