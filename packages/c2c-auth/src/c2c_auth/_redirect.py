"""`came_from`: where to send the browser after login or logout, same origin only.

Only a path on this site is accepted, returned as a relative reference (`/c2c/?tab=x`). An
absolute URL is accepted only when it is `http` or `https` on the request's host name (any port:
behind a TLS proxy the application may see `http` and another port than the browser, as
c2casgiutils 0.14 allowed), and it is reduced to its path, so it can only lead to this site.
Everything a browser could resolve to another origin is refused: `//evil`, `/\\evil`,
`https:evil`, `\\\\evil`, userinfo tricks, control characters and whitespace (browsers strip tabs
and newlines), percent-encoded slashes or backslashes that decode to one of those, and any non-ASCII
character (full-width solidus and other Unicode look-alikes; callers percent-encode).

`cross_site()`: whether a request comes from another site (logout refuses it; a secret it carries
is charged to the unknown devices' budget, never to a device's).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

from starlette.requests import Request

MAX_LENGTH = 2048


def _dangerous_path(path: str) -> bool:
    # Percent-decoding is applied repeatedly: a proxy or framework may decode once more than we do.
    decoded = path
    for _ in range(4):
        if (
            "\\" in decoded
            or decoded.startswith("//")
            or any(ord(char) < 0x20 or ord(char) == 0x7F for char in decoded)
            # A dot segment: a browser resolves `/.//evil.example` to the path `//evil.example`, which
            # any later redirect built from the path turns into another host. A browser never sends one.
            or any(segment in (".", "..") for segment in decoded.split("/"))
        ):
            return True
        following = unquote(decoded)
        if following == decoded:
            return False
        decoded = following
    return True  # still changing after several rounds: refuse rather than guess


def safe_came_from(value: str | None, scheme: str, netloc: str) -> str | None:
    """The same-origin relative URL for `value`, or None when it is absent or not safe.

    `scheme` and `netloc` are those of the request (the site's own origin); only the host name of
    `netloc` is compared.
    """
    if not value or len(value) > MAX_LENGTH:
        return None
    if not value.isascii() or any(char.isspace() or ord(char) < 0x20 or char in "\\\x7f" for char in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme or parts.netloc:
        if parts.scheme.lower() not in ("http", "https") or "@" in parts.netloc or not parts.netloc:
            return None
        try:
            own = urlsplit(f"//{netloc}").hostname
            parts.port  # noqa: B018 (raises ValueError for a port that is no port)
            if own is None or parts.hostname != own:
                return None
        except ValueError:
            return None
        if not parts.path.startswith("/"):
            return None
    elif not parts.path.startswith("/"):
        return None
    if _dangerous_path(parts.path):
        return None
    result = urlunsplit(("", "", parts.path, parts.query, parts.fragment))
    # Re-parse the result: it must still be a plain path (no scheme or authority appeared).
    again = urlsplit(result)
    if again.scheme or again.netloc or not result.startswith("/") or result.startswith("//"):
        return None
    return result


def host_of(url: str) -> str | None:
    """The host name of a URL (an `Origin` or `Referer` value), None when it has none or is no URL."""
    try:
        return urlsplit(url).hostname or None
    except ValueError:
        return None


def cross_site(request: Request) -> bool:
    """Whether the request comes from another site.

    A browser's `Sec-Fetch-Site` decides when there is one (no page can set it): `cross-site`, or
    `same-site` (a sibling host of the same domain, which may be anybody's). Without it (an older
    browser), an `Origin` or `Referer` naming another host (`Origin: null` included: a browser
    sends it for a form of a page whose referrer policy is `no-referrer`, or of a sandboxed frame).
    Hosts only: behind a TLS proxy the scheme and port the application sees may differ from the
    browser's."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site.strip().lower() in ("cross-site", "same-site")
    own = (request.url.hostname or "").lower()
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value is not None and (host_of(value) or "").lower() != own:
            return True
    return False
