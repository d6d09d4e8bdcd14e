"""The authentication mode, decided from the settings at each use.

Nothing is decided at import time: every call reads `get_settings(Settings)`, so
`reload_settings(Settings)` changes the behaviour of a running application.
"""

from __future__ import annotations

from enum import Enum

from c2c_auth._settings import AuthSettings, Settings
from c2c_config import get_settings


class AuthenticationType(Enum):
    """The authentication mode, decided from the settings at each use."""

    NONE = 0
    """No authentication configured: nobody is logged in."""
    SECRET = 1
    """A shared secret (`C2C__AUTH__SECRET`)."""
    GITHUB = 2
    """GitHub OAuth (and GitHub bearer tokens), gated by permissions on a repository."""
    TEST = 3
    """Everyone is logged in (`C2C__AUTH__TEST__USERNAME`); development only."""


def current_settings() -> AuthSettings:
    """The `auth` section of the current settings."""
    return get_settings(Settings).auth


def auth_type() -> AuthenticationType:
    """The current mode: secret, else test, else GitHub when fully configured, else none."""
    settings = current_settings()
    if settings.secret is not None and settings.secret.get_secret_value():
        return AuthenticationType.SECRET
    if settings.test.username:  # empty is "not set", as for the secrets: never everyone logged in by mistake
        return AuthenticationType.TEST
    if settings.github.configured:
        return AuthenticationType.GITHUB
    return AuthenticationType.NONE


def is_enabled() -> bool:
    """Whether an authentication mode is active (false in mode NONE)."""
    return auth_type() is not AuthenticationType.NONE
