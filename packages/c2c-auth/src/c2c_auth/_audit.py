"""The audit records of the authentication, on the `c2c_auth.audit` logger.

Every login, logout and (counted per time window) refused login is one INFO record. Its message
reads well in a plain log; its structured fields are LogRecord attributes given with `extra=`:

- `audit_action`: `login`, `logout` or `login_refused`;
- `audit_who`: the GitHub login, `secret` (secret mode), or `unknown` (a refused login);
- `audit_client`: the client address (`request.client.host`, the real client behind
  `ForwardedHeadersMiddleware`);
- `audit_time`: when, in seconds since the epoch (for `login_refused`: the last refusal of the window);
- `audit_details`: a JSON-ready dictionary (for `login_refused`: `count`, `budget`, `clients`,
  `window_start`, `window_seconds`).

A record never holds a secret, a token, a cookie or a device id (a device budget is named by a
short digest of its id).

Refused logins are counted per budget (`_devices.budget`: one device, or every unknown device)
and per window of `RefusedLogins.window` seconds (60): one record per budget and window, with the
count, written when the window ends (a timer on the running loop), or earlier when the counts are
read (`flush_refused_logins()`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request

from c2c_auth._info import AuthInfo, AuthMethod

AUDIT_LOGGER_NAME = "c2c_auth.audit"
"""The name of the logger that carries the authentication's audit records."""
AUDIT_FIELDS = ("audit_action", "audit_who", "audit_client", "audit_time", "audit_details")
"""The LogRecord attributes (given with `extra=`) of an audit record."""
AUDIT_LOG = logging.getLogger(AUDIT_LOGGER_NAME)

_MAX_CLIENTS = 10


def client_address(request: Request | None) -> str:
    """The client address of a request (`unknown` when the server gives none)."""
    if request is None or request.client is None or not request.client.host:
        return "unknown"
    return request.client.host[:100]


def who(auth_info: AuthInfo) -> str:
    """Who an `AuthInfo` is for an audit record: the GitHub login, `secret`, or `unknown`."""
    if auth_info.is_logged_in and auth_info.user.login:
        return auth_info.user.login
    if auth_info.is_logged_in and auth_info.type is AuthMethod.SECRET:
        return "secret"
    return "unknown"


def audit(
    action: str,
    actor: str,
    client: str,
    details: dict[str, Any] | None = None,
    *,
    when: float | None = None,
    logger: logging.Logger = AUDIT_LOG,
) -> None:
    """Write one audit record on `logger` (default `c2c_auth.audit`) with the structured fields in `extra=`."""
    extra = {
        "audit_action": action,
        "audit_who": actor,
        "audit_client": client,
        "audit_time": time.time() if when is None else when,
        "audit_details": dict(details or {}),
    }
    logger.info("Audit: %s by %s from %s", action, actor, client, extra=extra)


def budget_label(budget: str | None) -> str:
    """A budget's name for a record: `unknown-devices`, `session`, or `device <digest>` (never the device id)."""
    from c2c_auth._devices import UNKNOWN_DEVICES

    if budget is None:
        return "session"
    if budget == UNKNOWN_DEVICES:
        return budget
    return "device " + hashlib.sha256(budget.encode()).hexdigest()[:12]


@dataclasses.dataclass
class _Window:
    start: float
    last: float
    count: int = 0
    clients: list[str] = dataclasses.field(default_factory=list)


class RefusedLogins:
    """Refused logins counted per budget and time window: one audit record per budget and window."""

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.time, max_budgets: int = 1000) -> None:
        self.window = window
        self.clock = clock
        self.max_budgets = max_budgets
        self._open: dict[str, _Window] = {}

    def refused(self, budget: str | None, client: str) -> None:
        """Count one refused login of `budget` from `client`; the window's record is written when it ends."""
        now = self.clock()
        self.flush(now)
        label = budget_label(budget)
        current = self._open.get(label)
        if current is None:
            if len(self._open) >= self.max_budgets:  # a flood of budgets: write what is open, start again
                self.flush(now, everything=True)
            current = self._open[label] = _Window(start=now, last=now)
            self._schedule()
        current.count += 1
        current.last = now
        if client not in current.clients and len(current.clients) < _MAX_CLIENTS:
            current.clients.append(client)

    def _schedule(self) -> None:
        """Flush when the window ends, on the running loop (nothing kept: a loop that ends first drops it)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_later(self.window + 0.05, self.flush)

    def flush(self, now: float | None = None, *, everything: bool = False) -> int:
        """Write the records of the windows that ended (all of them with `everything`); return how many."""
        current = self.clock() if now is None else now
        done = [label for label, window in self._open.items() if everything or current >= window.start + self.window]
        for label in done:
            window = self._open.pop(label)
            details = {
                "count": window.count,
                "budget": label,
                "clients": window.clients,
                "window_start": window.start,
                "window_seconds": self.window,
            }
            client = window.clients[0] if len(window.clients) == 1 else ", ".join(window.clients)
            audit("login_refused", "unknown", client, details, when=window.last)
        return len(done)

    def reset(self) -> None:
        """Forget the open windows without writing them."""
        self._open.clear()


REFUSED_LOGINS = RefusedLogins()
"""This process's refused-login counts."""


def flush_refused_logins() -> int:
    """Write the refused-login records of every open window now (before reading the audit trail)."""
    return REFUSED_LOGINS.flush(everything=True)
