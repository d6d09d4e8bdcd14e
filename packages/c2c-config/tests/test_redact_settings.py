"""Redis passwords in the settings: never in a startup error (`C2C__REDIS__OPTIONS`), nor in a `repr`."""

from __future__ import annotations

import json
import os
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from c2c_config import REDIS_OPTION_TYPES, ConfigError, CoreSettings, RedisSettings
from c2c_config._base import is_credential_name, redact_options
from c2c_config._types import _split_options

PIECES = ("Q7xk2v", "Zr9WmA", "Jq4TyB")
SECRET = "".join(PIECES)


def _error(monkeypatch: pytest.MonkeyPatch, options: str) -> str:
    """The `ConfigError` text of building the settings with `C2C__REDIS__OPTIONS=options`."""
    monkeypatch.setenv("C2C__REDIS__OPTIONS", options)
    with pytest.raises(ConfigError) as info:
        CoreSettings()
    return str(info.value)


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        # the option named is still shown, the password not
        (
            f"password={SECRET},sentinel_kwargs_dummy=1",
            "C2C__REDIS__OPTIONS='password=***,sentinel_kwargs_dummy=1': unknown Redis option 'sentinel_kwargs_dummy'",
        ),
        (
            f"password={SECRET},socket_timeout=abc",
            "C2C__REDIS__OPTIONS='password=***,socket_timeout=abc': option 'socket_timeout': 'abc' is not a number",
        ),
        (
            f'ssl_password="{SECRET}",ssl=maybe',
            "C2C__REDIS__OPTIONS='ssl_password=***,ssl=maybe': option 'ssl': 'maybe' is not a boolean",
        ),
        (
            f'{{"password": "{SECRET}", "socket_timeout": "abc"}}',
            """C2C__REDIS__OPTIONS='{"password": "***", "socket_timeout": "abc"}': option 'socket_timeout'""",
        ),
        # a misspelt password option: its value is hidden too
        (f"pasword={SECRET}", "C2C__REDIS__OPTIONS='pasword=***': unknown Redis option 'pasword'; did you mean"),
        (f"password:{SECRET}", "C2C__REDIS__OPTIONS='***': Redis option '***' is not of the form key=value"),
        # a password holding an unquoted comma: the end of it is hidden, in the message too
        (
            "password=Q7xk2v,Zr9WmA,ssl=true,socket_timeout=x",
            "C2C__REDIS__OPTIONS='password=***,ssl=true,socket_timeout=x': Redis option '***' is not of the form "
            'key=value (a value holding a comma must be quoted: password="a,b")',
        ),
        (
            "password=Q7xk2v,Zr9WmAJq4TyB",
            "C2C__REDIS__OPTIONS='password=***': Redis option '***' is not of the form key=value "
            '(a value holding a comma must be quoted: password="a,b")',
        ),
        (
            "password=Q7xk2v,Zr9WmAJq4TyB==",
            "C2C__REDIS__OPTIONS='password=***': unknown Redis option '***'",
        ),
        # cannot be split: only its length is shown
        (f'password="{SECRET},ssl=true', "C2C__REDIS__OPTIONS=<37 characters, not shown>: unbalanced double quote"),
        (f'{{"password": "{SECRET}"', "C2C__REDIS__OPTIONS=<33 characters, not shown>: a value starting with '{'"),
        # no credential: shown as written
        ("socket_timeout=abc", "C2C__REDIS__OPTIONS='socket_timeout=abc': option 'socket_timeout': 'abc' is not"),
        ("socket_timout=5", "C2C__REDIS__OPTIONS='socket_timout=5': unknown Redis option 'socket_timout'; did you"),
        ("ssl", "C2C__REDIS__OPTIONS='ssl': Redis option 'ssl' is not of the form key=value"),
    ],
)
def test_options_error_hides_the_password(monkeypatch: pytest.MonkeyPatch, options: str, shown: str) -> None:
    text = _error(monkeypatch, options)
    assert shown in text
    for piece in PIECES:
        assert piece not in text


def test_url_query_password_not_in_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__REDIS__URL", f"http://redis:6379/0?password={SECRET}&db=1")
    with pytest.raises(ConfigError) as info:
        CoreSettings()
    assert "C2C__REDIS__URL='http://redis:6379/0?password=***&db=1': must start with redis://" in str(info.value)
    assert SECRET not in str(info.value)


