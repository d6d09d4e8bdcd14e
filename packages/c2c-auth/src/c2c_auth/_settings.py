"""The `auth` settings section (`C2C__AUTH__...`), owned by c2c-auth."""

from __future__ import annotations

import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator

from c2c_config import CoreSettings, Duration, SecretText, Section


class GitHubAccessType(StrEnum):
    """A permission on a GitHub repository, as GitHub's `permissions` object names it."""

    PULL = "pull"
    """Read access."""
    PUSH = "push"
    """Write access."""
    ADMIN = "admin"
    """Administration of the repository."""


AccessType = GitHubAccessType
"""Former name of `GitHubAccessType` (kept as an alias)."""


class CookieSettings(Section):
    """The session cookie that carries the signed JWT."""

    name: str = Field(default="c2c-jwt-auth", description="Authentication cookie name")
    age: Duration = Field(
        default=datetime.timedelta(days=7), description="Authentication cookie lifetime (default: 7 days)"
    )
    same_site: Literal["lax", "strict", "none"] = Field(
        default="lax",
        description=(
            "SameSite attribute for the JWT cookies (state and auth token). Defaults to 'lax' to support OAuth and "
            "other redirect-based login flows that rely on the cookie being sent on top-level navigation from "
            "external sites. Use 'strict' for stronger CSRF protection when such flows are not required."
        ),
    )
    secure: bool = Field(default=True, description="Whether the JWT cookie should be secure")
    path: str | None = Field(default=None, description="Path for the JWT cookie (default: the c2c index path)")

    @field_validator("same_site", mode="before")
    @classmethod
    def normalize_same_site(cls, value: object) -> object:
        """Accept `Lax`, `STRICT`... (case-insensitive, as c2casgiutils 0.14)."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _token(cls, value: str) -> str:
        if not value or any(char in value for char in ' \t\r\n;,="()<>@:\\/[]?{}'):
            raise ValueError("a cookie name must be a non-empty token (no spaces, separators or control characters)")
        return value


class JWTSettings(Section):
    """Signing of the session and state cookies."""

    secret: SecretText | None = Field(default=None, description="JWT secret key")
    algorithm: Literal["HS256", "HS384", "HS512"] = Field(default="HS256", description="JWT algorithm (default: HS256)")
    cookie: CookieSettings = Field(default_factory=CookieSettings, description="JWT cookie")

    @field_validator("algorithm", mode="before")
    @classmethod
    def _upper_algorithm(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class GitHubSettings(Section):
    """GitHub OAuth application and the repository whose permissions gate access."""

    repository: str | None = Field(default=None, description="GitHub repository for authentication")
    access_type: GitHubAccessType = Field(
        default=GitHubAccessType.PULL,
        description=(
            "Not used, as in c2casgiutils (its master branch read it nowhere): the permissions are "
            "ACCESS_TYPE_READ_ONLY, ACCESS_TYPE_READ_WRITE and ACCESS_TYPE_ADMIN"
        ),
    )
    access_type_read_only: GitHubAccessType = Field(
        default=GitHubAccessType.PULL, description="GitHub permission for read-only access"
    )
    access_type_read_write: GitHubAccessType = Field(
        default=GitHubAccessType.PUSH, description="GitHub permission for read-write access"
    )
    access_type_admin: GitHubAccessType = Field(
        default=GitHubAccessType.ADMIN, description="GitHub permission for admin access"
    )
    authorize_url: str = Field(
        default="https://github.com/login/oauth/authorize", description="GitHub OAuth authorization URL"
    )
    token_url: str = Field(default="https://github.com/login/oauth/access_token", description="GitHub OAuth token URL")
    user_url: str = Field(default="https://api.github.com/user", description="GitHub user API URL")
    repo_url: str = Field(default="https://api.github.com/repos", description="GitHub repository API URL")
    client_id: str | None = Field(default=None, description="GitHub OAuth client ID")
    client_secret: SecretText | None = Field(default=None, description="GitHub OAuth client secret")
    scope: str = Field(default="repo", description="GitHub OAuth scope")
    proxy_url: str | None = Field(default=None, description="GitHub proxy URL")
    state_cookie: str = Field(default="c2c-state", description="GitHub state cookie name")
    state_cookie_age: Duration = Field(
        default=datetime.timedelta(minutes=10), description="GitHub state cookie lifetime (default: 10 minutes)"
    )
    access_token_expiration_margin: Duration = Field(
        default=datetime.timedelta(minutes=1),
        description="Refresh the GitHub access token this long before it expires",
    )
    revoke_url: str = Field(
        default="https://api.github.com/applications/{client_id}/token",
        description=(
            "GitHub API URL that revokes an OAuth token at logout ({client_id} is replaced); empty to skip revocation"
        ),
    )
    timeout: Duration = Field(
        default=datetime.timedelta(seconds=10),
        description="Timeout of every call to GitHub (token exchange, user, repository, revocation)",
    )
    cache_ttl: Duration = Field(
        default=datetime.timedelta(seconds=60),
        description=(
            "How long GitHub's answers (user of a token, permissions on the repository) are cached in the process; "
            "0 disables the cache"
        ),
    )
    bearer_refusal_cache_ttl: Duration = Field(
        default=datetime.timedelta(seconds=60),
        description=(
            "How long a bearer token GitHub refused is refused without asking GitHub again (in the process, keyed "
            "by a digest of the token); 0 disables it"
        ),
    )
    bearer_max_concurrency: int = Field(
        default=4,
        ge=1,
        description=(
            "Bearer token validations sent to GitHub at once (per process and event loop); more wait, at most "
            "TIMEOUT, then 503"
        ),
    )
    bearer_validations_per_minute: int = Field(
        default=120,
        ge=1,
        description=(
            "Bearer token validations sent to GitHub per minute (per process, tokens not in a cache); beyond, 503 "
            "with Retry-After"
        ),
    )

    bearer_validations_per_client_per_minute: int = Field(
        default=30,
        ge=1,
        description=(
            "Bearer token validations sent to GitHub per minute for one client address (a /64 for IPv6), within "
            "BEARER_VALIDATIONS_PER_MINUTE: one client sending unknown tokens cannot spend the whole budget; beyond, "
            "503 with Retry-After. Global addresses only: a private or loopback one (a proxy whose forwarded headers "
            "are not read) has no share of its own"
        ),
    )

    @field_validator("access_token_expiration_margin")
    @classmethod
    def validate_access_token_expiration_margin(cls, value: datetime.timedelta) -> datetime.timedelta:
        """The margin cannot be negative (as c2casgiutils 0.14)."""
        if value < datetime.timedelta(0):
            raise ValueError("the access token expiration margin cannot be negative")
        return value

    @property
    def configured(self) -> bool:
        """Whether GitHub OAuth is fully configured (client id, client secret and repository)."""
        return bool(self.client_id and self.client_secret and self.repository)


class DeviceCookieSettings(Section):
    """The device cookie of secret mode (OWASP "device cookies"): a browser that logged in before."""

    name: str = Field(default="c2c-auth-device", description="Device cookie name")
    age: Duration = Field(
        default=datetime.timedelta(days=180), description="Device cookie lifetime (default: 180 days)"
    )

    @field_validator("name")
    @classmethod
    def _token(cls, value: str) -> str:
        if not value or any(char in value for char in ' \t\r\n;,="()<>@:\\/[]?{}'):
            raise ValueError("a cookie name must be a non-empty token (no spaces, separators or control characters)")
        return value


class TestAuthSettings(Section):
    """Test mode: everyone is logged in (development only)."""

    __test__ = False  # not a pytest test class

    username: str | None = Field(
        default=None,
        description=(
            "Test username: every request is logged in as this user (development only; empty counts as not set)"
        ),
    )


class AuthSettings(Section):
    """Authentication of the admin tools (`C2C__AUTH__...`)."""

    jwt: JWTSettings = Field(default_factory=JWTSettings, description="JWT")
    secret: SecretText | None = Field(default=None, description="Secret key for trivial authentication (not secure)")
    secret_in_query: bool = Field(
        default=True,
        description=(
            "Accept the secret in the 'secret' query parameter (it then appears in access logs and browser history; "
            "prefer the X-API-Key header or the login form and set this to false)"
        ),
    )
    secret_max_failures: int = Field(
        default=10,
        ge=1,
        description=(
            "Wrong secrets accepted from one known device (a browser with a valid device cookie) within "
            "SECRET_FAILURE_WINDOW before that device gets 429"
        ),
    )
    secret_unknown_devices_max_failures: int = Field(
        default=10,
        ge=1,
        description=(
            "Wrong secrets accepted from all unknown devices together (requests without a valid device cookie, "
            "whatever their address; shared by the replicas through Redis) within SECRET_FAILURE_WINDOW before "
            "unknown devices get 429"
        ),
    )
    secret_failure_window: Duration = Field(
        default=datetime.timedelta(minutes=1),
        description="Window over which wrong secrets are counted (per known device, and for the unknown devices)",
    )
    device_cookie: DeviceCookieSettings = Field(
        default_factory=DeviceCookieSettings,
        description="Device cookie given to a browser after a successful secret login",
    )
    redis_prefix: str = Field(
        default="c2c-auth:",
        description=("Prefix of the Redis keys of c2c-auth (failure budgets, ended sessions) when Redis is configured"),
    )
    github: GitHubSettings = Field(default_factory=GitHubSettings, description="GitHub")
    test: TestAuthSettings = Field(default_factory=TestAuthSettings, description="Test")


class Settings(CoreSettings):
    """The settings c2c-auth reads: the core sections plus `auth`."""

    auth: AuthSettings = Field(default_factory=AuthSettings, description="Authentication")
