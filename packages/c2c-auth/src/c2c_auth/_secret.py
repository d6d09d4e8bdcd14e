"""Secret mode: the shared secret (header, form, query), its rate limit and the secret-mode session."""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, Request, Response, status

from c2c_auth._claims import SessionClaims
from c2c_auth._info import AuthInfo, AuthMethod
from c2c_auth._modes import current_settings
from c2c_auth._sessions import check_not_revoked, clear_session_cookie, read_session, require_keys, session_cookie_name
from c2c_auth._tokens import InvalidToken

LOG = logging.getLogger("c2c_auth")

TOO_MANY_FAILURES_MESSAGE = "Too many wrong secrets from this address; try again later"


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
    settings = current_settings()
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


def _check_secret_session(claims: SessionClaims) -> None:
    """Raise `InvalidToken` unless this verified session is a secret-mode one, of the current secret, not ended."""
    if claims.method != AuthMethod.SECRET.value:
        raise InvalidToken("session of another mode")
    if not hmac.compare_digest(claims.secret_fingerprint or "", _secret_fingerprint()):
        raise InvalidToken("session of another secret")
    check_not_revoked(claims)


def secret_auth(request: Request, response: Response) -> AuthInfo:
    """Secret mode: the secret the request carries decides alone, else the session cookie."""
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
        _check_secret_session(read_session(require_keys(), token))
    except InvalidToken as error:
        LOG.info("Session cookie refused and cleared: %s", error)
        clear_session_cookie(request, response)
        return AuthInfo()
    # No re-issue: a session ends at its `exp`, it does not slide forever.
    return AuthInfo(is_logged_in=True, type=AuthMethod.SECRET)
