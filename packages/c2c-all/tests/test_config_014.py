"""`c2casgiutils.config` and `redis_utils` as c2casgiutils 0.14 code uses them."""

from __future__ import annotations

import asyncio
import datetime
import importlib
import logging
import os
from collections.abc import Iterator

import jwt
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

import c2c_auth
import c2c_config
from c2c_auth._modes import current_settings
from c2c_testing import RedisServer
from c2casgiutils import config, redis_utils
from c2casgiutils.config import (
    FloatList,
    GitHubAccessType,
    IntList,
    StringList,
    parse_comma_separated_float_list,
    parse_comma_separated_int_list,
    parse_comma_separated_list,
    parse_duration,
)

JWT_SECRET = "a-jwt-secret-long-enough-for-hs256-keys"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    config.reload()
    yield monkeypatch
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    config.reload()


# --- the section classes keep their 0.14 names, as the same classes ---------------------------------


@pytest.mark.parametrize(
    ("old", "ours"),
    [
        ("Auth", c2c_auth.AuthSettings),
        ("AuthGitHub", c2c_auth.GitHubSettings),
        ("AuthJWT", c2c_auth.JWTSettings),
        ("AuthJWTCookie", c2c_auth.CookieSettings),
        ("AuthTest", c2c_auth.TestAuthSettings),
        ("Prometheus", c2c_config.PrometheusSettings),
        ("ProxyHeaders", c2c_config.ProxyHeadersSettings),
        ("Redis", c2c_config.RedisSettings),
        ("Sentry", config.SentrySettings),
        ("SettingsTools", config.ToolsSettings),
        ("SettingsToolsLogging", config.LoggingToolSettings),
    ],
)
def test_section_classes_are_ours(old: str, ours: type) -> None:
    assert getattr(config, old) is ours


def test_sections_of_the_settings_are_instances_of_the_old_names(clean_env: pytest.MonkeyPatch) -> None:
    settings = config.settings
    assert isinstance(settings.auth, config.Auth)
    assert isinstance(settings.auth.github, config.AuthGitHub)
    assert isinstance(settings.auth.jwt.cookie, config.AuthJWTCookie)
    assert isinstance(settings.redis, config.Redis)
    assert isinstance(settings.tools.logging, config.SettingsToolsLogging)
    assert isinstance(settings.sentry, config.Sentry)


def test_reloading_the_module_reads_the_environment_again(clean_env: pytest.MonkeyPatch) -> None:
    """0.14 tests apply changed variables with `importlib.reload(config)`: still so, for every holder."""
    held = config.settings
    clean_env.setenv("C2C__PROMETHEUS__PORT", "9123")
    clean_env.setenv("C2C__AUTH__JWT__COOKIE__NAME", "reloaded-cookie")
    reloaded = importlib.reload(config)
    assert reloaded.settings.prometheus.port == 9123
    assert held.prometheus.port == 9123  # in place: a reference taken before sees the new values
    assert current_settings().jwt.cookie.name == "reloaded-cookie"  # what c2c-auth reads
    assert reloaded.Auth is c2c_auth.AuthSettings  # the names are the same classes again


def test_github_access_types_are_members(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("C2C__AUTH__GITHUB__ACCESS_TYPE_READ_ONLY", "push")
    config.reload()
    github = config.settings.auth.github
    assert github.access_type_read_only is GitHubAccessType.PUSH
    assert github.access_type_read_write is GitHubAccessType.PUSH
    assert github.access_type_admin is GitHubAccessType.ADMIN
    assert GitHubAccessType("pull") == "pull"
    assert config.GitHubAccessType is c2c_auth.GitHubAccessType


def test_old_validators_are_callable() -> None:
    assert config.Redis.parse_options("socket_timeout=5, ssl=true") == {"socket_timeout": 5.0, "ssl": True}
    assert config.Settings.validate_route_prefix("api") == "/api/"


# --- comma lists ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parser", "value", "expected"),
    [
        # None is an empty list, as in 0.14
        (parse_comma_separated_list, None, []),
        (parse_comma_separated_int_list, None, []),
        (parse_comma_separated_float_list, None, []),
        # text: items stripped, empty items dropped
        (parse_comma_separated_list, " a , b,,c ", ["a", "b", "c"]),
        (parse_comma_separated_int_list, "1, 2 ,3", [1, 2, 3]),
        (parse_comma_separated_float_list, "0.5, 1", [0.5, 1.0]),
        (parse_comma_separated_list, "", []),
        # lists pass through (items stripped)
        (parse_comma_separated_list, ["a", " b "], ["a", "b"]),
        (parse_comma_separated_int_list, [1, 2], [1, 2]),
        (parse_comma_separated_float_list, [0.5], [0.5]),
    ],
)
def test_comma_lists(parser: object, value: object, expected: list[object]) -> None:
    assert parser(value) == expected  # type: ignore[operator]


