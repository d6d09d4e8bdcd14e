"""The `proxy_headers.trusted_hosts` setting and `ForwardedHeadersMiddleware` share one parser."""

from __future__ import annotations

import os

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from c2c_config import ConfigError, CoreSettings, ProxyHeadersSettings
from c2c_headers import ForwardedHeadersMiddleware, parse_trusted_hosts
from c2c_headers.types import Receive, Scope, Send


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    """Never called: only the middleware's construction is tested."""


def _setting_accepts(entries: list[str]) -> bool:
    try:
        ProxyHeadersSettings(trusted_hosts=entries)
    except ValueError:
        return False
    return True


def _middleware_accepts(entries: list[str]) -> bool:
    try:
        ForwardedHeadersMiddleware(_app, trusted_hosts=entries)
    except ValueError:
        return False
    return True


# Entries near the boundary between an address, a network and a literal.
_ENTRY = st.one_of(
    st.text(alphabet="0123456789abcdefxz.:/%*- \t_[]", max_size=24),
    st.ip_addresses().map(str),
    st.builds(
        lambda address, zone: f"{address}%{zone}",
        st.ip_addresses(v=6).map(str),
        st.from_regex(r"[a-z0-9-]{0,6}", fullmatch=True),
    ),
    st.builds(lambda address, prefix: f"{address}/{prefix}", st.ip_addresses().map(str), st.text(max_size=5)),
    st.sampled_from(["*", "testclient", "/tmp/app.sock", "unix:/run/app.sock"]),
)


@given(st.lists(_ENTRY, max_size=3))
@example(["10.0.0.0/abc"])
@example(["fe80::1%eth0"])
@example(["fe80::%eth0/64"])
@example(["fe80::1%eth0/64"])
@example(["10.0.0.300"])
@example(["my host"])
@example(["10.0.0.0/255.0.0.0"])
def test_setting_and_middleware_accept_the_same_entries(entries: list[str]) -> None:
    assert _setting_accepts(entries) == _middleware_accepts(entries)


# An environment variable cannot hold a NUL byte (the OS refuses it before the setting sees it).
@given(st.lists(_ENTRY.filter(lambda entry: "," not in entry and "\x00" not in entry), min_size=1, max_size=3))
def test_the_environment_variable_agrees_too(entries: list[str]) -> None:
    value = ",".join(entries)
    if value.strip().startswith("["):  # a JSON array for the setting: another format
        return
    os.environ["C2C__PROXY_HEADERS__TRUSTED_HOSTS"] = value
    try:
        try:
            CoreSettings()
            setting = True
        except ConfigError:
            setting = False
    finally:
        del os.environ["C2C__PROXY_HEADERS__TRUSTED_HOSTS"]
    assert setting == _middleware_accepts([value])


@pytest.mark.parametrize(
    ("value", "peer", "trusted"),
    [("fe80::1%eth0", "fe80::1%eth0", True), ("fe80::1%eth0", "fe80::1", False), ("10.0.0.0/8", "10.1.2.3", True)],
)
def test_the_setting_keeps_its_entries_and_the_middleware_matches_them(value: str, peer: str, trusted: bool) -> None:
    setting = ProxyHeadersSettings.model_validate({"trusted_hosts": value})
    assert setting.trusted_hosts == [value]
    assert (peer in parse_trusted_hosts(setting.trusted_hosts)) is trusted
