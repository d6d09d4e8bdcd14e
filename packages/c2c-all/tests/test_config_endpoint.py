"""`GET /c2c/config`: the effective configuration, admin only, and never a secret in an answer (issue 16 item 2)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import c2c_auth
import c2casgiutils
from c2c_auth import _github
from c2c_config import SECRET_MASK
from c2casgiutils import config
from c2casgiutils._app import create_app
from c2casgiutils.tools.config_ import DEFAULT_SOURCE, describe_settings, mask_userinfo
from c2casgiutils.tools.headers import NameMasker

SECRET = "config-endpoint-admin-secret-0123456789"


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)


@contextlib.asynccontextmanager
async def _client(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], auth_info: c2c_auth.AuthInfo | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    _clear(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config.reload()
    sub_app = create_app()
    if auth_info is not None:
        sub_app.dependency_overrides[c2c_auth.get_auth] = lambda: auth_info
    app = FastAPI()
    app.mount("/c2c", sub_app)
    await c2casgiutils.startup(app)
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await c2casgiutils.shutdown()
        _clear(monkeypatch)
        config.reload()


def _strings(value: Any) -> Iterator[str]:
    """Every string of a parsed JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _assert_hidden(answer: httpx.Response | dict[str, Any], secrets: list[str]) -> None:
    data = answer if isinstance(answer, dict) else answer.json()
    texts = list(_strings(data))
    raw = answer.text if isinstance(answer, httpx.Response) else json.dumps(data)
    for secret in secrets:
        assert all(secret not in text for text in texts), secret
        assert secret not in raw, secret


# --- access levels ---------------------------------------------------------------------------------


async def test_secret_mode_access(monkeypatch: pytest.MonkeyPatch) -> None:
    async with _client(monkeypatch, {"C2C__AUTH__SECRET": SECRET}) as client:
        anonymous = await client.get("/c2c/config")
        assert anonymous.status_code == 403, anonymous.text
        wrong = await client.get("/c2c/config", headers={"X-API-Key": "wrong"})
        assert wrong.status_code == 403
        admin = await client.get("/c2c/config", headers={"X-API-Key": SECRET})
        assert admin.status_code == 200, admin.text
        assert SECRET not in anonymous.text + wrong.text + admin.text
        entry = {item["name"]: item for item in admin.json()["settings"]}["auth.secret"]
        assert entry == {
            "name": "auth.secret",
            "env_var": "C2C__AUTH__SECRET",
            "value": SECRET_MASK,
            "source": "C2C__AUTH__SECRET",
            "masked": True,
            "description": entry["description"],
        }


async def test_a_secret_read_from_a_file_names_its_file_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "c2c-secret").write_text(SECRET + "\n")
    async with _client(monkeypatch, {"C2C__AUTH__SECRET_FILE": str(tmp_path / "c2c-secret")}) as client:
        admin = await client.get("/c2c/config", headers={"X-API-Key": SECRET})  # the file's secret works
        assert admin.status_code == 200, admin.text
    entries = {item["name"]: item for item in admin.json()["settings"]}
    assert entries["auth.secret"]["source"] == "C2C__AUTH__SECRET_FILE"
    assert entries["auth.secret"]["value"] == SECRET_MASK
    assert SECRET not in admin.text
    assert not admin.json()["unknown"], admin.json()["unknown"]


async def test_no_authentication_refuses_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    async with _client(monkeypatch, {}) as client:
        answer = await client.get("/c2c/config", headers={"X-API-Key": "anything"})
        assert answer.status_code == 403


