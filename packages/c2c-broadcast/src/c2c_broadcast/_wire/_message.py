"""The parts of a message: limits, 0.14's fields, channel names, extensions, addressing, decoded types, JSON.

Everything here is what the signing (`_signing`) and the codec (`_codec`) build on.
"""

from __future__ import annotations

import dataclasses
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


# On a Redis Cluster (sharded pub/sub: SSUBSCRIBE / SPUBLISH, no patterns) every name of one
# broadcast channel shares the hash tag `{<prefix><channel>}`, so its calls, answers and registry
# live in one slot, on one shard:
#
# - calls on `{<prefix><channel>}`;
# - the registry in `{<prefix><channel>}:registry`;
# - the answers to this process's calls on `{<prefix><channel>}:answers:<process random>`: one
#   fixed channel per channel and process, the answers told apart by their request id (`c2c.id`);
#   a request whose `answer_channel` is not under `{<prefix><channel>}:answers:` is refused;
# - the listener's private channel `{<prefix>c2c_control_<random>}`.
#
# `<prefix><channel>` may not be empty or contain `{` or `}` there: the tag would no longer be the whole name.


def tagged_channel(prefix: str, channel: str) -> str:
    """The sharded channel of a broadcast channel on a Redis Cluster: `{<prefix><channel>}`.

    `ValueError` when the name is empty or contains `{` or `}` (it would not be one hash tag).
    """
    name = prefix + channel
    if not name or "{" in name or "}" in name:
        raise ValueError(
            f"on a Redis Cluster a broadcast channel name (with its prefix) is one hash tag: "
            f"not empty, no '{{' or '}}': {name!r}"
        )
    return "{" + name + "}"


def cluster_answer_namespace(wire: str) -> str:
    """Where the answers to calls on the sharded channel `wire` may be sent (same hash slot)."""
    return f"{wire}:answers:"


def cluster_answer_channel(wire: str, process: str) -> str:
    """This process's fixed answer channel for calls on the sharded channel `wire`."""
    return cluster_answer_namespace(wire) + process


def cluster_control_channel(prefix: str) -> str:
    """A process's private channel on a Redis Cluster (a hash tag of its own)."""
    return "{" + new_control_channel(prefix.replace("{", "").replace("}", "")) + "}"


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
# parsed by the codec itself (`_codec`).


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


def add_extensions(message: dict[str, Any], kind: Kind, extensions: Mapping[str, Any] | None) -> None:
    for name, value in (extensions or {}).items():
        registered = EXTENSIONS.get(name)
        if registered is None or kind not in registered.kinds or name == META_KEY:
            raise ValueError(f"{name!r} is not a registered {kind} extension (c2c_broadcast._wire.extension)")
        if value is not None:
            message[name] = value


def read_extensions(message: Mapping[str, Any], kind: Kind) -> dict[str, Any]:
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


# The second extension: `context`, the caller's context carried with a request (`c2c_broadcast`'s
# `add_context_carrier`): an object of carrier name -> string. It is advisory: a receiver never
# drops a call because of it, it keeps the well-formed entries only (bounded count, names,
# printable values of bounded length) and ignores the rest.

CONTEXT_FIELD = "context"
MAX_CONTEXT_ENTRIES = 16
MAX_CONTEXT_VALUE_LENGTH = 256
CONTEXT_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


def valid_context_entry(name: Any, value: Any) -> bool:
    """Whether `name: value` may travel in the `context` field (either way)."""
    return (
        isinstance(name, str)
        and CONTEXT_NAME.fullmatch(name) is not None
        and isinstance(value, str)
        and 0 < len(value) <= MAX_CONTEXT_VALUE_LENGTH
        and value.isprintable()
    )


def check_context(value: Any) -> dict[str, str]:
    """The well-formed entries of a received `context` field (at most `MAX_CONTEXT_ENTRIES`); never raises."""
    if not isinstance(value, dict):
        return {}
    kept: dict[str, str] = {}
    for name, item in value.items():
        if len(kept) >= MAX_CONTEXT_ENTRIES:
            break
        if valid_context_entry(name, item):
            kept[name] = item
    return kept


_REQUEST_ONLY: tuple[Kind, ...] = ("request",)
extension(
    CONTEXT_FIELD,
    _REQUEST_ONLY,
    check_context,
    "the caller's context (carrier name -> string, e.g. a request id), applied around the handler",
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


# One encoder for every message (`json.dumps` with an option builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Serialise for the wire (strict JSON: NaN and infinities are refused)."""
    return _ENCODER.encode(value)


# One decoder for every message (`json.loads` with an option builds a new one per call).
def _finite_float(text: str) -> float:
    """A JSON number as a float, refused when out of range (`1e999` would be an infinity, which no JSON encodes)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:24]} is out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def load(data: str | bytes, max_size: int) -> Any:
    # A str of at most max_size / 4 characters is at most max_size bytes in UTF-8: no need to encode it.
    if isinstance(data, bytes) or len(data) > max_size // 4:
        size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
        if size > max_size:
            raise DroppedMessage("oversized", f"{size} bytes > {max_size}")
    try:
        if isinstance(data, str):
            return _DECODER.decode(data)
        return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DroppedMessage("malformed", f"not JSON ({type(error).__name__})") from None


def check_str(value: Any, what: str, max_length: int) -> str:
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise DroppedMessage("malformed", f"{what} must be a non-empty string of at most {max_length} characters")
    return value


def check_int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DroppedMessage("malformed", f"{what} must be a non-negative integer")
    return value


def check_number(value: Any, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise DroppedMessage("malformed", f"{what} must be a number")
    return float(value)


def check_meta(message: dict[str, Any]) -> dict[str, Any] | None:
    meta = message.get(META_KEY)
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise DroppedMessage("malformed", f"{META_KEY} must be an object")
    return meta
