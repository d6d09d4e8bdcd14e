"""The deploy check (`python -m c2casgiutils check`): every problem of a broken configuration is listed.

The applications checked are written as modules into a temporary directory and imported by name,
as the command line imports them; Redis is a real `redis-server` (stopped for "Redis down").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2c_config.redis import CLUSTER_MIN_REDIS_PY, redis_py_version
from c2c_testing import RedisCluster, RedisSentinel, RedisServer
from c2casgiutils import config, headers
from c2casgiutils.check import CheckOptions, Finding, LifespanRunner, exit_status, main, run_check
from c2casgiutils.check._application import middleware_stack
from c2casgiutils.check._remote import remote_findings
from c2casgiutils.health_checks import FACTORY

PACKAGE = Path(__file__).resolve().parents[1]
LONG_SECRET = "x" * 64

# A module of an application: header rules, a health check and a lifespan chosen by variables.
APP_TEMPLATE = """
from contextlib import asynccontextmanager

import c2casgiutils
from c2casgiutils import headers, health_checks
from fastapi import FastAPI

STATE = {{"started": False, "stopped": False}}


@asynccontextmanager
async def lifespan(app):
    await c2casgiutils.startup(app)
    STATE["started"] = True
    try:
        {startup}
        yield
    finally:
        STATE["stopped"] = True
        await c2casgiutils.shutdown()


class Failing(health_checks.Check):
    async def check(self):
        raise RuntimeError("the database is gone")


class Passing(health_checks.Check):
    async def check(self):
        return health_checks.Result(status_code=200, payload={{}})


app = FastAPI(lifespan=lifespan)
{mount}
app.add_middleware(headers.ArmorHeaderMiddleware, headers_config={rules})
health_checks.FACTORY.add({check}(name="{name}"))
"""

# A service's own names on a Redis server other services may share.
SERVICE_PREFIXES = {
    "C2C__REDIS__BROADCAST_PREFIX": "tiles_broadcast_",
    "C2C__TOOLS__LOGGING__REDIS_PREFIX": "tiles_logging_level_",
    "C2C__AUTH__REDIS_PREFIX": "tiles-auth:",
}

BROKEN_RULES = {"scripts": {"headers": {"Content-Security-Policy": "script-src 'self'"}}}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], None]]:
    """`environment({...})`: only these `C2C__` variables, re-read; everything put back afterwards."""

    def clear() -> None:
        for name in list(os.environ):
            if name.upper().startswith("C2C__"):
                monkeypatch.delenv(name)

    def apply(env: dict[str, str]) -> None:
        clear()
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with contextlib.suppress(config.ConfigError):  # the check itself reports it
            config.reload()

    yield apply
    clear()
    config.reload()


@pytest.fixture
def checks_restored() -> Iterator[None]:
    """The health checks registered by the applications under test are removed afterwards."""
    before = dict(FACTORY.registered)
    yield
    for name in list(FACTORY.registered):
        if name not in before:
            FACTORY.remove(name)


@pytest.fixture
def write_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks_restored: None) -> Callable[..., str]:
    """Write an application module; return its `module:app` spec."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(
        *,
        startup: str = "pass",
        mount: bool = True,
        rules: dict[str, Any] | None = None,
        check: str = "Passing",
    ) -> str:
        name = f"checked_app_{uuid.uuid4().hex}"
        source = APP_TEMPLATE.format(
            startup=startup,
            mount='app.mount("/c2c", c2casgiutils.app)' if mount else "",
            rules=repr(rules),
            check=check,
            name=name,
        )
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return f"{name}:app"

    return write


@pytest.fixture
def redis_down(redis_server: RedisServer) -> str:
    """The URL of a real Redis server that was stopped: nothing listens there any more."""
    url = redis_server.url
    redis_server.stop()
    return url


def _ids(findings: list[Finding]) -> list[str]:
    return sorted(finding.id for finding in findings)


