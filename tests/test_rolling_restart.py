"""A rolling restart of the demo while its Redis is frozen (`redis-server` under SIGSTOP), for real.

Kubernetes replaces the replicas one by one (SIGTERM, wait for the exit, start a new one) while
Redis does not answer; then Redis comes back (SIGCONT, its data intact). What must hold:

- every old replica stops within its drain delay plus a bounded shutdown, every new one starts
  (bounded by the Redis timeouts, not hung), `/c2c/livez` answers 200 throughout and `/` never 500;
- the new replicas are ready while Redis is frozen: the demo's readiness does not follow Redis,
  which every replica shares (a Redis outage would otherwise empty the Service and stall the rollout);
- once Redis answers, the new replicas apply the logging overrides set before the rollout, register
  in the broadcast registry (the old ones are gone from it), answer a level change, and refuse a
  session logged out before the outage;
- a logout made while Redis did not answer waits in the replica that served it: written when Redis
  answers again (at the latest by that replica's shutdown), it reaches the replicas started after;
  a replica stopped while Redis still does not answer says in one ERROR how many it takes with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from c2c_testing import RedisServer, free_port, stop_process, wait_for_port

REPO = Path(__file__).resolve().parents[1]
SECRET = "rolling-restart-test-secret"  # a test value, not a credential
KEY = {"X-API-Key": SECRET}
REDIS_TIMEOUT = 1.0  # C2C__REDIS__TIMEOUT and C2C__BROADCAST__CONNECT_TIMEOUT
DRAIN_DELAY = 1.0
# Upper bounds of waits (a few times the configured timeouts; never timings asserted tightly).
START_TIMEOUT = 60.0
STOP_BOUND = DRAIN_DELAY + 15.0
RECOVERY_TIMEOUT = 30.0


class Replica:
    """One uvicorn process of the demo, wired as `scripts/demo` runs it, on a Redis that may be frozen."""

    def __init__(self, directory: Path, redis_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / f"replica-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("C2C__", "DEMO_"))}
        env.update(
            {
                "C2C__REDIS__URL": redis_url,
                "C2C__REDIS__TIMEOUT": str(REDIS_TIMEOUT),
                "C2C__BROADCAST__CONNECT_TIMEOUT": str(REDIS_TIMEOUT),
                "C2C__BROADCAST__SECRET": "rolling-restart-broadcast-secret",
                "C2C__BROADCAST__HEARTBEAT_INTERVAL": "1",
                "C2C__BROADCAST__REPLICA_TTL": "3",
                "C2C__BROADCAST__RECONNECT_MAX_DELAY": "1",
                "C2C__AUTH__SECRET": SECRET,
                "C2C__HTTP": "true",
                "C2C__AUTH__JWT__COOKIE__SECURE": "false",
                "C2C__HEALTH_CHECKS__DRAIN_DELAY": str(DRAIN_DELAY),
                "C2C__PROMETHEUS__PORT": "0",
                "DEMO_DATABASE": str(directory / "demo.sqlite3"),
                "DEMO_PORT": str(self.port),
            }
        )
        self.started = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "examples.demo.app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-proxy-headers",
                    "--lifespan",
                    "on",
                    "--log-config",
                    str(REPO / "examples/demo/logging.yaml"),
                ],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return f"last lines of {self.log_path}:\n" + "\n".join(text.splitlines()[-lines:])

    def wait_listening(self) -> float:
        """Seconds from the launch until the port accepts connections (the lifespan startup is done)."""
        deadline = self.started + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"replica on port {self.port} exited while starting\n{self.tail()}")
            try:
                wait_for_port("127.0.0.1", self.port, timeout=0.5)
                return time.monotonic() - self.started
            except TimeoutError:
                if time.monotonic() > deadline:
                    pytest.fail(f"replica on port {self.port} did not listen in {START_TIMEOUT:g} s\n{self.tail()}")

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=20, **kwargs)

    def level(self, name: str) -> str:
        response = self.get("/c2c/logging/level", params={"name": name}, headers=KEY)
        assert response.status_code == 200, response.text
        return str(response.json()["level"])

    def logged_in(self, cookies: dict[str, str]) -> bool:
        response = self.get("/c2c/auth/status", cookies=cookies)
        assert response.status_code == 200, response.text
        return bool(response.json()["is_logged_in"])

    def terminate(self) -> float:
        """SIGTERM as Kubernetes sends it; seconds until the process exited."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"replica on port {self.port} still running {STOP_BOUND:g} s after SIGTERM\n{self.tail()}")
        return time.monotonic() - started


