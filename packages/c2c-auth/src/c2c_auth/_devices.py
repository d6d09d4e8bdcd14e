"""Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies") for secret mode.

After a successful secret login the browser gets a device cookie that names the device (a random
id) and is signed with a key derived from the master secret (`Keys.device_key`). Wrong secrets are
then counted per budget:

- a request with a valid device cookie, from this site: the budget of its device;
- any other request (an unknown device, whatever its address; or a request from another site): one
  budget shared by every unknown device (and by every replica through Redis).

A request with a valid session never goes through the limiter. So the right secret from a known
device is never refused because of other clients' wrong guesses, and guessing stays slow.

Cookie value (version 1): `1.<device id>.<issued at, Unix seconds>.<HMAC-SHA256, base64url>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from fastapi import Request

from c2c_auth._modes import current_settings
from c2c_auth._redirect import cross_site
from c2c_auth._sessions import keys, set_cookie

_VERSION = "1"
_MAX_LENGTH = 256
UNKNOWN_DEVICES = "unknown-devices"
"""The budget shared by every request without a valid device cookie."""


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_cookie(key: bytes, device_id: str, issued_at: int) -> str:
    """The signed value of a device cookie."""
    payload = f"{_VERSION}.{device_id}.{issued_at}"
    return f"{payload}.{_mac(key, payload)}"


def read_cookie(key: bytes, value: str | None, max_age: float, now: float | None = None) -> str | None:
    """The device id of a valid, unexpired device cookie; None for anything else (never raises)."""
    if not value or len(value) > _MAX_LENGTH or not value.isascii():
        return None
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != _VERSION or not parts[2].isdigit() or len(parts[2]) > 12:
        return None
    version, device_id, issued, mac = parts
    if not device_id or not hmac.compare_digest(mac, _mac(key, f"{version}.{device_id}.{issued}")):
        return None
    current = time.time() if now is None else now
    if not int(issued) - 60 <= current <= int(issued) + max_age:
        return None
    return device_id


def device_id(request: Request) -> str | None:
    """The device of the request's valid device cookie, or None (unknown device)."""
    found = keys()
    if found is None:
        return None
    settings = current_settings().device_cookie
    return read_cookie(found.device_key, request.cookies.get(settings.name), settings.age.total_seconds())


def budget(request: Request) -> str:
    """The wrong-secret budget of the request: its device's, or the one of the unknown devices.

    A request from another site (`cross_site`: a link, a form or a popup there) is charged to the
    unknown devices even with a valid device cookie: the browser sends that cookie on a top-level
    navigation (`SameSite=Lax`), and a page elsewhere could otherwise spend the device's own budget
    with wrong secrets and lock its admin out.
    """
    if cross_site(request):
        return UNKNOWN_DEVICES
    device = device_id(request)
    return f"device:{device}" if device is not None else UNKNOWN_DEVICES


def remember_device(request: Request, path: str) -> None:
    """After a successful secret login: give the browser a device cookie (kept when it has a valid one)."""
    found = keys()
    if found is None or device_id(request) is not None:
        return
    settings = current_settings().device_cookie
    age = settings.age.total_seconds()
    value = make_cookie(found.device_key, secrets.token_urlsafe(16), int(time.time()))
    set_cookie(request, None, settings.name, value, int(age), path)
