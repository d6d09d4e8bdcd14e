"""Redis through c2casgiutils.redis_utils: hit counters, the job queue and the worker."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

SERVICE_DIR = Path(__file__).parent.parent


def test_hits_are_counted_in_redis(client: TestClient) -> None:
    before = client.get("/api/hits/ortho").json()["hits"]
    for y in range(4):
        assert client.get(f"/tiles/ortho/2/1/{y}.png").status_code == 200
    assert client.get("/api/hits/ortho").json() == {"layer": "ortho", "hits": before + 4}


def test_unknown_layer(client: TestClient) -> None:
    assert client.get("/tiles/nope/0/0/0.png").status_code == 404
    assert client.get("/api/hits/nope").json() == {"layer": "nope", "hits": 0}


@pytest.mark.usefixtures("as_test_user")
def test_jobs_are_queued(client: TestClient) -> None:
    assert client.delete("/api/jobs").status_code == 200
    assert client.post("/api/jobs", json={"layer": "osm", "zoom": 3}).json() == {"queued": 1}
    assert client.post("/api/jobs", json={"layer": "ortho"}).json() == {"queued": 2}
    assert client.post("/api/jobs", json={"layer": "moon"}).status_code == 400
    assert client.delete("/api/jobs").json() == {"removed": 1}


def test_logging_levels_from_the_console(logged_in_client: TestClient) -> None:
    response = logged_in_client.post("/c2c/logging/level", json={"name": "tileservice.main", "level": "DEBUG"})
    assert response.status_code == 200, response.text
    assert response.json()["level"] == "DEBUG"
    level = logged_in_client.get("/c2c/logging/level", params={"name": "tileservice.main"}).json()
    assert level == {"name": "tileservice.main", "level": "DEBUG", "effective_level": "DEBUG"}
    overrides = logged_in_client.get("/c2c/logging/overrides").json()["overrides"]
    assert {"name": "tileservice.main", "level": "DEBUG"} in overrides
    logged_in_client.post("/c2c/logging/level", json={"name": "tileservice.main", "level": "INFO"})


def test_worker_processes_the_queue_with_the_console_levels(logged_in_client: TestClient) -> None:
    assert logged_in_client.delete("/api/jobs").status_code == 200
    response = logged_in_client.post("/c2c/logging/level", json={"name": "tileservice.worker", "level": "DEBUG"})
    assert response.status_code == 200, response.text
    for layer in ("osm", "relief"):
        assert logged_in_client.post("/api/jobs", json={"layer": layer, "zoom": 1}).status_code == 200

    worker = subprocess.run(
        [sys.executable, "-m", "tileservice.worker", "--once"],
        cwd=SERVICE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr
    result = json.loads(worker.stdout.strip().splitlines()[-1])
    assert result == {"processed": ["osm", "relief"], "level": "DEBUG"}
    assert "Seeding osm up to zoom 1" in worker.stderr