# Password pieces: an upper-case letter then a digit, so that no piece can be read in the message
# elsewhere (option names are lower-case, the variable is C2C__REDIS__OPTIONS).
_PIECE = st.from_regex(r"[A-Z][0-9][A-Z0-9]{2,8}", fullmatch=True)
_OTHER = [
    "ssl=true",
    "socket_timeout=5",
    "db=2",
    "client_name=app",
    "socket_timeout=abc",  # a bad value
    "ssl=maybe",
    "socket_timout=5",  # unknown, close to a known name
    "sentinel_kwargs=1",  # unknown
    "ssl",  # not k=v
    "=1",
]
_BEFORE = st.lists(st.sampled_from(_OTHER), max_size=3)
# An unbalanced quote after the password only (two would quote the password into another option's value).
_AFTER = st.lists(st.sampled_from([*_OTHER, 'client_name="a']), max_size=3)


@given(
    st.lists(_PIECE, min_size=1, max_size=3),
    st.sampled_from(["password", "ssl_password", "username"]),
    st.booleans(),
    _BEFORE,
    _AFTER,
)
@example(["A1BCD", "E2FGH"], "password", False, ["socket_timeout=abc"], [])
@example(["A1BCD", "E2FGH"], "password", False, [], ["ssl", "=1"])
def test_options_error_never_shows_a_password(
    pieces: list[str], name: str, quoted: bool, before: list[str], after: list[str]
) -> None:
    """Whatever else the options hold, the password's pieces never appear in the error or the repr."""
    password = ",".join(pieces)
    value = f'"{password}"' if quoted else password
    options = ",".join([*before, f"{name}={value}", *after])
    with mock.patch.dict(os.environ, {"C2C__REDIS__OPTIONS": options}):
        try:
            settings = CoreSettings()
        except ConfigError as error:
            text = str(error)
        else:
            assert settings.redis.options[name] == password  # the client still gets it
            text = repr(settings) + str(settings) + repr(settings.redis)
    if name != "username":  # a user name is not a secret
        for piece in pieces:
            assert piece not in text


@given(st.text(alphabet='pasword=,"{}:_ lxy1', max_size=40) | st.text(max_size=40), st.booleans())
@example('password="a', True)
@example("{[", False)
@example('{"password": 1, "ssl_password": "x"}', True)
@example('client_name="a,password=b",password=c,d', True)
def test_redact_options_any_text(text: str, typed: bool) -> None:
    """Any text: None (cannot be split) or a text where every credential option's value is `***`; never raises."""
    redacted = redact_options(text, REDIS_OPTION_TYPES if typed else None)
    if redacted is None:
        return
    if text.strip().startswith("{"):
        shown = json.loads(redacted.shown)
        assert all(value == "***" for key, value in shown.items() if is_credential_name(key))
        return
    for item in _split_options(redacted.shown):  # the pieces as `parse_options` reads them
        key, _, value = (part.strip() for part in item.partition("="))
        if is_credential_name(key):
            assert value in ("***", "")


# --- repr -----------------------------------------------------------------------------------------


def test_repr_hides_credential_options_and_url_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"redis://app:{SECRET}@redis:6379/0?sentinel_password={SECRET}x&db=1"
    monkeypatch.setenv("C2C__REDIS__URL", url)
    monkeypatch.setenv("C2C__REDIS__OPTIONS", f'password="{SECRET}y",ssl_password={SECRET}z,ssl=true,client_name=app')
    settings = CoreSettings()
    for text in (repr(settings), str(settings), repr(settings.redis), str(settings.redis)):
        assert SECRET not in text
        assert "url='redis://app:***@redis:6379/0?sentinel_password=***&db=1'" in text
        assert "options={'password': '***', 'ssl_password': '***', 'ssl': True, 'client_name': 'app'}" in text
    # What the settings hold is unchanged: the Redis client gets the real values, and so does a dump.
    assert settings.redis.url == url
    assert settings.redis.options["password"] == f"{SECRET}y"
    assert settings.redis.options["ssl_password"] == f"{SECRET}z"
    assert settings.redis.model_dump()["options"]["password"] == f"{SECRET}y"


def test_repr_without_credentials() -> None:
    settings = RedisSettings(url="redis://redis:6379/0", options={"ssl": True, "username": "app"})
    assert repr(settings).startswith(
        "RedisSettings(url='redis://redis:6379/0', options={'ssl': True, 'username': 'app'},"
    )
    assert repr(RedisSettings()).startswith("RedisSettings(url=None, options={}, sentinels=None,")


def test_a_bad_redis_port_is_refused_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__REDIS__URL", f"redis://:{SECRET}@localhost:99999/0")
    with pytest.raises(ConfigError) as info:
        CoreSettings()
    assert "its port is not a number from 0 to 65535" in str(info.value)
    assert SECRET not in str(info.value)
