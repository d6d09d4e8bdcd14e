"""Kubernetes probes: /livez, /readyz, draining on SIGTERM, application/health+json, HEAD, unknown filters."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from hypothesis import given
from hypothesis import strategies as st

import c2c_health
from c2c_config import reload_settings, signals
from c2c_health import HEALTH_JSON, Check, Factory, Result, create_router
from c2c_health._probes import UnknownFilterLog, wants_health_json
from c2c_testing import free_port

HERE = Path(__file__).parent
MakeFactory = Callable[..., Factory]
MakeApp = Callable[..., FastAPI]


class Ok(Check):
    async def check(self) -> Result:
        return Result(payload={"version": "1.2.3"})


class Moved(Check):
    async def check(self) -> Result:
        return Result(302, {"note": "redirected"})


class Broken(Check):
    async def check(self) -> Result:
        raise ConnectionError("cannot reach db.internal")


class Counting(Check):
    def __init__(self, name: str) -> None:
        super().__init__(tags=["readiness"], name=name)
        self.runs = 0

    async def check(self) -> Result:
        self.runs += 1
        return Result()


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


# -- /livez and /readyz ----------------------------------------------------------------------------


async def test_livez_checks_no_dependency(make_factory: MakeFactory, make_app: MakeApp) -> None:
    factory = make_factory()
    broken = Broken(tags=["readiness"])
    factory.add(broken)
    async with client(make_app(factory)) as http:
        response = await http.get("/c2c/livez")
        assert response.status_code == 200, response.text
        assert response.json() == {"status_code": 200, "time_taken": 0.0, "entities": []}
        assert response.headers["cache-control"] == "no-store"
        # A check the application tags `liveness` (its own state) is run.
        factory.add(Ok(tags=["liveness"], name="own-state"))
        body = (await http.get("/c2c/livez")).json()
        assert [entity["name"] for entity in body["entities"]] == ["own-state"]


async def test_readyz_runs_the_readiness_checks_or_all(make_factory: MakeFactory, make_app: MakeApp) -> None:
    factory = make_factory()
    factory.add(Ok(tags=["other"], name="untagged"))
    factory.add(Broken(tags=["other"], name="broken"))
    async with client(make_app(factory)) as http:
        response = await http.get("/c2c/readyz")  # none tagged readiness: all of them
        assert response.status_code == 500
        assert {entity["name"] for entity in response.json()["entities"]} == {"untagged", "broken"}
        factory.add(Ok(tags=["readiness"], name="db"))
        response = await http.get("/c2c/readyz")
        assert response.status_code == 200
        assert [entity["name"] for entity in response.json()["entities"]] == ["db"]


async def test_readyz_uses_the_cache_and_the_detail_policy(make_factory: MakeFactory, make_app: MakeApp) -> None:
    factory = make_factory(cache_ttl=60, details="never")
    counting = Counting("counted")
    factory.add(counting)
    factory.add(Broken(tags=["readiness"], name="db"))
    async with client(make_app(factory)) as http:
        for _ in range(3):
            response = await http.get("/c2c/readyz")
        assert counting.runs == 1
        assert "db.internal" not in response.text
        assert response.json()["entities"][1]["payload"] == {"error": c2c_health.GENERIC_ERROR}


async def test_detail_policy_with_authorize(make_factory: MakeFactory, make_app: MakeApp) -> None:
    factory = make_factory(details="authorized")
    factory.add(Broken(tags=["readiness"], name="db"))

    async def allow(request: object) -> bool:
        return True

    async with client(make_app(factory, authorize=allow)) as http:
        body = (await http.get("/c2c/readyz", headers={"Accept": HEALTH_JSON})).json()
    assert body["checks"]["db:responseTime"][0]["output"] == "cannot reach db.internal"


async def test_a_refusal_from_authorize_hides_details_without_a_traceback(
    make_factory: MakeFactory, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    """An `HTTPException` from `authorize` (e.g. 429, a spent wrong-secret budget) is an answer, not an error."""
    factory = make_factory(details="authorized")
    factory.add(Broken(tags=["readiness", "liveness"], name="db"))

    async def refuse(request: object) -> bool:
        raise HTTPException(429, "Too many wrong secrets")

    async def crash(request: object) -> bool:
        raise RuntimeError("the authorizer is broken")

    caplog.set_level(logging.DEBUG, logger="c2c_health")
    async with client(make_app(factory, authorize=refuse)) as http:
        for path in ("/c2c/readyz", "/c2c/livez", "/c2c/health_checks"):
            response = await http.get(path)
            assert response.status_code == 500, response.text  # the check's own status, not the refusal's
            assert "db.internal" not in response.text
        assert (await http.get("/c2c/health_checks/history")).status_code == 403
    router_records = [record for record in caplog.records if record.module == "_router"]  # not the check's own
    assert router_records and all(record.levelno == logging.DEBUG for record in router_records)
    assert all("refused (429)" in record.getMessage() for record in router_records)

    caplog.clear()
    async with client(make_app(factory, authorize=crash)) as http:
        response = await http.get("/c2c/readyz")
        assert response.status_code == 500 and "db.internal" not in response.text
    # A broken authorizer is still reported, with its traceback.
    (error,) = [record for record in caplog.records if record.module == "_router"]
    assert error.levelno == logging.ERROR and error.exc_info is not None


# -- application/health+json ---------------------------------------------------------------------


async def test_health_json_shape(make_factory: MakeFactory, make_app: MakeApp) -> None:
    factory = make_factory(details="never")
    factory.add(Ok(tags=["readiness"], name="db"))
    factory.add(Moved(tags=["readiness"], name="cdn"))
    app = FastAPI()
    c2c = FastAPI()
    c2c.include_router(create_router(factory, service_id="demo-7f9c", version="2.3.1"))
    app.mount("/c2c", c2c)
    async with client(app) as http:
        response = await http.get("/c2c/readyz", headers={"Accept": "application/health+json"})
        assert response.status_code == 302
        assert response.headers["content-type"] == HEALTH_JSON
        body = response.json()
        assert body["status"] == "warn"
        assert body["serviceId"] == "demo-7f9c"
        assert body["version"] == "2.3.1"
        assert set(body["checks"]) == {"db:responseTime", "cdn:responseTime"}
        (db,) = body["checks"]["db:responseTime"]
        assert db["status"] == "pass" and db["componentId"] == "db" and db["observedUnit"] == "ms"
        assert db["componentType"] == "readiness"
        assert "output" not in db  # healthy and no details
        assert body["checks"]["cdn:responseTime"][0]["status"] == "warn"

        factory.add(Broken(tags=["readiness"], name="queue"))
        body = (await http.get("/c2c/readyz", headers={"Accept": "text/html, application/health+json;q=0.9"})).json()
        assert body["status"] == "fail"
        assert body["checks"]["queue:responseTime"][0]["output"] == c2c_health.GENERIC_ERROR
        body = (await http.get("/c2c/livez", headers={"Accept": HEALTH_JSON})).json()
        assert body["status"] == "pass" and body["checks"] == {} and body["serviceId"] == "demo-7f9c"
        # Plain JSON otherwise, also for an explicit q=0.
        response = await http.get("/c2c/readyz", headers={"Accept": "application/health+json;q=0"})
        assert response.headers["content-type"] == "application/json"


async def test_health_json_service_id_defaults_to_the_host_name(make_factory: MakeFactory, make_app: MakeApp) -> None:
    async with client(make_app(make_factory())) as http:
        body = (await http.get("/c2c/readyz", headers={"Accept": HEALTH_JSON})).json()
    assert body == {"status": "pass", "serviceId": os.uname().nodename, "checks": {}}


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        ("", False),
        ("application/json", False),
        ("application/health+json", True),
        ("APPLICATION/HEALTH+JSON ; q=0.5", True),
        ("application/health+json;q=0", False),
        ("application/health+json;q=bad", False),
        ("text/plain, application/health+json; charset=utf-8", True),
    ],
)
def test_wants_health_json(accept: str | None, expected: bool) -> None:
    assert wants_health_json(accept) is expected


@given(st.text(max_size=200))
def test_wants_health_json_never_raises(accept: str) -> None:
    assert isinstance(wants_health_json(accept), bool)


# -- HEAD --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/c2c/livez", "/c2c/readyz", "/c2c/health_checks", "/c2c/health"])
async def test_head_on_every_probe(make_factory: MakeFactory, make_app: MakeApp, path: str) -> None:
    factory = make_factory()
    factory.add(Broken(tags=["readiness", "liveness"], name="db"))
    async with client(make_app(factory)) as http:
        get = await http.get(path)
        head = await http.head(path)
    assert head.status_code == get.status_code == 500
    assert head.content == b""
    # The GET's headers (its length varies with the durations in the body).
    assert int(head.headers["content-length"]) > 100
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["cache-control"] == "no-store"


async def test_head_on_the_default_router() -> None:
    app = FastAPI()
    app.include_router(c2c_health.router, prefix="/c2c")
    async with client(app) as http:
        for path in ("/c2c/health_checks", "/c2c/livez", "/c2c/readyz"):
            assert (await http.head(path)).status_code == 200, path


async def test_probes_are_in_the_openapi_schema_once(make_factory: MakeFactory) -> None:
    app = FastAPI()
    app.include_router(create_router(make_factory()))
    paths = app.openapi()["paths"]
    assert set(paths["/readyz"]) == {"get"} and set(paths["/livez"]) == {"get"}
    app = FastAPI()
    app.include_router(create_router(make_factory(), probes=False))
    assert "/readyz" not in app.openapi()["paths"]


# -- draining ----------------------------------------------------------------------------------------


class FakeServer:
    """A Python SIGTERM handler, as uvicorn installs one."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.calls += 1


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    original = signal.getsignal(signal.SIGTERM)
    server = FakeServer()
    signal.signal(signal.SIGTERM, server)
    try:
        yield server
    finally:
        signals.restore()
        signal.signal(signal.SIGTERM, original)


