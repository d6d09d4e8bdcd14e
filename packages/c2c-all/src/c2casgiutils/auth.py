"""Authentication of the admin tools: the public surface of c2c-auth (re-exported, nothing else here).

As in c2casgiutils 0.14, `settings` is the process-wide settings object of the toolkit
(`c2casgiutils.config.settings`, built on first use), and `READ_ONLY_AUTH_CONFIG`,
`READ_WRITE_AUTH_CONFIG` and `ADMIN_AUTH_CONFIG` are the `AuthConfig` of each level as the
settings define it (read when accessed, so a reload is seen).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import c2c_auth
from c2c_auth import (
    AUDIT_FIELDS,
    AUDIT_LOGGER_NAME,
    AccessContext,
    AccessType,
    AuthConfig,
    AuthenticationType,
    AuthInfo,
    AuthMethod,
    AuthSettings,
    CookieSettings,
    GitHubAccessType,
    GitHubSessionPayload,
    GitHubSettings,
    JWTSettings,
    PendingCookiesMiddleware,
    Settings,
    TemporarilyUnavailable,
    TestAuthSettings,
    UserDetails,
    UserInfo,
    access_levels,
    api_key_header,
    api_key_query,
    apply_pending_cookies,
    audit_client,
    audit_record,
    audit_who,
    auth_required,
    auth_type,
    check_access,
    check_access_config,
    check_admin_access,
    check_read_only_access,
    check_read_write_access,
    create_router,
    flush_refused_logins,
    get_access_context,
    get_auth,
    is_enabled,
    level_config,
    require_access,
    require_admin_access,
    require_read_only_access,
    require_read_write_access,
    router,
    shutdown,
    startup,
)

if TYPE_CHECKING:
    from c2casgiutils._settings import Settings as _Settings

    READ_ONLY_AUTH_CONFIG: AuthConfig
    READ_WRITE_AUTH_CONFIG: AuthConfig
    ADMIN_AUTH_CONFIG: AuthConfig
    settings: _Settings

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
    "settings",
    "shutdown",
    "startup",
]


def __getattr__(name: str) -> Any:
    if name == "settings":
        from c2casgiutils.config import settings

        return settings
    if name in ("READ_ONLY_AUTH_CONFIG", "READ_WRITE_AUTH_CONFIG", "ADMIN_AUTH_CONFIG"):
        return getattr(c2c_auth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
