"""The authentication endpoints, relative to where the router is included (`/c2c/auth` in c2c-all).

Every route exists in every mode and answers according to the mode of the moment: an endpoint the
current mode does not offer answers 404 with a message naming the mode.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse

from c2c_auth import _core, _github, _github_auth, _modes, _secret, _sessions
from c2c_auth._claims import PKCE_VERIFIER, GitHubTokens, OAuthState
from c2c_auth._info import AuthInfo
from c2c_auth._modes import AuthenticationType
from c2c_auth._redirect import safe_came_from
from c2c_auth._tokens import InvalidToken

LOG = logging.getLogger("c2c_auth")

_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_MAX_FORM_BYTES = 8192
CALLBACK_ROUTE = "c2c_github_callback"


def _json(request: Request, content: dict[str, Any], status_code: int = 200) -> JSONResponse:
    response = JSONResponse(content, status_code=status_code, headers=_NO_STORE)
    return _sessions.apply_pending_cookies(request, response)


def _redirect(request: Request, location: str) -> RedirectResponse:
    response = RedirectResponse(location, status_code=status.HTTP_303_SEE_OTHER, headers=_NO_STORE)
    return _sessions.apply_pending_cookies(request, response)


def _unavailable(request: Request, endpoint: str, needed: AuthenticationType) -> JSONResponse:
    mode = _modes.auth_type().name.lower()
    message = (
        f"{endpoint} is not available: the authentication mode is {mode}, this endpoint needs {needed.name.lower()}"
    )
    return _json(request, {"detail": message}, status.HTTP_404_NOT_FOUND)


def _auth_base(request: Request, suffix: str) -> str:
    path = request.url.path
    return path[: -len(suffix)] if path.endswith(suffix) else path.rsplit("/", 1)[0]


def _index_path(request: Request, suffix: str) -> str:
    """The c2c index (the parent of the auth router): `/c2c/auth/login` → `/c2c/`."""
    return _auth_base(request, suffix).rsplit("/", 1)[0] + "/"


def _cookie_path(request: Request, suffix: str) -> str:
    return _modes.current_settings().jwt.cookie.path or _index_path(request, suffix)


def _came_from(request: Request, value: str | None) -> str | None:
    return safe_came_from(value, request.url.scheme, request.url.netloc)


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "form too large")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _flow_cookie(state: str) -> str:
    """One state cookie per login flow, so several tabs can log in at once."""
    return f"{_modes.current_settings().github.state_cookie}-{hashlib.sha256(state.encode()).hexdigest()[:16]}"


def _pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


async def _revoke_session(request: Request) -> None:
    """End the request's session (valid sessions only): its id is refused from now on in this process,
    and in GitHub mode its token is revoked at GitHub (which ends it on every replica)."""
    found = _sessions.keys()
    token = request.cookies.get(_sessions.session_cookie_name())
    if found is None or token is None:
        return
    try:
        claims = _sessions.read_session(found, token)
    except InvalidToken:
        return
    _sessions.revoke_session(claims)
    if _modes.auth_type() is not AuthenticationType.GITHUB:
        return
    try:
        tokens = GitHubTokens.from_jwt(found.decrypt(claims.github_tokens, "session"))
    except InvalidToken:
        return
    if tokens is not None:
        await _github.revoke(_modes.current_settings().github, tokens.access_token)


def create_router() -> APIRouter:
    """A new router with the endpoints `/login`, `/logout`, `/status`, `/github/login`, `/github/callback`
    and `/github/logout`; include it with a prefix (c2c-all uses `/c2c/auth`)."""
    router = APIRouter()

    async def login(request: Request) -> Response:
        """Secret mode: log in with the `X-API-Key` header, the `secret` form field or query parameter."""
        suffix = "/login"
        if _modes.auth_type() is not AuthenticationType.SECRET:
            return _unavailable(request, "Secret login", AuthenticationType.SECRET)
        form = await _form(request) if request.method == "POST" else {}
        provided = request.headers.get("x-api-key") or form.get("secret") or None
        if provided is None and "secret" in request.query_params:
            if not _modes.current_settings().secret_in_query:
                message = (
                    "The secret query parameter is disabled (C2C__AUTH__SECRET_IN_QUERY); use the X-API-Key header"
                )
                return _json(request, {"detail": message}, status.HTTP_400_BAD_REQUEST)
            provided = request.query_params["secret"]
        if not provided:
            message = "Missing secret: send the X-API-Key header, the secret form field or the secret parameter"
            return _json(request, {"detail": message}, status.HTTP_400_BAD_REQUEST)
        if not _secret.verify_secret(request, provided):
            return _json(request, {"detail": "Invalid secret"}, status.HTTP_401_UNAUTHORIZED)
        age = _modes.current_settings().jwt.cookie.age.total_seconds()
        _sessions.issue_session(request, None, _secret.secret_session(), age, _cookie_path(request, suffix))
        if form:
            target = _came_from(request, form.get("came_from") or request.query_params.get("came_from"))
            return _redirect(request, target or _index_path(request, suffix))
        return _json(request, {"status": "success", "message": "Authentication successful"})

    router.add_api_route("/login", login, methods=["GET", "POST"], name="c2c_auth_login")

    async def logout(request: Request) -> Response:
        """Clear the session cookie (and revoke the GitHub token in GitHub mode)."""
        await _revoke_session(request)
        _sessions.clear_cookie(request, None, _sessions.session_cookie_name(), _cookie_path(request, "/logout"))
        return _json(request, {"status": "success", "message": "Logged out successfully"})

    router.add_api_route("/logout", logout, methods=["GET", "POST"], name="c2c_auth_logout")

    @router.get("/status", name="c2c_auth_status", response_model=AuthInfo)
    async def auth_status(request: Request, auth_info: Annotated[AuthInfo, Depends(_core.get_auth)]) -> Response:
        """The authentication status; it never contains a token."""
        # The token is never serialised; clear it first so that this endpoint does not log the warning
        # meant for application code that serialises one.
        shown = auth_info.model_copy(update={"user": auth_info.user.model_copy(update={"token": ""})})
        return _json(request, shown.model_dump(mode="json"))

    @router.get("/github/login", name="c2c_github_login")
    async def github_login(request: Request, came_from: str | None = None) -> Response:
        """Start a GitHub OAuth flow (state and PKCE verifier in a per-flow signed cookie)."""
        if _modes.auth_type() is not AuthenticationType.GITHUB:
            return _unavailable(request, "GitHub login", AuthenticationType.GITHUB)
        found = _sessions.keys()
        if found is None:
            return _json(request, {"error": _sessions.NO_SIGNING_KEY_MESSAGE}, status.HTTP_500_INTERNAL_SERVER_ERROR)
        target = _came_from(request, came_from)
        if came_from and target is None:
            message = "came_from refused: only a path on this site is accepted"
            return _json(request, {"error": message}, status.HTTP_400_BAD_REQUEST)
        github = _modes.current_settings().github
        callback = str(request.url_for(CALLBACK_ROUTE))
        redirect_uri = callback
        if github.proxy_url:
            separator = "&" if "?" in github.proxy_url else "?"
            redirect_uri = f"{github.proxy_url}{separator}came_from={quote(callback, safe='')}"
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        flow = OAuthState(
            state_hash=hashlib.sha256(state.encode()).hexdigest(),
            pkce=found.encrypt({PKCE_VERIFIER: verifier}, "oauth-state"),
            came_from=target,
            redirect_uri=redirect_uri,
        )
        age = github.state_cookie_age.total_seconds()
        cookie = found.encode("oauth-state", flow.to_jwt(), age)
        query = {
            "client_id": github.client_id or "",
            "redirect_uri": redirect_uri,
            "scope": github.scope,
            "state": state,
            "response_type": "code",
            "code_challenge": _pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in github.authorize_url else "?"
        _sessions.set_cookie(request, None, _flow_cookie(state), cookie, int(age), urlsplit(callback).path)
        return _redirect(request, f"{github.authorize_url}{separator}{urlencode(query)}")

    @router.get("/github/callback", name=CALLBACK_ROUTE)
    async def github_callback(
        request: Request, state: str | None = None, code: str | None = None, error: str | None = None
    ) -> Response:
        """Finish a GitHub OAuth flow: check the state, exchange the code with the PKCE verifier, set the session."""
        if _modes.auth_type() is not AuthenticationType.GITHUB:
            return _unavailable(request, "GitHub callback", AuthenticationType.GITHUB)
        found = _sessions.keys()
        if found is None:
            return _json(request, {"error": _sessions.NO_SIGNING_KEY_MESSAGE}, status.HTTP_500_INTERNAL_SERVER_ERROR)
        if not state or len(state) > 512:
            return _json(request, {"error": "Missing state parameter"}, status.HTTP_400_BAD_REQUEST)
        name = _flow_cookie(state)
        stored = request.cookies.get(name)
        if stored is None:
            message = "No GitHub login in progress for this state (expired, already used, or another browser)"
            return _json(request, {"error": message}, status.HTTP_400_BAD_REQUEST)
        # Single use: the flow's cookie is deleted whatever happens next.
        _sessions.clear_cookie(request, None, name, request.url.path)
        try:
            flow = OAuthState.from_jwt(found.decode(stored, "oauth-state"))
            verifier = found.decrypt(flow.pkce, "oauth-state").get(PKCE_VERIFIER)
        except InvalidToken as refused:
            LOG.info("OAuth state cookie refused: %s", refused)
            return _json(request, {"error": "Invalid login state"}, status.HTTP_400_BAD_REQUEST)
        expected = hashlib.sha256(state.encode()).hexdigest()
        if not hmac.compare_digest(flow.state_hash or "", expected) or not isinstance(verifier, str):
            return _json(request, {"error": "State mismatch"}, status.HTTP_400_BAD_REQUEST)
        if error:
            return _json(request, {"error": f"GitHub refused the login: {error[:200]}"}, status.HTTP_400_BAD_REQUEST)
        if not code:
            return _json(request, {"error": "Missing code parameter"}, status.HTTP_400_BAD_REQUEST)
        github = _modes.current_settings().github
        try:
            tokens = await _github.exchange_code(github, code, flow.redirect_uri or "", verifier)
            now = time.time()
            user = await _github.get_user(github, str(tokens["access_token"]))
        except _github.GitHubRejected as refused:
            return _json(request, {"error": str(refused)}, status.HTTP_400_BAD_REQUEST)
        except _github.GitHubUnavailable as unavailable:
            LOG.warning("GitHub login failed: %s", unavailable)
            return _json(request, {"error": _github.GITHUB_UNAVAILABLE_MESSAGE}, status.HTTP_503_SERVICE_UNAVAILABLE)
        session = _github_auth.github_session(_github_auth.user_info(user), found, tokens, now)
        suffix = "/github/callback"
        lifetime = _github_auth.session_lifetime(tokens)
        _sessions.issue_session(request, None, session, lifetime, _cookie_path(request, suffix))
        target = _came_from(request, flow.came_from)
        return _redirect(request, target or _index_path(request, suffix))

    async def github_logout(request: Request, came_from: str | None = None) -> Response:
        """Clear the session, revoke its GitHub token, redirect to `came_from` (same origin) or the index."""
        if _modes.auth_type() is not AuthenticationType.GITHUB:
            return _unavailable(request, "GitHub logout", AuthenticationType.GITHUB)
        await _revoke_session(request)
        suffix = "/github/logout"
        _sessions.clear_cookie(request, None, _sessions.session_cookie_name(), _cookie_path(request, suffix))
        return _redirect(request, _came_from(request, came_from) or _index_path(request, suffix))

    router.add_api_route("/github/logout", github_logout, methods=["GET", "POST"], name="c2c_github_logout")
    return router
