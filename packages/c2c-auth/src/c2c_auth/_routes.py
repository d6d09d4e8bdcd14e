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

from c2c_auth import _audit, _core, _devices, _github, _github_auth, _modes, _secret, _sessions
from c2c_auth._claims import PKCE_VERIFIER, GitHubTokens, OAuthState
from c2c_auth._info import AuthInfo
from c2c_auth._modes import AuthenticationType
from c2c_auth._redirect import cross_site, safe_came_from
from c2c_auth._tokens import InvalidToken, Keys

LOG = logging.getLogger("c2c_auth")

_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_MAX_FORM_BYTES = 8192
CALLBACK_ROUTE = "c2c_github_callback"
CAME_FROM_REFUSED = "Invalid 'came_from' parameter: only a path on this site is accepted"
LOGIN_FAILED = "failed"
"""`?login=` of the page a wrong secret submitted without JavaScript is sent back to."""
LOGIN_THROTTLED = "throttled"
"""`?login=` of the page a refused (too many wrong secrets) login without JavaScript is sent back to."""
LOGGED_OUT = "logged-out"
"""`?login=` of the page a logout without JavaScript is sent back to."""
CROSS_SITE_LOGOUT_MESSAGE = "Logout from another site refused: log out from this site"


# --- answers and paths ----------------------------------------------------------------------------


def _json(request: Request, content: dict[str, Any], status_code: int = 200) -> JSONResponse:
    response = JSONResponse(content, status_code=status_code, headers=_NO_STORE)
    return _sessions.apply_pending_cookies(request, response)


def _redirect(request: Request, location: str) -> RedirectResponse:
    """307 after a GET, as c2casgiutils 0.14 answered (test suites compare it); 303 after a POST (then a GET)."""
    code = status.HTTP_307_TEMPORARY_REDIRECT if request.method in ("GET", "HEAD") else status.HTTP_303_SEE_OTHER
    response = RedirectResponse(location, status_code=code, headers=_NO_STORE)
    return _sessions.apply_pending_cookies(request, response)


def _detail(request: Request, message: str, status_code: int) -> JSONResponse:
    return _json(request, {"detail": message}, status_code)


def _error(request: Request, message: str, status_code: int = status.HTTP_400_BAD_REQUEST) -> JSONResponse:
    return _json(request, {"error": message}, status_code)


def _unavailable(request: Request, endpoint: str, needed: AuthenticationType) -> JSONResponse | None:
    """None when the current mode is `needed`, else the 404 naming the mode."""
    mode = _modes.auth_type()
    if mode is needed:
        return None
    message = (
        f"{endpoint} is not available: the authentication mode is {mode.name.lower()}, "
        f"this endpoint needs {needed.name.lower()}"
    )
    return _detail(request, message, status.HTTP_404_NOT_FOUND)


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


def _back(request: Request, came_from: str | None, suffix: str) -> RedirectResponse:
    """Redirect to `came_from` (same origin only), else to the c2c index."""
    return _redirect(request, _came_from(request, came_from) or _index_path(request, suffix))


def _refuse_came_from(request: Request, came_from: str | None) -> JSONResponse | None:
    """0.14's 400 `{"detail": "Invalid 'came_from' parameter: ..."}` for a `came_from` given and not
    same-origin, answered before anything changes; None otherwise."""
    if came_from and _came_from(request, came_from) is None:
        return _detail(request, CAME_FROM_REFUSED, status.HTTP_400_BAD_REQUEST)
    return None


def _navigation(request: Request) -> bool:
    """Whether a browser sent this request to show the answer as a page (a form submitted without
    JavaScript, a followed link): `Sec-Fetch-Mode: navigate`, or, from a browser that sends no
    `Sec-Fetch-*` headers, an `Accept` naming `text/html`. Scripts and API clients (`fetch`, curl,
    a test client) get JSON."""
    mode = request.headers.get("sec-fetch-mode")
    if mode is not None:
        return mode.strip().lower() == "navigate"
    return "text/html" in request.headers.get("accept", "").lower()


def _back_with(request: Request, suffix: str, login: str) -> RedirectResponse:
    """Back to the c2c index after a page navigation, with the outcome it shows (`?login=...`)."""
    return _redirect(request, f"{_index_path(request, suffix)}?{urlencode({'login': login})}")


def _clear_session(request: Request, suffix: str) -> None:
    _sessions.clear_cookie(request, None, _sessions.session_cookie_name(), _cookie_path(request, suffix))


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


# --- secret mode --------------------------------------------------------------------------------


