"""c2c-auth: admin authentication for FastAPI services.

Modes (decided from the settings at each use): shared secret, GitHub OAuth (plus GitHub bearer
tokens), test, none. Sessions are signed cookies that never hold a secret or a readable token;
access levels come from the user's permissions on a GitHub repository. Include `create_router()`
under `/c2c/auth` and protect routes with `Depends(require_read_only_access)` and friends;
`app.add_middleware(PendingCookiesMiddleware)` makes the cookies they set or clear reach every response.
"""

from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Literal

from fastapi.security import APIKeyHeader, APIKeyQuery

from c2c_auth._access import (
    AccessContext,
    AuthConfig,
    access_levels,
    auth_required,
    check_access,
    check_access_config,
    check_admin_access,
    check_read_only_access,
    check_read_write_access,
    get_access_context,
    level_config,
    require_access,
    require_admin_access,
    require_read_only_access,
    require_read_write_access,
)
from c2c_auth._audit import AUDIT_FIELDS, AUDIT_LOGGER_NAME, flush_refused_logins
from c2c_auth._audit import audit as audit_record
from c2c_auth._audit import client_address as audit_client
from c2c_auth._audit import who as audit_who
from c2c_auth._core import get_auth, shutdown, startup
from c2c_auth._info import AuthInfo, AuthMethod, GitHubSessionPayload, UserDetails, UserInfo
from c2c_auth._middleware import PendingCookiesMiddleware
from c2c_auth._modes import AuthenticationType, auth_type, is_enabled
from c2c_auth._routes import create_router
from c2c_auth._sessions import TemporarilyUnavailable, apply_pending_cookies
from c2c_auth._settings import (
    AccessType,
    AuthSettings,
    CookieSettings,
    GitHubAccessType,
    GitHubSettings,
    JWTSettings,
    Settings,
    TestAuthSettings,
)

__version__ = _version("c2c-auth")

router = create_router()
"""The authentication endpoints (`/login`, `/logout`, `/status`, `/github/...`), for `include_router(router,
prefix="/auth")` as c2casgiutils 0.14 applications do; `create_router()` gives a new one."""

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
"""The `X-API-Key` header as a FastAPI security scheme (the secret of secret mode; `None` when absent)."""

api_key_query = APIKeyQuery(name="secret", auto_error=False)
"""The `secret` query parameter as a FastAPI security scheme (see `C2C__AUTH__SECRET_IN_QUERY`)."""

_LEVEL_NAMES: dict[str, Literal["admin", "read_write", "read_only"]] = {
    "READ_ONLY_AUTH_CONFIG": "read_only",
    "READ_WRITE_AUTH_CONFIG": "read_write",
    "ADMIN_AUTH_CONFIG": "admin",
}

if TYPE_CHECKING:
    READ_ONLY_AUTH_CONFIG: AuthConfig
    READ_WRITE_AUTH_CONFIG: AuthConfig
    ADMIN_AUTH_CONFIG: AuthConfig


def __getattr__(name: str) -> AuthConfig:
    # The three AuthConfig constants of c2casgiutils 0.14 reflect the settings of the moment (0.14
    # built them at import): the same object while the settings do not change.
    level = _LEVEL_NAMES.get(name)
    if level is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return level_config(level)


__all__ = [
    "ADMIN_AUTH_CONFIG",
    "AUDIT_FIELDS",
    "AUDIT_LOGGER_NAME",
    "READ_ONLY_AUTH_CONFIG",
    "READ_WRITE_AUTH_CONFIG",
    "AccessContext",
    "AccessType",
    "AuthConfig",
    "AuthInfo",
    "AuthMethod",
    "AuthSettings",
    "AuthenticationType",
    "CookieSettings",
    "GitHubAccessType",
    "GitHubSessionPayload",
    "GitHubSettings",
    "JWTSettings",
    "PendingCookiesMiddleware",
    "Settings",
    "TemporarilyUnavailable",
    "TestAuthSettings",
    "UserDetails",
    "UserInfo",
    "__version__",
    "access_levels",
    "api_key_header",
    "api_key_query",
    "apply_pending_cookies",
    "audit_client",
    "audit_record",
    "audit_who",
    "auth_required",
    "auth_type",
    "check_access",
    "check_access_config",
    "check_admin_access",
    "check_read_only_access",
    "check_read_write_access",
    "create_router",
    "flush_refused_logins",
    "get_access_context",
    "get_auth",
    "is_enabled",
    "level_config",
    "require_access",
    "require_admin_access",
    "require_read_only_access",
    "require_read_write_access",
    "router",
    "shutdown",
    "startup",
]
