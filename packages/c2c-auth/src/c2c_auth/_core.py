"""Modes, `AuthInfo`, `get_auth`, access checks and the FastAPI dependencies.

Nothing is decided at import time: every call reads `get_settings(Settings)`, so
`reload_settings(Settings)` changes the behaviour of a running application.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from enum import Enum, StrEnum
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field, field_serializer, model_validator

from c2c_auth import _github
from c2c_auth._settings import AuthSettings, GitHubAccessType, Settings
from c2c_auth._tokens import InvalidToken, Keys, unverified_claims
from c2c_config import get_settings

LOG = logging.getLogger("c2c_auth")

NO_SIGNING_KEY_MESSAGE = "C2C__AUTH__JWT__SECRET is not set: GitHub authentication needs it to sign session cookies"
NOT_LOGGED_IN_MESSAGE = "Missing or invalid secret (parameter, X-API-Key header or cookie)"
NOT_LOGGED_IN_GITHUB_MESSAGE = "Not logged in: log in with GitHub, or send a GitHub token (Authorization: Bearer)"
TOO_MANY_FAILURES_MESSAGE = "Too many wrong secrets from this address; try again later"
GITHUB_UNAVAILABLE_MESSAGE = "GitHub is unavailable, authentication cannot be checked now; try again later"
_STATE_COOKIES = "c2c_auth_cookies"
_ACCESS_ORDER: tuple[Literal["admin", "read_write", "read_only"], ...] = ("admin", "read_write", "read_only")


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


class AuthConfig(BaseModel):
    """A permission requirement on a GitHub repository (None: the setting's repository)."""

    github_repository: str | None = None
    github_access_type_read_only: GitHubAccessType | None = None
    github_access_type_read_write: GitHubAccessType | None = None
    github_access_type_admin: GitHubAccessType | None = None


def _settings() -> AuthSettings:
    return get_settings(Settings).auth


def auth_type() -> AuthenticationType:
    """The current mode: secret, else test, else GitHub when fully configured, else none."""
    settings = _settings()
    if settings.secret is not None and settings.secret.get_secret_value():
        return AuthenticationType.SECRET
    if settings.test.username is not None:
        return AuthenticationType.TEST
    if settings.github.configured:
        return AuthenticationType.GITHUB
    return AuthenticationType.NONE


def is_enabled() -> bool:
    """Whether an authentication mode is active (false in mode NONE)."""
    return auth_type() is not AuthenticationType.NONE


def keys(settings: AuthSettings | None = None) -> Keys | None:
    """The signing and encryption keys of the current settings, or None when no master secret exists.

    Master secret: `C2C__AUTH__JWT__SECRET`; in secret mode without it, the shared secret itself
    (every replica derives the same keys; the cookie never contains the secret).
    """
    settings = _settings() if settings is None else settings
    if settings.jwt.secret is not None and settings.jwt.secret.get_secret_value():
        # The session is signed with the JWT secret itself (0.14-style application code decodes it).
        return Keys(settings.jwt.secret.get_secret_value(), settings.jwt.algorithm)
    if auth_type() is AuthenticationType.SECRET and settings.secret is not None:
        # Nobody else knows this key: the session is signed with a key derived from the shared secret.
        return Keys(settings.secret.get_secret_value(), settings.jwt.algorithm, session_key_is_master=False)
    return None


def _require_keys() -> Keys:
    found = keys()
    if found is None:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, NO_SIGNING_KEY_MESSAGE)
    return found


# --- cookies -------------------------------------------------------------------------------------


def default_cookie_path(request: Request) -> str:
    """The session cookie path: the setting, else the c2c index under the route prefix (`/c2c/`)."""
    configured = _settings().jwt.cookie.path
    if configured:
        return configured
    return f"{get_settings(Settings).route_prefix}c2c/"


def _safe_path(value: object) -> str | None:
    if (
        isinstance(value, str)
        and value.startswith("/")
        and value.isascii()
        and value.isprintable()
        and len(value) < 512
        and not any(char in value for char in ";,\\ ")
    ):
        return value
    return None


