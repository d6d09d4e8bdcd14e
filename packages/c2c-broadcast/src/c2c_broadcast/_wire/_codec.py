"""Encoding and decoding requests and answers: what is sent, and what a receiver accepts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from c2c_broadcast._wire._message import (
    ERROR_STATUS,
    EVERYONE,
    MAX_CHANNEL_LENGTH,
    MAX_ERROR_MESSAGE,
    MAX_HOSTNAME_LENGTH,
    MAX_ID_LENGTH,
    MAX_TARGETS,
    META_KEY,
    WIRE_VERSION,
    Answer,
    DroppedMessage,
    Request,
    Targets,
    add_extensions,
    check_int,
    check_meta,
    check_str,
    load,
    read_extensions,
)
from c2c_broadcast._wire._signing import ReplayGuard, attach_signature, verify


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
    add_extensions(message, "request", extensions)
    message[META_KEY] = meta
    return attach_signature(secret, channel, message)


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
        frozenset(check_str(h, "a target hostname", MAX_HOSTNAME_LENGTH) for h in hostnames)
        if hostnames is not None
        else None,
        frozenset(check_int(p, "a target pid") for p in pids) if pids is not None else None,
    )


def decode_request(
    data: str | bytes,
    channel: str,
    *,
    prefix: str,
    max_size: int,
    now: float,
    secret: bytes | None = None,
    accepted: Sequence[bytes] = (),
    max_age: float = 60.0,
    replay_guard: ReplayGuard | None = None,
) -> Request:
    """Parse and check a request received on the wire channel `channel`; raise `DroppedMessage` if refused.

    Accepted: the 0.14 format (`params`, optional `answer_channel`) and ours. Refused: more than
    `max_size` bytes, not JSON, not an object, `params` not an object, an answer channel outside
    `prefix` (a forged message could otherwise make every replica publish into any channel), and
    with a secret: unsigned, forged (signed by neither `secret` nor one of the `accepted` secrets), too
    old or replayed messages, and those signed before
    `replay_guard` started (a restarted replica's memory of the requests it ran is gone).
    """
    message = load(data, max_size)
    if not isinstance(message, dict):
        raise DroppedMessage("malformed", "a request must be a JSON object")
    params = message.get("params")
    if not isinstance(params, dict):
        raise DroppedMessage("malformed", "params must be an object")
    answer_channel = message.get("answer_channel")
    if answer_channel is not None:
        check_str(answer_channel, "answer_channel", MAX_CHANNEL_LENGTH)
        if not answer_channel.startswith(prefix) or answer_channel == channel:
            raise DroppedMessage("malformed", "answer_channel must be a channel of the broadcast prefix")
    meta = check_meta(message)
    signed = verify(secret, channel, message, meta, max_age, now, accepted)
    request_id = None
    targets = EVERYONE
    if meta is not None:
        request_id = check_str(meta.get("id"), "c2c.id", MAX_ID_LENGTH)
        targets = _decode_targets(meta.get("targets"))
    extensions = read_extensions(message, "request")
    if signed and replay_guard is not None:
        # verify refuses a signed message without c2c
        assert request_id is not None
        assert meta is not None
        replay_guard.check(request_id, now, max_age, signed_at=float(meta["ts"]))
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
    add_extensions(message, "answer", extensions)
    message[META_KEY] = meta
    return attach_signature(secret, answer_channel, message)


def decode_answer(
    data: str | bytes,
    answer_channel: str,
    *,
    max_size: int,
    now: float,
    secret: bytes | None = None,
    accepted: Sequence[bytes] = (),
    max_age: float = 60.0,
    request_id: str | None = None,
) -> Answer:
    """Parse and check an answer; raise `DroppedMessage` if refused (signing on: unsigned or forged)."""
    message = load(data, max_size)
    if not isinstance(message, dict):
        raise DroppedMessage("malformed", "an answer must be a JSON object")
    hostname = check_str(message.get("hostname"), "hostname", MAX_HOSTNAME_LENGTH)
    pid = check_int(message.get("pid"), "pid")
    if "payload" not in message:
        raise DroppedMessage("malformed", "an answer has a payload")
    meta = check_meta(message)
    verify(secret, answer_channel, message, meta, max_age, now, accepted)
    extensions = read_extensions(message, "answer")
    if meta is None:
        return Answer(hostname, pid, message["payload"], extensions=extensions)
    replica = check_str(meta.get("replica"), "c2c.replica", MAX_ID_LENGTH * 4)
    answer_id = meta.get("id")
    if answer_id is not None:
        check_str(answer_id, "c2c.id", MAX_ID_LENGTH)
    if secret is not None and answer_id != request_id:
        raise DroppedMessage("forged", "the answer is for another request")
    error = meta.get("error")
    if error is None:
        return Answer(hostname, pid, message["payload"], replica, answer_id, extensions=extensions)
    if not isinstance(error, dict):
        raise DroppedMessage("malformed", "c2c.error must be an object")
    error_type = check_str(error.get("type"), "c2c.error.type", 200)
    text = error.get("message")
    if not isinstance(text, str):
        raise DroppedMessage("malformed", "c2c.error.message must be a string")
    return Answer(hostname, pid, None, replica, answer_id, error_type, text, extensions)


def answer_request_id(data: str | bytes, max_size: int) -> str | None:
    """The request id (`c2c.id`) an answer claims, to route it to its call; None when it has none.

    Only routing: `decode_answer` checks the answer afterwards (and with a secret, that the signed
    id is the call's). Raises `DroppedMessage` like `decode_answer` for an oversized or non-JSON answer.
    """
    message = load(data, max_size)
    meta = message.get(META_KEY) if isinstance(message, dict) else None
    answer_id = meta.get("id") if isinstance(meta, dict) else None
    return answer_id if isinstance(answer_id, str) else None
