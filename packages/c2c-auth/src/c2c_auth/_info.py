"""Who is calling: `AuthMethod`, `UserInfo`, `GitHubSessionPayload` and `AuthInfo`."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_serializer, model_validator

LOG = logging.getLogger("c2c_auth")


class AuthMethod(StrEnum):
    """How the current user authenticated."""

    NONE = "none"
    SECRET = "secret"  # noqa: S105 (a method name, not a password)
    GITHUB_OAUTH = "github_oauth"
    GITHUB_BEARER = "github_bearer"
    TEST = "test"


_TOKEN_NOT_SERIALISED_WARNED = False


class UserInfo(BaseModel):
    """The logged-in user as `AuthInfo` shows it.

    `token` is the user's GitHub token in GitHub mode, in memory as in c2casgiutils 0.14, for the
    application to call GitHub on the user's behalf and for the permission checks. Unlike 0.14 it
    is never serialised (always `""` in a dump or a response, hidden from `repr`): no response ever
    carries a credential. Serialising a non-empty token logs a warning once, naming
    `auth_info.user.token` as the way to read it.
    """

    login: str = ""
    display_name: str = ""
    url: str = ""
    token: str = Field(default="", repr=False)

    @field_serializer("token")
    def _never_serialise_a_token(self, value: str) -> str:
        global _TOKEN_NOT_SERIALISED_WARNED
        if value and not _TOKEN_NOT_SERIALISED_WARNED:
            _TOKEN_NOT_SERIALISED_WARNED = True
            LOG.warning(
                "UserInfo.token is never serialised (c2casgiutils 0.14 did): dumps and responses show an empty "
                "token; application code reads auth_info.user.token in the process instead"
            )
        return ""


UserDetails = UserInfo


class GitHubSessionPayload(UserInfo):
    """What the session tells about a GitHub user: login, display name, profile URL, token expiry.

    The name and the constructor of c2casgiutils 0.14 are kept, but it never holds a token: the
    GitHub tokens stay encrypted in the session cookie (`token` is never serialised, as in
    `UserInfo`; a `refresh_token` given to the constructor is dropped with a warning).
    """

    access_token_expires_at: int | None = None
    refresh_token: str | None = Field(default=None, description="Always None: kept for 0.14's constructor")
    refresh_token_expires_at: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_refresh_token(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("refresh_token"):
            LOG.warning(
                "GitHubSessionPayload never holds a refresh token (c2c-auth keeps the GitHub tokens encrypted in "
                "the session cookie and refreshes them itself): the value is dropped"
            )
            data = {key: value for key, value in data.items() if key != "refresh_token"}
        return data


class AuthInfo(BaseModel):
    """The authentication status of a request: `{"is_logged_in", "user": {...}, "type"}`.

    Application code may build one (a test's `app.dependency_overrides[get_auth]`, a custom
    authentication): outside GitHub mode a logged-in `AuthInfo` holds every access level, in GitHub
    mode the levels come from GitHub for `user.token`. The client never builds it: `get_auth` does.
    """

    is_logged_in: bool = False
    user: UserInfo = Field(default_factory=UserInfo)
    session_payload: GitHubSessionPayload | None = Field(default=None, exclude=True, repr=False)
    type: AuthMethod = AuthMethod.NONE
