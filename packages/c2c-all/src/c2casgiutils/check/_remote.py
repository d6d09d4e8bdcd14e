"""`--url`: what a running service receives, read through its request-headers tool (`/c2c/headers/`).

The check sends credentials to the URL: the secret (`X-API-Key`, `--secret` or
`C2C__AUTH__SECRET`), the URL's user-info (as HTTP Basic authentication) and its credential-named
query parameters. Over `https://`, or plain `http://` to a loopback host (`localhost`,
`127.0.0.0/8`, `::1`, reached directly, never through a proxy of the environment), they are sent.
Over plain `http://` to any other host they would cross the network in clear: nothing is sent and
the check reports `C2C-E010`, unless `allow_insecure_http` (`--allow-insecure-http`) says to send
them anyway.

No message shows a credential: the URL is shown as `display_url` renders it (user-info as `***`,
credential-named query values masked by the request-headers tool's rule), and an error's text
has every credential of the URL, and the secret, replaced by `***` (`scrub`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import httpx

from c2c_config import redact_url
from c2casgiutils._settings import Settings
from c2casgiutils.check._findings import INSECURE_URL, PROXY_NONE, URL_UNREADABLE, Finding

PROXY_HEADER_NAMES = ("forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port")
"""Request headers that show a reverse proxy in front of the service."""

MASK = "***"
"""What replaces a credential in the check's messages."""

MIN_SCRUBBED = 4
"""A credential shorter than this is hidden in the URL shown, but not replaced in an error's text
(replacing one letter everywhere would garble the message and protect nothing)."""

# From the first '://' (or the start of a URL without one) to the LAST '@' of the URL: a '@', '/',
# '?', '#' or space in a password cannot end the hidden part early (at the cost of hiding more when
# the query holds an '@').


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """`(scheme, userinfo, rest)`: the scheme up to the first '://' (when an '@' follows it), the
    user-info up to the last '@', the rest after it; None without an '@'. Linear: the text is the
    user's `--url`, whatever it holds."""
    last_at = url.rfind("@")
    if last_at < 0:
        return None
    first = url.find("://")
    if first >= 0 and first + 3 <= last_at:
        return url[: first + 3], url[first + 3 : last_at], url[last_at + 1 :]
    return "", url[:last_at], url[last_at + 1 :]


def _name_masker() -> Callable[[str], bool]:
    # The request-headers tool's rule; imported on use: `import c2casgiutils.check` stays light.
    from c2casgiutils.tools.headers import NameMasker

    return NameMasker()


def display_url(url: str) -> str:
    """`url` as the check's messages show it: user-info as `***`, credential-named query values as `***`.

    `http://admin:pw@host/c2c?secret=x&a=1#key=y` → `http://***@host/c2c?secret=***&a=1#key=***`
    (also without a scheme, and whatever the URL holds: it is one URL, its query runs to the '#').
    """
    from c2casgiutils.tools.headers import mask_query

    masked = _name_masker()

    def parameters(text: str) -> str:  # a '?' inside a query starts another one (`?a=1?token=t`)
        return "?".join(mask_query(segment, masked, MASK) for segment in text.split("?"))

    split = _split_userinfo(url)
    shown = url if split is None else f"{split[0]}{MASK}@{split[2]}"
    shown, hash_sign, fragment = shown.partition("#")
    path, question_mark, query = shown.partition("?")
    return f"{path}{question_mark}{parameters(query)}{hash_sign}{parameters(fragment)}"


def _userinfo_credentials(url: str) -> list[str]:
    """The user-info written in `url` (up to its last '@'), its user and its password; empty without."""
    split = _split_userinfo(url)
    if split is None:
        return []
    userinfo = split[1]
    user, _, password = userinfo.partition(":")
    return [userinfo, user, password]


def _query_credentials(url: str) -> list[str]:
    """The values of the credential-named parameters of `url`'s query and fragment (raw, as written)."""
    masked = _name_masker()
    values = []
    for query in re.split(r"[?#]", url)[1:]:
        for piece in query.split("&"):
            name, equal, value = piece.partition("=")
            if equal and value and masked(unquote_plus(name)):
                values.append(value)
    return values


def _forms(text: str) -> Iterator[str]:
    """`text` as an error message may spell it: raw, URL-encoded or decoded, escaped as in a `repr`."""
    for form in {text, unquote(text), unquote_plus(text), quote(text, safe=""), quote_plus(text, safe="")}:
        yield form
        yield repr(form)[1:-1]
        yield repr(form.encode("utf-8", "surrogatepass"))[2:-1]


def scrub(text: str, url: str, secret: str | None) -> str:
    """`text` (an error's message) with the credentials of `url` and `secret` replaced by `***`.

    Also hides the password of any URL in it (`c2c_config.redact_url`) and masks the
    credential-named query values of its URLs.
    """
    from c2casgiutils.tools.headers import mask_url_queries

    credentials = [*_userinfo_credentials(url), *_query_credentials(url), *([secret] if secret else [])]
    forms = {form for credential in credentials for form in _forms(credential) if len(form) >= MIN_SCRUBBED}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return mask_url_queries(redact_url(text), _name_masker(), MASK)


