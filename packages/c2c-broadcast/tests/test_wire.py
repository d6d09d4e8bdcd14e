"""The wire codec: 0.14 compatibility, strict parsing of hostile input (Hypothesis), signatures, replays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from c2c_broadcast._wire import (
    EVERYONE,
    EXTENSIONS,
    DroppedMessage,
    ReplayGuard,
    Targets,
    decode_answer,
    decode_request,
    encode_answer,
    encode_request,
    extension,
    make_targets,
)

PREFIX = "broadcast_api_"
CHANNEL = PREFIX + "echo"
ANSWER_CHANNEL = PREFIX + "c2c_answer_0123_4567"
SECRET = b"s3cret"
NOW = 1_800_000_000.0
MAX = 64 * 1024

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
params_strategy = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


def _request(message: Any, **kwargs: Any) -> Any:
    data = message if isinstance(message, str | bytes) else json.dumps(message)
    options: dict[str, Any] = {"prefix": PREFIX, "max_size": MAX, "now": NOW}
    options.update(kwargs)
    return decode_request(data, CHANNEL, **options)


def _signed(params: dict[str, Any], **kwargs: Any) -> str:
    options: dict[str, Any] = {
        "answer_channel": ANSWER_CHANNEL,
        "request_id": "r" * 32,
        "hostname": "host",
        "pid": 7,
        "now": NOW,
        "secret": SECRET,
    }
    options.update(kwargs)
    return encode_request(CHANNEL, params, **options)


# -- what 0.14 sends and expects -------------------------------------------------------


def test_014_requests_are_accepted() -> None:
    request = _request({"params": {"level": "DEBUG"}, "answer_channel": CHANNEL + "ABCDEFGHIJ"})
    assert request.params == {"level": "DEBUG"}
    assert request.answer_channel == CHANNEL + "ABCDEFGHIJ"
    assert request.request_id is None
    assert request.targets is EVERYONE
    fire_and_forget = _request({"params": {}})
    assert fire_and_forget.answer_channel is None


def test_014_answers_are_accepted() -> None:
    answer = decode_answer(
        json.dumps({"hostname": "h", "pid": 3, "payload": {"status": 500, "message": "x"}}),
        ANSWER_CHANNEL,
        max_size=MAX,
        now=NOW,
    )
    # A 0.14 replica cannot say its handler failed: this is an ordinary payload.
    assert (answer.hostname, answer.pid, answer.payload, answer.is_error) == (
        "h",
        3,
        {"status": 500, "message": "x"},
        False,
    )


def test_our_messages_keep_the_014_fields() -> None:
    message = json.loads(_signed({"a": 1}, secret=None))
    assert message["params"] == {"a": 1}
    assert message["answer_channel"] == ANSWER_CHANNEL
    error = json.loads(
        encode_answer(
            ANSWER_CHANNEL,
            hostname="h",
            pid=1,
            payload=None,
            replica="h:1:x",
            request_id="r",
            now=NOW,
            error=("ValueError", "bad"),
        )
    )
    # What a 0.14 sender reads: hostname, pid, and the payload it has always received on errors.
    assert {k: error[k] for k in ("hostname", "pid", "payload")} == {
        "hostname": "h",
        "pid": 1,
        "payload": {"status": 500, "message": "bad"},
    }
    assert error["c2c"]["error"] == {"type": "ValueError", "message": "bad"}


# -- hostile input ---------------------------------------------------------------------


@given(st.binary(max_size=300) | st.text(max_size=300))
@example(b"\xff\xfe{")
@example("NaN")
@example('{"params": {"a": NaN}}')
@example('{"params": {"a": Infinity}}')
@example("[" * 50_000)
@example('{"params": {}, "c2c": []}')
@example('{"params": {}, "c2c": {"id": 5}}')
@example('{"params": {}, "c2c": {"id": "x", "targets": {"pids": [true]}}}')
def test_arbitrary_bytes_never_crash_the_parser(data: bytes | str) -> None:
    try:
        request = _request(data)
    except DroppedMessage as refused:
        assert refused.reason in {"malformed", "oversized"}
    else:
        assert isinstance(request.params, dict)


@given(
    st.dictionaries(
        st.sampled_from(["params", "answer_channel", "c2c", "other"]),
        json_values | st.fixed_dictionaries({"id": json_values, "targets": json_values, "sig": json_values}),
    )
)
@example({"params": {}, "answer_channel": "elsewhere"})
@example({"params": {}, "answer_channel": CHANNEL})
@example({"params": {}, "answer_channel": ""})
@example({"params": []})
def test_arbitrary_json_is_accepted_only_when_well_formed(message: dict[str, Any]) -> None:
    try:
        request = _request(message)
    except DroppedMessage as refused:
        assert refused.reason == "malformed"
        return
    assert isinstance(request.params, dict)
    assert request.answer_channel is None or (
        request.answer_channel.startswith(PREFIX) and request.answer_channel != CHANNEL
    )


@given(st.dictionaries(st.sampled_from(["hostname", "pid", "payload", "c2c"]), json_values))
@example({"hostname": "h", "pid": True, "payload": 1})
@example({"hostname": "h", "pid": -1, "payload": 1})
@example({"hostname": "", "pid": 1, "payload": 1})
@example({"hostname": "h", "pid": 1})
def test_arbitrary_answers_are_accepted_only_when_well_formed(message: dict[str, Any]) -> None:
    try:
        answer = decode_answer(json.dumps(message), ANSWER_CHANNEL, max_size=MAX, now=NOW)
    except DroppedMessage as refused:
        assert refused.reason == "malformed"
        return
    assert answer.hostname
    assert type(answer.pid) is int
    assert answer.pid >= 0


def test_oversized_messages_are_refused_before_parsing() -> None:
    big = json.dumps({"params": {"x": "y" * MAX}})
    with pytest.raises(DroppedMessage) as refused:
        _request(big)
    assert refused.value.reason == "oversized"
    # Multi-byte characters count in bytes, not characters.
    with pytest.raises(DroppedMessage, match="oversized"):
        _request(json.dumps({"params": {"x": "é" * (MAX // 2)}}, ensure_ascii=False))


@given(st.integers(min_value=0, max_value=3000), st.sampled_from(["a", "é", "😀"]))
def test_size_limit_counts_utf8_bytes(count: int, char: str) -> None:
    data = json.dumps({"params": {"x": char * count}}, ensure_ascii=False)
    size = len(data.encode())
    try:
        _request(data, max_size=4096)
    except DroppedMessage as refused:
        assert refused.reason == "oversized"
        assert size > 4096
    else:
        assert size <= 4096


# -- round trips -----------------------------------------------------------------------


@given(
    params_strategy,
    st.none() | st.frozensets(st.text(min_size=1, max_size=10), max_size=3),
    st.none() | st.frozensets(st.integers(min_value=0, max_value=2**31), max_size=3),
    st.booleans(),
)
def test_request_round_trip(
    params: dict[str, Any], hostnames: frozenset[str] | None, pids: frozenset[int] | None, signed: bool
) -> None:
    targets = Targets(hostnames, pids)
    data = _signed(params, targets=targets, secret=SECRET if signed else None)
    request = _request(data, secret=SECRET if signed else None)
    assert request.params == params
    assert request.answer_channel == ANSWER_CHANNEL
    assert request.request_id == "r" * 32
    assert request.targets == targets
    assert request.signed == signed


@given(json_values, st.none() | st.tuples(st.text(min_size=1, max_size=20), st.text(max_size=50)))
def test_answer_round_trip(payload: Any, error: tuple[str, str] | None) -> None:
    data = encode_answer(
        ANSWER_CHANNEL,
        hostname="h",
        pid=2,
        payload=payload,
        replica="h:2:ab",
        request_id="r1",
        now=NOW,
        error=error,
        secret=SECRET,
    )
    answer = decode_answer(data, ANSWER_CHANNEL, max_size=MAX, now=NOW, secret=SECRET, request_id="r1")
    assert (answer.hostname, answer.pid, answer.replica, answer.request_id) == ("h", 2, "h:2:ab", "r1")
    if error is None:
        assert answer.payload == payload and not answer.is_error
    else:
        assert (answer.error_type, answer.error_message) == error


# -- signatures ------------------------------------------------------------------------


@given(params_strategy, params_strategy)
def test_any_change_to_a_signed_request_is_refused(params: dict[str, Any], other: dict[str, Any]) -> None:
    message = json.loads(_signed(params))
    if other != params:
        message["params"] = other
        with pytest.raises(DroppedMessage, match="forged"):
            _request(message, secret=SECRET)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        # content
        (lambda m: m.update(answer_channel=PREFIX + "c2c_answer_other"), "forged"),
        (lambda m: m["c2c"].update(ts=NOW - 1), "forged"),
        (lambda m: m["c2c"].update(targets={"pids": [1]}), "forged"),
        (lambda m: m["c2c"].update(id="other"), "forged"),
        (lambda m: m["c2c"].update(sig="0" * 64), "forged"),
        (lambda m: m["c2c"].update(sig="é"), "forged"),
        (lambda m: m["c2c"].update(sig=5), "forged"),
        # signature removed
        (lambda m: m["c2c"].pop("sig"), "unsigned"),
        (lambda m: m.pop("c2c"), "unsigned"),
    ],
)
def test_signed_request_tampering(change: Any, reason: str) -> None:
    message = json.loads(_signed({"a": 1}))
    change(message)
    with pytest.raises(DroppedMessage) as refused:
        _request(message, secret=SECRET)
    assert refused.value.reason == reason


def test_signature_binds_the_channel_and_the_secret() -> None:
    data = _signed({"a": 1})
    with pytest.raises(DroppedMessage, match="forged"):
        decode_request(data, PREFIX + "other", prefix=PREFIX, max_size=MAX, now=NOW, secret=SECRET)
    with pytest.raises(DroppedMessage, match="forged"):
        _request(data, secret=b"another secret")
    assert _request(data, secret=SECRET).signed


def test_old_and_future_signed_requests_are_refused() -> None:
    data = _signed({"a": 1})
    assert _request(data, secret=SECRET, now=NOW + 59).signed
    with pytest.raises(DroppedMessage, match="expired"):
        _request(data, secret=SECRET, now=NOW + 61)
    with pytest.raises(DroppedMessage, match="expired"):
        _request(data, secret=SECRET, now=NOW - 61)


def test_replayed_requests_are_refused() -> None:
    guard = ReplayGuard()
    data = _signed({"a": 1})
    _request(data, secret=SECRET, replay_guard=guard)
    with pytest.raises(DroppedMessage, match="replayed"):
        _request(data, secret=SECRET, replay_guard=guard, now=NOW + 1)
    # Another id passes; the guard forgets ids once they are too old to pass the age check anyway.
    _request(_signed({"a": 1}, request_id="other"), secret=SECRET, replay_guard=guard)
    _request(_signed({"a": 1}, request_id="late", now=NOW + 500), secret=SECRET, replay_guard=guard, now=NOW + 500)
    assert "r" * 32 not in guard._seen


def test_requests_signed_before_the_guard_started_are_refused() -> None:
    """A restarted replica's guard has forgotten what it ran: older signed requests are refused."""
    guard = ReplayGuard(started=NOW)
    with pytest.raises(DroppedMessage, match="expired") as refused:
        _request(_signed({"a": 1}, now=NOW - 1.5), secret=SECRET, replay_guard=guard, now=NOW + 1)
    assert "before this replica started listening" in str(refused.value)
    # Within START_TOLERANCE (clocks a little apart), and any time after: accepted.
    _request(_signed({"a": 1}, request_id="skewed", now=NOW - 0.9), secret=SECRET, replay_guard=guard, now=NOW)
    _request(_signed({"a": 1}, request_id="later", now=NOW + 5), secret=SECRET, replay_guard=guard, now=NOW + 5)
    # Without a start, no floor (the age check alone).
    _request(_signed({"a": 1}, now=NOW - 30), secret=SECRET, replay_guard=ReplayGuard(), now=NOW)