@pytest.mark.parametrize(
    ("permissions", "expected"),
    [
        ({"pull": True, "push": False, "admin": False}, 403),  # read-only
        ({"pull": True, "push": True, "admin": False}, 403),  # read-write: still not admin
        ({"pull": True, "push": True, "admin": True}, 200),  # admin
    ],
)
async def test_github_levels(monkeypatch: pytest.MonkeyPatch, permissions: dict[str, bool], expected: int) -> None:
    async def fake_permissions(_settings: object, token: str, repository: str) -> dict[str, bool]:
        assert (token, repository) == ("gho_user_token", "org/repo")
        return permissions

    monkeypatch.setattr(_github, "get_permissions", fake_permissions)
    env = {
        "C2C__AUTH__GITHUB__REPOSITORY": "org/repo",
        "C2C__AUTH__GITHUB__CLIENT_ID": "client-id",
        "C2C__AUTH__GITHUB__CLIENT_SECRET": "github-client-secret-value",
        "C2C__AUTH__JWT__SECRET": "jwt-secret-" + "x" * 40,
    }
    user = c2c_auth.AuthInfo(is_logged_in=True, user=c2c_auth.UserInfo(login="someone", token="gho_user_token"))
    async with _client(monkeypatch, env, user) as client:
        answer = await client.get("/c2c/config")
    assert answer.status_code == expected, answer.text
    _assert_hidden(answer, ["github-client-secret-value", "x" * 40, "gho_user_token"])


# --- what it shows ---------------------------------------------------------------------------------


async def test_values_sources_and_unknown_variables(monkeypatch: pytest.MonkeyPatch, redis_server_factory: Any) -> None:
    redis = redis_server_factory(password="redis-pass-word-42")
    secrets = [
        SECRET,
        "redis-pass-word-42",
        "broadcast-secret-value-0123456789",
        "jwt-secret-value-0123456789-0123456789",
        "options-pass-9876",
        "sentry-key-abcdef",
        "sentry-pass-ghijk",
        "tag-token-value",
        "extra-named-value",
    ]
    env = {
        "C2C__AUTH__SECRET": SECRET,
        "C2C__REDIS__URL": redis.url,
        "C2C__REDIS__OPTIONS": "password=options-pass-9876,socket_timeout=3",
        "C2C__BROADCAST__SECRET": "broadcast-secret-value-0123456789",
        "C2C__AUTH__JWT__SECRET": "jwt-secret-value-0123456789-0123456789",
        "C2C__SENTRY__DSN": "https://sentry-key-abcdef:sentry-pass-ghijk@sentry.example.org/42",
        "C2C__SENTRY__TAG_TOKEN": "tag-token-value",
        "C2C__SENTRY__TAG_SERVICE": "my-service",
        "C2C__SENTRY__SERVER_NAME": "extra-named-value",
        "C2C__TOOLS__HEADERS__MASKED_NAMES": "server_name",
        "c2c__redis__db": "3",
        "C2C__REDIS__URLL": "typo",
    }
    async with _client(monkeypatch, env) as client:
        answer = await client.get("/c2c/config", headers={"X-API-Key": SECRET})
    assert answer.status_code == 200, answer.text
    _assert_hidden(answer, secrets)
    data = answer.json()
    entries = {item["name"]: item for item in data["settings"]}
    assert entries["redis.url"]["value"] == f"redis://{SECRET_MASK}@{redis.host}:{redis.port}/0"
    assert entries["redis.url"]["source"] == "C2C__REDIS__URL"
    assert entries["redis.options"]["value"] == {"password": SECRET_MASK, "socket_timeout": 3.0}
    assert entries["redis.db"] == {**entries["redis.db"], "value": 3, "source": "C2C__REDIS__DB", "masked": False}
    assert entries["redis.timeout"]["source"] == DEFAULT_SOURCE
    assert entries["redis.timeout"]["value"] == "PT5S"
    assert entries["broadcast.secret"]["value"] == SECRET_MASK
    assert entries["auth.jwt.secret"]["masked"] is True
    assert entries["sentry.dsn"]["value"] == f"https://{SECRET_MASK}@sentry.example.org/42"
    assert entries["sentry.tags"]["value"] == {"token": SECRET_MASK, "service": "my-service"}
    assert entries["sentry.tags"]["source"] == "C2C__SENTRY__TAG_*"
    assert entries["sentry.server_name"]["value"] == SECRET_MASK  # masked by a configured name
    assert entries["auth.secret_max_failures"]["masked"] is False  # a limit, not a credential
    assert entries["auth.github.authorize_url"]["value"].startswith("https://github.com/")
    assert entries["tools.headers.masked_names"]["value"] == ["server_name"]
    assert {"name": "C2C__REDIS__URLL", "suggestion": "C2C__REDIS__URL"} in data["unknown"]
    assert all(item["env_var"].startswith("C2C__") for item in data["settings"])


