"""The wire format: JSON messages compatible with c2casgiutils 0.14, plus an optional `c2c` object.

A request published on `<prefix><channel>`::

    {"params": {...}, "answer_channel": "<channel to answer on>",          # what 0.14 sends and reads
     "c2c": {"v": 1, "id": "<hex>", "ts": <unix time>, "from": {"hostname": ..., "pid": ...},
             "targets": {"hostnames": [...], "pids": [...]},              # optional addressing
             "sig": "<hex HMAC-SHA256>"}}                                 # optional signature

An answer published on the answer channel::

    {"hostname": ..., "pid": ..., "payload": ...,                          # what 0.14 sends and reads
     "c2c": {"v": 1, "id": "<request id>", "replica": "<replica id>", "ts": <unix time>,
             "error": {"type": "ValueError", "message": "..."},            # only when the handler raised
             "sig": "<hex>"}}

0.14 ignores the `c2c` key on both sides. A handler error also sets `payload` to
`{"status": 500, "message": ...}`, which is what a 0.14 sender expects.

How the format grows is defined once, below ("How the message is extended"): optional top-level
fields, registered with `extension()`, inside the signed part, ignored by 0.14.

The signature is the HMAC-SHA256, keyed by the shared secret, of the channel name, a newline and
the message without `c2c.sig` re-serialised canonically (sorted keys, no spaces, ASCII); the
receiver recomputes it from what it parsed, so it verifies exactly what it acts on.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

WIRE_VERSION = 1
META_KEY = "c2c"
ERROR_STATUS = 500
MAX_CHANNEL_LENGTH = 1024
MAX_HOSTNAME_LENGTH = 255
MAX_ID_LENGTH = 128
MAX_TARGETS = 1000
MAX_ERROR_MESSAGE = 2000


Kind = Literal["request", "answer"]

# What c2casgiutils 0.14 reads, and all it reads: a request's `params` and `answer_channel`, an
# answer's `hostname`, `pid` and `payload`. It ignores every other key of the JSON object.
LEGACY_REQUEST_FIELDS = frozenset({"params", "answer_channel"})
LEGACY_ANSWER_FIELDS = frozenset({"hostname", "pid", "payload"})


class DroppedMessage(Exception):
    """A received message or answer is refused; `reason` is a short code for logs and counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


# -- Channel names -----------------------------------------------------------------------------
#
# A call on `channel` is published on `<prefix><channel>`, as 0.14 does. Each process answers on
# fresh channels under its own `<prefix>c2c_answer_<random>_` (read with one pattern subscription),
# and keeps its private `<prefix>c2c_control_<random>` subscribed (nothing is sent on it). A request
# whose `answer_channel` is not under the prefix is refused (`decode_request`).

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def request_channel(prefix: str, channel: str) -> str:
    """The Redis channel of a broadcast channel: prefix + name (as c2casgiutils 0.14)."""
    return prefix + channel


def new_answer_prefix(prefix: str) -> str:
    """A process's own namespace of answer channels (128 random bits)."""
    return f"{prefix}c2c_answer_{secrets.token_hex(16)}_"


def new_answer_channel(answer_prefix: str) -> str:
    """A fresh answer channel for one call (128 random bits)."""
    return answer_prefix + secrets.token_hex(16)


def answer_pattern(answer_prefix: str) -> str:
    """The PSUBSCRIBE pattern of every answer channel under `answer_prefix` (glob characters escaped)."""
    return _GLOB_SPECIAL.sub(r"\\\1", answer_prefix) + "*"


def new_control_channel(prefix: str) -> str:
    """A process's private channel, subscribed so that its listener connection always exists."""
    return f"{prefix}c2c_control_{secrets.token_hex(16)}"


