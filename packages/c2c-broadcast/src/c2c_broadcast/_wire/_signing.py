"""Signing: the HMAC-SHA256 of a message and its channel, its check on receipt, and the replay guard."""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

from c2c_broadcast._wire._message import META_KEY, DroppedMessage, check_number, dumps


def canonical(channel: str, message: Mapping[str, Any]) -> bytes:
    text = json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return channel.encode("utf-8", "surrogatepass") + b"\n" + text.encode("ascii")


def sign(secret: bytes, channel: str, message: Mapping[str, Any]) -> str:
    """The hex HMAC-SHA256 of a message (without `c2c.sig`) published on `channel`."""
    return hmac.new(secret, canonical(channel, message), hashlib.sha256).hexdigest()


def without_signature(message: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    body = dict(message)
    meta = dict(body[META_KEY])
    signature = meta.pop("sig", None)
    body[META_KEY] = meta
    return body, signature


def attach_signature(secret: bytes | None, channel: str, message: dict[str, Any]) -> str:
    """Serialise `message`, signing it first when a secret is given."""
    if secret is not None:
        # Sign what the receiver will parse: the JSON round trip turns tuples into lists and so on.
        parsed = json.loads(dumps(message))
        message[META_KEY]["sig"] = sign(secret, channel, parsed)
    return dumps(message)


def verify(
    secret: bytes | None,
    channel: str,
    message: dict[str, Any],
    meta: dict[str, Any] | None,
    max_age: float,
    now: float,
    accepted: Sequence[bytes] = (),
) -> bool:
    """Check the signature and age when a secret is set; return whether the message was signed.

    A signature by `secret` or by one of the `accepted` secrets (a rotation in progress) is valid.
    """
    if secret is None:
        return False
    if meta is None or "sig" not in meta:
        raise DroppedMessage("unsigned", "signing is on and the message carries no signature")
    body, signature = without_signature(message)
    if not isinstance(signature, str) or not signature.isascii():
        raise DroppedMessage("forged", "bad signature")
    signed = canonical(channel, body)
    if not any(
        hmac.compare_digest(signature, hmac.new(key, signed, hashlib.sha256).hexdigest()) for key in (secret, *accepted)
    ):
        raise DroppedMessage("forged", "bad signature")
    timestamp = check_number(meta.get("ts"), "c2c.ts")
    if abs(now - timestamp) > max_age:
        raise DroppedMessage("expired", f"signed {now - timestamp:.0f} s ago, more than {max_age:g} s")
    return True


START_TOLERANCE = 1.0
"""Seconds a request may be signed before its receiver's replay guard started (clocks a little apart)."""


class ReplayGuard:
    """Remembers the ids of signed requests seen within the signature's maximum age (bounded).

    Its memory starts with it: a request signed before `started` (less `START_TOLERANCE`) may have
    been run by an earlier process of this replica (a restart) whose memory is gone, so it is refused
    as `expired`. Pub/sub keeps nothing for later subscribers: a request published before this
    replica subscribed never reaches it otherwise, so only a replay, or a sender whose clock is more
    than the tolerance behind, is refused. `started=None`: no such floor.
    """

    def __init__(self, max_entries: int = 100_000, started: float | None = None) -> None:
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._max_entries = max_entries
        self._floor = None if started is None else started - START_TOLERANCE

    def check(self, request_id: str, now: float, max_age: float, signed_at: float | None = None) -> None:
        """Raise `DroppedMessage("replayed")` if `request_id` was already seen, `("expired")` if it was
        signed (`signed_at`) before this guard's memory starts; else remember it."""
        if signed_at is not None and self._floor is not None and signed_at < self._floor:
            early = self._floor + START_TOLERANCE - signed_at
            raise DroppedMessage("expired", f"signed {early:.1f} s before this replica started listening")
        while self._seen:
            oldest, expiry = next(iter(self._seen.items()))
            if expiry > now and len(self._seen) < self._max_entries:
                break
            del self._seen[oldest]
        if request_id in self._seen:
            raise DroppedMessage("replayed", f"request {request_id} already seen")
        self._seen[request_id] = now + 2 * max_age
