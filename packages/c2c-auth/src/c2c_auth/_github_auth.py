"""GitHub mode: GitHub bearer tokens, the GitHub session (identity and encrypted tokens) and its refresh."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import HTTPException, Request, Response, status

from c2c_auth import _github
from c2c_auth._github import GITHUB_UNAVAILABLE_MESSAGE
from c2c_auth._info import AuthInfo, AuthMethod, GitHubSessionPayload, UserInfo
from c2c_auth._modes import current_settings
from c2c_auth._sessions import (
    check_not_revoked,
    clear_session_cookie,
    default_cookie_path,
    issue_session,
    require_keys,
    safe_path,
    session_cookie_name,
)
from c2c_auth._tokens import InvalidToken, Keys

LOG = logging.getLogger("c2c_auth")


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
    lifetime = current_settings().jwt.cookie.age.total_seconds()
    if isinstance(tokens.get("refresh_token_expires_in"), int | float):
        return min(lifetime, float(tokens["refresh_token_expires_in"]))
    if not tokens.get("refresh_token") and isinstance(tokens.get("expires_in"), int | float):
        return min(lifetime, float(tokens["expires_in"]))
    return lifetime


async def bearer_auth(token: str) -> AuthInfo:
    settings = current_settings()
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


async def github_session_auth(request: Request, response: Response) -> AuthInfo:
    token = request.cookies.get(session_cookie_name())
    if token is None:
        return AuthInfo()
    found = require_keys()
    try:
        claims = found.decode(token, "session")
        if claims.get("mth") != AuthMethod.GITHUB_OAUTH.value:
            raise InvalidToken("session of another mode")
        check_not_revoked(claims)
        github = found.decrypt(claims.get("ght"), "session")
        if not isinstance(github.get("at"), str) or not isinstance(claims.get("login"), str) or not claims["login"]:
            raise InvalidToken("session without a GitHub identity")
    except InvalidToken as error:
        LOG.info("Session cookie refused and cleared: %s", error)
        clear_session_cookie(request, response)
        return AuthInfo()
    path = safe_path(claims.get("pth")) or default_cookie_path(request)
    access_token: str = github["at"]
    now = time.time()
    margin = current_settings().github.access_token_expiration_margin.total_seconds()
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