# -- How the message is extended (the one place) ----------------------------------------------
#
# A request and an answer are JSON objects. A feature that needs to carry more than 0.14's fields
# adds an OPTIONAL TOP-LEVEL FIELD, registered here with `extension()`:
#
# - top-level: a key of the message object, beside 0.14's fields; never inside `params` or
#   `payload` (they belong to the handler and reach 0.14 replicas);
# - optional: a message without it means what it meant before (0.14 senders never set it), so a
#   receiver must work when it is absent;
# - signed: the signature (`c2c.sig`) covers the whole message except itself, so with signing on the
#   field is inside the signed part, and a message with a changed or added field is refused;
# - ignored by 0.14 replicas, which read only their fields (above);
# - validated: a receiver checks a registered field with its `check` and drops the message
#   (`DroppedMessage("malformed")`) when it is malformed; a field it does not know (sent by a newer
#   version) is ignored, still covered by the signature;
# - named in lower case, and never one of 0.14's fields; the name is never reused with another
#   meaning. A field that changes what a message means for a receiver that ignores it is not an
#   extension: it needs a new wire version (`c2c.v`).
#
# `encode_request` / `encode_answer` take the fields in `extensions=`, `decode_request` /
# `decode_answer` return the registered ones they found in `.extensions`. The first extension is
# `c2c` (wire version 1: request id, timestamps, sender, targets, replica, handler error, signature),
# parsed by this module itself.


@dataclasses.dataclass(frozen=True)
class Extension:
    """An optional top-level field of the broadcast messages (see "How the message is extended")."""

    name: str
    kinds: frozenset[Kind]
    check: Callable[[Any], Any]
    """Validates a received value and returns it (possibly normalised); raises `DroppedMessage`."""
    description: str


EXTENSIONS: dict[str, Extension] = {}
"""The registered extensions, by field name."""

_EXTENSION_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def extension(name: str, kinds: Collection[Kind], check: Callable[[Any], Any], description: str) -> Extension:
    """Register an optional top-level field of requests and/or answers; `ValueError` if the name is not free."""
    if not _EXTENSION_NAME.fullmatch(name):
        raise ValueError(f"an extension field name is lower case letters, digits and _, not {name!r}")
    if name in LEGACY_REQUEST_FIELDS | LEGACY_ANSWER_FIELDS:
        raise ValueError(f"{name!r} is a field of c2casgiutils 0.14's format, not an extension")
    if name in EXTENSIONS:
        raise ValueError(f"the extension field {name!r} is already registered")
    kind_set = frozenset(kinds)
    if not kind_set or not kind_set <= {"request", "answer"}:
        raise ValueError("an extension applies to 'request' and/or 'answer'")
    registered = Extension(name, kind_set, check, description)
    EXTENSIONS[name] = registered
    return registered


def _add_extensions(message: dict[str, Any], kind: Kind, extensions: Mapping[str, Any] | None) -> None:
    for name, value in (extensions or {}).items():
        registered = EXTENSIONS.get(name)
        if registered is None or kind not in registered.kinds or name == META_KEY:
            raise ValueError(f"{name!r} is not a registered {kind} extension (c2c_broadcast._wire.extension)")
        if value is not None:
            message[name] = value


def _read_extensions(message: Mapping[str, Any], kind: Kind) -> dict[str, Any]:
    return {
        name: registered.check(message[name])
        for name, registered in EXTENSIONS.items()
        if name != META_KEY and kind in registered.kinds and message.get(name) is not None
    }


def _check_meta_value(value: Any) -> Any:
    if not isinstance(value, dict):
        raise DroppedMessage("malformed", f"{META_KEY} must be an object")
    return value


extension(
    META_KEY,
    ("request", "answer"),
    _check_meta_value,
    "wire version 1: request id, timestamp, sender, targets (requests); replica, handler error (answers); signature",
)


@dataclasses.dataclass(frozen=True)
class Targets:
    """Which replicas should run a call: all when both are None, else those matching every given set."""

    hostnames: frozenset[str] | None = None
    pids: frozenset[int] | None = None

    @property
    def everyone(self) -> bool:
        """Whether every replica is addressed."""
        return self.hostnames is None and self.pids is None

    def __contains__(self, replica: tuple[str, int]) -> bool:
        hostname, pid = replica
        return (self.hostnames is None or hostname in self.hostnames) and (self.pids is None or pid in self.pids)

    def to_json(self) -> dict[str, list[Any]]:
        """The wire form (only the given sets, sorted for a stable signature)."""
        out: dict[str, list[Any]] = {}
        if self.hostnames is not None:
            out["hostnames"] = sorted(self.hostnames)
        if self.pids is not None:
            out["pids"] = sorted(self.pids)
        return out


