"""The request id (c2c-headers) carried by broadcast calls (c2c-broadcast's context carriers).

Neither member depends on the other: this module ties them. `c2casgiutils.startup()` calls
`install_broadcast_carrier()`: a broadcast sent while a request is handled carries its id, and the
handler runs with that id as the current request id on every replica, so its log lines
(`RequestIdFilter`) and Sentry events carry it. A received id that is not well formed
(`is_valid_request_id`) is not applied: the handler then runs without an id.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from c2c_broadcast import add_context_carrier
from c2c_headers.request_id import STATE_KEY, current_request_id, is_valid_request_id, request_id_context

CARRIER = STATE_KEY
"""The carrier's name, and the key in the broadcast message's `context` field (`request_id`)."""


def apply_request_id(value: str | None) -> AbstractContextManager[None]:
    """The caller's id as the current request id around a broadcast handler (None when absent or malformed)."""
    return request_id_context(value if value is not None and is_valid_request_id(value) else None)


def install_broadcast_carrier() -> None:
    """Carry the current request id with every broadcast call (idempotent)."""
    add_context_carrier(CARRIER, current_request_id, apply_request_id)
