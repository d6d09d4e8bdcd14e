"""Calls to GitHub: token exchange and refresh, user, repository permissions, revocation.

Every call has the configured timeout; a network error, a timeout or a 5xx answer raises
`GitHubUnavailable` (the routes turn it into a 503); a refusal (401, bad grant) raises
`GitHubRejected`. The user of a token and its permissions on a repository are cached for
`C2C__AUTH__GITHUB__CACHE_TTL`, keyed by a digest of the token (never the token itself); the
answer to a refresh is kept one minute in memory so that concurrent requests share it.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx

from c2c_auth._settings import GitHubSettings
from c2c_config import LoopLocal

LOG = logging.getLogger("c2c_auth")

_CACHE_SIZE = 1024


GITHUB_UNAVAILABLE_MESSAGE = "GitHub is unavailable, authentication cannot be checked now; try again later"
"""The detail of the 503 answered when GitHub cannot be reached."""


class GitHubUnavailable(Exception):
    """GitHub did not answer in time, or answered with a server error."""


class GitHubRejected(Exception):
    """GitHub refused the request (bad code, revoked or expired token...)."""


class TTLCache:
    """A small bounded cache with a time to live; `clock` is injectable for tests."""

    def __init__(self, size: int = _CACHE_SIZE, clock: Callable[[], float] = time.monotonic) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, ...], tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.clock = clock

    def get(self, key: tuple[str, ...], ttl: float) -> Any | None:
        """The cached value, or None when absent, expired, or caching is off (`ttl` <= 0)."""
        if ttl <= 0:
            return None
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] <= self.clock():
                del self._items[key]
                return None
            return item[1]

    def put(self, key: tuple[str, ...], value: Any, ttl: float) -> None:
        """Store `value` for `ttl` seconds (nothing when `ttl` <= 0)."""
        if ttl <= 0:
            return
        with self._lock:
            self._items[key] = (self.clock() + ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def forget_token(self, token_digest: str) -> None:
        """Drop every entry of one token (after logout or a 401)."""
        with self._lock:
            for key in [key for key in self._items if key[1] == token_digest]:
                del self._items[key]

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._items.clear()


CACHE = TTLCache()


def token_digest(token: str) -> str:
    """The cache key of a token: a digest, so that the cache never holds the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def _new_client() -> httpx.AsyncClient:
    # The timeout is set per request from the current settings.
    return httpx.AsyncClient(follow_redirects=False, headers={"Accept": "application/json", "User-Agent": "c2c-auth"})


async def _close_client(client: httpx.AsyncClient) -> None:
    await client.aclose()


CLIENTS: LoopLocal[httpx.AsyncClient] = LoopLocal(_new_client, _close_client, name="GitHub HTTP client")
"""One pooled `httpx.AsyncClient` per event loop, so calls to GitHub reuse their connections.

Created on first use in a loop and closed on that loop when it ends (or by `c2c_auth.shutdown()`):
several lifespans in one process (a `TestClient` per test) never share a client.
"""


def client() -> httpx.AsyncClient:
    """The pooled client of the running loop (a new one if the application closed it)."""
    current = CLIENTS.get()
    if current.is_closed:
        CLIENTS.forget()
        current = CLIENTS.get()
    return current


async def _send(
    settings: GitHubSettings, what: str, method: str, url: str, auth: tuple[str, str] | None = None, **kwargs: Any
) -> httpx.Response:
    pooled = client()
    seconds = settings.timeout.total_seconds()
    request = pooled.build_request(method, url, timeout=seconds, **kwargs)
    try:
        # httpx's timeout bounds each phase (connect, write, each read, the pool); the whole call,
        # a slowly trickling answer included, is bounded by the same value once more.
        async with asyncio.timeout(seconds):
            response = await pooled.send(request, auth=auth)
    except (httpx.TimeoutException, TimeoutError) as error:
        raise GitHubUnavailable(f"GitHub did not answer the {what} request in time") from error
    except httpx.HTTPError as error:
        raise GitHubUnavailable(f"GitHub cannot be reached for the {what} request ({type(error).__name__})") from error
    if response.status_code >= 500 or response.status_code == 429:
        raise GitHubUnavailable(f"GitHub answered the {what} request with HTTP {response.status_code}")
    if response.status_code == 403 and _rate_limited(response):
        # GitHub's rate limits answer 403 too: "not now", not "no access" (never cached as a refusal,
        # never a logout).
        raise GitHubUnavailable(f"GitHub rate-limited the {what} request (HTTP 403)")
    return response


