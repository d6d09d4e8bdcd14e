"""The settings machinery read from a real process environment (monkeypatch.setenv)."""

from __future__ import annotations

import datetime
import logging
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, SecretStr

from c2c_config import (
    C2CSettings,
    ConfigError,
    CoreSettings,
    Duration,
    Section,
    find_unknown_variables,
    get_settings,
    normalize_route_prefix,
    reload_settings,
)


class TokenSection(Section):
    """A section with a secret, a duration and a nested section, for the tests."""

    token: SecretStr | None = Field(default=None, description="A secret token")
    age: Duration = Field(default=datetime.timedelta(minutes=10), description="An age")
    retries: int = Field(default=3, ge=0, description="Retries")


class ExampleSettings(CoreSettings):
    """Core sections plus one of ours."""

    example: TokenSection = Field(default_factory=TokenSection, description="Example")


def test_defaults_match_the_reference() -> None:
    settings = CoreSettings()
    assert settings.redis.url is None
    assert settings.redis.options == {}
    assert settings.redis.sentinels is None
    assert settings.redis.servicename is None
    assert settings.redis.db == 0
    assert settings.redis.broadcast_prefix == "broadcast_api_"
    assert settings.prometheus.prefix == "c2casgiutils_"
    assert settings.prometheus.port == 9000
    assert settings.proxy_headers.type == "none"
    assert settings.proxy_headers.trusted_hosts == ["127.0.0.1"]
    assert settings.http is False
    assert settings.route_prefix == "/"