@pytest.mark.parametrize("number", ["1e999", "-1e999", "1E400", "12.5e308"])
def test_numbers_out_of_range_are_malformed_not_errors(number: str) -> None:
    """`1e999` parses to an infinity, which nothing can sign or encode: dropped as malformed, never raised."""
    signed = json.loads(_signed({"a": 1}))
    for where in ("ts", "params"):
        text = json.dumps(signed).replace('"ts": ' + json.dumps(signed["c2c"]["ts"]), '"ts": ' + number)
        if where == "params":
            text = json.dumps(signed).replace('{"a": 1}', '{"a": ' + number + "}")
        assert number in text
        for data in (text, text.encode()):
            with pytest.raises(DroppedMessage) as refused:
                _request(data, secret=SECRET)
            assert refused.value.reason == "malformed"
    answer = '{"hostname": "h", "pid": 1, "payload": 1, "c2c": {"v": 1, "replica": "r", "ts": NUMBER}}'
    answer = answer.replace("NUMBER", number)
    with pytest.raises(DroppedMessage) as refused:
        decode_answer(answer, ANSWER_CHANNEL, max_size=MAX, now=NOW, secret=SECRET, request_id="r1")
    assert refused.value.reason == "malformed"


def test_replay_guard_is_bounded() -> None:
    guard = ReplayGuard(max_entries=10)
    for index in range(100):
        guard.check(f"id{index}", NOW, 60)
    assert len(guard._seen) <= 10


