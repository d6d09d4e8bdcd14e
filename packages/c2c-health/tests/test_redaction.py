"""The probe's stdlib-only `mask_password` and c2c-config's `redact_url` hide the same passwords."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from c2c_config import redact_url
from c2c_health._http import mask_password

_USER = st.text(alphabet="abcXYZ019-._~!$&'()*+,;=%", max_size=6)
_PASSWORD = st.text(alphabet="abcXYZ019-._~!$&'()*+,;=%:@", max_size=8)
_HOST = st.from_regex(r"[a-z0-9]{1,8}(\.[a-z]{2,3})?(:[0-9]{1,5})?", fullmatch=True)
_PARAMETER = st.sampled_from(["a", "page", "secret", "token", "code", "state", "api_key", "Password", "sig", "keys"])
_QUERY = st.lists(st.tuples(_PARAMETER, st.from_regex(r"[a-z0-9:@]{0,4}", fullmatch=True)), max_size=3).map(
    lambda pairs: "?" + "&".join(f"{name}={value}" for name, value in pairs) if pairs else ""
)
_PATH = st.tuples(st.from_regex(r"(/[a-z0-9@:]{0,6}){0,2}", fullmatch=True), _QUERY).map("".join)


@given(st.sampled_from(["http", "https"]), _USER, st.none() | _PASSWORD, _HOST, _PATH)
def test_the_two_redactions_agree(scheme: str, user: str, password: str | None, host: str, path: str) -> None:
    userinfo = user if password is None else f"{user}:{password}"
    url = f"{scheme}://{userinfo}@{host}{path}"
    assert redact_url(url) == mask_password(url)
    if password:
        assert "***@" in redact_url(url)


def test_the_credential_names_are_c2c_configs() -> None:
    """The probe's copy of the rule has c2c-config's vocabulary and gives its answers."""
    from c2c_config import CREDENTIAL_FRAGMENTS, CREDENTIAL_NAMES, CREDENTIAL_WORDS, is_credential_name
    from c2c_health import _http

    assert _http._CREDENTIAL_FRAGMENTS == CREDENTIAL_FRAGMENTS
    assert _http._CREDENTIAL_WORDS == CREDENTIAL_WORDS
    assert _http._CREDENTIAL_NAMES == CREDENTIAL_NAMES
    for name in (
        "sig",
        "siG",
        "code",
        "state",
        "key",
        "monkey",
        "page",
        "X-Amz-Signature",
        "pass%77ord",
        "user",
        "PIN",
    ):
        assert _http._is_credential_name(name) == is_credential_name(name), name


@given(st.text(max_size=30) | st.from_regex(r"[A-Za-z_%0-9-]{0,20}", fullmatch=True))
def test_the_copy_agrees_on_any_name(name: str) -> None:
    from c2c_config import is_credential_name
    from c2c_health import _http

    assert _http._is_credential_name(name) == is_credential_name(name)