def _by_id(findings: list[Finding], finding_id: str) -> list[Finding]:
    return [finding for finding in findings if finding.id == finding_id]


async def test_broken_settings_list_every_invalid_variable(environment: Callable[[dict[str, str]], None]) -> None:
    environment(
        {
            "C2C__REDIS__DB": "x",
            "C2C__REDIS__TIMEOUT": "soon",
            "C2C__PROXY_HEADERS__TYPE": "weird",
            "C2C__AUTH__JWT__ALGORITHM": "RS1",
            "C2C__REDDIS__URL": "redis://x",
        }
    )
    findings = await run_check(CheckOptions(app="never_imported_module:app"))
    assert _ids(findings) == ["C2C-E001"] * 4 + ["C2C-I001", "C2C-W010"]
    messages = " ".join(finding.message for finding in _by_id(findings, "C2C-E001"))
    for variable in ("C2C__REDIS__DB", "C2C__REDIS__TIMEOUT", "C2C__PROXY_HEADERS__TYPE", "C2C__AUTH__JWT__ALGORITHM"):
        assert variable in messages
    assert "did you mean C2C__REDIS__URL?" in _by_id(findings, "C2C-W010")[0].message
    assert [finding.severity for finding in findings][:4] == ["error"] * 4  # most severe first
    assert exit_status(findings) == 1
    assert "never_imported_module" not in sys.modules


async def test_broken_application_lists_every_problem(
    environment: Callable[[dict[str, str]], None], write_app: Callable[..., str], redis_down: str
) -> None:
    environment(
        {
            "C2C__REDIS__URL": redis_down,
            "C2C__REDIS__TIMEOUT": "1",
            "C2C__BROADCAST__CONNECT_TIMEOUT": "1",
            "C2C__PROXY_HEADERS__TRUSTED_HOSTS": "*",
            "C2C__AUTH__SECRET": "short",
            "C2C__AUTH__JWT__SECRET": "too-short",
            "C2C__HTTP": "true",
            "C2C__TOOLS__LOGGING__SYNC_INTERVALL": "10",
        }
    )
    spec = write_app(startup='raise RuntimeError("cannot load the model")', rules=BROKEN_RULES, check="Failing")
    started = time.monotonic()
    findings = await run_check(CheckOptions(app=spec, timeout=5))
    assert time.monotonic() - started < 15  # bounded, although Redis is down
    assert _ids(findings) == [
        "C2C-E004",  # the lifespan startup
        "C2C-E005",  # Redis down
        "C2C-E006",  # the failing health check
        "C2C-I003",  # the default Redis names, which services sharing the server would share
        "C2C-W002",  # '*' in the trusted hosts
        "C2C-W004",  # the secret in the query string
        "C2C-W005",  # Redis without broadcast signing
        "C2C-W006",  # HSTS in plain HTTP mode
        "C2C-W007",  # a short JWT secret
        "C2C-W008",  # a short shared secret
        "C2C-W009",  # a CSP without default-src
        "C2C-W010",  # an unknown variable
        "C2C-W012",  # the same CSP without base-uri and form-action
    ]
    (startup,) = _by_id(findings, "C2C-E004")
    assert "RuntimeError: cannot load the model" in startup.message
    assert redis_down.split("//")[1] in _by_id(findings, "C2C-E005")[0].message
    assert "the database is gone" in _by_id(findings, "C2C-E006")[0].message
    assert "'scripts'" in _by_id(findings, "C2C-W009")[0].message
    assert "C2C__TOOLS__LOGGING__SYNC_INTERVALL" in _by_id(findings, "C2C-W010")[0].message
    assert all(finding.fix for finding in findings)
    assert exit_status(findings) == 1
    module = sys.modules[spec.split(":")[0]]
    assert module.STATE == {"started": True, "stopped": True}