@pytest.mark.parametrize(
    ("variable", "value", "path", "expected"),
    [
        ("C2C__REDIS__URL", "redis://localhost:6379/1", ("redis", "url"), "redis://localhost:6379/1"),
        ("c2c__redis__db", "3", ("redis", "db"), 3),  # names are case-insensitive
        ("C2C__Redis__Broadcast_Prefix", "x_", ("redis", "broadcast_prefix"), "x_"),
        (
            "C2C__REDIS__OPTIONS",
            "socket_timeout=5,ssl=True",
            ("redis", "options"),
            {"socket_timeout": 5.0, "ssl": True},
        ),
        ("C2C__PROMETHEUS__PORT", "9100", ("prometheus", "port"), 9100),
        ("C2C__PROXY_HEADERS__TYPE", "X-Forwarded", ("proxy_headers", "type"), "x-forwarded"),
        (
            "C2C__PROXY_HEADERS__TRUSTED_HOSTS",
            "127.0.0.1,10.0.0.0/8, ::1 ,fd00::/8,testclient,*",
            ("proxy_headers", "trusted_hosts"),
            ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8", "testclient", "*"],
        ),
        ("C2C__HTTP", "true", ("http",), True),
        ("C2C__ROUTE_PREFIX", "app", ("route_prefix",), "/app/"),
        ("C2C__EXAMPLE__AGE", "2h30", ("example", "age"), datetime.timedelta(hours=2, minutes=30)),
        ("C2C__EXAMPLE__AGE", "PT10M", ("example", "age"), datetime.timedelta(minutes=10)),
        ("C2C__EXAMPLE__AGE", "90", ("example", "age"), datetime.timedelta(seconds=90)),
    ],
)
def test_environment_values(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, path: tuple[str, ...], expected: object
) -> None:
    monkeypatch.setenv(variable, value)
    current: object = ExampleSettings()
    for part in path:
        current = getattr(current, part)
    assert current == expected


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("C2C__REDIS__DB", "abc", "C2C__REDIS__DB='abc': Input should be a valid integer"),
        ("C2C__REDIS__DB", "-1", "C2C__REDIS__DB='-1': Input should be greater than or equal to 0"),
        (
            "C2C__PROMETHEUS__PORT",
            "99999",
            "C2C__PROMETHEUS__PORT='99999': Input should be less than or equal to 65535",
        ),
        ("C2C__PROMETHEUS__PREFIX", "9bad", "C2C__PROMETHEUS__PREFIX='9bad': a metric name prefix"),
        ("C2C__PROXY_HEADERS__TYPE", "both", "C2C__PROXY_HEADERS__TYPE='both': Input should be 'none', 'x-forwarded'"),
        ("C2C__PROXY_HEADERS__TRUSTED_HOSTS", "10.0.0.300", "trusted host '10.0.0.300' is not a valid IP address"),
        ("C2C__PROXY_HEADERS__TRUSTED_HOSTS", "10.0.0.0/33", "trusted host '10.0.0.0/33' is not a valid network"),
        (
            "C2C__PROXY_HEADERS__TRUSTED_HOSTS",
            "10.0.0.0/abc",
            "trusted host '10.0.0.0/abc' is not a valid network: after '/' comes a prefix length",
        ),
        (
            "C2C__PROXY_HEADERS__TRUSTED_HOSTS",
            "fe80::%eth0/64",
            "trusted host 'fe80::%eth0/64' is not a valid network: a network cannot carry a zone",
        ),
        ("C2C__PROXY_HEADERS__TRUSTED_HOSTS", "my host", "trusted host 'my host' is not a valid entry"),
        ("C2C__REDIS__OPTIONS", "socket_timout=5", "C2C__REDIS__OPTIONS='socket_timout=5': unknown Redis option"),
        ("C2C__REDIS__OPTIONS", "ssl", "is not of the form key=value"),
        ("C2C__REDIS__SENTINELS", "localhost", "C2C__REDIS__SENTINELS='localhost': 'localhost' is not host:port"),
        ("C2C__REDIS__URL", "http://x", "C2C__REDIS__URL='http://x': must start with redis://"),
        # what redis-py refuses only when it connects, with a traceback naming no variable
        (
            "C2C__REDIS__URL",
            "redis://:pw@localhost:notaport/0",
            "C2C__REDIS__URL='redis://:***@localhost:notaport/0': its port is not a number from 0 to 65535",
        ),
        ("C2C__REDIS__URL", "redis://localhost:6379/abc", "its database 'abc' is not a number"),
        ("C2C__REDIS__URL", "redis://localhost:6379?db=x1", "its database 'x1' is not a number"),
        (
            "C2C__EXAMPLE__AGE",
            "P1Y",
            "C2C__EXAMPLE__AGE='P1Y': Invalid time delta: invalid duration 'P1Y' (years and months",
        ),
        (
            "C2C__EXAMPLE__AGE",
            "1x",
            "C2C__EXAMPLE__AGE='1x': Invalid time delta: invalid duration '1x'; expected an ISO 8601",
        ),
        ("C2C__HTTP", "perhaps", "C2C__HTTP='perhaps': Input should be a valid boolean"),
        ("C2C__ROUTE_PREFIX", "/a b/", "C2C__ROUTE_PREFIX='/a b/': a route prefix is a URL path"),
    ],
)
def test_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        ExampleSettings()
    assert message in str(info.value)
    # No pydantic traceback text, no link to pydantic's docs.
    assert "errors.pydantic.dev" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_several_errors_are_listed_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__REDIS__DB", "x")
    monkeypatch.setenv("C2C__PROMETHEUS__PORT", "y")
    with pytest.raises(ConfigError) as info:
        CoreSettings()
    assert len(info.value.problems) == 2
    assert {problem.split("=")[0] for problem in info.value.problems} == {"C2C__REDIS__DB", "C2C__PROMETHEUS__PORT"}


def test_sentinels_need_a_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__REDIS__SENTINELS", "127.0.0.1:26379")
    with pytest.raises(ConfigError, match="C2C__REDIS__SERVICENAME must name the Sentinel service"):
        CoreSettings()
    monkeypatch.setenv("C2C__REDIS__SERVICENAME", "mymaster")
    settings = CoreSettings()
    assert settings.redis.sentinel_addresses == [("127.0.0.1", 26379)]
    assert settings.redis.configured