EVERYONE = Targets()


def make_targets(hostnames: Collection[str] | str | None, pids: Collection[int] | int | None) -> Targets:
    """Normalise the addressing arguments of `broadcast()`; a lone string or int is a one-item set."""
    host_set = frozenset([hostnames] if isinstance(hostnames, str) else hostnames) if hostnames is not None else None
    pid_set = frozenset([pids] if isinstance(pids, int) else pids) if pids is not None else None
    if host_set is not None and not all(isinstance(h, str) for h in host_set):
        raise TypeError("hostnames must be strings")
    if pid_set is not None and any(isinstance(p, bool) or not isinstance(p, int) for p in pid_set):
        raise TypeError("pids must be integers")
    return Targets(host_set, pid_set)


@dataclasses.dataclass(frozen=True)
class Request:
    """A decoded request. `request_id` is None for a message in the plain 0.14 format."""

    params: dict[str, Any]
    answer_channel: str | None
    request_id: str | None = None
    targets: Targets = EVERYONE
    signed: bool = False
    extensions: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The registered extension fields the request carried (see "How the message is extended")."""


@dataclasses.dataclass(frozen=True)
class Answer:
    """A decoded answer. `replica` and `request_id` are None when it comes from a 0.14 replica."""

    hostname: str
    pid: int
    payload: Any
    replica: str | None = None
    request_id: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    extensions: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The registered extension fields the answer carried."""

    @property
    def is_error(self) -> bool:
        """Whether the handler raised (only new replicas say so; 0.14 sends an ordinary payload)."""
        return self.error_type is not None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def dumps(value: Any) -> str:
    """Serialise for the wire (strict JSON: NaN and infinities are refused)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _canonical(channel: str, message: Mapping[str, Any]) -> bytes:
    text = json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return channel.encode("utf-8", "surrogatepass") + b"\n" + text.encode("ascii")


def sign(secret: bytes, channel: str, message: Mapping[str, Any]) -> str:
    """The hex HMAC-SHA256 of a message (without `c2c.sig`) published on `channel`."""
    return hmac.new(secret, _canonical(channel, message), hashlib.sha256).hexdigest()


def _without_signature(message: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    body = dict(message)
    meta = dict(body[META_KEY])
    signature = meta.pop("sig", None)
    body[META_KEY] = meta
    return body, signature


def _attach_signature(secret: bytes | None, channel: str, message: dict[str, Any]) -> str:
    """Serialise `message`, signing it first when a secret is given."""
    if secret is not None:
        # Sign what the receiver will parse: the JSON round trip turns tuples into lists and so on.
        parsed = json.loads(dumps(message))
        message[META_KEY]["sig"] = sign(secret, channel, parsed)
    return dumps(message)


def _load(data: str | bytes, max_size: int) -> Any:
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_size:
        raise DroppedMessage("oversized", f"{size} bytes > {max_size}")
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DroppedMessage("malformed", f"not JSON ({type(error).__name__})") from None


def _check_str(value: Any, what: str, max_length: int) -> str:
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise DroppedMessage("malformed", f"{what} must be a non-empty string of at most {max_length} characters")
    return value


def _check_int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DroppedMessage("malformed", f"{what} must be a non-negative integer")
    return value


def _check_number(value: Any, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise DroppedMessage("malformed", f"{what} must be a number")
    return float(value)


def _check_meta(message: dict[str, Any]) -> dict[str, Any] | None:
    meta = message.get(META_KEY)
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise DroppedMessage("malformed", f"{META_KEY} must be an object")
    return meta


def _verify(
    secret: bytes | None, channel: str, message: dict[str, Any], meta: dict[str, Any] | None, max_age: float, now: float
) -> bool:
    """Check the signature and age when a secret is set; return whether the message was signed."""
    if secret is None:
        return False
    if meta is None or "sig" not in meta:
        raise DroppedMessage("unsigned", "signing is on and the message carries no signature")
    body, signature = _without_signature(message)
    if (
        not isinstance(signature, str)
        or not signature.isascii()
        or not hmac.compare_digest(signature, sign(secret, channel, body))
    ):
        raise DroppedMessage("forged", "bad signature")
    timestamp = _check_number(meta.get("ts"), "c2c.ts")
    if abs(now - timestamp) > max_age:
        raise DroppedMessage("expired", f"signed {now - timestamp:.0f} s ago, more than {max_age:g} s")
    return True


class ReplayGuard:
    """Remembers the ids of signed requests seen within the signature's maximum age (bounded)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._max_entries = max_entries

    def check(self, request_id: str, now: float, max_age: float) -> None:
        """Raise `DroppedMessage("replayed")` if `request_id` was already seen; else remember it."""
        while self._seen:
            oldest, expiry = next(iter(self._seen.items()))
            if expiry > now and len(self._seen) < self._max_entries:
                break
            del self._seen[oldest]
        if request_id in self._seen:
            raise DroppedMessage("replayed", f"request {request_id} already seen")
        self._seen[request_id] = now + 2 * max_age


