"""Issue 14 item 9: admins cannot be locked out (device cookies), and guessing stays slow across replicas."""

from __future__ import annotations

import time
import types
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2c_auth import _devices, _secret, _sessions, _shared

COOKIE = "c2c-jwt-auth"
DEVICE = "c2c-auth-device"
PROXY = "10.0.0.1"  # behind a proxy without forwarded headers: every client has the proxy's address
WRONG = {"X-API-Key": "guess"}


async def _known_device(make_client: Any, h: types.ModuleType) -> httpx.AsyncClient:
    """A browser that logged in once, then logged out: it keeps its device cookie, not its session."""
    admin: httpx.AsyncClient = make_client(PROXY)
    login = await admin.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
    assert login.status_code == 200
    device = h.set_cookies(login)[DEVICE]
    assert device["path"] == "/c2c/"
    assert device["httponly"] == "True"
    assert int(device["max-age"]) == 180 * 86400
    assert h.SHARED_SECRET not in device["value"]
    assert (await admin.post("/c2c/auth/logout")).status_code == 200
    assert COOKIE not in admin.cookies
    assert DEVICE in admin.cookies
    return admin


async def test_known_device_is_not_locked_out_by_other_clients(
    secret_mode: Any, make_client: Any, h: types.ModuleType
) -> None:
    admin = await _known_device(make_client, h)
    attacker = make_client(PROXY)
    for _ in range(10):  # the default budget of the unknown devices
        assert (await attacker.get("/c2c/auth/login", headers=WRONG)).status_code == 401
    # Unknown devices share one budget, whatever their address: guessing stops, for everybody unknown.
    blocked = await attacker.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    newcomer = make_client("192.0.2.99")
    assert (await newcomer.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 429
    assert (await newcomer.get("/c2c/ro", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 429
    # The admin's browser, same address, is known: the right secret is never refused because of them.
    login = await admin.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
    assert login.status_code == 200, login.text
    assert (await admin.get("/c2c/ro")).status_code == 200
    # A form login from the known device works too.
    await admin.post("/c2c/auth/logout")
    form = await admin.post("/c2c/auth/login", data={"secret": h.SHARED_SECRET, "came_from": "/c2c/ro"})
    assert form.status_code == 303


async def test_valid_session_never_goes_through_the_limiter(
    secret_mode: Any, make_client: Any, h: types.ModuleType
) -> None:
    admin = make_client(PROXY)
    # Drop the device cookie: only the session protects this browser.
    assert (await admin.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    admin.cookies.delete(DEVICE)
    attacker = make_client(PROXY)
    for _ in range(12):
        assert (await attacker.get("/c2c/ro", headers=WRONG)).status_code in (403, 429)
    assert (await attacker.get("/c2c/ro", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 429
    # The logged-in admin sends the secret again (a script, a form): not refused.
    assert (await admin.get("/c2c/ro", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    assert (await admin.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    assert (await admin.get("/c2c/ro")).status_code == 200


async def test_known_device_has_its_own_budget(
    secret_mode: Any, make_client: Any, h: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_mode.set(C2C__AUTH__SECRET_MAX_FAILURES="3", C2C__AUTH__SECRET_FAILURE_WINDOW="60")
    now = [1000.0]
    monkeypatch.setattr(_secret.LIMITER, "clock", lambda: now[0])
    device = await _known_device(make_client, h)
    for _ in range(3):
        assert (await device.get("/c2c/auth/login", headers=WRONG)).status_code == 401
    blocked = await device.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
    assert blocked.status_code == 429
    assert blocked.json()["detail"] == _secret.TOO_MANY_FAILURES_MESSAGE
    # The device's failures are its own: unknown devices are not affected.
    assert (await make_client(PROXY).get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    now[0] += 61
    assert (await device.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200


async def test_forged_or_foreign_device_cookie_is_an_unknown_device(
    secret_mode: Any, make_client: Any, h: types.ModuleType
) -> None:
    admin = await _known_device(make_client, h)
    genuine = admin.cookies[DEVICE]
    version, device_id, issued, mac = genuine.split(".")
    keys = _sessions.keys()
    assert keys is not None
    assert _devices.read_cookie(keys.device_key, genuine, 3600) == device_id
    forged = [
        f"{version}.other{device_id}.{issued}.{mac}",  # another id, same signature
        f"{version}.{device_id}.{int(issued) + 1}.{mac}",  # another time
        _devices.make_cookie(b"k" * 32, device_id, int(issued)),  # signed with another key
        _devices.make_cookie(keys.device_key, device_id, int(time.time()) - 181 * 86400),  # expired
    ]
    for value in forged:
        assert _devices.read_cookie(keys.device_key, value, 180 * 86400) is None, value
    attacker = make_client(PROXY)
    for _ in range(10):
        assert (await attacker.get("/c2c/auth/login", headers=WRONG)).status_code == 401
    for value in forged:
        intruder = make_client(PROXY)
        intruder.cookies.set(DEVICE, value, domain="app.example", path="/c2c/")
        refused = await intruder.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
        assert refused.status_code == 429, value


@pytest.mark.parametrize(
    "origin",
    [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}, {"Origin": "https://evil.example"}],
)
async def test_wrong_secrets_from_another_site_do_not_spend_the_device_s_budget(
    secret_mode: Any, make_client: Any, h: types.ModuleType, origin: dict[str, str]
) -> None:
    """A page elsewhere navigates the admin's browser (which sends its SameSite=Lax device cookie) to
    `login?secret=wrong` ten times: that spends the unknown devices' budget, never the device's."""
    admin = await _known_device(make_client, h)
    for number in range(10):
        navigation = await admin.get("/c2c/auth/login", params={"secret": f"wrong{number}"}, headers=origin)
        assert navigation.status_code == 401
    spent = await admin.get("/c2c/auth/login", params={"secret": h.SHARED_SECRET}, headers=origin)
    assert spent.status_code == 429
    assert spent.json()["detail"] == _secret.TOO_MANY_UNKNOWN_FAILURES_MESSAGE
    own = await admin.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET, "Sec-Fetch-Site": "same-origin"})
    assert own.status_code == 200


@pytest.mark.parametrize("known", [True, False])
async def test_a_right_secret_is_never_counted(
    secret_mode: Any, make_client: Any, h: types.ModuleType, known: bool
) -> None:
    """Only wrong secrets spend a budget; a right one reads it (and is refused once it is spent)."""
    secret_mode.set(C2C__AUTH__SECRET_MAX_FAILURES="3", C2C__AUTH__SECRET_UNKNOWN_DEVICES_MAX_FAILURES="3")
    client = await _known_device(make_client, h) if known else make_client(PROXY)
    for _ in range(2):
        assert (await client.get("/c2c/auth/login", headers=WRONG)).status_code == 401
    for _ in range(5):
        right = await client.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
        assert right.status_code == 200
        await client.post("/c2c/auth/logout")  # without a session, the next attempt meets the budget
        if not known:
            client.cookies.clear()  # and without its new device cookie, it stays an unknown device
    assert (await client.get("/c2c/auth/login", headers=WRONG)).status_code == 401
    assert (await client.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 429


def test_the_process_budget_counts_only_below_its_limit() -> None:
    limiter = _shared.FailureLimiter(clock=lambda: 5.0)
    assert [limiter.take("b", 2, 60) for _ in range(3)] == [True, True, False]
    assert limiter.blocked("b", 2, 60)
    assert not limiter.blocked("other", 2, 60)


@given(value=st.text(max_size=300) | st.from_regex(r"1\.[A-Za-z0-9_-]{1,30}\.[0-9]{1,12}\.[A-Za-z0-9_-]{0,50}"))
def test_device_cookie_parser_never_raises(value: str) -> None:
    key = b"device-key-for-the-property-test"
    assert _devices.read_cookie(key, value, 3600) is None