def test_sigterm_turns_readyz_to_503_at_once(
    make_factory: MakeFactory, make_app: MakeApp, fake_server: FakeServer
) -> None:
    factory = make_factory(drain_delay=30)
    factory.add(Ok(tags=["readiness"], name="db"))
    app = make_app(factory)

    async def main() -> None:
        assert await c2c_health.startup(factory.settings())
        assert signals.hooks() == {"c2c_health": 30.0}
        async with client(app) as http:
            assert (await http.get("/c2c/readyz")).status_code == 200
            signal.raise_signal(signal.SIGTERM)
            await asyncio.sleep(0.05)
            assert c2c_health.draining()
            response = await http.get("/c2c/readyz")
            assert response.status_code == 503
            assert response.json() == {"status_code": 503, "time_taken": 0.0, "entities": [], "draining": True}
            body = (await http.get("/c2c/readyz", headers={"Accept": HEALTH_JSON})).json()
            assert body["status"] == "fail" and body["output"].startswith("draining")
            assert (await http.head("/c2c/readyz")).status_code == 503
            # Everything else keeps serving during the delay; the server's own handler waits.
            assert (await http.get("/c2c/livez")).status_code == 200
            assert (await http.get("/c2c/health_checks")).status_code == 200
            assert fake_server.calls == 0
            signal.raise_signal(signal.SIGTERM)  # a second SIGTERM: no more waiting
            assert fake_server.calls == 1
        await c2c_health.shutdown()
        assert "c2c_health" not in signals.hooks()

    asyncio.run(main())

    async def next_loop() -> bool:  # a new event loop (the next lifespan) starts ready
        return c2c_health.draining()

    assert asyncio.run(next_loop()) is False


