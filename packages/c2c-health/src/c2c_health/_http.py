"""A minimal HTTP/1.1 client on asyncio streams: send one request, read the status line, close.

Enough for probing a health URL without a dependency, and cancellable at any point (a thread
running urllib could not be interrupted by a timeout). Standard library only, so that
`python -m c2c_health` starts fast.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
import urllib.parse
from collections.abc import Mapping

USER_AGENT = "c2c-health"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class HTTPProbeError(Exception):
    """The URL is invalid or the server's answer is not HTTP."""


# c2c-config's `is_credential_name` (its default, for parameters), copied: importing c2c_config would
# load pydantic (a slow start for a probe run every few seconds); `tests/test_redaction.py` checks
# that the two agree, on their vocabularies and on generated names.
_CREDENTIAL_FRAGMENTS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "auth",
    "credential",
    "signature",
    "apikey",
    "accesskey",
    "clientkey",
    "privatekey",
    "secretkey",
    "signingkey",
    "encryptionkey",
    "session",
    "sessid",
    "csrf",
    "xsrf",
    "jwt",
    "cookie",
    "bearer",
)
_CREDENTIAL_WORDS = frozenset({"key", "pass", "pw", "sid", "sig", "otp", "pin", "ticket", "verifier"})
_CREDENTIAL_NAMES = frozenset({"code", "state"})
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def _is_credential_name(name: str) -> bool:
    plain = urllib.parse.unquote_plus(name)
    compact = _NOT_ALPHANUMERIC.sub("", plain.casefold())
    if not compact:
        return False
    words = {word.casefold() for word in _WORD.findall(plain)}
    words.add(compact)
    return (
        compact in _CREDENTIAL_NAMES
        or compact.endswith("key")
        or any(fragment in compact for fragment in _CREDENTIAL_FRAGMENTS)
        or not words.isdisjoint(_CREDENTIAL_WORDS)
    )


def _mask_query(query: str) -> str:
    pieces = query.split("&")
    for index, piece in enumerate(pieces):
        name, separator, value = piece.partition("=")
        if separator and value and _is_credential_name(name):
            pieces[index] = f"{name}=***"
    return "&".join(pieces)


def mask_password(url: str) -> str:
    """The URL with its password and credential query values (`?secret=`) replaced by `***` (for messages).

    Standard library only, unlike c2c_config's `redact_url`, which it agrees with on a probe's URL
    (`http://localhost:8080/c2c/health_checks?secret=...` must not show in a Kubernetes event).
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.query:
        parts = parts._replace(query=_mask_query(parts.query))
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}")
    return urllib.parse.urlunsplit(parts)


def validate_url(url: str) -> urllib.parse.SplitResult:
    """Parse an `http://` or `https://` URL with a host; raise `ValueError` otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{mask_password(url)!r} is not an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        raise ValueError(f"{mask_password(url)!r}: {error}") from None
    return parts


def _request_bytes(parts: urllib.parse.SplitResult, method: str, headers: Mapping[str, str]) -> bytes:
    host = parts.hostname or ""
    host_header = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        host_header += f":{parts.port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}", f"User-Agent: {USER_AGENT}", "Connection: close"]
    if parts.username is not None:
        credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        lines.append("Authorization: Basic " + base64.b64encode(credentials.encode()).decode("ascii"))
    for key, value in headers.items():
        if any(char in key + value for char in "\r\n"):
            raise ValueError(f"header {key!r} contains a line break")
        lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def fetch_status(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """Send one request to `url` and return the response's status code (redirects are not followed).

    Raises:
        ValueError: the URL is not http(s).
        OSError: the connection failed.
        HTTPProbeError: the answer is not an HTTP response.

    Bound it with `asyncio.timeout()`: it can be cancelled at any point.
    """
    parts = validate_url(url)
    request = _request_bytes(parts, method, headers or {})
    return await _exchange(parts, request, ssl_context)


_default_context: ssl.SSLContext | None = None


async def _system_context() -> ssl.SSLContext:
    """The context verifying against the system CAs, built once, off the loop (loading the CAs takes tens of ms)."""
    global _default_context
    if _default_context is None:
        _default_context = await asyncio.to_thread(ssl.create_default_context)
    return _default_context


async def _exchange(parts: urllib.parse.SplitResult, request: bytes, ssl_context: ssl.SSLContext | None) -> int:
    secure = parts.scheme == "https"
    context = (ssl_context or await _system_context()) if secure else None
    reader, writer = await asyncio.open_connection(
        parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme], ssl=context
    )
    try:
        writer.write(request)
        await writer.drain()
        try:
            line = await reader.readline()
        except ValueError as error:  # asyncio's stream limit: 64 KiB without a line break
            raise HTTPProbeError("not an HTTP response: no line break within 64 KiB") from error
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            # Bounded: a TLS peer may never answer the close_notify.
            await asyncio.wait_for(writer.wait_closed(), 1.0)
    return parse_status_line(line)


def parse_status_line(line: bytes) -> int:
    """The status code of an HTTP/1.x status line (`HTTP/1.1 200 OK`); `HTTPProbeError` for anything else."""
    fields = line.decode("latin-1").split(" ", 2)
    code = fields[1].rstrip("\r\n") if len(fields) > 1 else ""
    if not fields[0].startswith("HTTP/") or len(code) != 3 or not all("0" <= char <= "9" for char in code):
        raise HTTPProbeError(f"not an HTTP response: {line[:80]!r}")
    return int(code)