async def test_credential_query_parameters_of_urls(monkeypatch: pytest.MonkeyPatch, redis_server_factory: Any) -> None:
    """The security audit: `redis://host/0?password=...` (redis-py reads it) showed the password, `masked: false`."""
    server = redis_server_factory(password="query-pass-word-43")
    env = {
        "C2C__AUTH__SECRET": SECRET,
        "C2C__REDIS__URL": f"redis://{server.host}:{server.port}/0?password=query-pass-word-43&health_check_interval=5",
        "C2C__SENTRY__DSN": "https://pubkey@sentry.example.org/42?customer_id=cust-7&sig=sig-value-9",
        "C2C__TOOLS__HEADERS__MASKED_NAMES": "customer",  # the request-headers tool's rule, configured names included
    }
    client_of_url = redis.asyncio.Redis.from_url(env["C2C__REDIS__URL"])
    try:
        assert await client_of_url.ping()  # redis-py reads the password from the query: a real credential
    finally:
        await client_of_url.aclose()
    async with _client(monkeypatch, env) as client:
        answer = await client.get("/c2c/config", headers={"X-API-Key": SECRET})
    assert answer.status_code == 200, answer.text
    _assert_hidden(answer, [SECRET, "query-pass-word-43", "cust-7", "sig-value-9"])
    entries = {item["name"]: item for item in answer.json()["settings"]}
    assert entries["redis.url"]["value"] == (
        f"redis://{server.host}:{server.port}/0?password={SECRET_MASK}&health_check_interval=5"
    )
    assert entries["redis.url"]["masked"] is True  # a part of it is hidden
    assert (
        entries["sentry.dsn"]["value"]
        == f"https://{SECRET_MASK}@sentry.example.org/42?customer_id={SECRET_MASK}&sig={SECRET_MASK}"
    )
    assert entries["sentry.dsn"]["masked"] is True
    assert entries["redis.db"]["masked"] is False


def test_masked_tells_whether_anything_is_hidden() -> None:
    settings_object = config.Settings.model_validate(
        {"redis": {"url": "redis://user:pw@h:6379/0", "options": {"socket_timeout": 3}}, "sentry": {"tags": {"a": "b"}}}
    )
    entries = {item.name: item for item in describe_settings(settings_object, {}).settings}
    assert (entries["redis.url"].value, entries["redis.url"].masked) == (f"redis://{SECRET_MASK}@h:6379/0", True)
    assert entries["redis.options"].masked is False
    assert entries["sentry.tags"].masked is False
    assert entries["auth.github.authorize_url"].masked is False


def test_section_given_as_json() -> None:
    environ = {"C2C__REDIS": '{"db": 2}'}
    answer = describe_settings(config.Settings.model_validate({"redis": {"db": 2}}), environ)
    entries = {item.name: item for item in answer.settings}
    assert entries["redis.db"].source == "C2C__REDIS"
    assert entries["redis.url"].source == "C2C__REDIS"
    assert entries["auth.secret"].source == DEFAULT_SOURCE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:pw@host:6379/0", f"redis://{SECRET_MASK}@host:6379/0"),
        ("redis://user:p@ss/w rd@host/0", f"redis://{SECRET_MASK}@host/0"),
        ("https://key@sentry.io/1", f"https://{SECRET_MASK}@sentry.io/1"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("user@example.org", "user@example.org"),
        ("redis://host/0?password=pw&db=1", f"redis://host/0?password={SECRET_MASK}&db=1"),
        ("rediss://:pw@host/0?ssl_cert_reqs=none", f"rediss://{SECRET_MASK}@host/0?ssl_cert_reqs=none"),
        (
            "https://h/?key=k&sig=s&code=c&country_code=ch",
            f"https://h/?key={SECRET_MASK}&sig={SECRET_MASK}&code={SECRET_MASK}&country_code=ch",
        ),
        ("https://h/#access_token=t", f"https://h/#access_token={SECRET_MASK}"),
    ],
)
def test_mask_userinfo(text: str, expected: str) -> None:
    assert mask_userinfo(text) == expected


