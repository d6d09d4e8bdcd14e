"""A rolling upgrade in progress: two c2casgiutils 0.14.0 replicas and two of ours share one Redis.

Four uvicorn processes run the same application (`mixed_rollout_app.py`, written against 0.14's
API), two with c2casgiutils 0.14.0 from PyPI (its own virtual environment, the
`c2casgiutils_014_python` fixture) and two with c2c-all, on one real redis-server. A caller of
either kind must get the answers of all four replicas, for a `decorate`d handler and for the
logging tool, and a caller of ours must not wait its timeout for the 0.14 replicas (they do not
register: it counts them with PUBSUB NUMSUB).
"""

# mypy: disallow-untyped-calls=False

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from c2c_testing import RedisServer, free_port, stop_process

pytestmark = [pytest.mark.slow, pytest.mark.redis]

TESTS = Path(__file__).parent
SECRET = "mixed-rollout-admin-secret-" + secrets.token_hex(8)
JWT_SECRET = "mixed-rollout-jwt-secret-" + secrets.token_hex(16)
PREFIX = "broadcast_api_"
ECHO_CHANNEL = PREFIX + "c2c_decorated_mixed_rollout_app._echo"
LOGGING_CHANNEL = PREFIX + "c2c_decorated_c2casgiutils.tools.logging_.__set_level"
NAMES = ["new-1", "new-2", "old-1", "old-2"]
TIMEOUT = 10.0  # the broadcast timeout of both libraries (decorate's default, the logging tool's)


@dataclasses.dataclass
class Replica:
    """One uvicorn process of the mixed deployment, with an HTTP client logged in on it."""

    name: str
    kind: Literal["0.14", "ours"]
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    client: httpx.Client = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        # One cookie jar per replica: the four share 127.0.0.1, and cookies ignore ports.
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _start(python: Path | str, name: str, kind: Literal["0.14", "ours"], redis_url: str, directory: Path) -> Replica:
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("C2C__")}
    env.update(
        {
            "C2C__REDIS__URL": redis_url,
            "C2C__AUTH__SECRET": SECRET,
            "C2C__AUTH__JWT__SECRET": JWT_SECRET,
            "C2C__AUTH__JWT__COOKIE__SECURE": "false",  # plain http in the test
            "MIXED_REPLICA": name,
            "PYTHONUNBUFFERED": "1",
        }
    )
    port = free_port()
    log_path = directory / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(python), "-m", "uvicorn", "mixed_rollout_app:app", "--app-dir", str(TESTS)]
            + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "info"],
            env=env,
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Replica(name, kind, port, proc, log_path)


def _wait_alive(replica: Replica, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        if replica.proc.poll() is not None:
            raise AssertionError(f"{replica.name} exited ({replica.proc.returncode}):\n{replica.log()}")
        try:
            response = replica.client.get("/alive", timeout=2)
            if response.status_code == 200:
                return dict(response.json())
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{replica.name} did not start in {timeout} s:\n{replica.log()}")
        time.sleep(0.2)


def _wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _numsub(server: RedisServer, channel: str) -> int:
    reply = server.command("PUBSUB", "NUMSUB", channel)
    assert isinstance(reply, list)
    count = reply[1]
    assert isinstance(count, int)
    return count


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def replicas(
    c2casgiutils_014_python: Path, shared_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Replica]]:
    """new-1, new-2 (ours) and old-1, old-2 (0.14), started together, subscribed and logged in."""
    directory = tmp_path_factory.mktemp("mixed-rollout")
    started: dict[str, Replica] = {}
    begin = time.monotonic()
    try:
        for name in NAMES:
            kind: Literal["0.14", "ours"] = "0.14" if name.startswith("old") else "ours"
            python = c2casgiutils_014_python if kind == "0.14" else sys.executable
            started[name] = _start(python, name, kind, shared_redis.url, directory)
        for replica in started.values():
            alive = _wait_alive(replica)
            assert (alive["version"] == "0.14.0") == (replica.kind == "0.14"), alive
        _wait_for(lambda: _numsub(shared_redis, ECHO_CHANNEL) == 4, "four subscribers of the echo channel")
        _wait_for(lambda: _numsub(shared_redis, LOGGING_CHANNEL) == 4, "four subscribers of the logging channel")
        # Only ours register (0.14 replicas are counted through PUBSUB NUMSUB).
        _wait_for(
            lambda: shared_redis.command("ZCARD", PREFIX + "c2c_registry:c2c_decorated_mixed_rollout_app._echo") == 2,
            "our two replicas in the registry",
        )
        for replica in started.values():
            login = replica.client.get("/c2c/auth/login", headers={"X-API-Key": SECRET})
            assert login.status_code == 200, (replica.name, login.text)
        print(f"mixed rollout: four replicas up in {time.monotonic() - begin:.1f} s")
        yield started
    finally:
        for replica in started.values():
            replica.client.close()
            stop_process(replica.proc, timeout=15)
        for replica in started.values():
            log = replica.log()
            assert "Traceback" not in log, f"{replica.name}:\n{log}"
            if replica.kind == "ours":
                assert "Task was destroyed" not in log and "Event loop is closed" not in log, log


def _pids(replicas: dict[str, Replica]) -> dict[str, int]:
    return {name: replica.proc.pid for name, replica in replicas.items()}


