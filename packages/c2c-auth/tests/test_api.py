"""The public surface: names kept from c2casgiutils, JSON shapes, settings documentation."""

from __future__ import annotations

import logging
import types
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse

import c2c_auth
from c2c_config import iter_fields

REFERENCE_NAMES = {
    "AuthInfo",
    "UserDetails",
    "get_auth",
    "auth_required",
    "require_read_only_access",
    "require_read_write_access",
    "require_admin_access",
    "require_access",
    "check_read_only_access",
    "check_read_write_access",
    "check_admin_access",
    "check_access",
    "check_access_config",
    "AuthConfig",
    "get_access_context",
    "AccessContext",
    "auth_type",
    "AuthenticationType",
    "AuthMethod",
    "is_enabled",
    "startup",
    "AuthSettings",
}


def test_public_names() -> None:
    assert len(set(c2c_auth.__all__)) == len(c2c_auth.__all__)  # the order: ruff's RUF022, in the lint
    assert set(c2c_auth.__all__) >= REFERENCE_NAMES
    assert all(hasattr(c2c_auth, name) for name in c2c_auth.__all__)
    assert [member.value for member in c2c_auth.AuthenticationType] == [0, 1, 2, 3]
    assert [member.name for member in c2c_auth.AuthenticationType] == ["NONE", "SECRET", "GITHUB", "TEST"]


def test_token_is_never_serialised(caplog: pytest.LogCaptureFixture) -> None:
    info = c2c_auth.AuthInfo(is_logged_in=True, user=c2c_auth.UserInfo(login="a", token="gho_real"))
    info.session_payload = c2c_auth.GitHubSessionPayload(login="a", token="gho_payload")
    with caplog.at_level(logging.WARNING, logger="c2c_auth"):
        dumped = info.model_dump_json()
    assert "gho_" not in dumped
    assert "gho_" not in repr(info)
    assert info.model_dump()["user"]["token"] == ""
    assert set(info.model_dump()) == {"is_logged_in", "user", "type"}
    # In memory the token is there for the application (as in 0.14), never in a dump.
    assert info.user.token == "gho_real"
    if caplog.records:  # once per process: another test may have serialised a token first
        assert "auth_info.user.token" in caplog.text


def test_every_auth_setting_is_documented() -> None:
    fields = [field for field in iter_fields(c2c_auth.Settings) if field.path[0] == "auth"]
    assert len(fields) > 25
    assert [field.env_var for field in fields if not field.field.description] == []
    secrets = {field.env_var for field in fields if field.secret}
    assert secrets == {"C2C__AUTH__JWT__SECRET", "C2C__AUTH__SECRET", "C2C__AUTH__GITHUB__CLIENT_SECRET"}


async def test_apply_pending_cookies_for_endpoints_returning_a_response(secret_mode: Any, h: types.ModuleType) -> None:
    app = FastAPI()

    @app.get("/c2c/page")
    async def page(request: Request, auth: Annotated[c2c_auth.AuthInfo, Depends(c2c_auth.get_auth)]) -> HTMLResponse:
        response = HTMLResponse(f"<p>{auth.is_logged_in}</p>")
        return c2c_auth.apply_pending_cookies(request, response)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=h.APP_BASE) as client:
        response = await client.get("/c2c/page", headers={"Cookie": "c2c-jwt-auth=stale.token.value"})
    assert response.text == "<p>False</p>"
    assert h.set_cookies(response)["c2c-jwt-auth"]["max-age"] == "0"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"C2C__AUTH__SECRET": "s"}, "prefer GitHub OAuth"),
        ({"C2C__AUTH__TEST__USERNAME": "t"}, "never use it in production"),
        ({"C2C__AUTH__SECRET": "s", "C2C__AUTH__JWT__SECRET": "short"}, "shorter than 32"),
    ],
)
async def test_startup_warnings(
    env: Any, caplog: pytest.LogCaptureFixture, variables: dict[str, str], message: str
) -> None:
    env.set(**variables)
    with caplog.at_level(logging.WARNING, logger="c2c_auth"):
        await c2c_auth.startup(FastAPI())
    assert message in caplog.text
    assert "short" not in caplog.text.replace("shorter", "")  # the secret's value is never logged


@pytest.mark.parametrize(
    ("variables", "mode"),
    [
        ({}, "NONE"),
        ({"C2C__AUTH__SECRET": ""}, "NONE"),  # an empty secret never enables secret mode
        # An empty test username (a deployment template defining every variable) never logs everyone
        # in: empty is "not set", as for the secrets; GitHub mode stays what it is.
        ({"C2C__AUTH__TEST__USERNAME": ""}, "NONE"),
        (
            {
                "C2C__AUTH__TEST__USERNAME": "",
                "C2C__AUTH__GITHUB__CLIENT_ID": "i",
                "C2C__AUTH__GITHUB__CLIENT_SECRET": "s",
                "C2C__AUTH__GITHUB__REPOSITORY": "o/r",
            },
            "GITHUB",
        ),
        ({"C2C__AUTH__SECRET": "s", "C2C__AUTH__TEST__USERNAME": "t"}, "SECRET"),
        ({"C2C__AUTH__TEST__USERNAME": "t", "C2C__AUTH__GITHUB__CLIENT_ID": "i"}, "TEST"),
        ({"C2C__AUTH__GITHUB__CLIENT_ID": "i", "C2C__AUTH__GITHUB__CLIENT_SECRET": "s"}, "NONE"),  # no repository
        (
            {
                "C2C__AUTH__GITHUB__CLIENT_ID": "i",
                "C2C__AUTH__GITHUB__CLIENT_SECRET": "s",
                "C2C__AUTH__GITHUB__REPOSITORY": "o/r",
            },
            "GITHUB",
        ),
    ],
)
def test_mode_precedence(env: Any, variables: dict[str, str], mode: str) -> None:
    env.set(**variables)
    assert c2c_auth.auth_type() is c2c_auth.AuthenticationType[mode]
    assert c2c_auth.is_enabled() is (mode != "NONE")
