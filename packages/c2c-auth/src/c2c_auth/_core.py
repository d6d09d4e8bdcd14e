"""`get_auth`, the entry point: who is calling, according to the current mode; `startup` and `shutdown`."""

from __future__ import annotations

import logging

from fastapi import Request, Response

from c2c_auth import _github, _shared
from c2c_auth._github_auth import bearer_auth, github_session_auth
from c2c_auth._info import AuthInfo, AuthMethod, UserInfo
from c2c_auth._modes import AuthenticationType, auth_type, current_settings
from c2c_auth._secret import secret_auth
from c2c_auth._sessions import NO_SIGNING_KEY_MESSAGE

LOG = logging.getLogger("c2c_auth")

NO_AUTH_MESSAGE = (
    "No authentication configured: nobody can log in, the /c2c tools are unavailable (only the health checks "
    "answer). Set C2C__AUTH__SECRET, or C2C__AUTH__GITHUB__REPOSITORY, C2C__AUTH__GITHUB__CLIENT_ID, "
    "C2C__AUTH__GITHUB__CLIENT_SECRET and C2C__AUTH__JWT__SECRET (a misspelled variable is ignored, and "
    "reported at startup with the closest known name)"
)
"""What `startup` logs (WARNING) when no authentication mode is configured."""


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
        return await secret_auth(request, response)
    if mode is AuthenticationType.TEST:
        username = current_settings().test.username or ""
        return AuthInfo(
            is_logged_in=True,
            user=UserInfo(login="test", display_name=username, url="https://example.com"),
            type=AuthMethod.TEST,
        )
    if mode is AuthenticationType.GITHUB:
        authorization = request.headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return await bearer_auth(credentials.strip(), _github.share_key(request.client))
        return await github_session_auth(request, response)
    return AuthInfo()


async def startup(main_app: object = None) -> None:
    """Check the configuration when the application starts.

    Raises `ValueError` in GitHub mode without `C2C__AUTH__JWT__SECRET`, and `ModuleNotFoundError`
    when Redis is configured without the `redis` package (`pip install c2c-auth[redis]`: logouts
    would otherwise reach no other replica); warns about the weaker modes (secret, test), short JWT
    secrets, and no authentication at all (`NO_AUTH_MESSAGE`, for instance after a misspelled
    `C2C__AUTH__SECRET`: the tools would be silently unavailable).
    """
    del main_app
    _shared.require_redis_client()
    settings = current_settings()
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
    if mode is AuthenticationType.NONE:
        LOG.warning(NO_AUTH_MESSAGE)
    if mode is AuthenticationType.SECRET:
        LOG.warning("Authentication by shared secret: prefer GitHub OAuth (C2C__AUTH__GITHUB__...)")
    if mode is AuthenticationType.TEST:
        LOG.warning(
            "Test authentication: every request is logged in as %r; never use it in production", settings.test.username
        )


async def shutdown(main_app: object = None) -> None:
    """Write the logouts Redis missed, if it answers now, and close the pooled HTTP client used for
    GitHub in the running event loop.

    Logouts still unwritten (Redis still unavailable) are lost with the process: one ERROR says how
    many; those sessions stay valid on the other replicas until they expire.

    Optional: the client of a loop is closed on that loop when it ends anyway (0.14-style lifespans
    that only call `startup` leak nothing), and the next use in any loop creates a fresh one.
    """
    del main_app
    await _shared.flush_before_exit()
    await _github.CLIENTS.aclose()