def test_ipv6_sentinels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__REDIS__SENTINELS", "[::1]:26379, sentinel-2:26380")
    monkeypatch.setenv("C2C__REDIS__SERVICENAME", "mymaster")
    assert CoreSettings().redis.sentinel_addresses == [("::1", 26379), ("sentinel-2", 26380)]


SECRET = "s3cr3t-Value-that-must-not-leak"


def test_secrets_never_shown(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("C2C__EXAMPLE__TOKEN", SECRET)
    monkeypatch.setenv("C2C__REDIS__URL", f"redis://:{SECRET}@redis:6379/0")
    caplog.set_level(logging.DEBUG)
    settings = ExampleSettings()
    assert settings.example.token is not None
    assert settings.example.token.get_secret_value() == SECRET
    for text in (repr(settings), str(settings), repr(settings.redis), str(settings.model_dump()["example"])):
        assert SECRET not in text
    assert SECRET not in caplog.text


def test_secret_not_in_error_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    class Strict(Section):
        token: SecretStr = Field(min_length=40, description="A long token")

    class StrictSettings(C2CSettings):
        strict: Strict

    monkeypatch.setenv("C2C__STRICT__TOKEN", SECRET)
    with pytest.raises(ConfigError) as info:
        StrictSettings()  # type: ignore[call-arg]  # filled from the environment
    assert "C2C__STRICT__TOKEN=<hidden>" in str(info.value)
    assert SECRET not in str(info.value)


def test_url_password_not_in_error_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__REDIS__URL", f"http://user:{SECRET}@redis/")
    with pytest.raises(ConfigError) as info:
        CoreSettings()
    assert SECRET not in str(info.value)
    assert "C2C__REDIS__URL" in str(info.value)


def test_missing_required_value(monkeypatch: pytest.MonkeyPatch) -> None:
    class Needs(Section):
        name: str = Field(description="required")

    class NeedsSettings(C2CSettings):
        needs: Needs = Field(default_factory=lambda: Needs(name="x"))
        other: int

    with pytest.raises(ConfigError, match="C2C__OTHER: required, not set"):
        NeedsSettings()  # type: ignore[call-arg]  # the missing value is the point


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("C2C__REDIS__URLL", "C2C__REDIS__URL"),
        ("C2C__REDIS__SERVICE_NAME", "C2C__REDIS__SERVICENAME"),
        ("C2C__REDDIS__URL", "C2C__REDIS__URL"),
        ("C2C__PROMETHEUS__PROT", "C2C__PROMETHEUS__PORT"),
        ("C2C__PROXY_HEADER__TYPE", "C2C__PROXY_HEADERS__TYPE"),
        ("c2c__example__tokn", "C2C__EXAMPLE__TOKEN"),
        ("C2C__HTTP__X", "C2C__HTTP"),
    ],
)
def test_unknown_variables_are_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, variable: str, suggestion: str | None
) -> None:
    monkeypatch.setenv(variable, "1")
    monkeypatch.setattr("c2c_config._base._REPORTED_VARIABLES", set())  # logged once per process
    assert [(u.name, u.suggestion) for u in find_unknown_variables(ExampleSettings)] == [(variable, suggestion)]
    with caplog.at_level(logging.WARNING, logger="c2c_config"):
        ExampleSettings()
    assert f"Ignored environment variable: {variable} is not a known setting" in caplog.text
    if suggestion:
        assert f"did you mean {suggestion}?" in caplog.text


@pytest.mark.parametrize(
    "variable",
    [
        "C2C__REDIS__URL",  # known
        "C2C__SOMETHING__ELSE",  # another package's section, nothing close
        "C2C__AUTH__SECRET",  # another package's section, although close to C2C__EXAMPLE__TOKEN
        "C2C_HEADERS_ENGINE",  # not under the C2C__ prefix
        "OTHER",
    ],
)
def test_known_or_foreign_variables_are_not_reported(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "redis://x")
    assert find_unknown_variables(ExampleSettings) == []


def test_find_unknown_variables_with_explicit_mapping() -> None:
    environ = {"C2C__REDIS__URLL": "x", "C2C__REDIS__URL": "y"}
    assert [str(u) for u in find_unknown_variables(CoreSettings, environ)] == [
        "C2C__REDIS__URLL is not a known setting; did you mean C2C__REDIS__URL?"
    ]


