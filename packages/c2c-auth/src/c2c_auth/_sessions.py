"""Sessions: the keys of the current settings, the cookies a request sets or clears, the session
cookie (issue, clear) and the sessions ended by a logout."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TypeVar

from fastapi import HTTPException, Request, Response, status

from c2c_auth import _shared
from c2c_auth._claims import SessionClaims
from c2c_auth._modes import AuthenticationType, auth_type, current_settings
from c2c_auth._settings import AuthSettings, Settings
from c2c_auth._tokens import InvalidToken, Keys, unverified_claims
from c2c_config import get_settings

NO_SIGNING_KEY_MESSAGE = "C2C__AUTH__JWT__SECRET is not set: GitHub authentication needs it to sign session cookies"
_STATE_COOKIES = "c2c_auth_cookies"


def keys(settings: AuthSettings | None = None) -> Keys | None:
    """The signing and encryption keys of the current settings, or None when no master secret exists.

    Master secret: `C2C__AUTH__JWT__SECRET`; in secret mode without it, the shared secret itself
    (every replica derives the same keys; the cookie never contains the secret).
    """
    settings = current_settings() if settings is None else settings
    if settings.jwt.secret is not None and settings.jwt.secret.get_secret_value():
        # The session is signed with the JWT secret itself (0.14-style application code decodes it).
        return Keys(settings.jwt.secret.get_secret_value(), settings.jwt.algorithm)
    if auth_type() is AuthenticationType.SECRET and settings.secret is not None:
        # Nobody else knows this key: the session is signed with a key derived from the shared secret.
        return Keys(settings.secret.get_secret_value(), settings.jwt.algorithm, session_key_is_master=False)
    return None


def require_keys() -> Keys:
    """`keys()`, or a 500 naming the missing `C2C__AUTH__JWT__SECRET`."""
    found = keys()
    if found is None:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, NO_SIGNING_KEY_MESSAGE)
    return found


# --- cookies -------------------------------------------------------------------------------------


def default_cookie_path(request: Request) -> str:
    """The session cookie path: the setting, else the c2c index under the route prefix (`/c2c/`)."""
    configured = current_settings().jwt.cookie.path
    if configured:
        return configured
    return f"{get_settings(Settings).route_prefix}c2c/"


def safe_path(value: object) -> str | None:
    """`value` when it can be a cookie path (an absolute, printable ASCII path without separators), else None."""
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
        cookie = current_settings().jwt.cookie
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
    `Response` (an `HTMLResponse`, a redirect...). `PendingCookiesMiddleware` puts them back on
    every response; without it (c2casgiutils 0.14 code), such endpoints call this before
    returning. Both together set each cookie once.
    """
    for operation in request.scope.get("state", {}).get(_STATE_COOKIES, []):
        operation.apply(response)
    return response


def pending_set_cookies(state: Mapping[str, Any]) -> list[bytes]:
    """The Set-Cookie header values of the cookies recorded in a request's `scope["state"]`, in order."""
    operations: list[_CookieOp] = state.get(_STATE_COOKIES, [])
    if not operations:
        return []
    carrier = Response()
    for operation in operations:
        operation.apply(carrier)
    return [value for name, value in carrier.raw_headers if name == b"set-cookie"]


def _pending_headers(request: Request) -> dict[str, str] | None:
    """The last pending cookie as a header for an `HTTPException` (which drops other responses)."""
    pending = request.scope.get("state", {}).get(_STATE_COOKIES, [])
    if not pending:
        return None
    carrier = Response()
    pending[-1].apply(carrier)
    return {"set-cookie": carrier.headers["set-cookie"]}


class TemporarilyUnavailable(HTTPException):
    """A 503 the toolkit answers on purpose: what it needs (Redis, GitHub) is unavailable, or a cap is
    reached. Logged at WARNING where it happens; `c2casgiutils.sentry` sends no error event for it (an
    outage, or anyone sending bearer tokens, would otherwise make one event per request)."""

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status.HTTP_503_SERVICE_UNAVAILABLE, detail, headers)


def forbidden(request: Request | None, detail: str, status_code: int = status.HTTP_403_FORBIDDEN) -> HTTPException:
    """An `HTTPException` that still carries the cookie changes of the request (a stale session cleared);
    a `TemporarilyUnavailable` for 503."""
    headers = _pending_headers(request) if request is not None else None
    if status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
        return TemporarilyUnavailable(detail, headers)
    return HTTPException(status_code=status_code, detail=detail, headers=headers)


def session_cookie_name() -> str:
    """The session cookie's name (`C2C__AUTH__JWT__COOKIE__NAME`)."""
    return current_settings().jwt.cookie.name


def clear_session_cookie(request: Request, response: Response | None, path: str | None = None) -> None:
    """Clear the session cookie: at `path`, else where the cookie says it was set, else the default path."""
    claims = SessionClaims.from_jwt(unverified_claims(request.cookies.get(session_cookie_name())))
    path = path or safe_path(claims.cookie_path) or default_cookie_path(request)
    clear_cookie(request, response, session_cookie_name(), path)


def read_session(keys_: Keys, token: str | None) -> SessionClaims:
    """The claims of a verified session token; raises `InvalidToken`."""
    return SessionClaims.from_jwt(keys_.decode(token, "session"))


def issue_session(
    request: Request, response: Response | None, claims: SessionClaims, lifetime: float, path: str
) -> None:
    """Sign a session token and set it as the session cookie (a new `sid` unless `claims` carries one)."""
    token = require_keys().encode("session", replace(claims, cookie_path=path).to_jwt(), lifetime)
    set_cookie(request, response, session_cookie_name(), token, int(lifetime), path)


async def revoke_session(claims: SessionClaims) -> None:
    """End the session of these (verified) claims: its id is refused until its expiry.

    In this process at once, and on every replica through Redis when it is configured (see `_shared`).
    """
    if claims.session_id is not None and claims.expires_at is not None:
        await _shared.end_session(claims.session_id, float(claims.expires_at))


async def check_not_revoked(claims: SessionClaims) -> None:
    """Raise `InvalidToken` when a logout ended this session (this process's list, then Redis)."""
    if await _shared.session_ended(str(claims.session_id)):
        raise InvalidToken("session ended by a logout")
