"""`redact_url`: the toolkit's one URL-password redaction helper (user-info and credential query parameters)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from c2c_config import is_credential_setting, redact_url
from c2c_config._base import is_credential_name


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:secret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("http://u:pw@h/", "http://u:***@h/"),
        ("https://u:p@ss@h/", "https://u:***@h/"),  # an unencoded @ in the password
        ("postgresql+asyncpg://app:pw@db/app is down", "postgresql+asyncpg://app:***@db/app is down"),
        ("http://u@h/", "http://u@h/"),  # no password
        ("http://h/p?next=a:b", "http://h/p?next=a:b"),
        ("http://:@0?a=@", "http://:***@0?a=@"),  # the authority ends at '?': the '@' after is the query's
        ("http://u:p@h#x@y", "http://u:***@h#x@y"),
        ("http://h?u:p@x", "http://h?u:p@x"),  # no credentials: 'u:p@' is in the query
        (
            "cannot reach redis://:a@h1:6379 nor rediss://u:b@c@h2/0; mail admin@example.com",
            "cannot reach redis://:***@h1:6379 nor rediss://u:***@h2/0; mail admin@example.com",
        ),
    ],
)
def test_redact_url(text: str, shown: str) -> None:
    assert redact_url(text) == shown


# --- credential query parameters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # redis-py reads the password (and the Sentinel's) from the query too
        ("redis://127.0.0.1:6379/0?password=XYZ", "redis://127.0.0.1:6379/0?password=***"),
        ("redis://h/0?username=app&password=XYZ&db=1", "redis://h/0?username=app&password=***&db=1"),
        ("redis://h/0?sentinel_password=XYZ", "redis://h/0?sentinel_password=***"),
        ("redis://:pw@h/0?password=XYZ", "redis://:***@h/0?password=***"),  # both
        ("rediss://h/0?ssl_password=XYZ&ssl=true", "rediss://h/0?ssl_password=***&ssl=true"),
        # any case, %-encoded names, '-' or '_' in them
        ("https://h/?PassWord=XYZ", "https://h/?PassWord=***"),
        ("https://h/?pass%77ord=XYZ", "https://h/?pass%77ord=***"),
        ("https://h/?X-Amz-Signature=XYZ&X-Amz-Date=1", "https://h/?X-Amz-Signature=***&X-Amz-Date=1"),
        ("https://h/?client_secret=a&client_id=b", "https://h/?client_secret=***&client_id=b"),
        (
            "https://h/?api_key=a&key=b&sig=c&code=d&state=e",
            "https://h/?api_key=***&key=***&sig=***&code=***&state=***",
        ),
        ("https://h/cb#access_token=XYZ&expires_in=3600", "https://h/cb#access_token=***&expires_in=3600"),
        # a value runs to the next '&': a ';' or a '#' in it is hidden with it
        ("redis://h/0?password=ab;cd#ef&db=1", "redis://h/0?password=***&db=1"),
        ("https://h/?a=1;token=XYZ&b=2", "https://h/?a=1;token=***&b=2"),  # a ';'-separated name
        ("https://h/?next=/login?token=XYZ&b=2", "https://h/?next=/login?token=***&b=2"),  # a URL in a value
        # a quoted or bracketed URL keeps its closing quote or bracket
        ("{'url': 'redis://h?password=XYZ', 'db': 1}", "{'url': 'redis://h?password=***', 'db': 1}"),
        ('connecting to "redis://h?password=XYZ".', 'connecting to "redis://h?password=***".'),
        ("see <https://h/?token=XYZ>.", "see <https://h/?token=***>."),
        ("(redis://h?password=XYZ)", "(redis://h?password=***)"),
        ("'redis://h?password=ab'cd'", "'redis://h?password=***'"),  # a quote in the password
        # unquoted, the value runs to the next space
        (
            "Error 111 connecting to redis://h?password=XYZ. Refused.",
            "Error 111 connecting to redis://h?password=*** Refused.",
        ),
        # several URLs
        (
            "redis://h1?password=A and https://u:B@h2/?token=C&x=1",
            "redis://h1?password=*** and https://u:***@h2/?token=***&x=1",
        ),
        # left alone: no credential, an empty value, a name without a value, not in a URL
        ("redis://h/0?db=1&socket_timeout=5&username=app", "redis://h/0?db=1&socket_timeout=5&username=app"),
        ("redis://h/0?password=&db=1", "redis://h/0?password=&db=1"),
        ("redis://h/0?password", "redis://h/0?password"),
        ("password=XYZ is not a URL", "password=XYZ is not a URL"),
        ("/path?password=XYZ", "/path?password=XYZ"),
    ],
)
def test_redact_query_credentials(text: str, shown: str) -> None:
    assert redact_url(text) == shown
    assert redact_url(shown) == shown  # idempotent


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        *[
            (name, True)
            for name in (
                "password",
                "PASSWORD",
                "passwd",
                "pwd",
                "pass",
                "passphrase",
                "secret",
                "client_secret",
                "token",
                "access_token",
                "refresh_token",
                "id_token",
                "api_key",
                "apikey",
                "X-API-Key",
                "key",
                "access_key",
                "sentinel_password",
                "ssl_password",
                "auth",
                "oauth_token",
                "sig",
                "signature",
                "X-Amz-Credential",
                "jsessionid",
                "code",
                "pass%77ord",
                "pass+word",
            )
        ],
        *[
            (name, False)
            for name in ("db", "username", "user", "socket_timeout", "ssl", "ssl_keyfile", "client_name", "q", "id", "")
        ],
    ],
)
def test_is_credential_name(name: str, credential: bool) -> None:
    assert is_credential_name(name) is credential


# The one vocabulary: what the headers tool and the Sentry scrubber masked and the access log did not
# (or the reverse) before the three rules became this one.
@pytest.mark.parametrize(
    ("name", "credential", "variable"),
    [
        # (name, a parameter/header/option holds a credential, a local variable holds one)
        ("sid", True, True),
        ("otp", True, True),
        ("ticket", True, True),
        ("code_verifier", True, True),
        ("PIN", True, True),
        ("siG", True, True),
        ("Cookie", True, True),
        ("set-cookie", True, True),
        ("X-Bearer", True, True),
        ("passcode", True, True),
        ("PHPSESSID", True, True),
        ("X-Client-Key", True, True),
        ("cache_key", True, False),  # `key`: a word of protocols, not of programs
        ("key", True, False),
        ("code", True, False),
        ("state", True, False),
        ("author", True, False),  # `auth`: anywhere in a parameter, a word in a variable
        ("oauth_url", True, False),
        ("bypass", True, False),
        ("db_pass", True, True),
        ("c2c-auth-device", True, True),
        ("clientSecret", True, True),
        ("Authorization", True, True),
        ("country_code", False, False),
        ("status_code", False, False),
        ("Keep-Alive", False, False),
        ("keyboard", False, False),
        ("signal", False, False),
        ("username", False, False),
        ("page", False, False),
        ("", False, False),
    ],
)
def test_one_vocabulary_two_strictnesses(name: str, credential: bool, variable: bool) -> None:
    assert is_credential_name(name) is credential
    assert is_credential_name(name, variable=True) is variable


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("api_token", True),
        ("client_secret", True),
        ("password", True),
        ("token_url", False),  # where a credential goes: shown (its user-info is redact_url's)
        ("state_cookie", False),  # under which name: shown
        ("auth_header", False),
        ("secret_name", False),
        ("timeout", False),
    ],
)
def test_is_credential_setting(name: str, credential: bool) -> None:
    assert is_credential_setting(name) is credential
    assert is_credential_setting(name, lambda _: False) is False  # another rule, the same exceptions


@given(st.text(max_size=40))
def test_a_variable_credential_is_a_parameter_credential(name: str) -> None:
    """The strict reading is narrower: what it hides, every other redaction hides too."""
    if is_credential_name(name, variable=True):
        assert is_credential_name(name)


# Generated URLs: lower-case hosts, paths and values, so that a password made of upper-case letters
# and digits (starting with a letter) can only appear where it was put.
_PASSWORD = st.from_regex(r"[A-Z][A-Z0-9]{3,15}", fullmatch=True)
_CREDENTIAL_PARAMETERS = (
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "client_secret",
    "sentinel_password",
    "ssl_password",
    "auth",
    "sig",
    "signature",
    "key",
    "x-amz-signature",
)
_OTHER_PARAMETERS = ("db", "socket_timeout", "ssl", "username", "decode_responses", "q", "page", "lang", "x")
_SCHEME = st.sampled_from(["redis", "rediss", "unix", "http", "https", "postgresql+asyncpg", "amqp"])
_HOST = st.from_regex(r"[a-z0-9]{1,8}(\.[a-z]{2,3})?(:[0-9]{1,5})?", fullmatch=True)
_PATH = st.from_regex(r"(/[a-z0-9._-]{0,6}){0,2}", fullmatch=True)
_VALUE = st.from_regex(r"[a-z0-9._%-]{0,6}", fullmatch=True)
_PREFIX = st.sampled_from(["", "error: ", "cannot reach ", "'", '"', "<", "(", "[", "url=", "{'url': '", "a\n"])
_SUFFIX = st.sampled_from(["", " is down", "'", "',", '"', ">", ").", "]", "', 'db': 1}", ": refused", "\n"])


@st.composite
def _spelt(draw: st.DrawFn, name: str) -> str:
    """`name` as a URL may spell it: any letter upper-case, any letter %-encoded."""
    chars = []
    for char in name:
        if char.isalpha():
            char = char.upper() if draw(st.booleans()) else char
            char = f"%{ord(char):02X}" if draw(st.integers(0, 9)) == 0 else char
        chars.append(char)
    return "".join(chars)


_CREDENTIAL_NAME = st.sampled_from(_CREDENTIAL_PARAMETERS).flatmap(_spelt)
_OTHER_PAIRS = st.lists(st.tuples(st.sampled_from(_OTHER_PARAMETERS), _VALUE), max_size=3)


@st.composite
def _url_with_password(draw: st.DrawFn) -> tuple[str, str]:
    """A URL holding a password in its user-info, in a credential query parameter, or in both."""
    password = draw(_PASSWORD)
    where = draw(st.sampled_from(["userinfo", "query", "both"]))
    user = draw(st.from_regex(r"[a-z0-9]{0,6}", fullmatch=True))
    userinfo = f"{user}:{password}@" if where in ("userinfo", "both") else ""
    pairs = [f"{name}={value}" for name, value in draw(_OTHER_PAIRS)]
    if where in ("query", "both"):
        pairs.insert(draw(st.integers(0, len(pairs))), f"{draw(_CREDENTIAL_NAME)}={password}")
    query = "?" + "&".join(pairs) if pairs else ""
    url = f"{draw(_SCHEME)}://{userinfo}{draw(_HOST)}{draw(_PATH)}{query}"
    return url, password


@given(_url_with_password(), _PREFIX, _SUFFIX, _url_with_password())
def test_passwords_never_shown(url_password: tuple[str, str], prefix: str, suffix: str, other: tuple[str, str]) -> None:
    url, password = url_password
    other_url, other_password = other
    assert password not in redact_url(url)
    assert password not in redact_url(prefix + url + suffix)
    text = f"{prefix}{url}{suffix} then {other_url}"  # several URLs in one text
    assert password not in redact_url(text)
    assert other_password not in redact_url(text)
    assert redact_url(redact_url(text)) == redact_url(text)


@given(
    _SCHEME,
    st.from_regex(r"([a-z0-9]{1,6}@)?", fullmatch=True),  # a user name without a password
    _HOST,
    _PATH,
    _OTHER_PAIRS,
    _PREFIX,
    _SUFFIX,
)
def test_text_without_credentials_unchanged(
    scheme: str, user: str, host: str, path: str, pairs: list[tuple[str, str]], prefix: str, suffix: str
) -> None:
    query = "?" + "&".join(f"{name}={value}" for name, value in pairs) if pairs else ""
    text = f"{prefix}{scheme}://{user}{host}{path}{query}{suffix}"
    assert redact_url(text) == text


@given(st.text())
@example("http://a?password=")
@example("x://?;=&#")
@example("'a://?token=x'")
def test_any_text(text: str) -> None:
    """Any text: no exception, and redacting twice changes nothing more."""
    once = redact_url(text)
    assert redact_url(once) == once
    if "://" not in text:
        assert once == text


@pytest.mark.parametrize(
    "text",
    [
        "a" * 100_000,  # a long word: each letter could start a scheme
        "a://" * 25_000,  # many URLs without a query
        "x://h?" + "p" * 100_000,  # a long parameter name without a value
        "x://u:" + "a:" * 50_000,  # a long user-info without '@'
    ],
    ids=["word", "schemes", "name", "userinfo"],
)
def test_long_untrusted_text(text: str) -> None:
    """Text from exceptions and payloads: redacting it takes linear time (half a minute when it was quadratic)."""
    assert redact_url(text) == text