def test_without_delay_the_server_stops_at_once(make_factory: MakeFactory, fake_server: FakeServer) -> None:
    factory = make_factory()

    async def main() -> None:
        assert await c2c_health.startup(factory.settings())
        signal.raise_signal(signal.SIGTERM)
        assert fake_server.calls == 1  # today's behaviour
        await asyncio.sleep(0.05)
        assert c2c_health.draining()

    asyncio.run(main())


def test_startup_reads_the_setting_and_shutdown_resets(
    monkeypatch: pytest.MonkeyPatch, fake_server: FakeServer
) -> None:
    monkeypatch.setenv("C2C__HEALTH_CHECKS__DRAIN_DELAY", "2s")
    reload_settings(c2c_health.Settings)
    try:

        async def main() -> None:
            assert await c2c_health.startup()  # the process-wide settings
            assert signals.hooks() == {"c2c_health": 2.0}
            assert not c2c_health.draining()
            c2c_health.start_draining()
            c2c_health.start_draining()  # idempotent
            assert c2c_health.draining()
            await c2c_health.shutdown()  # the loop may serve another lifespan: ready again
            assert not c2c_health.draining()
            assert signals.hooks() == {}
            assert signal.getsignal(signal.SIGTERM) is fake_server

        asyncio.run(main())
    finally:
        monkeypatch.delenv("C2C__HEALTH_CHECKS__DRAIN_DELAY")
        reload_settings(c2c_health.Settings)