class _CookieOp:
    def __init__(self, name: str, value: str | None, max_age: int, path: str) -> None:
        self.name, self.value, self.max_age, self.path = name, value, max_age, path

    def apply(self, response: Response) -> None:
        cookie = _settings().jwt.cookie
        response.set_cookie(
            self.name,
            self.value or "",
            max_age=self.max_age,
            path=self.path,
            secure=cookie.secure,
            httponly=True,
            samesite=cookie.same_site,
        )


def _record(request: Request, response: Response | None, operation: _CookieOp) -> None:
    pending: list[_CookieOp] = request.scope.setdefault("state", {}).setdefault(_STATE_COOKIES, [])
    pending.append(operation)
    if response is not None:
        operation.apply(response)


def set_cookie(request: Request, response: Response | None, name: str, value: str, max_age: int, path: str) -> None:
    """Set a cookie with the configured attributes (HttpOnly, Secure, SameSite), remembered on the request."""
    _record(request, response, _CookieOp(name, value, max_age, path))


def clear_cookie(request: Request, response: Response | None, name: str, path: str) -> None:
    """Delete a cookie (Max-Age=0, same path and attributes), remembered on the request."""
    _record(request, response, _CookieOp(name, None, 0, path))


ResponseT = TypeVar("ResponseT", bound=Response)


def apply_pending_cookies(request: Request, response: ResponseT) -> ResponseT:
    """Copy the cookies `get_auth` set or cleared during this request onto `response`.

    FastAPI drops the headers of the dependency `Response` when an endpoint returns its own
    `Response` (an `HTMLResponse`, a redirect...): such endpoints call this before returning.
    """
    for operation in request.scope.get("state", {}).get(_STATE_COOKIES, []):
        operation.apply(response)
    return response


def _pending_headers(request: Request) -> dict[str, str] | None:
    """The last pending cookie as a header for an `HTTPException` (which drops other responses)."""
    pending = request.scope.get("state", {}).get(_STATE_COOKIES, [])
    if not pending:
        return None
    carrier = Response()
    pending[-1].apply(carrier)
    return {"set-cookie": carrier.headers["set-cookie"]}


def forbidden(request: Request | None, detail: str, status_code: int = status.HTTP_403_FORBIDDEN) -> HTTPException:
    """An `HTTPException` that still carries the cookie changes of the request (a stale session cleared)."""
    headers = _pending_headers(request) if request is not None else None
    return HTTPException(status_code=status_code, detail=detail, headers=headers)


def session_cookie_name() -> str:
    """The session cookie's name (`C2C__AUTH__JWT__COOKIE__NAME`)."""
    return _settings().jwt.cookie.name


def _logout(request: Request, response: Response | None, path: str | None = None) -> None:
    claims = unverified_claims(request.cookies.get(session_cookie_name()))
    path = path or _safe_path(claims.get("pth")) or default_cookie_path(request)
    clear_cookie(request, response, session_cookie_name(), path)


def issue_session(
    request: Request, response: Response | None, claims: dict[str, Any], lifetime: float, path: str
) -> None:
    """Sign a session token and set it as the session cookie (a new `sid` unless `claims` carries one)."""
    token = _require_keys().encode("session", {**claims, "pth": path}, lifetime)
    set_cookie(request, response, session_cookie_name(), token, int(lifetime), path)


# Sessions ended by a logout in this process, by id, until their own expiry. Other replicas stop
# honouring a GitHub session when its token, revoked at GitHub by the logout, is refused.
REVOKED_SESSIONS = _github.TTLCache(size=100_000)


def revoke_session(claims: dict[str, Any]) -> None:
    """Refuse the session of these (verified) claims from now on, in this process."""
    sid = claims.get("sid")
    expires = claims.get("exp")
    if isinstance(sid, str) and isinstance(expires, int | float):
        REVOKED_SESSIONS.put(("sid", sid), True, float(expires) - time.time() + 1)


def _check_not_revoked(claims: dict[str, Any]) -> None:
    if REVOKED_SESSIONS.get(("sid", str(claims.get("sid"))), 1.0) is not None:
        raise InvalidToken("session ended by a logout")


