"""Access levels: `AuthConfig`, the `check_*` booleans, the `require_*` dependencies and `AccessContext`.

Outside GitHub mode a logged-in `AuthInfo` holds every level; in GitHub mode the level is the
permission GitHub gives the user's token on the repository.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import Depends, Request, Response, status
from pydantic import BaseModel

from c2c_auth import _github
from c2c_auth._core import get_auth
from c2c_auth._github import GITHUB_UNAVAILABLE_MESSAGE
from c2c_auth._info import AuthInfo, AuthMethod
from c2c_auth._modes import AuthenticationType, auth_type, current_settings
from c2c_auth._sessions import clear_session_cookie, forbidden
from c2c_auth._settings import GitHubAccessType

LOG = logging.getLogger("c2c_auth")

NOT_LOGGED_IN_MESSAGE = "Missing or invalid secret (parameter, X-API-Key header or cookie)"
NOT_LOGGED_IN_GITHUB_MESSAGE = "Not logged in: log in with GitHub, or send a GitHub token (Authorization: Bearer)"
_ACCESS_ORDER: tuple[Literal["admin", "read_write", "read_only"], ...] = ("admin", "read_write", "read_only")


class AuthConfig(BaseModel):
    """A permission requirement on a GitHub repository (None: the setting's repository)."""

    github_repository: str | None = None
    github_access_type_read_only: GitHubAccessType | None = None
    github_access_type_read_write: GitHubAccessType | None = None
    github_access_type_admin: GitHubAccessType | None = None


def _default_config(level: Literal["admin", "read_write", "read_only"]) -> AuthConfig:
    github = current_settings().github
    access: dict[str, GitHubAccessType] = {
        "admin": github.access_type_admin,
        "read_write": github.access_type_read_write,
        "read_only": github.access_type_read_only,
    }
    return AuthConfig(github_repository=github.repository, **{f"github_access_type_{level}": access[level]})


_LEVEL_CONFIGS: dict[str, AuthConfig] = {}


def level_config(level: Literal["admin", "read_write", "read_only"]) -> AuthConfig:
    """The `AuthConfig` of a level as the settings define it now (`READ_ONLY_AUTH_CONFIG` and friends).

    The same object is returned while the settings do not change, a new one after a reload.
    """
    fresh = _default_config(level)
    cached = _LEVEL_CONFIGS.get(level)
    if cached is not None and cached == fresh:
        return cached
    _LEVEL_CONFIGS[level] = fresh
    return fresh


async def _has_access(
    auth_info: AuthInfo,
    auth_config: AuthConfig,
    request: Request | None,
    response: Response | None,
    *,
    levels: bool = True,
) -> bool:
    """The access decision; raises `GitHubUnavailable` when GitHub cannot answer.

    As in c2casgiutils 0.14: outside GitHub mode a logged-in `AuthInfo` holds every level (`levels`:
    the `check_*_access` and `require_*` functions); in GitHub mode, and for `check_access_config`
    in any mode, the level is the permission GitHub gives `auth_info.user.token` on the repository
    (no token: no access). Only `get_auth` or application code builds an `AuthInfo`, never the
    client: `get_auth` logs nobody in in mode NONE and ignores bearer tokens outside GitHub mode, so
    this opens nothing.
    """
    if not auth_info.is_logged_in:
        return False
    if levels and auth_type() is not AuthenticationType.GITHUB:
        return True
    token = auth_info.user.token
    if not token:
        return False
    repository = auth_config.github_repository or current_settings().github.repository
    required = next(
        (
            getattr(auth_config, f"github_access_type_{level}")
            for level in _ACCESS_ORDER
            if getattr(auth_config, f"github_access_type_{level}") is not None
        ),
        None,
    )
    if repository is None or required is None:
        return False
    try:
        permissions = await _github.get_permissions(current_settings().github, token, repository)
    except _github.GitHubRejected:
        LOG.info("GitHub token rejected during a permission check: logged out")
        if request is not None and auth_info.type is AuthMethod.GITHUB_OAUTH:
            clear_session_cookie(request, response)
        auth_info.is_logged_in = False
        return False
    return permissions.get(required) is True


async def check_access_config(
    auth_info: Annotated[AuthInfo, Depends(get_auth)],
    auth_config: AuthConfig,
    request: Request | None = None,
    fastapi_response: Response | None = None,
) -> bool:
    """Whether GitHub gives the user's token `auth_config`'s permission (its strongest set level:
    admin, then read-write, then read-only) on the repository.

    As in c2casgiutils 0.14 this is the GitHub check alone, in every mode: without a GitHub token
    (secret or test mode) it is false; `check_access` and the `check_*_access` functions are the
    ones that grant every level to a logged-in user outside GitHub mode. Fails closed: false when
    GitHub cannot be reached (the `require_*` dependencies answer 503 then).
    """
    return await _checked(auth_info, auth_config, request, fastapi_response, levels=False)


async def _checked(
    auth_info: AuthInfo, auth_config: AuthConfig, request: Request | None, response: Response | None, *, levels: bool
) -> bool:
    try:
        return await _has_access(auth_info, auth_config, request, response, levels=levels)
    except _github.GitHubUnavailable as error:
        LOG.warning("Access check failed: %s", error)
        return False


async def check_access(
    auth_info: Annotated[AuthInfo, Depends(get_auth)],
    auth_config: AuthConfig,
    request: Request | None = None,
    response: Response | None = None,
) -> bool:
    """Whether the user has admin access, or else meets `auth_config`."""
    if await check_admin_access(auth_info, request, response):
        return True
    return await _checked(auth_info, auth_config, request, response, levels=True)


async def check_read_only_access(
    auth_info: Annotated[AuthInfo, Depends(get_auth)], request: Request | None = None, response: Response | None = None
) -> bool:
    """Whether the user has read-only access (`C2C__AUTH__GITHUB__ACCESS_TYPE_READ_ONLY` in GitHub mode)."""
    return await _checked(auth_info, _default_config("read_only"), request, response, levels=True)


async def check_read_write_access(
    auth_info: Annotated[AuthInfo, Depends(get_auth)], request: Request | None = None, response: Response | None = None
) -> bool:
    """Whether the user has read-write access (`C2C__AUTH__GITHUB__ACCESS_TYPE_READ_WRITE` in GitHub mode)."""
    return await _checked(auth_info, _default_config("read_write"), request, response, levels=True)


async def check_admin_access(
    auth_info: Annotated[AuthInfo, Depends(get_auth)], request: Request | None = None, response: Response | None = None
) -> bool:
    """Whether the user has admin access (`C2C__AUTH__GITHUB__ACCESS_TYPE_ADMIN` in GitHub mode)."""
    return await _checked(auth_info, _default_config("admin"), request, response, levels=True)


async def access_levels(
    auth_info: Annotated[AuthInfo, Depends(get_auth)], request: Request | None = None, response: Response | None = None
) -> dict[str, bool]:
    """The caller's three levels at once: `{"read_only": ..., "read_write": ..., "admin": ...}`.

    Each is what `check_read_only_access`, `check_read_write_access` and `check_admin_access` say,
    but a GitHub that cannot answer is waited for once, not once per level: after the first
    failure the remaining levels are false (fail closed), without asking again. In GitHub mode the
    three share one permission request (cached), so an available GitHub is asked once too.
    """
    levels: dict[str, bool] = dict.fromkeys(reversed(_ACCESS_ORDER), False)
    for level in reversed(_ACCESS_ORDER):  # the weakest first, as the page lists them
        try:
            levels[level] = await _has_access(auth_info, _default_config(level), request, response, levels=True)
        except _github.GitHubUnavailable as error:
            LOG.warning("Access check failed: %s (the other levels not asked: false)", error)
            break
    return levels


def _not_logged_in_message() -> str:
    return NOT_LOGGED_IN_GITHUB_MESSAGE if auth_type() is AuthenticationType.GITHUB else NOT_LOGGED_IN_MESSAGE


async def _require(
    auth_info: AuthInfo, configs: list[AuthConfig], request: Request, response: Response, what: str
) -> None:
    try:
        for config in configs:
            if await _has_access(auth_info, config, request, response):
                return
    except _github.GitHubUnavailable as error:
        LOG.warning("Access check failed: %s", error)
        raise forbidden(request, GITHUB_UNAVAILABLE_MESSAGE, status.HTTP_503_SERVICE_UNAVAILABLE) from error
    # 0.14's answer, logged in or not (test suites of 0.14 services compare it); `auth_required`
    # is the one that says "not logged in".
    raise forbidden(request, f"You don't have {what}access to this resource")


class AccessContext:
    """Request-scoped access checks (`Depends(get_access_context)`)."""

    def __init__(self, auth_info: AuthInfo, request: Request, response: Response) -> None:
        self.auth_info = auth_info
        self.request = request
        self.response = response

    async def check_access(self, auth_config: AuthConfig) -> bool:
        """Admin access, or `auth_config` met."""
        return await check_access(self.auth_info, auth_config, self.request, self.response)

    async def check_read_only_access(self) -> bool:
        """Read-only access."""
        return await check_read_only_access(self.auth_info, self.request, self.response)

    async def check_read_write_access(self) -> bool:
        """Read-write access."""
        return await check_read_write_access(self.auth_info, self.request, self.response)

    async def check_admin_access(self) -> bool:
        """Admin access."""
        return await check_admin_access(self.auth_info, self.request, self.response)

    async def require_access(self, auth_config: AuthConfig) -> None:
        """Admin access or `auth_config`, else 403 (503 when GitHub cannot answer)."""
        await _require(self.auth_info, [_default_config("admin"), auth_config], self.request, self.response, "")

    async def require_read_only_access(self) -> None:
        """Read-only access, else 403."""
        config = _default_config("read_only")
        await _require(self.auth_info, [config], self.request, self.response, "read-only ")

    async def require_read_write_access(self) -> None:
        """Read-write access, else 403."""
        config = _default_config("read_write")
        await _require(self.auth_info, [config], self.request, self.response, "read-write ")

    async def require_admin_access(self) -> None:
        """Admin access, else 403."""
        await _require(self.auth_info, [_default_config("admin")], self.request, self.response, "admin ")


async def get_access_context(
    auth_info: Annotated[AuthInfo, Depends(get_auth)], request: Request, response: Response
) -> AccessContext:
    """Dependency giving an `AccessContext` bound to the request."""
    return AccessContext(auth_info, request, response)


async def auth_required(
    auth_info: Annotated[AuthInfo, Depends(get_auth)],
    request: Request = None,  # type: ignore[assignment] # FastAPI injects it; 0.14's callers pass auth_info only
) -> None:
    """Dependency: 403 unless logged in (any mode); `auth_required(auth_info)` as in c2casgiutils 0.14."""
    if not auth_info.is_logged_in:
        raise forbidden(request, _not_logged_in_message())


async def require_access(
    auth_info: Annotated[AuthInfo, Depends(get_auth)], auth_config: AuthConfig, request: Request, response: Response
) -> None:
    """Admin access or `auth_config`, else 403 (503 when GitHub cannot answer)."""
    await AccessContext(auth_info, request, response).require_access(auth_config)


async def require_read_only_access(
    auth_info: Annotated[AuthInfo, Depends(get_auth)], request: Request, response: Response
) -> None:
    """Dependency: read-only access, else 403."""
    await AccessContext(auth_info, request, response).require_read_only_access()


async def require_read_write_access(
    auth_info: Annotated[AuthInfo, Depends(get_auth)], request: Request, response: Response
) -> None:
    """Dependency: read-write access, else 403."""
    await AccessContext(auth_info, request, response).require_read_write_access()


async def require_admin_access(
    auth_info: Annotated[AuthInfo, Depends(get_auth)], request: Request, response: Response
) -> None:
    """Dependency: admin access, else 403."""
    await AccessContext(auth_info, request, response).require_admin_access()
