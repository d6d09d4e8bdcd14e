"""The wire format: JSON messages compatible with c2casgiutils 0.14, plus an optional `c2c` object.

A request published on `<prefix><channel>`::

    {"params": {...}, "answer_channel": "<channel to answer on>",          # what 0.14 sends and reads
     "c2c": {"v": 1, "id": "<hex>", "ts": <unix time>, "from": {"hostname": ..., "pid": ...},
             "targets": {"hostnames": [...], "pids": [...]},              # optional addressing
             "sig": "<hex HMAC-SHA256>"},                                 # optional signature
     "context": {"request_id": "..."}}                                    # optional: the caller's context

An answer published on the answer channel::

    {"hostname": ..., "pid": ..., "payload": ...,                          # what 0.14 sends and reads
     "c2c": {"v": 1, "id": "<request id>", "replica": "<replica id>", "ts": <unix time>,
             "error": {"type": "ValueError", "message": "..."},            # only when the handler raised
             "sig": "<hex>"}}

0.14 ignores the `c2c` key on both sides. A handler error also sets `payload` to
`{"status": 500, "message": ...}`, which is what a 0.14 sender expects.

How the format grows is defined once, in `_message` ("How the message is extended"): optional
top-level fields, registered with `extension()`, inside the signed part, ignored by 0.14.

The signature is the HMAC-SHA256, keyed by the shared secret, of the channel name, a newline and
the message without `c2c.sig` re-serialised canonically (sorted keys, no spaces, ASCII); the
receiver recomputes it from what it parsed, so it verifies exactly what it acts on.

The package, one concern per module (everything is imported from `c2c_broadcast._wire`):

- `_message`: limits, 0.14's fields, channel names, the extension registry, addressing
  (`Targets`), the decoded `Request` and `Answer`, strict JSON and the field checks;
- `_signing`: the signature, its check on receipt, the replay guard;
- `_codec`: `encode_request`, `decode_request`, `encode_answer`, `decode_answer`.
"""

from __future__ import annotations

from c2c_broadcast._wire._codec import (
    answer_request_id,
    decode_answer,
    decode_request,
    encode_answer,
    encode_request,
    error_payload,
)
from c2c_broadcast._wire._message import (
    CONTEXT_FIELD,
    ERROR_STATUS,
    EVERYONE,
    EXTENSIONS,
    LEGACY_ANSWER_FIELDS,
    LEGACY_REQUEST_FIELDS,
    MAX_CHANNEL_LENGTH,
    MAX_CONTEXT_ENTRIES,
    MAX_CONTEXT_VALUE_LENGTH,
    MAX_ERROR_MESSAGE,
    MAX_HOSTNAME_LENGTH,
    MAX_ID_LENGTH,
    MAX_TARGETS,
    META_KEY,
    WIRE_VERSION,
    Answer,
    DroppedMessage,
    Extension,
    Kind,
    Request,
    Targets,
    answer_pattern,
    cluster_answer_channel,
    cluster_answer_namespace,
    cluster_control_channel,
    dumps,
    extension,
    make_targets,
    new_answer_channel,
    new_answer_prefix,
    new_control_channel,
    request_channel,
    tagged_channel,
    valid_context_entry,
)
from c2c_broadcast._wire._signing import (
    ReplayGuard,
    sign,
)

__all__ = [
    "CONTEXT_FIELD",
    "ERROR_STATUS",
    "EVERYONE",
    "EXTENSIONS",
    "LEGACY_ANSWER_FIELDS",
    "LEGACY_REQUEST_FIELDS",
    "MAX_CHANNEL_LENGTH",
    "MAX_CONTEXT_ENTRIES",
    "MAX_CONTEXT_VALUE_LENGTH",
    "MAX_ERROR_MESSAGE",
    "MAX_HOSTNAME_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_TARGETS",
    "META_KEY",
    "WIRE_VERSION",
    "Answer",
    "DroppedMessage",
    "Extension",
    "Kind",
    "ReplayGuard",
    "Request",
    "Targets",
    "answer_pattern",
    "answer_request_id",
    "cluster_answer_channel",
    "cluster_answer_namespace",
    "cluster_control_channel",
    "decode_answer",
    "decode_request",
    "dumps",
    "encode_answer",
    "encode_request",
    "error_payload",
    "extension",
    "make_targets",
    "new_answer_channel",
    "new_answer_prefix",
    "new_control_channel",
    "request_channel",
    "sign",
    "tagged_channel",
    "valid_context_entry",
]