# --- secret mode ---------------------------------------------------------------------------------


class FailureLimiter:
    """Counts wrong secrets per client address over a sliding window (in this process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000) -> None:
        self.clock = clock
        self._max_clients = max_clients
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, window: float) -> collections.deque[float]:
        failures = self._failures.get(client) or collections.deque()
        horizon = self.clock() - window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures

    def blocked(self, client: str, limit: int, window: float) -> bool:
        """Whether `client` reached `limit` failures within the last `window` seconds."""
        with self._lock:
            return len(self._recent(client, window)) >= limit

    def fail(self, client: str, window: float) -> None:
        """Record one failure."""
        with self._lock:
            failures = self._recent(client, window)
            failures.append(self.clock())
            self._failures[client] = failures
            self._failures.move_to_end(client)
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)

    def reset(self) -> None:
        """Forget every failure."""
        with self._lock:
            self._failures.clear()


LIMITER = FailureLimiter()


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def verify_secret(request: Request, provided: str) -> bool:
    """Compare a provided secret with `C2C__AUTH__SECRET` in constant time, with per-address rate limiting.

    Raises a 429 `HTTPException` once the address reached `C2C__AUTH__SECRET_MAX_FAILURES` wrong
    secrets within `C2C__AUTH__SECRET_FAILURE_WINDOW` (even for the right secret, or guessing
    would go on).
    """
    settings = _settings()
    window = settings.secret_failure_window.total_seconds()
    client = _client_address(request)
    if LIMITER.blocked(client, settings.secret_max_failures, window):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, TOO_MANY_FAILURES_MESSAGE, headers={"Retry-After": str(int(window) or 1)}
        )
    expected = settings.secret.get_secret_value() if settings.secret is not None else ""
    # Digests have equal length, so compare_digest's time does not depend on where the values differ.
    if expected and hmac.compare_digest(_digest(provided), _digest(expected)):
        return True
    LIMITER.fail(client, window)
    LOG.warning("Wrong authentication secret from %s", client)
    return False


def provided_secret(request: Request) -> str | None:
    """The secret a request carries: the `X-API-Key` header, else the `secret` query parameter (if allowed)."""
    header = request.headers.get("x-api-key")
    if header is not None:
        return header
    if _settings().secret_in_query:
        return request.query_params.get("secret")
    return None


def secret_session_claims() -> dict[str, Any]:
    """The claims of a secret-mode session: the mode and a keyed fingerprint of the secret, never the secret."""
    settings = _settings()
    secret = settings.secret.get_secret_value() if settings.secret is not None else ""
    return {"mth": AuthMethod.SECRET.value, "sfp": _require_keys().fingerprint(secret)}


def _secret_auth(request: Request, response: Response) -> AuthInfo:
    provided = provided_secret(request)
    if provided is not None:
        # An explicit credential decides alone: a wrong one never falls back to the cookie.
        if verify_secret(request, provided):
            return AuthInfo(is_logged_in=True, type=AuthMethod.SECRET)
        return AuthInfo()
    token = request.cookies.get(session_cookie_name())
    if token is None:
        return AuthInfo()
    try:
        found = _require_keys()
        claims = found.decode(token, "session")
        if claims.get("mth") != AuthMethod.SECRET.value:
            raise InvalidToken("session of another mode")
        if not hmac.compare_digest(str(claims.get("sfp", "")), secret_session_claims()["sfp"]):
            raise InvalidToken("session of another secret")
        _check_not_revoked(claims)
    except InvalidToken as error:
        LOG.info("Session cookie refused and cleared: %s", error)
        _logout(request, response)
        return AuthInfo()
    # No re-issue: a session ends at its `exp`, it does not slide forever.
    return AuthInfo(is_logged_in=True, type=AuthMethod.SECRET)


# --- GitHub mode ---------------------------------------------------------------------------------


def user_info(user: dict[str, Any]) -> UserInfo:
    """`UserInfo` from GitHub's user object."""
    login = str(user["login"])
    html_url = user.get("html_url")
    url = html_url if isinstance(html_url, str) and html_url.startswith("https://") else f"https://github.com/{login}"
    name = user.get("name")
    return UserInfo(login=login, display_name=name if isinstance(name, str) and name else login, url=url)