def encode_request(
    channel: str,
    params: Mapping[str, Any],
    *,
    answer_channel: str | None,
    request_id: str,
    hostname: str,
    pid: int,
    now: float,
    targets: Targets = EVERYONE,
    secret: bytes | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> str:
    """Build the JSON of a request to publish on the wire channel `channel`.

    `extensions`: registered optional top-level fields to add (a None value is left out).
    """
    meta: dict[str, Any] = {"v": WIRE_VERSION, "id": request_id, "ts": now, "from": {"hostname": hostname, "pid": pid}}
    if not targets.everyone:
        meta["targets"] = targets.to_json()
    message: dict[str, Any] = {"params": dict(params)}
    if answer_channel is not None:
        message["answer_channel"] = answer_channel
    _add_extensions(message, "request", extensions)
    message[META_KEY] = meta
    return _attach_signature(secret, channel, message)


def _decode_targets(value: Any) -> Targets:
    if value is None:
        return EVERYONE
    if not isinstance(value, dict):
        raise DroppedMessage("malformed", "c2c.targets must be an object")
    hostnames = value.get("hostnames")
    pids = value.get("pids")
    if hostnames is not None and (not isinstance(hostnames, list) or len(hostnames) > MAX_TARGETS):
        raise DroppedMessage("malformed", "c2c.targets.hostnames must be a list")
    if pids is not None and (not isinstance(pids, list) or len(pids) > MAX_TARGETS):
        raise DroppedMessage("malformed", "c2c.targets.pids must be a list")
    return Targets(
        frozenset(_check_str(h, "a target hostname", MAX_HOSTNAME_LENGTH) for h in hostnames)
        if hostnames is not None
        else None,
        frozenset(_check_int(p, "a target pid") for p in pids) if pids is not None else None,
    )


def decode_request(
    data: str | bytes,
    channel: str,
    *,
    prefix: str,
    max_size: int,
    now: float,
    secret: bytes | None = None,
    max_age: float = 60.0,
    replay_guard: ReplayGuard | None = None,
) -> Request:
    """Parse and check a request received on the wire channel `channel`; raise `DroppedMessage` if refused.

    Accepted: the 0.14 format (`params`, optional `answer_channel`) and ours. Refused: more than
    `max_size` bytes, not JSON, not an object, `params` not an object, an answer channel outside
    `prefix` (a forged message could otherwise make every replica publish into any channel), and
    with a secret: unsigned, forged, too old or replayed messages.
    """
    message = _load(data, max_size)
    if not isinstance(message, dict):
        raise DroppedMessage("malformed", "a request must be a JSON object")
    params = message.get("params")
    if not isinstance(params, dict):
        raise DroppedMessage("malformed", "params must be an object")
    answer_channel = message.get("answer_channel")
    if answer_channel is not None:
        _check_str(answer_channel, "answer_channel", MAX_CHANNEL_LENGTH)
        if not answer_channel.startswith(prefix) or answer_channel == channel:
            raise DroppedMessage("malformed", "answer_channel must be a channel of the broadcast prefix")
    meta = _check_meta(message)
    signed = _verify(secret, channel, message, meta, max_age, now)
    request_id = None
    targets = EVERYONE
    if meta is not None:
        request_id = _check_str(meta.get("id"), "c2c.id", MAX_ID_LENGTH)
        targets = _decode_targets(meta.get("targets"))
    extensions = _read_extensions(message, "request")
    if signed and replay_guard is not None:
        assert request_id is not None  # _verify refuses a signed message without c2c
        replay_guard.check(request_id, now, max_age)
    return Request(params, answer_channel, request_id, targets, signed, extensions)


def error_payload(message: str) -> dict[str, Any]:
    """The payload a 0.14 sender sees when a handler raised."""
    return {"status": ERROR_STATUS, "message": message}


def encode_answer(
    answer_channel: str,
    *,
    hostname: str,
    pid: int,
    payload: Any,
    replica: str,
    request_id: str | None,
    now: float,
    error: tuple[str, str] | None = None,
    secret: bytes | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> str:
    """Build the JSON of an answer; `error` is `(exception type, message)` when the handler raised.

    `extensions`: registered optional top-level fields to add (a None value is left out).
    """
    meta: dict[str, Any] = {"v": WIRE_VERSION, "replica": replica, "ts": now}
    if request_id is not None:
        meta["id"] = request_id
    if error is not None:
        error_type, text = error[0], error[1][:MAX_ERROR_MESSAGE]
        meta["error"] = {"type": error_type, "message": text}
        payload = error_payload(text)
    message: dict[str, Any] = {"hostname": hostname, "pid": pid, "payload": payload}
    _add_extensions(message, "answer", extensions)
    message[META_KEY] = meta
    return _attach_signature(secret, answer_channel, message)


def decode_answer(
    data: str | bytes,
    answer_channel: str,
    *,
    max_size: int,
    now: float,
    secret: bytes | None = None,
    max_age: float = 60.0,
    request_id: str | None = None,
) -> Answer:
    """Parse and check an answer; raise `DroppedMessage` if refused (signing on: unsigned or forged)."""
    message = _load(data, max_size)
    if not isinstance(message, dict):
        raise DroppedMessage("malformed", "an answer must be a JSON object")
    hostname = _check_str(message.get("hostname"), "hostname", MAX_HOSTNAME_LENGTH)
    pid = _check_int(message.get("pid"), "pid")
    if "payload" not in message:
        raise DroppedMessage("malformed", "an answer has a payload")
    meta = _check_meta(message)
    _verify(secret, answer_channel, message, meta, max_age, now)
    extensions = _read_extensions(message, "answer")
    if meta is None:
        return Answer(hostname, pid, message["payload"], extensions=extensions)
    replica = _check_str(meta.get("replica"), "c2c.replica", MAX_ID_LENGTH * 4)
    answer_id = meta.get("id")
    if answer_id is not None:
        _check_str(answer_id, "c2c.id", MAX_ID_LENGTH)
    if secret is not None and answer_id != request_id:
        raise DroppedMessage("forged", "the answer is for another request")
    error = meta.get("error")
    if error is None:
        return Answer(hostname, pid, message["payload"], replica, answer_id, extensions=extensions)
    if not isinstance(error, dict):
        raise DroppedMessage("malformed", "c2c.error must be an object")
    error_type = _check_str(error.get("type"), "c2c.error.type", 200)
    text = error.get("message")
    if not isinstance(text, str):
        raise DroppedMessage("malformed", "c2c.error.message must be a string")
    return Answer(hostname, pid, None, replica, answer_id, error_type, text, extensions)
