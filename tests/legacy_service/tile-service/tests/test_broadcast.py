"""The purge, broadcast to every replica (here: this process) through Redis."""

import os

import pytest
from fastapi.testclient import TestClient


@pytest.mark.usefixtures("as_test_user")
def test_purge_reaches_every_replica(client: TestClient) -> None:
    for x in range(3):
        assert client.get(f"/tiles/relief/5/{x}/7.png").status_code == 200
    response = client.post("/api/layers/relief/purge")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["missing"] == 0, result
    assert len(result["replicas"]) == 1
    assert result["replicas"][0]["pid"] == os.getpid()
    assert result["replicas"][0]["removed"] == 3
    # Nothing left to purge.
    again = client.post("/api/layers/relief/purge").json()
    assert again["missing"] == 0
    assert [replica["removed"] for replica in again["replicas"]] == [0]


def test_purge_needs_push_access(logged_in_client: TestClient) -> None:
    response = logged_in_client.post("/api/layers/osm/purge")
    assert response.status_code == 200, response.text
    assert response.json()["missing"] == 0
