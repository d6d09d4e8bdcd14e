"""Rotating `C2C__BROADCAST__SECRET` without a gap: `C2C__BROADCAST__ACCEPTED_SECRETS` (checked, never signing).

The three steps of a rotation, each a rolling deployment in which replicas of the step before and of
this one talk to each other on a real Redis:

1. every replica accepts the new secret, still signing with the old one;
2. every replica signs with the new one, still accepting the old one;
3. the old one is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2c_broadcast import BroadcastResponse
from c2c_broadcast._settings import BroadcastSettings
from c2c_broadcast._wire import DroppedMessage, decode_answer, decode_request, encode_answer, encode_request
from c2c_testing import RedisServer

try:
    import redis.asyncio as aioredis

    from c2c_broadcast.redis import RedisBroadcaster
except ModuleNotFoundError:
    aioredis = None  # type: ignore[assignment]

needs_redis = pytest.mark.skipif(aioredis is None, reason="needs the redis extra: c2c-broadcast[redis]")

PREFIX = "rotation_"
OLD, NEW = "the-old-secret", "the-new-secret"
NOW = 1_800_000_000.0


def _settings(secret: str, *accepted: str) -> BroadcastSettings:
    return BroadcastSettings(secret=secret, accepted_secrets=list(accepted))  # type: ignore[arg-type]


# --- the wire ----------------------------------------------------------------------------------------


@given(
    signing=st.binary(min_size=1, max_size=16),
    accepted=st.lists(st.binary(min_size=1, max_size=16), max_size=3),
    secret=st.binary(min_size=1, max_size=16),
)
def test_a_request_is_valid_signed_by_the_secret_or_an_accepted_one(
    signing: bytes, accepted: list[bytes], secret: bytes
) -> None:
    data = encode_request(
        PREFIX + "echo", {"a": 1}, answer_channel=PREFIX + "c2c_answer_x", request_id="r" * 32,
        hostname="h", pid=1, now=NOW, secret=signing,
    )  # fmt: skip
    options: dict[str, Any] = {"prefix": PREFIX, "max_size": 65536, "now": NOW, "secret": secret, "accepted": accepted}
    if signing == secret or signing in accepted:
        assert decode_request(data, PREFIX + "echo", **options).signed
    else:
        with pytest.raises(DroppedMessage, match="forged"):
            decode_request(data, PREFIX + "echo", **options)


def test_an_answer_is_valid_signed_by_an_accepted_secret() -> None:
    channel = PREFIX + "c2c_answer_x"
    answer = encode_answer(channel, hostname="h", pid=1, payload=1, replica="x", request_id="r1", now=NOW, secret=b"o")
    options: dict[str, Any] = {"max_size": 65536, "now": NOW, "request_id": "r1", "secret": b"n"}
    assert decode_answer(answer, channel, **options, accepted=[b"o"]).payload == 1
    with pytest.raises(DroppedMessage, match="forged"):
        decode_answer(answer, channel, **options)
    # Accepting a secret never makes an unsigned message valid.
    unsigned = encode_answer(channel, hostname="h", pid=1, payload=1, replica="x", request_id="r1", now=NOW)
    with pytest.raises(DroppedMessage, match="unsigned"):
        decode_answer(unsigned, channel, **options, accepted=[b"o"])


# --- the settings ----------------------------------------------------------------------------------


def test_accepted_secrets_are_read_from_a_list_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    from c2c_broadcast._settings import Settings

    monkeypatch.setenv("C2C__BROADCAST__SECRET", NEW)
    monkeypatch.setenv("C2C__BROADCAST__ACCEPTED_SECRETS", f" {OLD} , ,older")
    settings = Settings().broadcast
    assert [secret.get_secret_value() for secret in settings.accepted_secrets] == [OLD, "older"]
    assert OLD not in repr(settings)
    assert OLD not in json.dumps(settings.model_dump(mode="json"))
    monkeypatch.setenv("C2C__BROADCAST__ACCEPTED_SECRETS", json.dumps(["with,comma"]))  # a comma: a JSON array
    assert [secret.get_secret_value() for secret in Settings().broadcast.accepted_secrets] == ["with,comma"]


def test_accepted_secrets_without_a_secret_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from c2c_broadcast._settings import Settings
    from c2c_config import ConfigError

    monkeypatch.delenv("C2C__BROADCAST__SECRET", raising=False)
    monkeypatch.setenv("C2C__BROADCAST__ACCEPTED_SECRETS", OLD)
    with pytest.raises(ConfigError, match="without C2C__BROADCAST__SECRET") as refused:
        Settings()
    assert OLD not in str(refused.value)
    monkeypatch.setenv("C2C__BROADCAST__SECRET", NEW)
    monkeypatch.setenv("C2C__BROADCAST__ACCEPTED_SECRETS", "[12345]")
    with pytest.raises(ConfigError, match="item 1 is not text") as refused:
        Settings()
    assert "12345" not in str(refused.value)


# --- a rolling rotation on a real Redis --------------------------------------------------------------


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Any]:
    if aioredis is None:
        pytest.skip("needs the redis extra: c2c-broadcast[redis]")
    redis_client = aioredis.Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=5)
    yield redis_client
    await redis_client.aclose()


async def _answered(caller: Any, callee: Any) -> bool:
    """Whether `callee` runs `caller`'s call and `caller` takes its answer."""
    answers = await caller.broadcast("whoami", {}, True, 3)
    return [answer.payload for answer in answers if isinstance(answer, BroadcastResponse)] == [callee.replica_id]