def token_claims(keys_: Keys, tokens: dict[str, Any], now: float) -> dict[str, Any]:
    """The encrypted `ght` claim from a GitHub token answer (access/refresh tokens and their expiry)."""
    data: dict[str, Any] = {"at": tokens["access_token"]}
    if isinstance(tokens.get("expires_in"), int | float):
        data["ate"] = int(now + tokens["expires_in"])
    if isinstance(tokens.get("refresh_token"), str) and tokens["refresh_token"]:
        data["rt"] = tokens["refresh_token"]
        if isinstance(tokens.get("refresh_token_expires_in"), int | float):
            data["rte"] = int(now + tokens["refresh_token_expires_in"])
    return {"ght": keys_.encrypt(data, "session")}


def session_lifetime(tokens: dict[str, Any]) -> float:
    """The session lifetime: the cookie age, shortened to the refresh token's life (or the access token's)."""
    lifetime = _settings().jwt.cookie.age.total_seconds()
    if isinstance(tokens.get("refresh_token_expires_in"), int | float):
        return min(lifetime, float(tokens["refresh_token_expires_in"]))
    if not tokens.get("refresh_token") and isinstance(tokens.get("expires_in"), int | float):
        return min(lifetime, float(tokens["expires_in"]))
    return lifetime


async def _bearer_auth(token: str) -> AuthInfo:
    settings = _settings()
    try:
        user = await _github.get_user(settings.github, token)
    except _github.GitHubRejected:
        LOG.info("GitHub bearer token refused by GitHub")
        return AuthInfo()
    except _github.GitHubUnavailable as error:
        LOG.warning("GitHub bearer token not checked: %s", error)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, GITHUB_UNAVAILABLE_MESSAGE) from error
    found = user_info(user)
    found.token = token
    return AuthInfo(is_logged_in=True, user=found, type=AuthMethod.GITHUB_BEARER)


async def _github_session_auth(request: Request, response: Response) -> AuthInfo:
    token = request.cookies.get(session_cookie_name())
    if token is None:
        return AuthInfo()
    found = _require_keys()
    try:
        claims = found.decode(token, "session")
        if claims.get("mth") != AuthMethod.GITHUB_OAUTH.value:
            raise InvalidToken("session of another mode")
        _check_not_revoked(claims)
        github = found.decrypt(claims.get("ght"), "session")
        if not isinstance(github.get("at"), str) or not isinstance(claims.get("login"), str) or not claims["login"]:
            raise InvalidToken("session without a GitHub identity")
    except InvalidToken as error:
        LOG.info("Session cookie refused and cleared: %s", error)
        _logout(request, response)
        return AuthInfo()
    path = _safe_path(claims.get("pth")) or default_cookie_path(request)
    access_token: str = github["at"]
    now = time.time()
    margin = _settings().github.access_token_expiration_margin.total_seconds()
    expires_at = github.get("ate")
    if isinstance(expires_at, int | float) and now >= expires_at - margin:
        try:
            refreshed = await _refresh(request, response, claims, github, now, path)
        except _SessionEnded:
            return AuthInfo()
        if refreshed is not None:
            access_token = refreshed
        elif now >= expires_at:
            return AuthInfo()
    login: str = claims["login"]
    display_name = str(claims.get("display_name") or login)
    url = str(claims.get("url") or "")
    payload = GitHubSessionPayload(
        login=login,
        display_name=display_name,
        url=url,
        access_token_expires_at=expires_at if isinstance(expires_at, int) else None,
        refresh_token_expires_at=github.get("rte") if isinstance(github.get("rte"), int) else None,
    )
    return AuthInfo(
        is_logged_in=True,
        user=UserInfo(login=login, display_name=display_name, url=url, token=access_token),
        session_payload=payload,
        type=AuthMethod.GITHUB_OAUTH,
    )