def _rate_limited(response: httpx.Response) -> bool:
    """Whether a 403 is one of GitHub's rate limits: the primary (`x-ratelimit-remaining: 0`) or a
    secondary one (`retry-after`)."""
    return response.headers.get("x-ratelimit-remaining", "").strip() == "0" or "retry-after" in response.headers


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as error:
        raise GitHubUnavailable(f"GitHub answered the {what} request with something that is not JSON") from error
    if not isinstance(data, dict):
        raise GitHubUnavailable(f"GitHub answered the {what} request with something that is not a JSON object")
    return data


async def _token_request(settings: GitHubSettings, form: dict[str, str], what: str) -> dict[str, Any]:
    if settings.client_id is None or settings.client_secret is None:
        raise GitHubRejected("C2C__AUTH__GITHUB__CLIENT_ID and C2C__AUTH__GITHUB__CLIENT_SECRET are not set")
    body = {"client_id": settings.client_id, "client_secret": settings.client_secret.get_secret_value(), **form}
    response = await _send(settings, what, "POST", settings.token_url, data=body)
    if response.status_code in (400, 401, 403, 404, 422):
        raise GitHubRejected(f"GitHub refused the {what} (HTTP {response.status_code})")
    if response.status_code != 200:
        raise GitHubUnavailable(f"GitHub answered the {what} with HTTP {response.status_code}")
    data = _json_object(response, what)
    if "error" in data:
        # GitHub reports a bad code or refresh token with a 200 and an `error` field.
        raise GitHubRejected(f"GitHub refused the {what}: {str(data['error'])[:100]}")
    if not isinstance(data.get("access_token"), str) or not data["access_token"]:
        raise GitHubRejected(f"GitHub's answer to the {what} holds no access token")
    if str(data.get("token_type", "bearer")).lower() != "bearer":
        raise GitHubRejected(f"GitHub's answer to the {what} is not a bearer token")
    return data


async def exchange_code(
    settings: GitHubSettings, code: str, redirect_uri: str, code_verifier: str, state: str | None = None
) -> dict[str, Any]:
    """Exchange an authorization code (with its PKCE verifier) for tokens; `state` is sent too, as
    0.14 did (GitHub ignores it; an OAuth proxy or another provider may check it)."""
    form = {"code": code, "redirect_uri": redirect_uri, "code_verifier": code_verifier}
    if state is not None:
        form["state"] = state
    return await _token_request(settings, form, "token exchange")


