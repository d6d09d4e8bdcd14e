"""Durations, comma lists and k=v options: truth tables, then Hypothesis."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from c2c_config import (
    REDIS_OPTION_TYPES,
    DurationError,
    format_duration,
    parse_duration,
    parse_float_list,
    parse_int_list,
    parse_options,
    parse_string_list,
)

td = datetime.timedelta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # ISO 8601
        ("PT10M", td(minutes=10)),
        ("PT168H", td(days=7)),
        ("P7D", td(days=7)),
        ("P2W", td(weeks=2)),
        ("P1DT2H3M4S", td(days=1, hours=2, minutes=3, seconds=4)),
        ("PT1.5S", td(seconds=1.5)),
        ("PT0,5S", td(seconds=0.5)),
        ("pt10m", td(minutes=10)),
        ("PT0S", td(0)),
        # short form, a trailing bare number takes the next smaller unit
        ("2h30", td(hours=2, minutes=30)),
        ("2m30", td(minutes=2, seconds=30)),
        ("1d12", td(days=1, hours=12)),
        ("1w", td(weeks=1)),
        ("1w2d3h4m5s", td(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("2h 30m", td(hours=2, minutes=30)),
        ("10M", td(minutes=10)),
        ("1.5h", td(hours=1.5)),
        # seconds
        ("90", td(seconds=90)),
        ("1.5", td(seconds=1.5)),
        (" 90 ", td(seconds=90)),
        (90, td(seconds=90)),
        (0.25, td(seconds=0.25)),
        (td(hours=1), td(hours=1)),
    ],
)
def test_parse_duration(text: object, expected: datetime.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # the reference read these silently as 0 and 1 s
        ("P1Y", "years and months"),
        ("P2M", "years and months"),
        ("P1Y2M3D", "years and months"),
        ("1x", "expected"),
        ("10 minutes", "expected"),
        # malformed
        ("", "empty"),
        ("   ", "empty"),
        ("P", "expected"),
        ("PT", "expected"),
        ("P1DT", "expected"),
        ("2m30s5", "trailing number"),
        ("30s2", "trailing number"),
        ("1h2h", "once each"),
        ("30m1h", "once each"),
        ("h", "expected"),
        ("-5", "expected"),
        ("-PT5M", "expected"),
        (-5, "negative"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (True, "expected"),
        (None, "type NoneType"),
        ("1e3", "expected"),
    ],
)
def test_parse_duration_refuses(text: object, reason: str) -> None:
    with pytest.raises(DurationError, match=reason) as info:
        parse_duration(text)
    assert "expected" in str(info.value) or "negative" in str(info.value) or "finite" in str(info.value)


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (td(minutes=10), "PT10M"),
        (td(days=7), "PT168H"),
        (td(0), "PT0S"),
        (td(hours=1, seconds=5), "PT1H5S"),
        (td(seconds=1.5), "PT1.5S"),
        (td(microseconds=1), "PT0.000001S"),
    ],
)
def test_format_duration(value: datetime.timedelta, rendered: str) -> None:
    assert format_duration(value) == rendered


durations = st.timedeltas(min_value=td(0), max_value=td(days=3650))


@given(durations)
@example(td(microseconds=999_999))
@example(td(days=1, microseconds=10))
def test_duration_roundtrip(value: datetime.timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


@given(
    st.lists(st.integers(min_value=0, max_value=1_000), min_size=5, max_size=5),
    st.integers(min_value=0, max_value=4),
)
def test_short_form_matches_arithmetic(amounts: list[int], first: int) -> None:
    units = "wdhms"
    text = "".join(f"{amount}{unit}" for amount, unit in zip(amounts[first:], units[first:], strict=True))
    seconds = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    expected = sum(amount * seconds[unit] for amount, unit in zip(amounts[first:], units[first:], strict=True))
    assert parse_duration(text) == td(seconds=expected)


@given(st.text(max_size=20))
@example("1x")
@example("P1Y")
@example("٣")  # a non-ASCII digit: str.isdigit() is true, the grammar is ASCII
def test_parse_duration_never_crashes(text: str) -> None:
    """Any string gives a non-negative timedelta or a DurationError that lists the formats."""
    try:
        result = parse_duration(text)
    except DurationError as error:
        assert "expected" in str(error) or "negative" in str(error) or "out of range" in str(error)
    else:
        assert result >= td(0)


# Issue 14 item 15: huge durations were an OverflowError (a 500 in the logging tool, a raw
# traceback when loading settings); they are a DurationError naming the value.
@pytest.mark.parametrize(
    "value",
    [
        1e15,
        10**400,
        "99999999999999w",
        "P99999999999999W",
        "PT99999999999999999H",
        "9" * 400,
        "36501d",
        "P36500DT1S",
        td(days=36501),
    ],
    ids=lambda value: repr(value)[:24],
)
def test_parse_duration_out_of_range(value: object) -> None:
    with pytest.raises(DurationError, match="out of range") as caught:
        parse_duration(value)
    assert "36500 days" in str(caught.value)
    assert str(value)[:20] in str(caught.value) or isinstance(value, td)


def test_parse_duration_maximum_is_accepted() -> None:
    assert parse_duration("36500d") == parse_duration("P36500D") == parse_duration(36500 * 86400) == td(days=36500)


def test_settings_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from c2c_config import C2CSettings, ConfigError, Duration

    class _Timeouts(C2CSettings):
        limit: Duration = td(seconds=1)

    monkeypatch.setenv("C2C__LIMIT", "99999999999999w")
    with pytest.raises(ConfigError) as caught:
        _Timeouts()
    assert "C2C__LIMIT" in str(caught.value)
    assert "out of range" in str(caught.value)


@given(
    st.one_of(
        st.text(alphabet="0123456789.,PTWDHMSwdhms ", max_size=40),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.timedeltas(),
        st.booleans(),
        st.none(),
    )
)
@example("99999999999999w")
@example(1e15)
@example(10**400)
def test_parse_duration_only_raises_duration_error(value: object) -> None:
    """Any string or number: a timedelta within range, or a DurationError; never another exception."""
    try:
        result = parse_duration(value)
    except DurationError:
        pass
    else:
        assert td(0) <= result <= td(days=36500)


# --- lists ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1,10.0.0.0/8", ["127.0.0.1", "10.0.0.0/8"]),
        (" a , b ,, c ", ["a", "b", "c"]),
        ("", []),
        ("*", ["*"]),
        ('["a", "b,c"]', ["a", "b,c"]),
        (["x", "y"], ["x", "y"]),
    ],
)
def test_string_list(text: object, expected: list[str]) -> None:
    assert parse_string_list(text) == expected


@pytest.mark.parametrize(
    ("parser", "text", "expected"),
    [
        (parse_int_list, "1, 2,3", [1, 2, 3]),
        (parse_int_list, "[1, 2]", [1, 2]),
        (parse_int_list, "-1", [-1]),
        (parse_float_list, "0.5,1", [0.5, 1.0]),
        (parse_float_list, "1e3", [1000.0]),
    ],
)
def test_number_lists(parser: object, text: str, expected: list[float]) -> None:
    assert parser(text) == expected  # type: ignore[operator]


@pytest.mark.parametrize(
    ("parser", "text", "message"),
    [
        (parse_int_list, "1,x", "item 2 ('x') is not an integer"),
        (parse_int_list, "1.5", "is not an integer"),
        (parse_int_list, "[true]", "is not an integer"),
        (parse_float_list, "1,nan", "is not a finite number"),
        (parse_string_list, "[1", "must be a JSON array"),
        (parse_string_list, '{"a": 1}', None),
        (parse_string_list, "[1]", "is not a string"),
        (parse_string_list, 5, "expected a comma-separated string, a list or None, got a value of type"),
    ],
)
def test_list_errors(parser: object, text: object, message: str | None) -> None:
    if message is None:  # not a JSON array: read as one plain item
        assert parser(text) == [text]  # type: ignore[operator]
        return
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parser(text)  # type: ignore[operator]


items = st.text(alphabet=st.characters(blacklist_characters=",[", blacklist_categories=["Cs"]), min_size=1).filter(
    lambda s: s.strip() == s and s != ""
)


@given(st.lists(items, max_size=8))
def test_string_list_roundtrip(values: list[str]) -> None:
    assert parse_string_list(",".join(values)) == values
    assert parse_string_list(json.dumps(values)) == values


@given(st.lists(st.integers(), max_size=8))
def test_int_list_roundtrip(values: list[int]) -> None:
    assert parse_int_list(",".join(map(str, values))) == values


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("socket_timeout=5,ssl=True", {"socket_timeout": 5.0, "ssl": True}),
        ("ssl=false, health_check_interval=30", {"ssl": False, "health_check_interval": 30.0}),
        # a password is a string even when it looks like a number (the reference made it an int)
        ("password=123", {"password": "123"}),
        ('password="a,b=c"', {"password": "a,b=c"}),
        ("max_connections=10", {"max_connections": 10}),
        ('{"ssl": true, "socket_timeout": 2.5}', {"ssl": True, "socket_timeout": 2.5}),
        ("", {}),
        ({"ssl": "yes"}, {"ssl": True}),
        ("ssl_ciphers=ECDHE+AESGCM:!aNULL", {"ssl_ciphers": "ECDHE+AESGCM:!aNULL"}),
        ('{"ssl_ca_data": "-----BEGIN CERTIFICATE-----"}', {"ssl_ca_data": "-----BEGIN CERTIFICATE-----"}),
    ],
)
def test_redis_options(text: object, expected: dict[str, object]) -> None:
    result = parse_options(text, REDIS_OPTION_TYPES, what="Redis option")
    assert result == expected
    assert {k: type(v) for k, v in result.items()} == {k: type(v) for k, v in expected.items()}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("socket_timout=5", "unknown Redis option 'socket_timout'; did you mean 'socket_timeout'"),
        ("ssl=maybe", "is not a boolean"),
        ("max_connections=1.5", "is not an integer"),
        ("socket_timeout=fast", "is not a number"),
        ("socket_timeout=inf", "is not a finite number"),
        ("ssl", "is not of the form key=value"),
        ("=1", "is not of the form key=value"),
        ("ssl=true,ssl=false", "is given twice"),
        ('password="abc', "unbalanced double quote"),
        ('ssl="true"', "a quoted value is a string"),
        ("{1", "must be a JSON object"),
        ("[1]", "is not of the form key=value"),
        ("unix_socket_path=/run/redis.sock", r"a unix socket is given as the URL: C2C__REDIS__URL=unix:///"),
        ("host=redis", r"the address is given as the URL"),
    ],
)
def test_redis_options_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_options(text, REDIS_OPTION_TYPES, what="Redis option")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1,b=true,c=x,d=1.5,e=False", {"a": 1, "b": True, "c": "x", "d": 1.5, "e": False}),
        ("a=1e5", {"a": "1e5"}),  # only plain decimals become numbers
        ("a=", {"a": ""}),
    ],
)
def test_untyped_options(text: str, expected: dict[str, object]) -> None:
    assert parse_options(text) == expected


keys = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)
values = st.one_of(
    st.booleans(),
    st.integers(),
    st.text(alphabet=st.characters(blacklist_characters='",=', blacklist_categories=["Cs", "Zs", "Cc"]), min_size=1),
)


@given(st.dictionaries(keys, values, max_size=6))
def test_untyped_options_roundtrip(options: dict[str, object]) -> None:
    """Rendering `k=v` and parsing back gives the same values and types (strings quoted)."""

    def render(value: object) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, int):
            return str(value)
        return f'"{value}"'

    text = ",".join(f"{key}={render(value)}" for key, value in options.items())
    assert parse_options(text) == options


@given(st.text(max_size=40))
def test_options_never_crash(text: str) -> None:
    """Arbitrary input parses or raises ValueError with a message; nothing else escapes."""
    try:
        parse_options(text, REDIS_OPTION_TYPES, what="Redis option")
    except ValueError as error:
        assert str(error)


@pytest.mark.parametrize(
    ("parser", "name", "kind"),
    [
        (parse_string_list, "parse_string_list", "a string"),
        (parse_int_list, "parse_int_list", "an integer"),
        (parse_float_list, "parse_float_list", "a finite number"),
    ],
)
def test_list_parsers_have_their_public_name_and_a_docstring(
    parser: Callable[[object], list[Any]], name: str, kind: str
) -> None:
    """`help()` and the API docs show each list parser under its own name, with what it accepts."""
    assert parser.__name__ == parser.__qualname__ == name
    assert parser.__doc__ is not None
    assert f"every item is {kind}" in parser.__doc__