@needs_redis
@pytest.mark.parametrize(
    ("before", "after"),
    [
        ((OLD,), (OLD, NEW)),  # step 1: the new secret accepted, not yet signing
        ((OLD, NEW), (NEW, OLD)),  # step 2: signing with the new one, the old one still accepted
        ((NEW, OLD), (NEW,)),  # step 3: the old one dropped
    ],
)
async def test_each_step_of_a_rotation_keeps_every_replica_answering(
    client: Any, before: tuple[str, ...], after: tuple[str, ...]
) -> None:
    """A replica of the step before and one of this step, each calling the other: every call answered."""
    old_replica = RedisBroadcaster(client=client, prefix=PREFIX, settings=_settings(*before))
    new_replica = RedisBroadcaster(client=client, prefix=PREFIX, settings=_settings(*after))
    replicas = [old_replica, new_replica]
    for replica in replicas:
        await replica.start()
        await replica.subscribe("whoami", lambda replica=replica: replica.replica_id)
    try:
        async with asyncio.timeout(30):
            for caller, callee in ((old_replica, new_replica), (new_replica, old_replica)):
                # Only `callee` answers: `caller` leaves the channel for the call.
                await caller.unsubscribe("whoami")
                assert await _answered(caller, callee), (before, after)
                await caller.subscribe("whoami", lambda caller=caller: caller.replica_id)
    finally:
        for replica in replicas:
            await replica.close()


@needs_redis
async def test_the_startup_line_says_whether_messages_are_signed(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="c2c_broadcast")
    for settings, said in (
        (_settings(NEW), "messages signed"),
        (BroadcastSettings(), "messages not signed (C2C__BROADCAST__SECRET unset: whoever can publish on this Redis"),
    ):
        caplog.clear()
        replica = RedisBroadcaster(client=client, prefix=PREFIX, settings=settings)
        await replica.start()
        await replica.close()
        (line,) = [record.getMessage() for record in caplog.records if "Broadcast through Redis" in record.getMessage()]
        assert line.endswith(said) or said in line, line


@needs_redis
async def test_skipping_the_first_step_is_a_gap(client: Any) -> None:
    """Signing with the new secret while a replica does not accept it yet: that replica refuses the calls
    (the gap the first step avoids)."""
    old_replica = RedisBroadcaster(client=client, prefix=PREFIX, settings=_settings(OLD))
    new_replica = RedisBroadcaster(client=client, prefix=PREFIX, settings=_settings(NEW, OLD))
    for replica in (old_replica, new_replica):
        await replica.start()
    await old_replica.subscribe("whoami", lambda: old_replica.replica_id)
    try:
        answers = await new_replica.broadcast("whoami", {}, True, 2)
        assert answers is not None
        assert not [answer for answer in answers if isinstance(answer, BroadcastResponse)]
        assert old_replica.status().counters.get("messages_dropped{reason=forged}", 0) >= 1, old_replica.status()
    finally:
        for replica in (old_replica, new_replica):
            await replica.close()