class _RefreshLock:
    """A refresh token's lock and how many requests hold it or wait for it (it is dropped at zero)."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


# Per event loop: an asyncio lock belongs to the loop that uses it.
_REFRESH_LOCKS: LoopLocal[dict[str, _RefreshLock]] = LoopLocal(dict, name="GitHub refresh locks")
# GitHub refresh tokens are single use: requests that arrive together with the same session (a page
# loading several resources) share one refresh instead of the second one failing and logging out.
_REFRESH_REUSE_SECONDS = 60.0


async def refresh_token(settings: GitHubSettings, refresh: str) -> dict[str, Any]:
    """Use a refresh token (GitHub Apps with expiring user tokens), at most once per token in this process.

    Requests with the same refresh token wait for each other: the first asks GitHub, the others take
    its answer (kept `_REFRESH_REUSE_SECONDS`). The lock stays while any request holds it or waits
    for it, so a request arriving meanwhile never runs a second refresh beside a waiting one.
    """
    digest = token_digest(refresh)
    key = ("refresh", digest)
    locks = _REFRESH_LOCKS.get()
    entry = locks.get(digest)
    if entry is None:
        entry = locks[digest] = _RefreshLock()
    entry.users += 1
    try:
        async with entry.lock:
            done = CACHE.get(key, _REFRESH_REUSE_SECONDS)
            if done is not None:
                return dict(done)
            form = {"grant_type": "refresh_token", "refresh_token": refresh}
            tokens = await _token_request(settings, form, "token refresh")
            CACHE.put(key, tokens, _REFRESH_REUSE_SECONDS)
            return tokens
    finally:
        entry.users -= 1
        if entry.users == 0 and locks.get(digest) is entry:
            del locks[digest]


# --- bearer token validations ------------------------------------------------------------------------

REFUSED_BEARERS = TTLCache(size=10_000)
"""Bearer tokens GitHub refused, by digest (never the token), for `C2C__AUTH__GITHUB__BEARER_REFUSAL_CACHE_TTL`."""


class ValidationsCapped(GitHubUnavailable):
    """Too many bearer token validations (rate or concurrency cap): the token is not checked now."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateCap:
    """A token bucket of `per_minute` validations per minute (burst `per_minute`), for the whole process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens: float | None = None
        self._updated = 0.0

    def take(self, per_minute: int) -> float | None:
        """Take one validation: None when allowed, else the seconds until the next one is."""
        rate = per_minute / 60.0
        with self._lock:
            now = self.clock()
            tokens = float(per_minute) if self._tokens is None else self._tokens
            tokens = min(float(per_minute), tokens + (now - self._updated) * rate)
            self._updated = now
            if tokens >= 1.0:
                self._tokens = tokens - 1.0
                return None
            self._tokens = tokens
            return (1.0 - tokens) / rate

    def give_back(self, per_minute: int) -> None:
        """Return one validation taken by `take` and not used (a later cap refused the request)."""
        with self._lock:
            if self._tokens is not None:
                self._tokens = min(float(per_minute), self._tokens + 1.0)

    def reset(self) -> None:
        """A full bucket again."""
        with self._lock:
            self._tokens = None


class ClientRateCaps:
    """A `RateCap` per client address, for the `size` addresses seen last (an older one starts full again)."""

    def __init__(self, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self._lock = threading.Lock()
        self._caps: OrderedDict[str, RateCap] = OrderedDict()

    def _cap(self, client: str) -> RateCap:
        with self._lock:
            cap = self._caps.get(client)
            if cap is None:
                cap = self._caps[client] = RateCap(lambda: self.clock())
                if len(self._caps) > self.size:
                    self._caps.popitem(last=False)
            else:
                self._caps.move_to_end(client)
            return cap

    def take(self, client: str, per_minute: int) -> float | None:
        """Take one validation for `client`: None when allowed, else the seconds until the next one is."""
        return self._cap(client).take(per_minute)

    def give_back(self, client: str, per_minute: int) -> None:
        """Return one validation `client` took and did not use."""
        self._cap(client).give_back(per_minute)

    def reset(self) -> None:
        """Every address's bucket full again."""
        with self._lock:
            self._caps.clear()


BEARER_RATE = RateCap()
"""The process-wide rate cap of bearer token validations sent to GitHub."""


def share_key(client: Any) -> str | None:
    """The key of a request's share of bearer validations, from its client `(host, port)`: the IPv4
    address, or the /64 of an IPv6 one (a host holds a whole /64); None (no share, the process cap
    only) for an address that is not global (loopback, private, link-local: a reverse proxy's,
    behind which every client would share one share) and for a host that is no IP address."""
    host = getattr(client, "host", None) if not isinstance(client, tuple) else client[0]
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not address.is_global:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address.ipv4_mapped or address) if isinstance(address, ipaddress.IPv6Address) else str(address)


BEARER_CLIENT_RATES = ClientRateCaps()
"""The per-client share of `BEARER_RATE`: one address sending unknown tokens cannot spend it all."""

# Per event loop (an asyncio semaphore belongs to its loop), one per configured limit.
_BEARER_SLOTS: LoopLocal[dict[int, asyncio.Semaphore]] = LoopLocal(dict, name="GitHub bearer validation slots")


def cached_user(settings: GitHubSettings, token: str) -> dict[str, Any] | None:
    """The cached user of a token (see `get_user`), without calling GitHub; None when not cached."""
    cached = CACHE.get(("user", token_digest(token), settings.user_url), settings.cache_ttl.total_seconds())
    return None if cached is None else dict(cached)


