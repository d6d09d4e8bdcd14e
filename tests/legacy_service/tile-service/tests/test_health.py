"""Health checks: Redis and the two SQLite databases."""

from fastapi.testclient import TestClient


def test_all_checks_pass(client: TestClient) -> None:
    response = client.get("/c2c/health/")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status_code"] == 200
    entities = result["entities"]
    assert [entity["status_code"] for entity in entities] == [200, 200, 200]
    assert sorted(tuple(entity["tags"]) for entity in entities) == [
        ("database", "cache", "all"),
        ("database", "main", "all"),
        ("liveness", "redis", "all"),
    ]
    sqlalchemy_names = [entity["name"] for entity in entities if "database" in entity["tags"]]
    assert len(sqlalchemy_names) == 2
    assert all(name.startswith("SQLAlchemy") for name in sqlalchemy_names)


def test_filter_by_tags(client: TestClient) -> None:
    result = client.get("/c2c/health/", params={"tags": "cache"}).json()
    assert [entity["tags"] for entity in result["entities"]] == [["database", "cache", "all"]]
    result = client.get("/c2c/health/", params={"tags": "liveness"}).json()
    assert [entity["name"] for entity in result["entities"]] == ["Redis"]
    assert client.get("/c2c/health/", params={"tags": "database"}).json()["status_code"] == 200


def test_filter_by_name(client: TestClient) -> None:
    result = client.get("/c2c/health/", params={"name": "Redis"}).json()
    assert [entity["name"] for entity in result["entities"]] == ["Redis"]
    result = client.get("/c2c/health/", params={"name": "SQLAlchemy"}).json()
    assert result["entities"]
    assert all("database" in entity["tags"] for entity in result["entities"])