def test_mask_userinfo_uses_the_configured_names() -> None:
    assert (
        mask_userinfo("redis://h/0?tenant=t&db=1", NameMasker(["tenant"])) == f"redis://h/0?tenant={SECRET_MASK}&db=1"
    )
    assert mask_userinfo("redis://h/0?tenant=t&db=1") == "redis://h/0?tenant=t&db=1"


# Any text an environment variable can hold, recognisable (the prefix) so that a hit is no accident.
_SECRET_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"), min_size=4, max_size=30
).map(lambda text: "Zq7" + text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    user=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", max_size=8),
    password=_SECRET_TEXT,
    secret=_SECRET_TEXT,
    option_password=_SECRET_TEXT.filter(lambda text: "," not in text and "=" not in text and text == text.strip()),
    tag=_SECRET_TEXT,
    query_password=_SECRET_TEXT,
    query_name=st.sampled_from(["password", "sentinel_password", "key", "pwd", "access_key", "token", "Sig"]),
)
def test_no_secret_ever_shown(
    user: str, password: str, secret: str, option_password: str, tag: str, query_password: str, query_name: str
) -> None:
    """Whatever the secrets, URL passwords and credential query values, none shows in the settings' description."""
    # A URL's password is percent-encoded, as a URL requires (raw, a "/" or "[" in it makes the URL
    # unreadable: refused at start, test_unreadable_redis_url_is_refused_without_its_password).
    quoted = urllib.parse.quote(password, safe="")
    settings_object = config.Settings.model_validate(
        {
            "auth": {"secret": secret, "jwt": {"secret": secret}, "github": {"client_secret": secret}},
            "broadcast": {"secret": secret},
            "redis": {
                "url": (
                    f"redis://{user}:{quoted}@redis.internal:6379/0"
                    f"?db=0&{query_name}={urllib.parse.quote(query_password, safe='')}"
                ),
                "options": {"password": option_password},
            },
            # A DSN names its public key (the SDK refuses one without): the user, never empty here.
            "sentry": {"dsn": f"https://{user or 'key'}:{quoted}@sentry.example.org/1", "tags": {"api_token": tag}},
        }
    )
    answer = describe_settings(settings_object, {}, NameMasker())
    _assert_hidden(answer.model_dump(mode="json"), [password, secret, option_password, tag, query_password])
    _assert_hidden(answer.model_dump(mode="json"), [urllib.parse.quote(query_password, safe=""), quoted])
    assert all(entry.masked for entry in answer.settings if entry.name in ("redis.url", "sentry.dsn"))


@pytest.mark.parametrize("password", ["Zq7[secret", "Zq7/se#cret", "Zq7se]cret?"])
def test_unreadable_redis_url_is_refused_without_its_password(password: str) -> None:
    """A raw "[", "/" or "#" in a URL's password leaves a URL redis-py cannot read: refused at
    start, naming the variable, the password never shown."""
    with pytest.raises(ValueError, match="percent-encode") as info:
        config.Settings.model_validate({"redis": {"url": f"redis://user:{password}@redis.internal:6379/0"}})
    assert "C2C__REDIS__URL" in str(info.value)
    assert "secret" not in str(info.value).replace("C2C__", "")


# --- issue 16 item 6: no authentication configured -------------------------------------------------


async def test_startup_warns_without_authentication(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A misspelled C2C__AUTH__SECRET leaves no login at all: one WARNING at startup says how to configure one."""
    with caplog.at_level(logging.WARNING, logger="c2c_auth"):
        async with _client(monkeypatch, {"C2C__AUTH__SECERT": SECRET}):
            pass
    warnings = [
        record for record in caplog.records if record.name == "c2c_auth" and "No authentication" in record.message
    ]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "C2C__AUTH__SECRET" in warnings[0].message
    assert "C2C__AUTH__GITHUB__CLIENT_SECRET" in warnings[0].message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="c2c_auth"):
        async with _client(monkeypatch, {"C2C__AUTH__SECRET": SECRET}):
            pass
    assert not [record for record in caplog.records if "No authentication" in record.message]