async def validate_bearer(settings: GitHubSettings, token: str, client: str | None = None) -> dict[str, Any]:
    """The user of a bearer token: from the cache, else from GitHub under the rate and concurrency caps.

    `client` (the request's client address, when the server gives one) has its own share of the
    rate, `BEARER_VALIDATIONS_PER_CLIENT_PER_MINUTE`, taken first. Raises `GitHubRejected` (a
    refusal, remembered for `BEARER_REFUSAL_CACHE_TTL`), `ValidationsCapped` (too many validations
    now) or `GitHubUnavailable`.
    """
    digest = token_digest(token)
    refusal_ttl = settings.bearer_refusal_cache_ttl.total_seconds()
    if REFUSED_BEARERS.get(("refused", digest, settings.user_url), refusal_ttl) is not None:
        raise GitHubRejected("GitHub refused this token recently")
    cached = cached_user(settings, token)
    if cached is not None:
        return cached
    share = settings.bearer_validations_per_client_per_minute
    if client is not None:
        wait = BEARER_CLIENT_RATES.take(client, share)
        if wait is not None:
            raise ValidationsCapped("too many bearer token validations from this client this minute", wait)
    wait = BEARER_RATE.take(settings.bearer_validations_per_minute)
    if wait is not None:
        if client is not None:
            BEARER_CLIENT_RATES.give_back(client, share)
        raise ValidationsCapped("too many bearer token validations this minute", wait)
    slots = _BEARER_SLOTS.get().setdefault(
        settings.bearer_max_concurrency, asyncio.Semaphore(settings.bearer_max_concurrency)
    )
    try:
        async with asyncio.timeout(settings.timeout.total_seconds()):
            await slots.acquire()
    except TimeoutError as error:
        raise ValidationsCapped("too many bearer token validations in flight", 1.0) from error
    try:
        return await get_user(settings, token)
    except GitHubRejected:
        REFUSED_BEARERS.put(("refused", digest, settings.user_url), True, refusal_ttl)
        raise
    finally:
        slots.release()


def _auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}


async def get_user(settings: GitHubSettings, token: str) -> dict[str, Any]:
    """The user a token belongs to (cached); `GitHubRejected` when GitHub does not accept the token."""
    key = ("user", token_digest(token), settings.user_url)
    cached = CACHE.get(key, settings.cache_ttl.total_seconds())
    if cached is not None:
        return dict(cached)
    response = await _send(settings, "user", "GET", settings.user_url, headers=_auth_headers(token))
    if response.status_code != 200:
        raise GitHubRejected(f"GitHub refused the token for the user request (HTTP {response.status_code})")
    data = _json_object(response, "user")
    if not isinstance(data.get("login"), str) or not data["login"]:
        raise GitHubRejected("GitHub's user answer holds no login")
    CACHE.put(key, data, settings.cache_ttl.total_seconds())
    return data


async def get_permissions(settings: GitHubSettings, token: str, repository: str) -> dict[str, bool]:
    """The token's permissions on `repository` (cached); empty when GitHub gives none.

    `GitHubRejected` when the token is not accepted (401): the caller logs the user out.
    """
    key = ("permissions", token_digest(token), settings.repo_url, repository)
    cached = CACHE.get(key, settings.cache_ttl.total_seconds())
    if cached is not None:
        return dict(cached)
    url = f"{settings.repo_url.rstrip('/')}/{repository}"
    response = await _send(settings, "repository", "GET", url, headers=_auth_headers(token))
    if response.status_code == 401:
        raise GitHubRejected("GitHub does not accept the token any more")
    permissions: dict[str, bool] = {}
    if response.status_code == 200:
        raw = _json_object(response, "repository").get("permissions")
        if isinstance(raw, dict):
            permissions = {str(name): value is True for name, value in raw.items()}
    # 403/404: no access to the repository, which is an answer too (no permission at all).
    CACHE.put(key, permissions, settings.cache_ttl.total_seconds())
    return permissions


async def revoke(settings: GitHubSettings, token: str) -> None:
    """Revoke an OAuth token at GitHub (best effort: failures are logged, never raised)."""
    CACHE.forget_token(token_digest(token))
    if not settings.revoke_url or settings.client_id is None or settings.client_secret is None:
        return
    url = settings.revoke_url.replace("{client_id}", settings.client_id)
    auth = (settings.client_id, settings.client_secret.get_secret_value())
    try:
        response = await _send(settings, "revocation", "DELETE", url, auth=auth, json={"access_token": token})
    except GitHubUnavailable as error:
        LOG.warning("GitHub token revocation failed: %s", error)
        return
    if response.status_code not in (204, 200, 404):
        LOG.warning("GitHub token revocation answered HTTP %s", response.status_code)