def test_signed_answers() -> None:
    def answer(secret: bytes | None, request_id: str | None = "r1") -> str:
        return encode_answer(
            ANSWER_CHANNEL, hostname="h", pid=1, payload=1, replica="x", request_id=request_id, now=NOW, secret=secret
        )

    options: dict[str, Any] = {"max_size": MAX, "now": NOW, "secret": SECRET, "request_id": "r1"}
    assert decode_answer(answer(SECRET), ANSWER_CHANNEL, **options).payload == 1
    with pytest.raises(DroppedMessage, match="unsigned"):
        decode_answer(answer(None), ANSWER_CHANNEL, **options)
    with pytest.raises(DroppedMessage, match="unsigned"):  # a 0.14 answer when signing is on
        decode_answer(json.dumps({"hostname": "h", "pid": 1, "payload": 1}), ANSWER_CHANNEL, **options)
    with pytest.raises(DroppedMessage, match="forged"):
        decode_answer(answer(b"other"), ANSWER_CHANNEL, **options)
    with pytest.raises(DroppedMessage, match="another request"):
        decode_answer(answer(SECRET, request_id="r2"), ANSWER_CHANNEL, **options)


# -- addressing ------------------------------------------------------------------------


def test_targets() -> None:
    assert ("h", 1) in EVERYONE
    assert ("h", 1) in make_targets("h", None)
    assert ("g", 1) not in make_targets("h", None)
    assert ("h", 1) in make_targets(["h", "g"], [1, 2])
    assert ("h", 3) not in make_targets(["h", "g"], [1, 2])
    assert ("h", 3) in make_targets(None, 3)
    with pytest.raises(TypeError):
        make_targets([1], None)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        make_targets(None, ["1"])  # type: ignore[list-item]