def test_startup_without_a_python_handler_installs_nothing() -> None:
    async def main() -> bool:
        return await c2c_health.startup()

    # The default disposition, as a server that installs no handler leaves it (a test run under
    # `coverage run` has coverage's own SIGTERM handler in place: put the default back meanwhile).
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert asyncio.run(main()) is False
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)


def _get(port: int, path: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _wait_for_line(log: Path, line: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if line in log.read_text():
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{line!r} not in the log:\n{log.read_text()}")


def test_draining_under_a_real_uvicorn(tmp_path: Path) -> None:
    """A slow request in flight, SIGTERM: readyz 503 at once, the slow request ends with 200, the process exits."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env.update({"C2C__HEALTH_CHECKS__DRAIN_DELAY": "2s", "PYTHONPATH": str(HERE)})
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "uvicorn_probes:app", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        _wait_for_line(log, "Uvicorn running on", process)
        assert "SIGTERM hook installed=True" in log.read_text()
        assert _get(port, "/c2c/readyz")[0] == 200
        slow = pool.submit(_get, port, "/slow?seconds=3", 20)
        _wait_for_line(log, "slow request started", process)

        process.send_signal(signal.SIGTERM)
        statuses = []
        deadline = time.monotonic() + 1.5  # well inside the 2 s delay
        while time.monotonic() < deadline:
            statuses.append(_get(port, "/c2c/readyz")[0])
            if statuses[-1] == 503:
                break
            time.sleep(0.02)
        assert statuses[-1] == 503, (statuses, log.read_text())
        status, body = _get(port, "/c2c/readyz")
        assert status == 503 and json.loads(body)["draining"] is True
        assert _get(port, "/c2c/livez")[0] == 200  # still serving during the delay

        status, body = slow.result(timeout=20)
        assert status == 200, log.read_text()
        assert json.loads(body) == {"slept": 3.0}
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    # The order the issue asks for: hooks at the signal, the request finished, then the lifespan shutdown.
    assert text.index("SIGTERM hooks ran") < text.index("slow request done"), text
    assert text.index("slow request done") < text.index("probes: lifespan shutdown"), text


def test_under_granian_the_drain_delay_does_not_hold(tmp_path: Path) -> None:
    """What the README states for granian (2.8): the hooks run in the worker, but nothing waits.

    granian's main process handles SIGTERM in Rust: it closes the listening socket at once, then
    stops the worker, whose Python handler (and so the hooks) runs, but the worker's server stops
    without waiting for it: the 30 s drain delay does not apply, new connections are refused at
    once (a /readyz 503 can only reach a connection accepted just before); the request in flight
    still ends with 200.
    """
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env.update({"C2C__HEALTH_CHECKS__DRAIN_DELAY": "30s", "PYTHONPATH": str(HERE)})
    log = tmp_path / "granian.log"
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--workers", "1", "uvicorn_probes:app"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        _wait_for_line(log, "SIGTERM hook installed=True", process)  # in the worker: it has a Python handler
        deadline = time.monotonic() + 10
        while _status(port, "/c2c/readyz") != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _status(port, "/c2c/readyz") == 200
        slow = pool.submit(_get, port, "/slow?seconds=2", 20)
        _wait_for_line(log, "slow request started", process)

        process.send_signal(signal.SIGTERM)
        statuses = [_status(port, "/c2c/readyz")]
        while statuses[-1] != 0 and len(statuses) < 200:
            time.sleep(0.02)
            statuses.append(_status(port, "/c2c/readyz"))
        assert statuses[-1] == 0, statuses  # refused: the probe fails by connection error
        assert set(statuses) <= {200, 503, 0}, statuses
        assert slow.result(timeout=20)[0] == 200
        assert process.wait(timeout=20) == 0  # long before the 30 s delay: nothing waited for it
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "probes: SIGTERM hooks ran" in text and "probes: lifespan shutdown" in text, text


def _status(port: int, path: str) -> int:
    """The status of a GET, 0 when the connection is refused or reset."""
    try:
        return _get(port, path, timeout=2)[0]
    except OSError:
        return 0


# -- unknown filters ---------------------------------------------------------------------------------


async def test_unknown_filter_keeps_200_and_warns_once(
    make_factory: MakeFactory, make_app: MakeApp, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("c2c_health._router.UNKNOWN_FILTERS", UnknownFilterLog())
    factory = make_factory()
    factory.add(Ok(tags=["readiness"], name="db"))
    caplog.set_level(logging.WARNING, logger="c2c_health")
    async with client(make_app(factory)) as http:
        for _ in range(3):
            response = await http.get("/c2c/health_checks?name=nope,db&tags=ghost,readiness")
            assert [entity["name"] for entity in response.json()["entities"]] == ["db"]
            # A filter that matches nothing: 0.14's answer, 200 and no entity.
            response = await http.get("/c2c/health_checks?tags=ghost")
            assert response.status_code == 200 and response.json()["entities"] == []
            response = await http.get("/c2c/health_checks?name=nope")
            assert response.status_code == 200 and response.json()["entities"] == []
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == [
        "Health checks: no registered check has the name 'nope' (the filter selects nothing from it)",
        "Health checks: no registered check has the tag 'ghost' (the filter selects nothing from it)",
    ]


async def test_unknown_filter_on_the_default_router(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("c2c_health._router.UNKNOWN_FILTERS", UnknownFilterLog())
    app = FastAPI()
    app.include_router(c2c_health.router, prefix="/c2c")
    caplog.set_level(logging.WARNING, logger="c2c_health")
    async with client(app) as http:
        response = await http.get("/c2c/health_checks?name=missing-check")
    assert response.status_code == 200 and response.json()["entities"] == []
    assert "no registered check has the name 'missing-check'" in caplog.text


def test_unknown_filter_log_is_bounded(make_factory: MakeFactory, caplog: pytest.LogCaptureFixture) -> None:
    log = UnknownFilterLog()
    caplog.set_level(logging.WARNING, logger="c2c_health")
    log.check(make_factory(), [f"n{index}" for index in range(1000)], None)
    assert len(caplog.records) == 256