def _login_secret(request: Request, form: dict[str, str]) -> str | JSONResponse:
    """The secret of a login request (header, form field, then query parameter), or the 400 answer."""
    provided = request.headers.get("x-api-key") or form.get("secret") or None
    if provided is None and "secret" in request.query_params:
        if not _modes.current_settings().secret_in_query:
            message = "The secret query parameter is disabled (C2C__AUTH__SECRET_IN_QUERY); use the X-API-Key header"
            return _detail(request, message, status.HTTP_400_BAD_REQUEST)
        provided = request.query_params["secret"]
    if not provided:
        message = "Missing secret: send the X-API-Key header, the secret form field or the secret parameter"
        return _detail(request, message, status.HTTP_400_BAD_REQUEST)
    return provided


async def login(request: Request) -> Response:
    """Secret mode: log in with the `X-API-Key` header, the `secret` form field or query parameter."""
    suffix = "/login"
    if (refused := _unavailable(request, "Secret login", AuthenticationType.SECRET)) is not None:
        return refused
    form = await _form(request) if request.method == "POST" else {}
    came_from = (form.get("came_from") or request.query_params.get("came_from")) if form else None
    if (refused := _refuse_came_from(request, came_from)) is not None:
        return refused
    provided = _login_secret(request, form)
    if isinstance(provided, Response):
        return provided
    page = bool(form) and _navigation(request)
    try:
        verified = await _secret.verify_secret(request, provided)
    except HTTPException as error:
        if page and error.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
            # A form submitted without JavaScript: the page says it, rather than a raw JSON body.
            return _back_with(request, suffix, LOGIN_THROTTLED)
        raise
    if not verified:
        if page:
            return _back_with(request, suffix, LOGIN_FAILED)
        return _detail(request, "Invalid secret", status.HTTP_401_UNAUTHORIZED)
    age = _modes.current_settings().jwt.cookie.age.total_seconds()
    _sessions.issue_session(request, None, _secret.secret_session(), age, _cookie_path(request, suffix))
    _devices.remember_device(request, _cookie_path(request, suffix))
    _audit.audit("login", "secret", _audit.client_address(request), {"method": "secret"})
    if form:
        return _back(request, came_from, suffix)
    return _json(request, {"status": "success", "message": "Authentication successful"})


# --- every mode ----------------------------------------------------------------------------------


async def _revoke_session(request: Request) -> None:
    """End the request's session (valid, not already ended sessions only): its id is refused until its
    expiry (this process, and every replica through Redis), and in GitHub mode its token is revoked.
    An ended session is a `logout` audit record."""
    found = _sessions.keys()
    token = request.cookies.get(_sessions.session_cookie_name())
    if found is None or token is None:
        return
    try:
        claims = _sessions.read_session(found, token)
    except InvalidToken:
        return
    try:
        await _sessions.check_not_revoked(claims)
    except InvalidToken:
        return  # already ended: nothing more to revoke
    await _sessions.revoke_session(claims)
    actor = claims.login or ("secret" if claims.method == "secret" else "unknown")
    _audit.audit("logout", actor, _audit.client_address(request), {"method": claims.method or "unknown"})
    if _modes.auth_type() is not AuthenticationType.GITHUB:
        return
    try:
        tokens = GitHubTokens.from_jwt(found.decrypt(claims.github_tokens, "session"))
    except InvalidToken:
        return
    if tokens is not None:
        await _github.revoke(_modes.current_settings().github, tokens.access_token)


def _refuse_cross_site(request: Request) -> JSONResponse | None:
    """A logout from another site (GET or POST: a link, an image or a form there): the 403 that
    logs nobody out; None otherwise."""
    if not cross_site(request):
        return None
    LOG.info("Logout from another site ignored (Sec-Fetch-Site/Origin/Referer of another site)")
    return _detail(request, CROSS_SITE_LOGOUT_MESSAGE, status.HTTP_403_FORBIDDEN)


async def logout(request: Request) -> Response:
    """End the session (server side, by its id) and clear its cookie; in GitHub mode revoke the GitHub token.

    A request from another site (`Sec-Fetch-Site: cross-site` or `same-site`, a foreign `Origin` or
    `Referer`), GET or POST, is refused with 403 and changes nothing.
    """
    if (refused := _refuse_cross_site(request)) is not None:
        return refused
    await _revoke_session(request)
    _clear_session(request, "/logout")
    if _navigation(request):
        # A form submitted without JavaScript, or a followed link: back to the page, logged out.
        return _back_with(request, "/logout", LOGGED_OUT)
    return _json(request, {"status": "success", "message": "Logged out successfully"})


async def auth_status(request: Request, auth_info: Annotated[AuthInfo, Depends(_core.get_auth)]) -> Response:
    """The authentication status; it never contains a token."""
    # The token is never serialised; clear it first so that this endpoint does not log the warning
    # meant for application code that serialises one.
    shown = auth_info.model_copy(update={"user": auth_info.user.model_copy(update={"token": ""})})
    return _json(request, shown.model_dump(mode="json"))