# -- how the message is extended -------------------------------------------------------


def _check_trace(value: Any) -> str:
    if not isinstance(value, str):
        raise DroppedMessage("malformed", "trace must be a string")
    return value


@pytest.fixture
def trace_extension() -> Iterator[str]:
    """A registered extension, as a later feature would add one (removed after the test)."""
    extension("trace", ("request", "answer"), _check_trace, "a trace id, for the tests")
    yield "trace"
    del EXTENSIONS["trace"]


def test_the_first_extension_is_c2c() -> None:
    assert EXTENSIONS["c2c"].kinds == {"request", "answer"}


@pytest.mark.parametrize("name", ["params", "answer_channel", "hostname", "pid", "payload", "c2c", "Bad", "a-b", ""])
def test_an_extension_never_takes_a_014_field_or_an_odd_name(name: str) -> None:
    with pytest.raises(ValueError, match=r"0\.14|already registered|lower case"):
        extension(name, ["request"], _check_trace, "x")


def test_only_registered_extensions_are_sent() -> None:
    with pytest.raises(ValueError, match="not a registered request extension"):
        _signed({}, extensions={"unknown": 1})
    with pytest.raises(ValueError, match="not a registered request extension"):
        _signed({}, extensions={"c2c": {}})  # set by the codec itself