@pytest.mark.parametrize("value", [5, 1.5, {"a": 1}, b"a,b", object()])
@pytest.mark.parametrize(
    "parser", [parse_comma_separated_list, parse_comma_separated_int_list, parse_comma_separated_float_list]
)
def test_comma_list_of_another_type_names_it(parser: object, value: object) -> None:
    with pytest.raises(ValueError, match=f"got a value of type {type(value).__name__}"):
        parser(value)  # type: ignore[operator]


def test_list_types_accept_none_in_an_application_model() -> None:
    class AppSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="MYAPP__")
        hosts: StringList = ["localhost"]
        ports: IntList = []
        ratios: FloatList = []

    built = AppSettings(hosts=None, ports=None, ratios=None)  # type: ignore[arg-type]
    assert (built.hosts, built.ports, built.ratios) == ([], [], [])


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters=",", blacklist_categories=["Cs"])), max_size=6))
def test_comma_list_round_trip(items: list[str]) -> None:
    assume(not ",".join(items).strip().startswith("["))  # that is the JSON-array form
    expected = [item.strip() for item in items if item.strip()]
    assert parse_comma_separated_list(",".join(items)) == expected
    assert parse_comma_separated_list(items) == [item.strip() for item in items]


# --- durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1x", "", "P1Y", "abc", "-5"])
def test_duration_errors_start_with_014s_words(text: str) -> None:
    with pytest.raises(ValueError, match=r"^Invalid time delta: ") as error:
        parse_duration(text)
    assert "expected" in str(error.value) or "negative" in str(error.value) or "empty" in str(error.value)


def test_duration_accepts_014s_keyword() -> None:
    assert parse_duration(text="2h30") == datetime.timedelta(hours=2, minutes=30)


# --- secrets are text that masks itself ---------------------------------------------------------------


def test_a_secret_setting_works_as_text(clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    clean_env.setenv("C2C__AUTH__JWT__SECRET", JWT_SECRET)
    config.reload()
    secret = config.settings.auth.jwt.secret
    assert isinstance(secret, str)
    assert secret == JWT_SECRET  # comparisons work as in 0.14
    assert secret.get_secret_value() == JWT_SECRET  # and SecretStr's accessor
    token = jwt.encode({"login": "me"}, secret, algorithm="HS256")
    assert jwt.decode(token, secret, algorithms=["HS256"]) == {"login": "me"}
    # ... while dumps stay masked
    assert JWT_SECRET not in repr(config.settings)
    assert JWT_SECRET not in config.settings.model_dump_json()
    assert JWT_SECRET not in str(config.settings.model_dump())
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("settings: %r", config.settings)
    assert JWT_SECRET not in caplog.text


# Text that the masked repr itself contains ("sec" of "secret=") is no leak: filtered out.
@given(st.text(min_size=3).filter(lambda text: text not in "Model(secret=SecretText('**********'))"))
def test_secret_text_never_shows_in_a_dump(text: str) -> None:
    class Model(BaseModel):
        secret: c2c_config.SecretText

    model = Model(secret=text)  # type: ignore[arg-type]
    assert model.secret == text
    assert text not in repr(model)
    assert text not in repr(model.secret)
    assert model.model_dump() == {"secret": "**********"}
    assert model.model_dump_json() == '{"secret":"**********"}'


# --- redis_utils ---------------------------------------------------------------------------------------


def test_redis_utils_without_redis(clean_env: pytest.MonkeyPatch) -> None:
    assert redis_utils.get() == (None, None, None)
    redis_utils.cleanup()
    assert redis_utils.settings is config.settings


def test_redis_utils_clients_of_the_running_loop(clean_env: pytest.MonkeyPatch, redis_server: RedisServer) -> None:
    clean_env.setenv("C2C__REDIS__URL", redis_server.url)
    config.reload()
    seen = []

    async def use(number: int) -> None:
        master, replica, sentinel = redis_utils.get()
        assert master is not None
        assert replica is master  # URL mode, as in 0.14
        assert sentinel is None
        assert redis_utils.get()[0] is master
        await master.set("redis_utils_key", str(number))
        assert await replica.get("redis_utils_key") == str(number)  # decoded to str, as in 0.14
        redis_utils.cleanup()
        assert redis_utils.get()[0] is not master  # 0.14: cleanup() forgets the clients
        await master.aclose()
        seen.append(master)

    for number in range(3):
        asyncio.run(use(number))
    assert len({id(client) for client in seen}) == 3


def test_a_section_changed_at_run_time_is_seen_by_every_package(clean_env: pytest.MonkeyPatch) -> None:
    """0.14 code and test suites assign settings at run time; c2c-auth reads its own settings object."""
    from c2c_config import get_settings

    config.settings.auth.jwt.secret = JWT_SECRET  # type: ignore[assignment]  # validated: stored as SecretText
    seen_by_auth = get_settings(c2c_auth.Settings).auth
    assert seen_by_auth is config.settings.auth
    assert isinstance(seen_by_auth.jwt.secret, c2c_config.SecretText)
    assert seen_by_auth.jwt.secret == JWT_SECRET
    from c2casgiutils import auth

    assert auth.settings.auth.jwt.secret == JWT_SECRET
