"""Issue 16 item 4: the audit records of c2c-auth on `c2c_auth.audit` (logins, logouts, refused logins per window)."""

from __future__ import annotations

import logging
import types
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import c2c_auth
from c2c_auth import _audit


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    _audit.REFUSED_LOGINS.reset()
    caplog.set_level(logging.INFO, logger=c2c_auth.AUDIT_LOGGER_NAME)
    found: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(record)

    handler = Keep()
    logger = logging.getLogger(c2c_auth.AUDIT_LOGGER_NAME)
    logger.addHandler(handler)
    yield found
    logger.removeHandler(handler)
    _audit.REFUSED_LOGINS.reset()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in c2c_auth.AUDIT_FIELDS}


async def test_secret_login_logout_and_refusals(
    secret_mode: Any, client: httpx.AsyncClient, records: list[logging.LogRecord], h: types.ModuleType
) -> None:
    for _ in range(3):
        assert (await client.post("/c2c/auth/login", headers={"X-API-Key": "wrong"})).status_code == 401
    assert records == []  # counted, written when the window ends (or when read)
    assert (await client.post("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})).status_code == 200
    assert (await client.post("/c2c/auth/logout")).status_code == 200
    assert (await client.post("/c2c/auth/logout")).status_code == 200  # nobody to log out: no record
    assert c2c_auth.flush_refused_logins() == 1
    fields = [_fields(record) for record in records]
    assert [(f["audit_action"], f["audit_who"], f["audit_client"]) for f in fields] == [
        ("login", "secret", "203.0.113.7"),
        ("logout", "secret", "203.0.113.7"),
        ("login_refused", "unknown", "203.0.113.7"),
    ]
    refused = fields[2]["audit_details"]
    assert refused["count"] == 3
    assert refused["budget"] == "unknown-devices"
    assert all(record.levelno == logging.INFO for record in records)
    assert all(h.SHARED_SECRET not in f"{record.getMessage()} {_fields(record)}" for record in records)


async def test_github_login_names_the_user(
    github_mode: Any,
    client: httpx.AsyncClient,
    github_http: httpx.AsyncClient,
    fake_github: Any,
    h: types.ModuleType,
    records: list[logging.LogRecord],
) -> None:
    await h.oauth_login(client, github_http, fake_github, "carol")
    assert (await client.post("/c2c/auth/logout")).status_code == 200
    assert [(r.audit_action, r.audit_who, r.audit_details) for r in records] == [  # type: ignore[attr-defined]
        ("login", "carol", {"method": "github_oauth"}),
        ("logout", "carol", {"method": "github_oauth"}),
    ]


def test_refused_logins_one_record_per_window_and_budget(records: list[logging.LogRecord]) -> None:
    now = [1000.0]
    limiter = _audit.RefusedLogins(window=60, clock=lambda: now[0])
    for _ in range(5):
        limiter.refused(None, "198.51.100.1")
    limiter.refused("device-id-1", "198.51.100.2")
    now[0] += 30
    limiter.refused(None, "198.51.100.3")
    assert records == []
    now[0] += 31  # the first windows ended: the next refusal writes them
    limiter.refused(None, "198.51.100.4")
    written = [_fields(record) for record in records]
    assert [(f["audit_details"]["budget"], f["audit_details"]["count"]) for f in written] == [
        ("session", 6),
        ("device " + _audit.budget_label("device-id-1").split(" ")[1], 1),
    ]
    assert written[0]["audit_details"]["clients"] == ["198.51.100.1", "198.51.100.3"]
    assert written[0]["audit_client"] == "198.51.100.1, 198.51.100.3"
    assert written[0]["audit_time"] == 1030.0
    assert "device-id-1" not in str(written)  # a device id is never written
    assert limiter.flush(everything=True) == 1
    assert records[-1].audit_details["count"] == 1  # type: ignore[attr-defined]


def test_refused_logins_bounded_budgets(records: list[logging.LogRecord]) -> None:
    limiter = _audit.RefusedLogins(window=60, clock=lambda: 5.0, max_budgets=2)
    for device in ("a", "b", "c"):
        limiter.refused(device, "192.0.2.1")
    assert len(records) == 2  # the third budget wrote the two open windows first
    limiter.reset()
    assert limiter.flush(everything=True) == 0


async def test_the_window_ends_on_the_running_loop(records: list[logging.LogRecord]) -> None:
    import asyncio

    limiter = _audit.RefusedLogins(window=0.01)
    limiter.refused("unknown-devices", "192.0.2.9")
    async with asyncio.timeout(5):
        while not records:  # noqa: ASYNC110 - the timer of the running loop writes it
            await asyncio.sleep(0.01)
    assert records[0].audit_details == {  # type: ignore[attr-defined]
        **records[0].audit_details,  # type: ignore[attr-defined]
        "budget": "unknown-devices",
        "count": 1,
    }


def test_who_and_client() -> None:
    assert _audit.who(c2c_auth.AuthInfo()) == "unknown"
    assert _audit.who(c2c_auth.AuthInfo(is_logged_in=True, type=c2c_auth.AuthMethod.SECRET)) == "secret"
    user = c2c_auth.UserInfo(login="dora")
    assert _audit.who(c2c_auth.AuthInfo(is_logged_in=True, user=user, type=c2c_auth.AuthMethod.GITHUB_BEARER)) == "dora"
    assert _audit.client_address(None) == "unknown"
