"""The application started and stopped several times in one process, as a test suite does."""

import os

import pytest
from fastapi.testclient import TestClient
from tileservice.main import app


@pytest.mark.usefixtures("as_test_user")
def test_started_again_and_again() -> None:
    for round_ in range(5):
        with TestClient(app) as client:
            assert client.get(f"/tiles/osm/9/{round_}/1.png").status_code == 200
            health = client.get("/c2c/health/")
            assert health.status_code == 200, (round_, health.text)
            purge = client.post("/api/layers/osm/purge").json()
            assert purge["missing"] == 0, (round_, purge)
            assert [replica["pid"] for replica in purge["replicas"]] == [os.getpid()], (round_, purge)
