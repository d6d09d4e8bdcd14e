"""GitHub authentication as in production: the service served by uvicorn, GitHub stood in for."""

import os
import urllib.parse

import httpx
import jwt


def test_login_with_github_then_the_service_reads_the_session(github_service: str) -> None:
    with httpx.Client(base_url=github_service, follow_redirects=False, timeout=30) as client:
        assert client.get("/api/session").status_code == 401
        assert client.get("/api/access").json()["logged_in"] is False

        login = client.get("/c2c/auth/github/login", params={"came_from": f"{github_service}/admin/"})
        assert login.is_redirect, login.text
        authorize = urllib.parse.urlsplit(login.headers["location"])
        assert authorize.path == "/login/oauth/authorize"
        query = urllib.parse.parse_qs(authorize.query)
        assert query["client_id"] == ["tileservice-client"]
        # GitHub sends the browser back to redirect_uri with a code and the state.
        redirect_uri = query["redirect_uri"][0]
        answer = urllib.parse.urlencode({"code": "the-code", "state": query["state"][0]})
        callback = client.get(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{answer}")
        assert callback.is_redirect, callback.text
        assert urllib.parse.urljoin(str(callback.url), callback.headers["location"]) == f"{github_service}/admin/"

        cookie = client.cookies["c2c-jwt-auth"]
        claims = jwt.decode(cookie, os.environ["C2C__AUTH__JWT__SECRET"], algorithms=["HS256"])
        assert claims["login"] == "octocat"
        session = client.get("/api/session")
        assert session.status_code == 200, session.text
        assert session.json()["login"] == "octocat"
        assert session.json()["display_name"] == "The Octocat"

        status = client.get("/c2c/auth/status").json()
        assert status["is_logged_in"] is True
        assert status["user"]["login"] == "octocat"
        # Permissions come from GitHub: push, not admin.
        assert client.get("/api/access").json() == {
            "logged_in": True,
            "login": "octocat",
            "read": True,
            "read_layers": True,
            "write": True,
        }
        assert client.post("/api/jobs", json={"layer": "osm"}).status_code == 200
        assert client.delete("/api/jobs").status_code == 403
        assert "Logged in as octocat" in client.get("/admin/").text

        logout = client.get("/c2c/auth/github/logout")
        assert logout.is_redirect
        assert client.get("/api/session").status_code == 401
        assert client.get("/api/access").json()["logged_in"] is False
