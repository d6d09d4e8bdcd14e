"""GitHub mode: GitHub bearer tokens, the GitHub session (identity and encrypted tokens) and its refresh."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import Any

from fastapi import Request, Response

from c2c_auth import _github
from c2c_auth._claims import GitHubTokens, SessionClaims
from c2c_auth._github import GITHUB_UNAVAILABLE_MESSAGE
from c2c_auth._info import AuthInfo, AuthMethod, GitHubSessionPayload, UserInfo
from c2c_auth._modes import current_settings
from c2c_auth._sessions import (
    TemporarilyUnavailable,
    check_not_revoked,
    clear_session_cookie,
    default_cookie_path,
    issue_session,
    read_session,
    require_keys,
    safe_path,
    session_cookie_name,
)
from c2c_auth._tokens import InvalidToken, Keys

LOG = logging.getLogger("c2c_auth")

BEARER_CAPPED_MESSAGE = "Too many GitHub token checks right now; try again later"


def user_info(user: dict[str, Any]) -> UserInfo:
    """`UserInfo` from GitHub's user object."""
    login = str(user["login"])
    html_url = user.get("html_url")
    url = html_url if isinstance(html_url, str) and html_url.startswith("https://") else f"https://github.com/{login}"
    name = user.get("name")
    return UserInfo(login=login, display_name=name if isinstance(name, str) and name else login, url=url)


def _expiry(seconds: object, now: float) -> int | None:
    return int(now + seconds) if isinstance(seconds, int | float) else None


def tokens_from_answer(tokens: dict[str, Any], now: float) -> GitHubTokens:
    """The tokens of GitHub's token answer, with absolute expiry times."""
    refresh = tokens.get("refresh_token")
    has_refresh = isinstance(refresh, str) and bool(refresh)
    return GitHubTokens(
        access_token=tokens["access_token"],
        access_expires_at=_expiry(tokens.get("expires_in"), now),
        refresh_token=refresh if has_refresh else None,
        refresh_expires_at=_expiry(tokens.get("refresh_token_expires_in"), now) if has_refresh else None,
    )


def encrypted_tokens(keys_: Keys, tokens: dict[str, Any], now: float) -> str:
    """The session's encrypted GitHub tokens (`SessionClaims.github_tokens`) from GitHub's token answer."""
    return keys_.encrypt(tokens_from_answer(tokens, now).to_jwt(), "session")


def github_session(info: UserInfo, keys_: Keys, tokens: dict[str, Any], now: float) -> SessionClaims:
    """The claims of a new GitHub session: the user (0.14's claims) and the encrypted tokens."""
    return SessionClaims(
        method=AuthMethod.GITHUB_OAUTH.value,
        login=info.login,
        display_name=info.display_name,
        url=info.url,
        github_tokens=encrypted_tokens(keys_, tokens, now),
    )


def session_lifetime(tokens: dict[str, Any]) -> float:
    """The session lifetime: the cookie age, shortened to the refresh token's life (or the access token's)."""
    lifetime = current_settings().jwt.cookie.age.total_seconds()
    if isinstance(tokens.get("refresh_token_expires_in"), int | float):
        return min(lifetime, float(tokens["refresh_token_expires_in"]))
    if not tokens.get("refresh_token") and isinstance(tokens.get("expires_in"), int | float):
        return min(lifetime, float(tokens["expires_in"]))
    return lifetime


async def bearer_auth(token: str, client: str | None = None) -> AuthInfo:
    """An `Authorization: Bearer` GitHub token: logged in as its user.

    GitHub is asked only when neither the user cache nor the refusal cache knows the token, within a
    process-wide rate cap, `client`'s share of it (the request's client address) and a concurrency
    cap (503 with `Retry-After` beyond them).
    """
    settings = current_settings()
    try:
        user = await _github.validate_bearer(settings.github, token, client)
    except _github.GitHubRejected:
        LOG.info("GitHub bearer token refused by GitHub")
        return AuthInfo()
    except _github.ValidationsCapped as error:
        LOG.warning("GitHub bearer token not checked: %s", error)
        raise TemporarilyUnavailable(
            BEARER_CAPPED_MESSAGE, headers={"Retry-After": str(max(1, math.ceil(error.retry_after)))}
        ) from error
    except _github.GitHubUnavailable as error:
        LOG.warning("GitHub bearer token not checked: %s", error)
        raise TemporarilyUnavailable(GITHUB_UNAVAILABLE_MESSAGE) from error
    found = user_info(user)
    found.token = token
    return AuthInfo(is_logged_in=True, user=found, type=AuthMethod.GITHUB_BEARER)


