"""Authentication: protected routes, the get_auth override, the session cookie read by the service."""

import os

import jwt
import pytest
from fastapi.testclient import TestClient

from c2casgiutils import config


def test_anonymous_caller_is_refused(client: TestClient) -> None:
    assert client.post("/api/layers/osm/purge").status_code == 403
    assert client.post("/api/jobs", json={"layer": "osm"}).status_code == 403
    assert client.delete("/api/jobs").status_code == 403
    assert client.get("/api/access").json() == {
        "logged_in": False,
        "login": "",
        "read": False,
        "read_layers": False,
        "write": False,
    }
    assert client.get("/api/session").status_code == 401


@pytest.mark.usefixtures("as_test_user")
def test_overridden_user_reaches_protected_routes(client: TestClient) -> None:
    assert client.get("/api/access").json() == {
        "logged_in": True,
        "login": "test",
        "read": True,
        "read_layers": True,
        "write": True,
    }
    response = client.post("/api/jobs", json={"layer": "relief", "zoom": 2})
    assert response.status_code == 200, response.text
    response = client.delete("/api/jobs")
    assert response.status_code == 200, response.text
    response = client.post("/api/layers/ortho/purge")
    assert response.status_code == 200, response.text
    page = client.get("/admin/")
    assert page.status_code == 200
    assert "Logged in as test" in page.text


def test_login_with_the_secret(client: TestClient) -> None:
    assert client.get("/auth/login", params={"secret": "wrong"}).status_code == 401
    response = client.get("/auth/login", params={"secret": "tileservice-admin-secret"})
    assert response.status_code == 200
    assert response.json()["status"] == "success"
    assert config.settings.auth.jwt.cookie.name in client.cookies
    status = client.get("/c2c/auth/status").json()
    assert status["is_logged_in"] is True
    assert client.get("/api/access").json()["write"] is True
    assert client.post("/api/jobs", json={"layer": "osm"}).status_code == 200
    assert client.delete("/api/jobs").status_code == 200

    assert client.get("/auth/logout").status_code == 200
    assert client.get("/c2c/auth/status").json()["is_logged_in"] is False
    assert client.post("/api/jobs", json={"layer": "osm"}).status_code == 403


def test_the_service_reads_the_session_cookie(logged_in_client: TestClient) -> None:
    cookie = logged_in_client.cookies[config.settings.auth.jwt.cookie.name]
    # The secret setting is the text the cookie is signed with.
    assert config.settings.auth.jwt.secret == os.environ["C2C__AUTH__JWT__SECRET"]
    claims = jwt.decode(cookie, config.settings.auth.jwt.secret, algorithms=["HS256"])
    assert claims["exp"] > claims["iat"]

    response = logged_in_client.get("/api/session")
    assert response.status_code == 200, response.text
    session = response.json()
    assert session["logged_in"] is True
    assert session["expires"] == claims["exp"]
    assert {"exp", "iat"} <= set(session["claims"])


def test_forged_cookie_is_refused(client: TestClient) -> None:
    forged = jwt.encode({"login": "mallory", "exp": 4102444800, "iat": 0}, "not-the-secret-" * 4, algorithm="HS256")
    client.cookies.set(config.settings.auth.jwt.cookie.name, forged)
    assert client.get("/api/session").status_code == 401
    assert client.get("/api/access").json()["logged_in"] is False
