"""c2c-auth: admin authentication for FastAPI services (secret and GitHub OAuth, signed session cookies).

This version provides the `auth` settings section (`C2C__AUTH__...`); the authentication itself
(modes, dependencies, endpoints) is not implemented yet.
"""

from importlib.metadata import version as _version

from c2c_auth._settings import (
    AccessType,
    AuthSettings,
    CookieSettings,
    GitHubSettings,
    JWTSettings,
    Settings,
    TestAuthSettings,
)

__version__ = _version("c2c-auth")

__all__ = [
    "AccessType",
    "AuthSettings",
    "CookieSettings",
    "GitHubSettings",
    "JWTSettings",
    "Settings",
    "TestAuthSettings",
    "__version__",
]