async def test_invalid_header_rule_is_reported_and_logged(
    environment: Callable[[dict[str, str]], None], write_app: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    environment({"C2C__AUTH__GITHUB__REPOSITORY": "org/repo"})
    spec = write_app(rules={"injected": {"headers": {"X-Custom": "a\nSet-Cookie: x=1"}}})
    findings = await run_check(CheckOptions(app=spec))
    assert _ids(findings) == ["C2C-E003", "C2C-I001"]
    (refused,) = _by_id(findings, "C2C-E003")
    assert "'injected'" in refused.message
    assert "'X-Custom'" in refused.message
    assert "control character" in refused.message
    errors = [record for record in caplog.records if record.levelno == logging.ERROR and record.name == "c2c_headers"]
    assert errors
    assert "'injected'" in errors[0].getMessage()
    assert sys.modules[spec.split(":")[0]].STATE["started"] is False  # never started


async def test_no_authentication_while_c2c_is_mounted(
    environment: Callable[[dict[str, str]], None], write_app: Callable[..., str]
) -> None:
    environment({})
    assert _ids(await run_check(CheckOptions(app=write_app()))) == ["C2C-W001"]
    assert _ids(await run_check(CheckOptions(app=write_app(mount=False)))) == []


async def test_a_csp_without_base_uri_or_form_action_is_reported(
    environment: Callable[[dict[str, str]], None], write_app: Callable[..., str]
) -> None:
    """`base-uri` and `form-action` do not fall back to `default-src`: a rule's own policy without them
    (the README's nonce example had none) lets an injected `<base>` move the nonce scripts elsewhere."""
    environment({})
    own = {"default-src": ["'self'"], "script-src": ["'self'", headers.CSP_NONCE]}
    page = {"headers": {"Content-Security-Policy": own}}
    findings = await run_check(CheckOptions(app=write_app(mount=False, rules={"page": page})))
    assert _ids(findings) == ["C2C-W012"]
    assert "'page'" in findings[0].message
    assert "no base-uri and no form-action" in findings[0].message
    assert "CSP_HARDENING" in findings[0].fix
    only_form = {"headers": {"Content-Security-Policy": {**own, "base-uri": ["'none'"]}}}
    (finding,) = await run_check(CheckOptions(app=write_app(mount=False, rules={"page": only_form})))
    assert "no form-action," in finding.message
    hardened = {"headers": {"Content-Security-Policy": {**own, **headers.CSP_HARDENING}}}
    report_only = {"headers": {"Content-Security-Policy-Report-Only": own}}  # enforces nothing
    assert (
        _ids(await run_check(CheckOptions(app=write_app(mount=False, rules={"page": hardened, "try": report_only}))))
        == []
    )
    with pytest.raises(TypeError):  # the defaults' own directives cannot be changed through it
        headers.CSP_HARDENING["base-uri"] = ("*",)  # type: ignore[index]


@pytest.mark.parametrize(
    ("cors", "reported"),
    [
        ('allow_origins=["*"], allow_credentials=True', True),
        ('allow_origin_regex=".*", allow_credentials=True', True),
        ('allow_origin_regex="https://.*[.]example[.]com", allow_credentials=True', False),
        ('allow_origins=["https://app.example"], allow_credentials=True', False),
        ('allow_origins=["*"]', False),  # no cookies sent: a public API
    ],
)
async def test_cors_for_every_origin_with_credentials_is_reported(
    environment: Callable[[dict[str, str]], None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cors: str,
    reported: bool,
) -> None:
    """Starlette answers every site with its own Origin when `*` goes with credentials: any page the
    visitor opens reads the service's answers with the visitor's cookies."""
    environment({})
    name = f"cors_app_{uuid.uuid4().hex}"
    source = f"""
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

app = FastAPI()
app.add_middleware(CORSMiddleware, {cors})
"""
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    findings = [finding for finding in await run_check(CheckOptions(app=f"{name}:app")) if finding.id != "C2C-I002"]
    assert _ids(findings) == (["C2C-W013"] if reported else [])  # (I002: this application has no health check)
    if reported:
        assert "any site can read" in findings[0].message
        assert "allow_origins=[...]" in findings[0].fix


async def test_test_authentication_is_an_error(environment: Callable[[dict[str, str]], None]) -> None:
    environment({"C2C__AUTH__TEST__USERNAME": "tester"})
    findings = await run_check(CheckOptions())
    assert _ids(findings) == ["C2C-E009"]
    assert "'tester'" in findings[0].message


async def test_an_empty_test_username_is_no_test_authentication(environment: Callable[[dict[str, str]], None]) -> None:
    environment({"C2C__AUTH__TEST__USERNAME": ""})
    assert "C2C-E009" not in _ids(await run_check(CheckOptions()))


def test_clean_configuration_passes(
    environment: Callable[[dict[str, str]], None],
    write_app: Callable[..., str],
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    environment(
        {
            "C2C__REDIS__URL": redis_server.url,
            "C2C__BROADCAST__SECRET": LONG_SECRET,
            "C2C__AUTH__GITHUB__REPOSITORY": "org/repo",
            "C2C__AUTH__GITHUB__CLIENT_ID": "id",
            "C2C__AUTH__GITHUB__CLIENT_SECRET": "client-secret",
            "C2C__AUTH__JWT__SECRET": LONG_SECRET,
            "C2C__PROXY_HEADERS__TYPE": "x-forwarded",
            **SERVICE_PREFIXES,
        }
    )
    spec = write_app()
    assert main([spec, "--fail-level", "info"]) == 0
    assert capsys.readouterr().out.strip() == "Deploy check: no problem found."
    assert main([spec, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


async def test_shared_redis_names_and_a_dependency_tagged_liveness(
    environment: Callable[[dict[str, str]], None], write_app: Callable[..., str], redis_server: RedisServer
) -> None:
    """The default Redis names (shared by every service on one server: pub/sub ignores the database)
    are an info finding naming the variables left at their default; a dependency's check tagged
    `liveness` (0.14's scaffold tagged its Redis check so) a warning: /livez would fail with it."""
    base = {"C2C__REDIS__URL": redis_server.url, "C2C__BROADCAST__SECRET": LONG_SECRET}
    environment({**base, "C2C__AUTH__REDIS_PREFIX": "tiles-auth:"})
    liveness = '(lambda name: health_checks.Redis(tags=["liveness", "redis", "all"], name=name))'
    findings = await run_check(CheckOptions(app=write_app(check=liveness)))
    (shared,) = _by_id(findings, "C2C-I003")
    assert shared.message.startswith(
        "C2C__REDIS__BROADCAST_PREFIX, C2C__TOOLS__LOGGING__REDIS_PREFIX keep their default"
    )
    (tagged,) = _by_id(findings, "C2C-W011")
    assert "(Redis) is tagged liveness: /livez fails whenever its dependency does" in tagged.message
    # Tagged readiness, and the service's own names: neither finding.
    environment({**base, **SERVICE_PREFIXES})
    from c2c_health import FACTORY

    FACTORY.clear()  # the first application's check (the fixture restores the registry)
    readiness = '(lambda name: health_checks.Redis(tags=["readiness", "redis"], name=name))'
    findings = await run_check(CheckOptions(app=write_app(check=readiness)))
    assert _by_id(findings, "C2C-I003") == _by_id(findings, "C2C-W011") == []


async def test_redis_health_check_and_sentinel_down(
    environment: Callable[[dict[str, str]], None], redis_down: str
) -> None:
    host_port = redis_down.split("//")[1].split("/")[0]
    environment(
        {
            "C2C__REDIS__SENTINELS": host_port,
            "C2C__REDIS__SERVICENAME": "mymaster",
            "C2C__REDIS__TIMEOUT": "1",
            "C2C__BROADCAST__SECRET": LONG_SECRET,
        }
    )
    from c2casgiutils.check._runtime import redis_findings

    findings = await redis_findings(config.Settings())
    assert _ids(findings) == ["C2C-E005"]
    assert host_port in findings[0].message
    # redis-py's error holds a 1,500-character repr of the Sentinel client: the finding names its address.
    assert "No master found for 'mymaster' : " + host_port + " - " in findings[0].message
    assert "<redis" not in findings[0].message


async def test_redis_through_a_real_sentinel(
    environment: Callable[[dict[str, str]], None], redis_sentinel: RedisSentinel
) -> None:
    from c2casgiutils.check._runtime import redis_findings

    environment(
        {
            "C2C__REDIS__SENTINELS": redis_sentinel.sentinels_str,
            "C2C__REDIS__SERVICENAME": redis_sentinel.service_name,
        }
    )
    assert await redis_findings(config.Settings()) == []
    redis_sentinel.master.stop()
    environment(
        {
            "C2C__REDIS__SENTINELS": redis_sentinel.sentinels_str,
            "C2C__REDIS__SERVICENAME": redis_sentinel.service_name,
            "C2C__REDIS__TIMEOUT": "1",
        }
    )
    from c2c_config.redis import reset_factory

    await reset_factory()
    assert _ids(await redis_findings(config.Settings())) == ["C2C-E005"]
    await reset_factory()


# Skipped only by the redis-py floor run (cluster mode needs redis-py >= 8).
@pytest.mark.skipif(redis_py_version() < CLUSTER_MIN_REDIS_PY, reason="cluster mode needs redis-py >= 8")
async def test_redis_cluster_every_master_pinged(
    environment: Callable[[dict[str, str]], None], redis_cluster: RedisCluster
) -> None:
    from c2c_config.redis import reset_factory
    from c2casgiutils.check._runtime import redis_findings

    env = {"C2C__REDIS__URL": redis_cluster.url, "C2C__REDIS__CLUSTER": "true", "C2C__REDIS__TIMEOUT": "0.3"}
    environment(env)
    try:
        assert await redis_findings(config.Settings()) == []
        frozen = redis_cluster.masters()[2]
        with frozen.frozen():  # thawed before the cluster's node timeout: no failover
            started = time.monotonic()
            findings = await redis_findings(config.Settings())
            assert time.monotonic() - started < 5  # generous: each ping is bounded by 0.3 s
        assert _ids(findings) == ["C2C-E005"]  # one master of three
        assert findings[0].message == (
            f"Redis Cluster master {frozen.host}:{frozen.port} is not reachable: TimeoutError: no answer within 0.27 s"
        )

        redis_cluster.stop()  # no node at all: one finding for the cluster
        await reset_factory()
        (finding,) = await redis_findings(config.Settings())
        assert finding.message.startswith(f"Redis ({redis_cluster.url} (cluster)) is not reachable: ")
    finally:
        await reset_factory()


def test_fail_level_and_json(environment: Callable[[dict[str, str]], None], capsys: pytest.CaptureFixture[str]) -> None:
    environment({"C2C__AUTH__SECRET": LONG_SECRET})  # one warning: the secret in the query string
    assert main([]) == 0
    assert "C2C-W004 [warning]" in capsys.readouterr().out
    assert main(["--fail-level", "warning", "--json"]) == 1
    (finding,) = json.loads(capsys.readouterr().out)
    assert list(finding) == ["id", "severity", "message", "fix"]
    assert finding["id"] == "C2C-W004"
    assert finding["severity"] == "warning"
    environment({"C2C__AUTH__SECRET": LONG_SECRET, "C2C__AUTH__SECRET_IN_QUERY": "false"})
    assert main(["--json", "--fail-level", "info"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_exit_status_levels() -> None:
    info = Finding("C2C-I002", "info", "m", "f")
    warning = Finding("C2C-W001", "warning", "m", "f")
    assert exit_status([info]) == 0
    assert exit_status([info], "info") == 1
    assert exit_status([warning]) == 0
    assert exit_status([warning], "warning") == 1
    assert exit_status([], "info") == 0
    assert str(warning) == "C2C-W001 [warning] m\n    fix: f"


def test_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--timeout", "0"])
    assert raised.value.code == 2
    with pytest.raises(SystemExit):
        main(["--timeout", "soon"])
    assert "not a number of seconds" in capsys.readouterr().err


class _ThroughProxy(httpx.AsyncBaseTransport):
    """Stands for a reverse proxy: adds X-Forwarded-For / -Proto to every request."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["X-Forwarded-For"] = "203.0.113.7"
        request.headers["X-Forwarded-Proto"] = "https"
        return await self.inner.handle_async_request(request)


async def test_url_reads_the_headers_tool(environment: Callable[[dict[str, str]], None]) -> None:
    from fastapi import FastAPI

    import c2casgiutils

    environment({"C2C__AUTH__SECRET": LONG_SECRET, "C2C__AUTH__SECRET_IN_QUERY": "false"})
    app = FastAPI()
    app.mount("/c2c", c2casgiutils.app)
    proxy = _ThroughProxy(httpx.ASGITransport(app=app))
    url = "https://service.example/c2c"  # plain http to a remote host gets no secret (test_check_url.py)
    findings = await run_check(CheckOptions(url=url, transport=proxy))
    assert _ids(findings) == ["C2C-W003"]
    assert "x-forwarded-for, x-forwarded-proto" in findings[0].message

    direct = httpx.ASGITransport(app=app)
    assert await run_check(CheckOptions(url=url, transport=direct)) == []

    denied = await run_check(CheckOptions(url=url, secret="wrong", transport=direct))
    assert _ids(denied) == ["C2C-E008"]
    assert "answered 401" in denied[0].message or "answered 403" in denied[0].message

    environment({"C2C__AUTH__SECRET": LONG_SECRET, "C2C__PROXY_HEADERS__TYPE": "x-forwarded"})
    assert "C2C-W003" not in _ids(await run_check(CheckOptions(url=url, transport=proxy)))


async def test_url_not_the_tool(environment: Callable[[dict[str, str]], None]) -> None:
    from fastapi import FastAPI

    environment({})
    other = FastAPI()
    other.get("/c2c/headers/")(lambda: ["not", "the", "tool"])
    findings = await run_check(CheckOptions(url="http://x/c2c", transport=httpx.ASGITransport(app=other)))
    assert _ids(findings) == ["C2C-E008"]
    unreachable = await run_check(CheckOptions(url="http://127.0.0.1:1/c2c", timeout=2))
    assert _ids(unreachable) == ["C2C-E008"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("no_colon", "not of the form module:attribute"),
        ("no_such_module_for_the_check:app", "ModuleNotFoundError"),
        ("json:__name__", "not an ASGI application"),
        ("json:no_such_attribute", "AttributeError"),
    ],
)
async def test_application_not_importable(
    environment: Callable[[dict[str, str]], None], spec: str, expected: str
) -> None:
    environment({})
    findings = await run_check(CheckOptions(app=spec))
    assert _ids(findings) == ["C2C-E002"]
    assert expected in findings[0].message


# A service whose own settings (pydantic-settings) are read when its module is imported.
SETTINGS_APP = """
from fastapi import FastAPI
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHECKED_SERVICE__", env_nested_delimiter="__")

    development: bool = False
    workers: int = 1
    token: SecretStr = SecretStr("")
    pool_size: int = Field(default=5, validation_alias="DB_POOL_SIZE")
    allowed_hosts: list[str] = ["localhost"]

    @model_validator(mode="after")
    def _no_wildcard(self):
        if "*" in self.allowed_hosts and not self.development:
            raise ValueError("CHECKED_SERVICE__ALLOWED_HOSTS: '*' is refused outside development")
        return self


settings = Settings()
app = FastAPI()
"""


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"CHECKED_SERVICE__DEVELOPMENT": "maybe-hunter2", "CHECKED_SERVICE__WORKERS": "many"},
            [
                "CHECKED_SERVICE__DEVELOPMENT: Input should be a valid boolean",
                "CHECKED_SERVICE__WORKERS: Input should be a valid integer",
            ],
        ),
        ({"DB_POOL_SIZE": "hunter2"}, ["DB_POOL_SIZE: Input should be a valid integer"]),  # an alias: no prefix
        ({"CHECKED_SERVICE__ALLOWED_HOSTS": '["*"]'}, ["CHECKED_SERVICE__ALLOWED_HOSTS: '*' is refused"]),
    ],
)
async def test_application_whose_own_settings_refuse_the_environment(
    environment: Callable[[dict[str, str]], None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    expected: list[str],
) -> None:
    """Not "pass the application as module:attribute": the service's settings error, by variable, no value."""
    environment({})
    name = f"checked_settings_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(SETTINGS_APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)
    (finding,) = await run_check(CheckOptions(app=f"{name}:app"))
    assert finding.id == "C2C-E002"
    assert finding.message.startswith(f"cannot import {name}:app: its settings (Settings) refuse the environment: ")
    for part in expected:
        assert part in finding.message
    assert "hunter2" not in finding.message  # the values are never shown (they may be secrets)
    assert "module:attribute" not in finding.fix.split("(")[0]
    assert finding.fix.startswith("correct the environment variable named in the message")


async def test_validation_error_outside_settings_keeps_the_import_message(
    environment: Callable[[dict[str, str]], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pydantic model (not settings) failing at import time is reported as any other import error."""
    environment({})
    name = f"checked_model_{uuid.uuid4().hex}"
    source = "from pydantic import BaseModel\n\nclass M(BaseModel):\n    n: int\n\nM(n='x')\n"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    (finding,) = await run_check(CheckOptions(app=f"{name}:app"))
    assert finding.id == "C2C-E002"
    assert "ValidationError" in finding.message
    assert finding.fix.startswith("pass the application as module:attribute")


async def test_lifespan_runner_startup_that_hangs() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await __import__("asyncio").sleep(60)

    runner = LifespanRunner(app, 0.5)
    started = time.monotonic()
    assert await runner.startup() == "the lifespan startup did not end within 0.5 s"
    assert await runner.shutdown() is None  # never started: the task is cancelled
    assert time.monotonic() - started < 10


async def test_lifespan_runner_without_lifespan_support() -> None:
    async def declines(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return

    async def raises(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("boom at import of the routes")

    runner = LifespanRunner(declines, 2)
    assert await runner.startup() is None
    assert await runner.shutdown() is None
    runner = LifespanRunner(raises, 2)
    reason = await runner.startup()
    assert reason is not None
    assert "RuntimeError: boom at import of the routes" in reason


async def test_lifespan_runner_shutdown_failures() -> None:
    async def fails(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})

    async def crashes(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise OSError("disk full")

    runner = LifespanRunner(fails, 2)
    assert await runner.startup() is None
    assert await runner.shutdown() == "the lifespan shutdown failed: flush failed"
    runner = LifespanRunner(crashes, 2)
    assert await runner.startup() is None
    assert (
        await runner.shutdown()
        == "the application ended its lifespan during shutdown without answering: OSError: disk full"
    )


async def test_no_health_check_registered(environment: Callable[[dict[str, str]], None]) -> None:
    from c2casgiutils.check._runtime import health_findings

    environment({})
    saved = list(FACTORY.checks)
    FACTORY.clear()
    try:
        assert _ids(await health_findings()) == ["C2C-I002"]
    finally:
        for check in saved:
            FACTORY.add(check)


def test_plain_asgi_application_is_its_own_stack() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:  # pragma: no cover - not called
        return

    assert middleware_stack(app) == ([app], [])


def test_module_form_and_console_script(tmp_path: Path) -> None:
    """`python -m c2casgiutils check` in a real process, and the declared console script."""
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env.update({"C2C__REDIS__DB": "x", "C2C__HTTP": "maybe", "C2C__REDDIS__URL": "redis://x"})
    result = subprocess.run(
        [sys.executable, "-m", "c2casgiutils", "check", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    findings = json.loads(result.stdout)
    assert [finding["id"] for finding in findings] == ["C2C-E001", "C2C-E001", "C2C-W010", "C2C-I001"]
    usage = subprocess.run(
        [sys.executable, "-m", "c2casgiutils"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert usage.returncode == 2
    assert "python -m c2casgiutils check" in usage.stderr

    scripts = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["c2casgiutils-check"] == "c2casgiutils.check:main"


def test_main_module_dispatch(
    environment: Callable[[dict[str, str]], None], capsys: pytest.CaptureFixture[str]
) -> None:
    from c2casgiutils.__main__ import main as module_main

    environment({})
    assert module_main(["check"]) == 0
    assert "no problem found" in capsys.readouterr().out
    assert module_main(["other"]) == 2


def test_command_line_lists_every_problem_of_a_broken_service(
    tmp_path: Path, write_app: Callable[..., str], redis_down: str
) -> None:
    """The proof, in a real process: a deliberately broken service, every problem listed with its fix."""
    spec = write_app(startup='raise RuntimeError("cannot load the model")', rules=BROKEN_RULES, check="Failing")
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env.update(
        {
            "C2C__REDIS__URL": redis_down,
            "C2C__REDIS__TIMEOUT": "1",
            "C2C__BROADCAST__CONNECT_TIMEOUT": "1",
            "C2C__PROXY_HEADERS__TRUSTED_HOSTS": "10.0.0.0/8,*",
            "C2C__AUTH__SECRET": "hunter2",
            "C2C__AUTH__JWT__SECRET": "too-short",
            "C2C__HTTP": "true",
            "C2C__PROMETHEUS__PORTT": "9100",
        }
    )
    command = [sys.executable, "-m", "c2casgiutils", "check", spec, "--timeout", "5"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    report = result.stdout.splitlines()
    listed = [line.split(" ", 1)[0] for line in report if line.startswith("C2C-")]
    assert listed[:3] == ["C2C-E004", "C2C-E005", "C2C-E006"]  # the errors first
    assert sorted(listed) == [
        "C2C-E004",
        "C2C-E005",
        "C2C-E006",
        "C2C-I003",
        "C2C-W002",
        "C2C-W004",
        "C2C-W005",
        "C2C-W006",
        "C2C-W007",
        "C2C-W008",
        "C2C-W009",
        "C2C-W010",
        "C2C-W012",
    ]
    assert len([line for line in report if line.startswith("    fix: ")]) == len(listed)
    assert report[-1] == "Deploy check: 3 errors, 9 warnings, 1 info."
    assert "hunter2" not in result.stdout + result.stderr  # secrets are never shown


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=12,
)


@given(
    body=st.one_of(
        _JSON,
        st.fixed_dictionaries({"headers": st.dictionaries(st.text(max_size=30), _JSON, max_size=6)}),
    ),
    status=st.sampled_from([200, 200, 200, 302, 401, 404, 500]),
    raw=st.none() | st.binary(max_size=40),
)
def test_url_answer_is_untrusted(body: Any, status: int, raw: bytes | None) -> None:
    """Whatever the URL answers, the check reports a finding, never crashes."""
    settings = config.Settings()

    def answer(request: httpx.Request) -> httpx.Response:
        if raw is not None:
            return httpx.Response(status, content=raw)
        return httpx.Response(status, json=body)

    findings = asyncio.run(remote_findings("http://x/c2c", None, settings, 5, httpx.MockTransport(answer)))
    assert {finding.id for finding in findings} <= {"C2C-E008", "C2C-W003"}
    if status != 200:
        assert [finding.id for finding in findings] == ["C2C-E008"]