@pytest.mark.parametrize("caller", NAMES)
def test_decorated_handler_reaches_all_four(replicas: dict[str, Replica], caller: str) -> None:
    replica = replicas[caller]
    begin = time.monotonic()
    response = replica.client.get("/echo", params={"message": f"from {caller}"})
    elapsed = time.monotonic() - begin
    assert response.status_code == 200, response.text
    answers = response.json()
    assert None not in answers, answers  # no missing answer
    assert sorted(answer["replica"] for answer in answers) == NAMES
    assert all(answer["message"] == f"from {caller}" for answer in answers)
    print(f"echo from {caller} ({replica.kind}): {elapsed * 1000:.0f} ms")
    # Nobody waits for the timeout: ours stops at the fourth answer, 0.14 counts four receivers.
    assert elapsed < TIMEOUT / 2, elapsed


@pytest.mark.parametrize(
    ("caller", "level"), [("old-1", "DEBUG"), ("new-1", "WARNING"), ("old-2", "ERROR"), ("new-2", "INFO")]
)
def test_logging_level_changes_on_all_four(replicas: dict[str, Replica], caller: str, level: str) -> None:
    replica = replicas[caller]
    begin = time.monotonic()
    response = replica.client.post(
        "/c2c/logging/level?replicas=true", json={"name": "mixed_rollout_logger", "level": level}
    )
    elapsed = time.monotonic() - begin
    assert response.status_code == 200, response.text
    assert response.json()["level"] == level
    print(f"logging level from {caller} ({replica.kind}): {elapsed * 1000:.0f} ms")
    assert elapsed < TIMEOUT / 2, elapsed
    if replica.kind == "ours":
        # Our tool answers with every replica's answer: all four, the 0.14 ones included.
        answered = sorted(answer.get("pid") for answer in response.json()["replicas"])
        assert answered == sorted(_pids(replicas).values()), response.json()
        # A 0.14 replica's level setter answers a bool: an answer, not an error.
        assert [answer for answer in response.json()["replicas"] if "error" in answer] == [], response.json()
    for other in replicas.values():
        shown = other.client.get("/c2c/logging/level", params={"name": "mixed_rollout_logger"})
        assert shown.status_code == 200, (other.name, shown.text)
        assert shown.json()["level"] == level, (other.name, shown.json())


def test_an_extension_field_is_ignored_by_014_replicas(replicas: dict[str, Replica], shared_redis: RedisServer) -> None:
    """A request built by our codec with an optional top-level field (the extension rule): every replica answers."""
    import redis as redis_py

    from c2c_broadcast import _wire

    def check(value: Any) -> Any:
        return value

    _wire.extension("mixed_rollout_probe", ["request"], check, "a field 0.14 does not know, for this test")
    client = redis_py.Redis(host=shared_redis.host, port=shared_redis.port)
    pubsub = client.pubsub()
    try:
        answer_channel = PREFIX + "c2c_answer_mixed_rollout_probe"
        pubsub.subscribe(answer_channel)
        request = _wire.encode_request(
            ECHO_CHANNEL,
            {"message": "probe"},
            answer_channel=answer_channel,
            request_id=secrets.token_hex(16),
            hostname="test",
            pid=os.getpid(),
            now=time.time(),
            extensions={"mixed_rollout_probe": {"anything": [1, 2]}},
        )
        assert "mixed_rollout_probe" in json.loads(request)
        assert client.publish(ECHO_CHANNEL, request) == 4
        answers: list[Any] = []
        deadline = time.monotonic() + TIMEOUT
        while len(answers) < 4 and time.monotonic() < deadline:
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is not None:
                answers.append(json.loads(message["data"]))
        assert sorted(answer["payload"]["replica"] for answer in answers) == NAMES
    finally:
        del _wire.EXTENSIONS["mixed_rollout_probe"]
        pubsub.close()
        client.close()
    for name in ("old-1", "old-2"):
        assert "Failed handling a broadcast message" not in replicas[name].log()


def test_our_caller_waits_a_bounded_time_for_a_silent_subscriber(
    replicas: dict[str, Replica], shared_redis: RedisServer
) -> None:
    """A subscriber that never answers (a hung 0.14 replica) costs our caller `legacy_wait`, not the timeout."""
    import redis as redis_py

    client = redis_py.Redis(host=shared_redis.host, port=shared_redis.port)
    pubsub = client.pubsub()
    patterns = client.pubsub()
    try:
        pubsub.subscribe(ECHO_CHANNEL)  # subscribed, never reads
        patterns.psubscribe("*")  # a monitoring tool: never counted by ours
        _wait_for(lambda: _numsub(shared_redis, ECHO_CHANNEL) == 5, "the silent subscriber")
        begin = time.monotonic()
        answers = replicas["new-1"].client.get("/echo", params={"message": "silent"}).json()
        elapsed = time.monotonic() - begin
        print(f"echo from new-1 with a silent subscriber: {elapsed * 1000:.0f} ms")
        assert sorted(a["replica"] for a in answers if a is not None) == NAMES
        assert answers.count(None) == 1  # the silent one, as an anonymous MissingAnswer
        assert 1.5 < elapsed < TIMEOUT / 2  # legacy_wait (2 s by default)
    finally:
        pubsub.close()
        patterns.close()
        client.close()