def test_an_extension_is_top_level_signed_and_read_back(trace_extension: str) -> None:
    data = _signed({"a": 1}, extensions={trace_extension: "t-1"})
    message = json.loads(data)
    # Top level, beside 0.14's fields, which keep their meaning.
    assert set(message) == {"params", "answer_channel", "trace", "c2c"}
    assert message["params"] == {"a": 1}
    request = _request(data, secret=SECRET)
    assert request.extensions == {"trace": "t-1"}
    # Inside the signed part: changing it (or adding it) breaks the signature.
    message["trace"] = "t-2"
    with pytest.raises(DroppedMessage, match="forged"):
        _request(message, secret=SECRET)
    plain = json.loads(_signed({"a": 1}))
    plain["trace"] = "added"
    with pytest.raises(DroppedMessage, match="forged"):
        _request(plain, secret=SECRET)
    # A malformed value of a registered field drops the message.
    with pytest.raises(DroppedMessage, match="malformed"):
        _request({"params": {}, "trace": 5})
    # Absent: the message means what it meant before.
    assert _request({"params": {}}).extensions == {}


def test_an_unknown_field_is_ignored_but_signed() -> None:
    """A newer version's field: an older receiver ignores it, and the signature still covers it."""
    message = json.loads(_signed({"a": 1}, secret=None))
    message["from_the_future"] = {"x": 1}
    request = _request(message)
    assert (request.params, request.extensions) == ({"a": 1}, {})
    from c2c_broadcast._wire import sign

    body = {k: v for k, v in message.items() if k != "c2c"}
    body["c2c"] = {k: v for k, v in message["c2c"].items() if k != "sig"}
    message["c2c"]["sig"] = sign(SECRET, CHANNEL, body)
    assert _request(message, secret=SECRET).params == {"a": 1}
    message["from_the_future"] = {"x": 2}
    with pytest.raises(DroppedMessage, match="forged"):
        _request(message, secret=SECRET, replay_guard=None)


def test_answers_carry_extensions_too(trace_extension: str) -> None:
    data = encode_answer(
        ANSWER_CHANNEL,
        hostname="h",
        pid=1,
        payload="p",
        replica="h:1:x",
        request_id="r",
        now=NOW,
        secret=SECRET,
        extensions={trace_extension: "t-9"},
    )
    answer = decode_answer(data, ANSWER_CHANNEL, max_size=MAX, now=NOW, secret=SECRET, request_id="r")
    assert (answer.payload, answer.extensions) == ("p", {"trace": "t-9"})
    # What a 0.14 caller reads is unchanged.
    assert {k: json.loads(data)[k] for k in ("hostname", "pid", "payload")} == {
        "hostname": "h",
        "pid": 1,
        "payload": "p",
    }


# --- Redis Cluster names and answer routing (issue 18) -------------------------------------------


def _hash_tag(name: str) -> str:
    """The part of a Redis key that decides its slot (Redis Cluster's hash tag rule)."""
    start = name.find("{")
    end = name.find("}", start + 1) if start >= 0 else -1
    return name[start + 1 : end] if start >= 0 and end > start + 1 else name


@given(st.text(max_size=20), st.text(max_size=40), st.text(alphabet="0123456789abcdef", min_size=1, max_size=32))
def test_every_cluster_name_of_a_channel_shares_its_hash_tag(prefix: str, channel: str, process: str) -> None:
    from c2c_broadcast._wire import cluster_answer_channel, cluster_answer_namespace, tagged_channel

    name = prefix + channel
    if not name or "{" in name or "}" in name:
        with pytest.raises(ValueError, match="hash tag"):
            tagged_channel(prefix, channel)
        return
    wire = tagged_channel(prefix, channel)
    answers = cluster_answer_channel(wire, process)
    assert answers.startswith(cluster_answer_namespace(wire))
    tags = {_hash_tag(wire), _hash_tag(answers), _hash_tag(f"{wire}:registry")}
    assert tags == {name}


@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        st.recursive(st.none() | st.text(), lambda c: st.dictionaries(st.text(max_size=5), c, max_size=3)),
    )
)
@example(b'{"c2c": {"id": "abc"}}')
@example('{"c2c": {"id": 5}}')
@example("[1, 2]")
def test_answer_request_id_reads_untrusted_answers(data: Any) -> None:
    from c2c_broadcast._wire import DroppedMessage, answer_request_id

    if not isinstance(data, str | bytes):
        data = json.dumps(data)
    try:
        found = answer_request_id(data, max_size=1000)
    except DroppedMessage:
        return
    assert found is None or isinstance(found, str)
    if data in (b'{"c2c": {"id": "abc"}}',):
        assert found == "abc"