class Rollout:
    """The replicas started by a test (all stopped at teardown) and the Redis they share."""

    def __init__(self, directory: Path, redis: RedisServer) -> None:
        self.directory = directory
        self.redis = redis
        self.started: list[Replica] = []
        self.frozen = False

    def start(self) -> Replica:
        replica = Replica(self.directory, self.redis.url)
        self.started.append(replica)
        return replica

    def freeze(self) -> None:
        assert self.redis.pid is not None
        os.kill(self.redis.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.redis.pid is not None:
            os.kill(self.redis.pid, signal.SIGCONT)
        self.frozen = False

    def replace(self, old: Replica) -> tuple[Replica, float, float]:
        """One step of the rollout: stop `old`, then start its successor; (new, stop s, start s)."""
        stopped = old.terminate()
        new = self.start()
        return new, stopped, new.wait_listening()


@pytest.fixture
def rollout(tmp_path: Path, redis_server: RedisServer) -> Iterator[Rollout]:
    state = Rollout(tmp_path, redis_server)
    try:
        yield state
    finally:
        state.thaw()  # before stopping anything: a replica's shutdown may wait for Redis
        for replica in state.started:
            stop_process(replica.process, timeout=15)


def _until(what: str, check: Any, timeout: float = RECOVERY_TIMEOUT) -> Any:
    """Poll `check()` until it returns a true value; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s (last: {value!r})")
        time.sleep(0.3)


def _set_level(replica: Replica, name: str, level: str) -> list[dict[str, Any]] | None:
    """The answers of a level change through `replica` to every replica, None when it was not a 200."""
    response = httpx.post(
        replica.url + "/c2c/logging/level?replicas=true",
        json={"name": name, "level": level},
        headers=KEY,
        timeout=30,
    )
    return response.json()["replicas"] if response.status_code == 200 else None


def _answering(replica: Replica, pids: set[int]) -> bool:
    """A harmless level change through `replica` is answered by exactly the processes `pids`."""
    answers = _set_level(replica, "rolling_probe", "INFO")
    return (
        answers is not None
        and {answer.get("pid") for answer in answers if "payload" in answer} == pids
        and len(answers) == len(pids)
    )


def _login(replica: Replica) -> dict[str, str]:
    response = replica.get("/c2c/auth/login", headers=KEY)
    assert response.status_code == 200, response.text
    return dict(response.cookies)


def _logout(replica: Replica, cookies: dict[str, str]) -> None:
    response = httpx.post(replica.url + "/c2c/auth/logout", cookies=cookies, timeout=20)
    assert response.status_code == 200, response.text


def _ready(replica: Replica) -> bool:
    return replica.get("/c2c/readyz").status_code == 200


def test_rollout_while_redis_is_frozen(rollout: Rollout) -> None:
    old = [rollout.start(), rollout.start()]
    for replica in old:
        replica.wait_listening()
    _until("both replicas answer a broadcast", lambda: _answering(old[0], {replica.pid for replica in old}))

    # Before the outage: an override applied everywhere, a session logged out everywhere.
    answers = _set_level(old[0], "rolling_test", "DEBUG")
    assert answers is not None and {answer["payload"]["level"] for answer in answers} == {"DEBUG"}, answers
    ended = _login(old[0])
    _logout(old[1], ended)
    assert not any(replica.logged_in(ended) for replica in old)

    rollout.freeze()
    new: list[Replica] = []
    for replica in old:
        # The probes of the replica that keeps serving: alive, and `/` is no 500.
        survivor = new[0] if new else old[1]
        assert survivor.get("/c2c/livez").status_code == 200
        assert survivor.get("/").status_code == 200
        successor, stopped, started = rollout.replace(replica)
        # Drain delay, then a shutdown bounded by the Redis timeouts; a start bounded by them too.
        assert DRAIN_DELAY <= stopped < STOP_BOUND, stopped
        assert started < START_TIMEOUT, started
        assert successor.get("/c2c/livez").status_code == 200
        assert successor.get("/").status_code == 200
        assert _ready(successor)  # readiness does not follow Redis, shared by every replica
        new.append(successor)
    rollout.thaw()

    pids = {replica.pid for replica in new}
    _until("the new replicas are ready", lambda: all(_ready(replica) for replica in new))
    _until(
        "the override set before the rollout is applied by the new replicas",
        lambda: [replica.level("rolling_test") for replica in new] == ["DEBUG"] * len(new),
    )
    # A logout made before the outage still holds (after c2c-auth's short fall-back window).
    _until("the session logged out before the outage is refused", lambda: not any(r.logged_in(ended) for r in new))
    # Exactly the new replicas answer a broadcast: no ghost of the old ones, none missing.
    _until("exactly the new replicas answer a level change", lambda: _answering(new[-1], pids))
    answers = _set_level(new[0], "rolling_test", "WARNING")
    assert answers is not None and {answer["pid"] for answer in answers} == pids, answers
    assert [replica.level("rolling_test") for replica in new] == ["WARNING"] * len(new)
    listed = new[1].get("/c2c/replicas", params={"timeout": "5"}, headers=KEY)
    assert listed.status_code == 200, listed.text
    assert {row["pid"] for row in listed.json()["replicas"]} == pids, listed.json()


def test_a_logout_during_a_redis_outage_outlives_its_replica(rollout: Rollout) -> None:
    old = rollout.start()
    old.wait_listening()
    _until("the replica answers a broadcast", lambda: _answering(old, {old.pid}))
    first, second = _login(old), _login(old)

    # Redis back before the replica stops: its shutdown (at the latest) writes the logout.
    rollout.freeze()
    _logout(old, first)
    assert not old.logged_in(first)
    rollout.thaw()
    new, _, _ = rollout.replace(old)
    new.wait_listening()
    assert not new.logged_in(first)
    assert new.logged_in(second)

    # Redis still frozen when the replica stops: the logout is lost with it, and it says so.
    rollout.freeze()
    _logout(new, second)
    newest, _, _ = rollout.replace(new)
    rollout.thaw()
    log = new.log_path.read_text(encoding="utf-8", errors="replace")
    assert "Stopping with 1 logout(s) Redis did not record" in log, new.tail()
    newest.wait_listening()
