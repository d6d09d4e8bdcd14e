"""Secret mode: the shared secret (header, form, query), its wrong-secret budgets and the secret-mode session."""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from fastapi import HTTPException, Request, Response, status

from c2c_auth import _audit, _devices, _shared
from c2c_auth._claims import SessionClaims
from c2c_auth._info import AuthInfo, AuthMethod
from c2c_auth._modes import current_settings
from c2c_auth._sessions import (
    check_not_revoked,
    clear_session_cookie,
    keys,
    read_session,
    require_keys,
    session_cookie_name,
)
from c2c_auth._tokens import InvalidToken

LOG = logging.getLogger("c2c_auth")

TOO_MANY_FAILURES_MESSAGE = "Too many wrong secrets from this device; try again later"
TOO_MANY_UNKNOWN_FAILURES_MESSAGE = (
    "Too many wrong secrets from unknown devices; try again later (a browser that logged in before is not affected)"
)


LIMITER = _shared.LIMITER
"""The wrong-secret budgets of this process (the fallback without Redis); `reset()` forgets them."""


def _client_address(request: Request) -> str:
    # A unix-socket peer has no address: no client (uvicorn) or an empty host (granian).
    return (request.client.host if request.client else "") or "unknown"


TEST_CLIENT_HOST = "testclient"
"""The client host of Starlette's `TestClient`: its requests go through no wrong-secret budget, so
that a test suite that sends more wrong secrets than a budget allows, then the right one, keeps
passing as it did with c2casgiutils 0.14. Tests of the budgets give the test client an address
(`TestClient(app, client=("203.0.113.1", 50000))`).

The host alone proves nothing: a server's own proxy-header handling (uvicorn's and granian's
`--forwarded-allow-ips='*'`) copies any `X-Forwarded-For` text into the client. The request must
also carry the `http.response.debug` scope extension, which `TestClient` sets and no server does,
and no header can."""


def _test_client(request: Request) -> bool:
    """Whether the request comes from Starlette's `TestClient` (see `TEST_CLIENT_HOST`)."""
    return (
        request.client is not None
        and request.client.host == TEST_CLIENT_HOST
        and "http.response.debug" in (request.scope.get("extensions") or {})
    )


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


async def has_valid_session(request: Request) -> bool:
    """Whether the request carries a valid, not ended, secret-mode session cookie of the current secret."""
    token = request.cookies.get(session_cookie_name())
    found = keys()
    if token is None or found is None:
        return False
    try:
        await _check_secret_session(read_session(found, token))
    except InvalidToken:
        return False
    return True


async def verify_secret(request: Request, provided: str) -> bool:
    """Compare a provided secret with `C2C__AUTH__SECRET` in constant time, with wrong-secret budgets.

    The budget is the device's (a valid device cookie, `C2C__AUTH__SECRET_MAX_FAILURES`) or the
    one shared by every unknown device (`C2C__AUTH__SECRET_UNKNOWN_DEVICES_MAX_FAILURES`), over
    `C2C__AUTH__SECRET_FAILURE_WINDOW`, kept in Redis when configured. A wrong secret is counted
    and checked in one atomic step (concurrent guesses cannot overrun the budget); a right one only
    reads the budget. Once the budget is spent the request gets a 429 `HTTPException` (even for
    the right secret, or guessing would go on). A
    request with a valid session never goes through the budgets, nor one of Starlette's `TestClient`
    (`TEST_CLIENT_HOST`).
    """
    settings = current_settings()
    expected = settings.secret.get_secret_value() if settings.secret is not None else ""
    # Digests have equal length, so compare_digest's time does not depend on where the values differ.
    right = bool(expected) and hmac.compare_digest(_digest(provided), _digest(expected))
    budget: str | None = None
    if not _test_client(request) and not await has_valid_session(request):
        budget = _devices.budget(request)
        known = budget != _devices.UNKNOWN_DEVICES
        limit = settings.secret_max_failures if known else settings.secret_unknown_devices_max_failures
        window = settings.secret_failure_window.total_seconds()
        # A wrong secret is counted and checked in one atomic step (concurrent guesses cannot all
        # find the budget unspent); a right one only reads it (never counted: parallel API calls
        # with the right key are never refused while the budget is not spent). A right secret gets
        # the same 429 as a wrong one once the budget is spent, so a guess beyond it tells nothing.
        if right:
            wait = await _shared.budget_spent(budget, limit, window)
        else:
            wait = await _shared.budget_take(budget, limit, window)
        if wait is not None:
            _audit.REFUSED_LOGINS.refused(budget, _audit.client_address(request))
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                TOO_MANY_FAILURES_MESSAGE if known else TOO_MANY_UNKNOWN_FAILURES_MESSAGE,
                headers={"Retry-After": str(max(1, int(wait)))},
            )
    if right:
        return True
    _audit.REFUSED_LOGINS.refused(budget, _audit.client_address(request))
    # No budget: the request has a valid session, or comes from a `TestClient` (never counted).
    unbudgeted = "test client" if _test_client(request) else "valid session"
    LOG.warning("Wrong authentication secret from %s (%s)", _client_address(request), budget or unbudgeted)
    return False


def provided_secret(request: Request) -> str | None:
    """The secret a request carries: the `X-API-Key` header, else the `secret` query parameter (if allowed)."""
    header = request.headers.get("x-api-key")
    if header is not None:
        return header
    if current_settings().secret_in_query:
        return request.query_params.get("secret")
    return None


def secret_session() -> SessionClaims:
    """The claims of a secret-mode session: the mode and a keyed fingerprint of the secret, never the secret."""
    return SessionClaims(method=AuthMethod.SECRET.value, secret_fingerprint=_secret_fingerprint())


def secret_session_claims() -> dict[str, Any]:
    """`secret_session()` as signed (a claim dictionary)."""
    return secret_session().to_jwt()


def _secret_fingerprint() -> str:
    settings = current_settings()
    secret = settings.secret.get_secret_value() if settings.secret is not None else ""
    return require_keys().fingerprint(secret)


async def _check_secret_session(claims: SessionClaims) -> None:
    """Raise `InvalidToken` unless this verified session is a secret-mode one, of the current secret, not ended."""
    if claims.method != AuthMethod.SECRET.value:
        raise InvalidToken("session of another mode")
    if not hmac.compare_digest(claims.secret_fingerprint or "", _secret_fingerprint()):
        raise InvalidToken("session of another secret")
    await check_not_revoked(claims)


async def secret_auth(request: Request, response: Response) -> AuthInfo:
    """Secret mode: the secret the request carries decides alone, else the session cookie."""
    provided = provided_secret(request)
    if provided is not None:
        # An explicit credential decides alone: a wrong one never falls back to the cookie.
        if await verify_secret(request, provided):
            return AuthInfo(is_logged_in=True, type=AuthMethod.SECRET)
        return AuthInfo()
    token = request.cookies.get(session_cookie_name())
    if token is None:
        return AuthInfo()
    try:
        await _check_secret_session(read_session(require_keys(), token))
    except InvalidToken as error:
        LOG.info("Session cookie refused and cleared: %s", error)
        clear_session_cookie(request, response)
        return AuthInfo()
    # No re-issue: a session ends at its `exp`, it does not slide forever.
    return AuthInfo(is_logged_in=True, type=AuthMethod.SECRET)