async def github_session_auth(request: Request, response: Response) -> AuthInfo:
    """The GitHub session cookie: its user, with an access token refreshed when it is about to expire."""
    token = request.cookies.get(session_cookie_name())
    if token is None:
        return AuthInfo()
    try:
        claims, github = _read_github_session(require_keys(), token)
        await check_not_revoked(claims)
    except InvalidToken as error:
        LOG.info("Session cookie refused and cleared: %s", error)
        clear_session_cookie(request, response)
        return AuthInfo()
    path = safe_path(claims.cookie_path) or default_cookie_path(request)
    access_token = await _usable_access_token(request, response, claims, github, path)
    if access_token is None:
        return AuthInfo()
    return _session_auth_info(claims, github, access_token)


def _read_github_session(keys_: Keys, token: str) -> tuple[SessionClaims, GitHubTokens]:
    """The claims and GitHub tokens of a verified GitHub session (logouts are checked apart); raises `InvalidToken`."""
    claims = read_session(keys_, token)
    if claims.method != AuthMethod.GITHUB_OAUTH.value:
        raise InvalidToken("session of another mode")
    github = GitHubTokens.from_jwt(keys_.decrypt(claims.github_tokens, "session"))
    if github is None or not claims.login:
        raise InvalidToken("session without a GitHub identity")
    return claims, github


async def _usable_access_token(
    request: Request, response: Response, claims: SessionClaims, github: GitHubTokens, path: str
) -> str | None:
    """The access token, refreshed within the expiration margin; None when the session cannot go on."""
    now = time.time()
    margin = current_settings().github.access_token_expiration_margin.total_seconds()
    expires_at = github.access_expires_at
    if expires_at is None or now < expires_at - margin:
        return github.access_token
    try:
        refreshed = await _refresh(request, response, claims, github, now, path)
    except _SessionEnded:
        return None
    if refreshed is not None:
        return refreshed
    # GitHub cannot refresh now: the current token serves until it expires.
    return None if now >= expires_at else github.access_token


def _session_auth_info(claims: SessionClaims, github: GitHubTokens, access_token: str) -> AuthInfo:
    login = claims.login or ""
    display_name = claims.display_name or login
    url = claims.url or ""
    payload = GitHubSessionPayload(
        login=login,
        display_name=display_name,
        url=url,
        access_token_expires_at=github.access_expires_at if isinstance(github.access_expires_at, int) else None,
        refresh_token_expires_at=github.refresh_expires_at if isinstance(github.refresh_expires_at, int) else None,
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
    request: Request, response: Response, claims: SessionClaims, github: GitHubTokens, now: float, path: str
) -> str | None:
    """Refresh the access token: the new token, or None when GitHub cannot be reached now.

    Raises `_SessionEnded` (after clearing the cookie) when GitHub refuses the refresh token, or
    when the access token expired without a usable refresh token.
    """
    refresh = github.refresh_token
    refresh_expires = github.refresh_expires_at
    if refresh is None or (refresh_expires is not None and now >= refresh_expires):
        if now >= (github.access_expires_at or 0):
            LOG.info("GitHub access token expired without a usable refresh token: session cleared")
            clear_session_cookie(request, response, path)
            raise _SessionEnded
        return None
    settings = current_settings()
    try:
        tokens = await _github.refresh_token(settings.github, refresh)
    except _github.GitHubRejected as error:
        LOG.info("GitHub token refresh refused, session cleared: %s", error)
        clear_session_cookie(request, response, path)
        raise _SessionEnded from error
    except _github.GitHubUnavailable as error:
        LOG.warning("GitHub token refresh failed: %s", error)
        return None
    found = require_keys()
    tokens.setdefault("refresh_token", refresh)
    lifetime = max(1.0, float(claims.expires_at or 0) - now)
    if isinstance(tokens.get("refresh_token_expires_in"), int | float):
        lifetime = min(lifetime, float(tokens["refresh_token_expires_in"]))
    elif refresh_expires is not None:
        tokens["refresh_token_expires_in"] = refresh_expires - now
    # Every claim but the tokens (and those `Keys.encode` sets) is kept: the identity, the session
    # id, and optional claims a newer version may have added.
    session = replace(claims, github_tokens=encrypted_tokens(found, tokens, now))
    issue_session(request, response, session, lifetime, path)
    return str(tokens["access_token"])