# --- GitHub OAuth --------------------------------------------------------------------------------


MAX_FLOWS = 5
"""Login flows a browser may have in progress at once: a new one beyond clears the others' cookies
(each is some 700 bytes, and proxies refuse a request whose cookies pass a few kilobytes)."""

_USED_STATES = _github.TTLCache(size=10_000)
"""The states of the flows that logged somebody in in this process (by digest), for the state
cookie's age: a copied flow cookie is refused a second time even in another browser. Only flows
GitHub accepted are kept, so filling it takes real logins; another replica does not know them
(GitHub itself refuses a code used twice)."""


def _flow_path(callback_path: str) -> str:
    """The path of the flow cookies: the directory of the callback (`/c2c/auth/github/`), so that the
    login route sees them too (and counts them) while no other route gets them."""
    return callback_path.rsplit("/", 1)[0] + "/"


def _flow_cookie(state: str) -> str:
    """One state cookie per login flow, so several tabs can log in at once."""
    return f"{_modes.current_settings().github.state_cookie}-{_state_hash(state)[:16]}"


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _github_keys(request: Request, endpoint: str) -> Keys | JSONResponse:
    """The keys for a GitHub endpoint, or its answer: 404 in another mode, 500 without a JWT secret."""
    if (refused := _unavailable(request, endpoint, AuthenticationType.GITHUB)) is not None:
        return refused
    found = _sessions.keys()
    if found is None:
        return _error(request, _sessions.NO_SIGNING_KEY_MESSAGE, status.HTTP_500_INTERNAL_SERVER_ERROR)
    return found


def _redirect_uri(callback: str) -> str:
    """The `redirect_uri` for GitHub: the callback, or the OAuth proxy with the callback as `came_from`."""
    proxy_url = _modes.current_settings().github.proxy_url
    if not proxy_url:
        return callback
    separator = "&" if "?" in proxy_url else "?"
    return f"{proxy_url}{separator}came_from={quote(callback, safe='')}"


def _authorize_url(redirect_uri: str, state: str, verifier: str) -> str:
    github = _modes.current_settings().github
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
    return f"{github.authorize_url}{separator}{urlencode(query)}"


async def github_login(request: Request, came_from: str | None = None) -> Response:
    """Start a GitHub OAuth flow (state and PKCE verifier in a per-flow signed cookie)."""
    found = _github_keys(request, "GitHub login")
    if isinstance(found, Response):
        return found
    # 0.14's answer: FastAPI's `{"detail": ...}` with its words first (the callback's errors are `{"error": ...}`).
    if (refused := _refuse_came_from(request, came_from)) is not None:
        return refused
    target = _came_from(request, came_from)
    callback = str(request.url_for(CALLBACK_ROUTE))
    redirect_uri = _redirect_uri(callback)
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    flow = OAuthState(
        state_hash=_state_hash(state),
        pkce=found.encrypt({PKCE_VERIFIER: verifier}, "oauth-state"),
        came_from=target,
        redirect_uri=redirect_uri,
    )
    age = _modes.current_settings().github.state_cookie_age.total_seconds()
    cookie = found.encode("oauth-state", flow.to_jwt(), age)
    flow_path = _flow_path(urlsplit(callback).path)
    prefix = f"{_modes.current_settings().github.state_cookie}-"
    pending = [name for name in request.cookies if name.startswith(prefix)]
    if len(pending) >= MAX_FLOWS:
        LOG.info("%d GitHub logins in progress in one browser: their state cookies are cleared", len(pending))
        for name in pending:
            _sessions.clear_cookie(request, None, name, flow_path)
    _sessions.set_cookie(request, None, _flow_cookie(state), cookie, int(age), flow_path)
    return _redirect(request, _authorize_url(redirect_uri, state, verifier))


def _take_flow(request: Request, found: Keys, state: str | None) -> tuple[OAuthState, str] | JSONResponse:
    """The login flow of `state` and its PKCE verifier, or the 400 answer; the flow's cookie is used up."""
    if not state or len(state) > 512:
        return _error(request, "Missing state parameter")
    name = _flow_cookie(state)
    stored = request.cookies.get(name)
    if stored is None:
        return _error(request, "No GitHub login in progress for this state (expired, already used, or another browser)")
    # Single use: the flow's cookie is deleted whatever happens next.
    # The path the login set it with (`url_for` includes a root_path the request's path may not).
    _sessions.clear_cookie(request, None, name, _flow_path(urlsplit(str(request.url_for(CALLBACK_ROUTE))).path))
    try:
        flow = OAuthState.from_jwt(found.decode(stored, "oauth-state"))
        verifier = found.decrypt(flow.pkce, "oauth-state").get(PKCE_VERIFIER)
    except InvalidToken as refused:
        LOG.info("OAuth state cookie refused: %s", refused)
        return _error(request, "Invalid login state")
    if not hmac.compare_digest(flow.state_hash or "", _state_hash(state)) or not isinstance(verifier, str):
        return _error(request, "State mismatch")
    age = _modes.current_settings().github.state_cookie_age.total_seconds()
    if _USED_STATES.get(("used", _state_hash(state)), age) is not None:
        LOG.warning("A finished GitHub login flow was presented again (a copied state cookie)")
        return _error(request, "No GitHub login in progress for this state (expired, already used, or another browser)")
    return flow, verifier