def test_process_settings_reload_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    class ReloadSettings(CoreSettings):
        pass

    monkeypatch.setenv("C2C__REDIS__DB", "1")
    # Process-wide objects share their sections: a class used first after the environment changed
    # gets the sections the others read; reloading re-reads them all.
    shared = reload_settings(ReloadSettings)
    assert shared.redis.db == 1
    assert get_settings(ReloadSettings) is shared  # built once
    monkeypatch.setenv("C2C__REDIS__DB", "2")
    assert get_settings(ReloadSettings).redis.db == 1  # not re-read behind your back
    assert reload_settings(ReloadSettings) is shared
    assert shared.redis.db == 2  # holders of the object see the change
    monkeypatch.setenv("C2C__REDIS__DB", "bad")
    with pytest.raises(ConfigError):
        reload_settings(ReloadSettings)
    assert shared.redis.db == 2  # a failed reload keeps the previous values


def test_reload_reaches_every_process_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each package reads its own class; one reload is seen by all of them."""

    class First(CoreSettings):
        pass

    class Second(CoreSettings):
        pass

    first, second = get_settings(First), get_settings(Second)
    monkeypatch.setenv("C2C__REDIS__BROADCAST_PREFIX", "reloaded_")
    reload_settings(First)
    assert first.redis.broadcast_prefix == "reloaded_"
    assert second.redis.broadcast_prefix == "reloaded_"


def test_reload_before_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    class FreshSettings(CoreSettings):
        pass

    monkeypatch.setenv("C2C__HTTP", "1")
    assert reload_settings(FreshSettings) is get_settings(FreshSettings)
    assert get_settings(FreshSettings).http is True


def test_settings_not_built_at_import() -> None:
    """Importing the package reads no environment: a bad value fails only when settings are built."""
    import subprocess
    import sys

    code = "import c2c_config, c2c_config._sections; print('imported')"
    env = {**os.environ, "C2C__REDIS__DB": "not-a-number"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/", "/"), ("", "/"), ("c2c", "/c2c/"), ("/c2c", "/c2c/"), ("/a/b/", "/a/b/"), ("//a//", "/a/")],
)
def test_route_prefix(value: str, expected: str) -> None:
    assert normalize_route_prefix(value) == expected


@given(st.from_regex(r"/?([a-z0-9_-]+/)*[a-z0-9_-]*/?", fullmatch=True))
def test_route_prefix_is_idempotent(value: str) -> None:
    once = normalize_route_prefix(value)
    assert once.startswith("/") and once.endswith("/")
    assert normalize_route_prefix(once) == once


def test_process_wide_objects_share_their_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    from c2c_config import RedisSettings, SecretText, Section, get_settings, reload_settings

    class Thing(Section):
        secret: SecretText | None = None
        size: int = 1

    class PackageSettings(CoreSettings):
        thing: Thing = Thing()

    class UnifiedSettings(CoreSettings):
        thing: Thing = Thing()
        other: int = 0

    monkeypatch.setenv("C2C__THING__SIZE", "3")
    package = get_settings(PackageSettings)
    unified = get_settings(UnifiedSettings)
    assert unified.thing is package.thing
    assert unified.redis is package.redis
    assert isinstance(unified.redis, RedisSettings)
    # A change made at run time through one object is seen through the other, validated.
    unified.thing.secret = "changed"  # type: ignore[assignment]
    assert isinstance(package.thing.secret, SecretText)
    assert package.thing.secret.get_secret_value() == "changed"
    with pytest.raises(ValueError, match="size"):
        unified.thing.size = "not a number"  # type: ignore[assignment]
    # A reload re-reads the environment and keeps them shared.
    monkeypatch.setenv("C2C__THING__SIZE", "4")
    reload_settings(PackageSettings)
    assert package.thing.size == unified.thing.size == 4
    assert unified.thing is package.thing