def is_loopback(host: str) -> bool:
    """Whether `host` (a URL's host, without brackets) is this machine: `localhost` or a loopback address."""
    name = host.rstrip(".").casefold()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_header_value(secret: str) -> bool:
    return secret.isascii() and secret.isprintable()


async def fetch_request_headers(
    url: str, secret: str | None, limit: float, transport: httpx.AsyncBaseTransport | None = None
) -> dict[str, str]:
    """GET `<url>/headers/` (url: the service's `/c2c` address), with the secret in `X-API-Key` if given.

    A loopback host is reached directly (the environment's proxy variables are ignored), any
    other as the environment says. Raises `httpx.HTTPError`, `httpx.InvalidURL` or `ValueError`
    (not the tool's answer; its message shows the URL through `display_url`) on failure.
    """
    base = httpx.URL(url)
    target = base.copy_with(path=base.path.rstrip("/") + "/headers/")
    shown = display_url(str(target))
    request_headers = {"X-API-Key": secret} if secret else {}
    async with httpx.AsyncClient(
        timeout=limit, transport=transport, follow_redirects=False, trust_env=not is_loopback(base.host)
    ) as client:
        response = await client.get(target, headers=request_headers)
    if response.status_code != 200:
        raise ValueError(f"GET {shown} answered {response.status_code}")
    body: Any = response.json()
    headers = body.get("headers") if isinstance(body, dict) else None
    if not isinstance(headers, dict):
        raise ValueError(f"GET {shown} did not answer the request-headers tool's JSON")
    return {str(name).lower(): str(value) for name, value in headers.items()}


def _refusal(url: str, secret: str | None, allow_insecure_http: bool) -> Finding | None:
    """The finding that stops the request before anything is sent, or None when it may be sent."""
    shown = display_url(url)
    split = _split_userinfo(url)
    if split is not None and any(character in split[1] for character in "/?#"):
        # `http://u:p/w@host/`: the parser ends the host at the '/', and would send `u:p` to a host
        # named by the rest of the password.
        return URL_UNREADABLE.at(
            f"--url {shown} is ambiguous: write a '/', '?' or '#' of its user-info (or an '@' after it) "
            "percent-encoded (%2F, %3F, %23, %40)"
        )
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        # Its text may hold a piece of a password ("Invalid port: 'p'" for `http://u:p/w@h`).
        detail = "" if "@" in url or _query_credentials(url) else f": {scrub(str(error), url, secret)}"
        return URL_UNREADABLE.at(f"--url {shown} is not a valid URL{detail}")
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return URL_UNREADABLE.at(f"--url {shown} is not an http:// or https:// URL with a host")
    if secret and not _is_header_value(secret):
        return URL_UNREADABLE.at(
            "the secret cannot be sent in the X-API-Key header: it holds a character other than printable ASCII"
        )
    sends = [
        what
        for what, present in (
            ("the secret (X-API-Key)", bool(secret)),
            ("the URL's user-info", bool(parsed.userinfo)),
            ("the URL's credential-named query parameters", bool(_query_credentials(url))),
        )
        if present
    ]
    if parsed.scheme == "http" and sends and not is_loopback(parsed.host) and not allow_insecure_http:
        return INSECURE_URL.at(
            f"--url {shown} is plain http to {parsed.host}, which is not a loopback address: "
            f"{' and '.join(sends)} would cross the network in clear, nothing was sent"
        )
    return None


async def remote_findings(
    url: str,
    secret: str | None,
    settings: Settings,
    limit: float,
    transport: httpx.AsyncBaseTransport | None = None,
    allow_insecure_http: bool = False,
) -> list[Finding]:
    """Whether requests reach the service through a proxy that the settings ignore (proxy headers `none`).

    Credentials go over plain http to a non-loopback host only with `allow_insecure_http`
    (`C2C-E010` otherwise, nothing sent); no message shows a credential (see the module).
    """
    refusal = _refusal(url, secret, allow_insecure_http)
    if refusal is not None:
        return [refusal]
    try:
        received = await fetch_request_headers(url, secret, limit, transport)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as error:
        detail = scrub(str(error), url, secret)
        return [
            URL_UNREADABLE.at(
                f"cannot read the request headers of {display_url(url)}: {type(error).__name__}: {detail}"
            )
        ]
    seen = [name for name in PROXY_HEADER_NAMES if name in received]
    if seen and settings.proxy_headers.type == "none":
        return [
            PROXY_NONE.at(
                f"requests reach the service with {', '.join(seen)} while C2C__PROXY_HEADERS__TYPE is none: "
                "the application sees the proxy's address and scheme (wrong client addresses, http:// redirects)"
            )
        ]
    return []