class _SessionEnded(Exception):
    """The GitHub session cannot go on (refresh refused or impossible); its cookie was cleared."""


async def _refresh(
    request: Request, response: Response, claims: dict[str, Any], github: dict[str, Any], now: float, path: str
) -> str | None:
    """Refresh the access token: the new token, or None when GitHub cannot be reached now.

    Raises `_SessionEnded` (after clearing the cookie) when GitHub refuses the refresh token, or
    when the access token expired without a usable refresh token.
    """
    refresh = github.get("rt")
    refresh_expires = github.get("rte")
    if not isinstance(refresh, str) or (isinstance(refresh_expires, int | float) and now >= refresh_expires):
        if now >= github.get("ate", 0):
            LOG.info("GitHub access token expired without a usable refresh token: session cleared")
            _logout(request, response, path)
            raise _SessionEnded
        return None
    settings = _settings()
    try:
        tokens = await _github.refresh_token(settings.github, refresh)
    except _github.GitHubRejected as error:
        LOG.info("GitHub token refresh refused, session cleared: %s", error)
        _logout(request, response, path)
        raise _SessionEnded from error
    except _github.GitHubUnavailable as error:
        LOG.warning("GitHub token refresh failed: %s", error)
        return None
    found = _require_keys()
    # Every claim but the registered ones and the tokens is kept: the identity, the session id, and
    # optional claims a newer version may have added.
    kept = {key: value for key, value in claims.items() if key not in ("iss", "typ", "ver", "iat", "exp", "ght")}
    tokens.setdefault("refresh_token", refresh)
    lifetime = max(1.0, float(claims["exp"]) - now)
    if isinstance(tokens.get("refresh_token_expires_in"), int | float):
        lifetime = min(lifetime, float(tokens["refresh_token_expires_in"]))
    elif isinstance(refresh_expires, int | float):
        tokens["refresh_token_expires_in"] = refresh_expires - now
    issue_session(request, response, {**kept, **token_claims(found, tokens, now)}, lifetime, path)
    return str(tokens["access_token"])


# --- get_auth and access checks ------------------------------------------------------------------


async def get_auth(request: Request, response: Response) -> AuthInfo:
    """The central dependency: who is calling, according to the current mode.

    - SECRET: the `X-API-Key` header or the `secret` query parameter (compared in constant time,
      rate limited), else the session cookie.
    - GITHUB: an `Authorization: Bearer` GitHub token (checked at GitHub, cached), else the
      session cookie (refreshing the GitHub token when needed).
    - TEST: everyone is logged in; NONE: nobody is.

    A bearer token is ignored outside GitHub mode. An expired, invalid or foreign session cookie is
    cleared and the request is treated as not logged in (never a 401 lock-out).
    """
    mode = auth_type()
    if mode is AuthenticationType.SECRET:
        return _secret_auth(request, response)
    if mode is AuthenticationType.TEST:
        username = _settings().test.username or ""
        return AuthInfo(
            is_logged_in=True,
            user=UserInfo(login="test", display_name=username, url="https://example.com"),
            type=AuthMethod.TEST,
        )
    if mode is AuthenticationType.GITHUB:
        authorization = request.headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return await _bearer_auth(credentials.strip())
        return await _github_session_auth(request, response)
    return AuthInfo()


def _default_config(level: Literal["admin", "read_write", "read_only"]) -> AuthConfig:
    github = _settings().github
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
    auth_info: AuthInfo, auth_config: AuthConfig, request: Request | None, response: Response | None
) -> bool:
    """The access decision; raises `GitHubUnavailable` when GitHub cannot answer.

    As in c2casgiutils 0.14: outside GitHub mode a logged-in `AuthInfo` holds every level; in
    GitHub mode the level is the permission GitHub gives `auth_info.user.token` on the repository.
    Only `get_auth` or application code builds an `AuthInfo`, never the client: `get_auth` logs
    nobody in in mode NONE and ignores bearer tokens outside GitHub mode, so this opens nothing.
    """
    if not auth_info.is_logged_in:
        return False
    if auth_type() is not AuthenticationType.GITHUB:
        return True
    token = auth_info.user.token
    if not token:
        return False
    repository = auth_config.github_repository or _settings().github.repository
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
        permissions = await _github.get_permissions(_settings().github, token, repository)
    except _github.GitHubRejected:
        LOG.info("GitHub token rejected during a permission check: logged out")
        if request is not None and auth_info.type is AuthMethod.GITHUB_OAUTH:
            _logout(request, response)
        auth_info.is_logged_in = False
        return False
    return permissions.get(required) is True