def _finished(state: str) -> None:
    """Remember the state of a flow that logged somebody in (only those: a flow that failed costs
    nothing to start, and remembering it would let anybody push the finished ones out)."""
    age = _modes.current_settings().github.state_cookie_age.total_seconds()
    _USED_STATES.put(("used", _state_hash(state)), True, age)


async def _exchange_code(
    request: Request, code: str, flow: OAuthState, verifier: str, state: str | None
) -> tuple[dict[str, Any], dict[str, Any], float] | JSONResponse:
    """GitHub's tokens for `code`, the user, and when the tokens were issued; or the 400/503 answer."""
    github = _modes.current_settings().github
    try:
        tokens = await _github.exchange_code(github, code, flow.redirect_uri or "", verifier, state)
        now = time.time()
        user = await _github.get_user(github, str(tokens["access_token"]))
    except _github.GitHubRejected as refused:
        return _error(request, str(refused))
    except _github.GitHubUnavailable as unavailable:
        LOG.warning("GitHub login failed: %s", unavailable)
        return _error(request, _github.GITHUB_UNAVAILABLE_MESSAGE, status.HTTP_503_SERVICE_UNAVAILABLE)
    return tokens, user, now


async def github_callback(
    request: Request, state: str | None = None, code: str | None = None, error: str | None = None
) -> Response:
    """Finish a GitHub OAuth flow: check the state, exchange the code with the PKCE verifier, set the session."""
    found = _github_keys(request, "GitHub callback")
    if isinstance(found, Response):
        return found
    taken = _take_flow(request, found, state)
    if isinstance(taken, Response):
        return taken
    flow, verifier = taken
    if error:
        return _error(request, f"GitHub refused the login: {error[:200]}")
    if not code:
        return _error(request, "Missing code parameter")
    exchanged = await _exchange_code(request, code, flow, verifier, state)
    if isinstance(exchanged, Response):
        return exchanged
    if state:  # always (`_take_flow` refused a flow without one)
        _finished(state)
    tokens, user, now = exchanged
    suffix = "/github/callback"
    info = _github_auth.user_info(user)
    session = _github_auth.github_session(info, found, tokens, now)
    lifetime = _github_auth.session_lifetime(tokens)
    _sessions.issue_session(request, None, session, lifetime, _cookie_path(request, suffix))
    _audit.audit("login", info.login or "unknown", _audit.client_address(request), {"method": "github_oauth"})
    return _back(request, flow.came_from, suffix)


async def github_logout(request: Request, came_from: str | None = None) -> Response:
    """Clear the session, revoke its GitHub token, redirect to `came_from` (same origin) or the index."""
    if (refused := _unavailable(request, "GitHub logout", AuthenticationType.GITHUB)) is not None:
        return refused
    if (refused := _refuse_cross_site(request)) is not None:
        return refused
    if (refused := _refuse_came_from(request, came_from)) is not None:
        return refused
    await _revoke_session(request)
    suffix = "/github/logout"
    _clear_session(request, suffix)
    return _back(request, came_from, suffix)


# --- the router ----------------------------------------------------------------------------------


def create_router() -> APIRouter:
    """A new router with the endpoints `/login`, `/logout`, `/status`, `/github/login`, `/github/callback`
    and `/github/logout`; include it with a prefix (c2c-all uses `/c2c/auth`)."""
    router = APIRouter()
    router.add_api_route("/login", login, methods=["GET", "POST"], name="c2c_auth_login")
    router.add_api_route("/logout", logout, methods=["GET", "POST"], name="c2c_auth_logout")
    router.add_api_route("/status", auth_status, methods=["GET"], name="c2c_auth_status", response_model=AuthInfo)
    router.add_api_route("/github/login", github_login, methods=["GET"], name="c2c_github_login")
    router.add_api_route("/github/callback", github_callback, methods=["GET"], name=CALLBACK_ROUTE)
    router.add_api_route("/github/logout", github_logout, methods=["GET", "POST"], name="c2c_github_logout")
    return router
