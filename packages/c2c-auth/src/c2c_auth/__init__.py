"""c2c-auth: admin authentication for FastAPI services.

Modes (decided from the settings at each use): shared secret, GitHub OAuth (plus GitHub bearer
tokens), test, none. Sessions are signed cookies that never hold a secret or a readable token;
access levels come from the user's permissions on a GitHub repository. Include `create_router()`
under `/c2c/auth` and protect routes with `Depends(require_read_only_access)` and friends.
"""

from importlib.metadata import version as _version

from c2c_auth._core import (
    AccessContext,
    AuthConfig,
    AuthenticationType,
    AuthInfo,
    AuthMethod,
    UserDetails,
    UserInfo,
    apply_pending_cookies,
    auth_required,
    auth_type,
    check_access,
    check_access_config,
    check_admin_access,
    check_read_only_access,
    check_read_write_access,
    get_access_context,
    get_auth,
    is_enabled,
    require_access,
    require_admin_access,
    require_read_only_access,
    require_read_write_access,
    shutdown,
    startup,
)
from c2c_auth._routes import create_router
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

__all__ = [
    "AccessContext",
    "AccessType",
    "AuthConfig",
    "AuthInfo",
    "AuthMethod",
    "AuthSettings",
    "AuthenticationType",
    "CookieSettings",
    "GitHubAccessType",
    "GitHubSettings",
    "JWTSettings",
    "Settings",
    "TestAuthSettings",
    "UserDetails",
    "UserInfo",
    "__version__",
    "apply_pending_cookies",
    "auth_required",
    "auth_type",
    "check_access",
    "check_access_config",
    "check_admin_access",
    "check_read_only_access",
    "check_read_write_access",
    "create_router",
    "get_access_context",
    "get_auth",
    "is_enabled",
    "require_access",
    "require_admin_access",
    "require_read_only_access",
    "require_read_write_access",
    "shutdown",
    "startup",
]