async def check_access_config(
    auth_info: Annotated[AuthInfo, Depends(get_auth)],
    auth_config: AuthConfig,
    request: Request | None = None,
    fastapi_response: Response | None = None,
) -> bool:
    """Whether the user meets `auth_config` (its strongest set level: admin, then read-write, then read-only).

    Fails closed: false when GitHub cannot be reached (the `require_*` dependencies answer 503 then).
    """
    try:
        return await _has_access(auth_info, auth_config, request, fastapi_response)
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
    return await check_access_config(auth_info, auth_config, request, response)


async def check_read_only_access(
    auth_info: Annotated[AuthInfo, Depends(get_auth)], request: Request | None = None, response: Response | None = None
) -> bool:
    """Whether the user has read-only access (`C2C__AUTH__GITHUB__ACCESS_TYPE_READ_ONLY` in GitHub mode)."""
    return await check_access_config(auth_info, _default_config("read_only"), request, response)


async def check_read_write_access(
    auth_info: Annotated[AuthInfo, Depends(get_auth)], request: Request | None = None, response: Response | None = None
) -> bool:
    """Whether the user has read-write access (`C2C__AUTH__GITHUB__ACCESS_TYPE_READ_WRITE` in GitHub mode)."""
    return await check_access_config(auth_info, _default_config("read_write"), request, response)


async def check_admin_access(
    auth_info: Annotated[AuthInfo, Depends(get_auth)], request: Request | None = None, response: Response | None = None
) -> bool:
    """Whether the user has admin access (`C2C__AUTH__GITHUB__ACCESS_TYPE_ADMIN` in GitHub mode)."""
    return await check_access_config(auth_info, _default_config("admin"), request, response)


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
    if not auth_info.is_logged_in:
        raise forbidden(request, _not_logged_in_message())
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


async def startup(main_app: object = None) -> None:
    """Check the configuration when the application starts.

    Raises `ValueError` in GitHub mode without `C2C__AUTH__JWT__SECRET`; warns about the weaker
    modes (secret, test) and short JWT secrets.
    """
    del main_app
    settings = _settings()
    mode = auth_type()
    jwt_secret = settings.jwt.secret.get_secret_value() if settings.jwt.secret is not None else ""
    if mode is AuthenticationType.GITHUB and not jwt_secret:
        raise ValueError(NO_SIGNING_KEY_MESSAGE)
    needed = {"HS256": 32, "HS384": 48, "HS512": 64}[settings.jwt.algorithm]
    if jwt_secret and len(jwt_secret.encode()) < needed:
        # The session cookie is signed with the JWT secret itself (RFC 7518 section 3.2: at least the hash size).
        LOG.warning(
            "C2C__AUTH__JWT__SECRET is shorter than %s bytes (the minimum for %s): use a long random value",
            needed,
            settings.jwt.algorithm,
        )
    if mode is AuthenticationType.SECRET:
        LOG.warning("Authentication by shared secret: prefer GitHub OAuth (C2C__AUTH__GITHUB__...)")
    if mode is AuthenticationType.TEST:
        LOG.warning(
            "Test authentication: every request is logged in as %r; never use it in production", settings.test.username
        )


async def shutdown(main_app: object = None) -> None:
    """Close the pooled HTTP client used for GitHub in the running event loop now.

    Optional: the client of a loop is closed on that loop when it ends anyway (0.14-style lifespans
    that only call `startup` leak nothing), and the next use in any loop creates a fresh one.
    """
    del main_app
    await _github.CLIENTS.aclose()
