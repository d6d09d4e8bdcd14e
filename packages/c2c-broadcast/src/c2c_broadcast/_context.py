"""Context carriers: what the caller's context puts in a call, and what a handler runs inside.

A carrier has a name, a `capture()` run in the caller's task when a call is sent (a string, or
None for nothing), and an `apply(value)` returning a context manager the handler runs inside on
every replica (`value` is what the caller captured, or None when the call carried nothing for this
carrier: a 0.14 sender, a caller without a value, a malformed value). The captured values travel
in the `context` field of the request (an optional top-level field, see `_wire`), signed with
the rest when signing is on, ignored by c2casgiutils 0.14 replicas.

A carrier never breaks a call: a `capture()` that raises or returns something that may not travel
(not a string, empty, longer than `MAX_CONTEXT_VALUE_LENGTH`, not printable) sends nothing for
that carrier; an `apply()` that raises (or whose context manager raises on entry) is logged and
the handler runs without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager

from c2c_broadcast._wire import MAX_CONTEXT_ENTRIES, valid_context_entry

LOG = logging.getLogger("c2c_broadcast")

Capture = Callable[[], "str | None"]
"""Reads the caller's value (in the caller's task, when a call is sent)."""

Apply = Callable[["str | None"], AbstractContextManager[object]]
"""Returns the context manager a handler runs inside, given the caller's value (or None)."""


@dataclasses.dataclass(frozen=True)
class ContextCarrier:
    """A registered carrier (see `add_context_carrier`)."""

    name: str
    capture: Capture
    apply: Apply


_CARRIERS: dict[str, ContextCarrier] = {}


def add_context_carrier(name: str, capture: Capture, apply: Apply) -> None:
    """Carry a piece of the caller's context with every broadcast call, and apply it around the handler.

    `name`: the key in the message's `context` field (lower case letters, digits, `_`, `.`, `-`; at
    most 64 characters). `capture()`: called in the caller's task when a call is sent; returns the
    value to carry (a printable string of at most 256 characters) or None. `apply(value)`: returns
    a context manager; on each replica the handler runs inside it, with the caller's value or None.
    Registering a name again replaces its carrier (idempotent for the same functions). At most 16
    carriers. `ValueError` for a bad name or too many carriers.
    """
    if not valid_context_entry(name, "x"):
        raise ValueError(f"a context carrier name is lower case letters, digits, _, . and -, not {name!r}")
    if name not in _CARRIERS and len(_CARRIERS) >= MAX_CONTEXT_ENTRIES:
        raise ValueError(f"at most {MAX_CONTEXT_ENTRIES} context carriers")
    _CARRIERS[name] = ContextCarrier(name, capture, apply)


def remove_context_carrier(name: str) -> None:
    """Stop carrying `name` (no error when it is not registered)."""
    _CARRIERS.pop(name, None)


def context_carriers() -> tuple[str, ...]:
    """The names of the registered carriers."""
    return tuple(_CARRIERS)


def capture_context() -> dict[str, str] | None:
    """The values of the registered carriers in the current context; None when there is nothing to send."""
    captured: dict[str, str] = {}
    for carrier in list(_CARRIERS.values()):
        try:
            value = carrier.capture()
        except Exception:
            LOG.exception("Broadcast: the context carrier %r failed to capture; sent without it", carrier.name)
            continue
        if value is None:
            continue
        if valid_context_entry(carrier.name, value):
            captured[carrier.name] = value
        else:
            LOG.warning(
                "Broadcast: the context carrier %r captured a value that cannot travel (a %s); sent without it",
                carrier.name,
                type(value).__name__,
            )
    return captured or None


@contextlib.contextmanager
def applied_context(values: Mapping[str, str] | None) -> Iterator[None]:
    """Enter every registered carrier's context manager with the caller's value (or None)."""
    values = values or {}
    with contextlib.ExitStack() as stack:
        for carrier in list(_CARRIERS.values()):
            try:
                stack.enter_context(carrier.apply(values.get(carrier.name)))
            except Exception:
                LOG.exception(
                    "Broadcast: the context carrier %r failed to apply; the handler runs without it", carrier.name
                )
        yield
