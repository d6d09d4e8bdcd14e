"""The probe's stdlib-only `mask_password` and c2c-config's `redact_url` hide the same passwords."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from c2c_config import redact_url
from c2c_health._http import mask_password

_USER = st.text(alphabet="abcXYZ019-._~!$&'()*+,;=%", max_size=6)
_PASSWORD = st.text(alphabet="abcXYZ019-._~!$&'()*+,;=%:@", max_size=8)
_HOST = st.from_regex(r"[a-z0-9]{1,8}(\.[a-z]{2,3})?(:[0-9]{1,5})?", fullmatch=True)
_PATH = st.from_regex(r"(/[a-z0-9@:]{0,6}){0,2}(\?[a-z]=[a-z0-9:@]{0,4})?", fullmatch=True)


@given(st.sampled_from(["http", "https"]), _USER, st.none() | _PASSWORD, _HOST, _PATH)
def test_the_two_redactions_agree(scheme: str, user: str, password: str | None, host: str, path: str) -> None:
    userinfo = user if password is None else f"{user}:{password}"
    url = f"{scheme}://{userinfo}@{host}{path}"
    assert redact_url(url) == mask_password(url)
    if password:
        assert "***@" in redact_url(url)
