"""Issue 14 item 12: bearer tokens cannot flood GitHub, and requests without a credential never wait on it."""

from __future__ import annotations

import asyncio
import time
import types
from typing import Any

import httpx
import pytest

from c2c_auth import _github


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_refusals_are_cached_by_digest(github_mode: Any, client: httpx.AsyncClient, fake_github: Any) -> None:
    garbage = "ghp_garbage_0123456789"
    for _ in range(5):
        assert (await client.get("/c2c/ro", headers=_bearer(garbage))).status_code == 403
        assert (await client.get("/c2c/auth/status", headers=_bearer(garbage))).json()["is_logged_in"] is False
    assert fake_github.calls["user"] == 1
    # The refusal cache holds a digest, never the token.
    keys = list(_github.REFUSED_BEARERS._items)
    assert keys
    assert all(garbage not in part for key in keys for part in key)
    # A valid token is not affected, and is asked once (then cached as before).
    valid = fake_github.issue_token("bob")
    for _ in range(3):
        assert (await client.get("/c2c/ro", headers=_bearer(valid))).status_code == 200
    assert fake_github.calls["user"] == 2


async def test_github_s_rate_limit_is_no_refusal(github_mode: Any, client: httpx.AsyncClient, fake_github: Any) -> None:
    """GitHub's rate limit answers 403 (`x-ratelimit-remaining: 0`): the token is not checked now
    (503), never refused and cached as refused."""
    valid = fake_github.issue_token("bob")
    fake_github.rate_limited = True
    assert (await client.get("/c2c/ro", headers=_bearer(valid))).status_code == 503
    fake_github.rate_limited = False
    assert (await client.get("/c2c/ro", headers=_bearer(valid))).status_code == 200


async def test_refusal_cache_expires(github_mode: Any, client: httpx.AsyncClient, fake_github: Any) -> None:
    github_mode.set(C2C__AUTH__GITHUB__BEARER_REFUSAL_CACHE_TTL="60")
    now = [1000.0]
    _github.REFUSED_BEARERS.clock = lambda: now[0]
    try:
        token = "ghp_not_yet_issued"
        assert (await client.get("/c2c/ro", headers=_bearer(token))).status_code == 403
        fake_github.tokens[token] = "bob"  # the token becomes valid (created at GitHub just after)
        assert (await client.get("/c2c/ro", headers=_bearer(token))).status_code == 403
        now[0] += 61
        assert (await client.get("/c2c/ro", headers=_bearer(token))).status_code == 200
    finally:
        _github.REFUSED_BEARERS.clock = time.monotonic
    assert fake_github.calls["user"] == 2


async def test_validations_are_rate_capped(github_mode: Any, client: httpx.AsyncClient, fake_github: Any) -> None:
    github_mode.set(C2C__AUTH__GITHUB__BEARER_VALIDATIONS_PER_MINUTE="5")
    valid = fake_github.issue_token("bob")
    assert (await client.get("/c2c/ro", headers=_bearer(valid))).status_code == 200
    statuses = [(await client.get("/c2c/ro", headers=_bearer(f"ghp_flood_{n}"))).status_code for n in range(20)]
    # Four validations left this minute: four refusals from GitHub, then 503 without asking GitHub.
    assert statuses == [403] * 4 + [503] * 16
    assert fake_github.calls["user"] == 5
    capped = await client.get("/c2c/ro", headers=_bearer("ghp_flood_more"))
    assert capped.status_code == 503
    assert 1 <= int(capped.headers["retry-after"]) <= 13
    # A token already validated (cached) and requests without a credential are not capped.
    assert (await client.get("/c2c/ro", headers=_bearer(valid))).status_code == 200
    assert (await client.get("/c2c/auth/status")).status_code == 200
    assert fake_github.calls["user"] == 5


async def test_one_client_gets_a_share_of_the_rate(github_mode: Any, make_client: Any, fake_github: Any) -> None:
    """One address sending unknown tokens spends its share, not the process's whole budget: another
    client's new valid token is still checked."""
    github_mode.set(
        C2C__AUTH__GITHUB__BEARER_VALIDATIONS_PER_MINUTE="10",
        C2C__AUTH__GITHUB__BEARER_VALIDATIONS_PER_CLIENT_PER_MINUTE="3",
    )
    attacker = make_client("52.94.7.66")  # global addresses: a documentation range gets no share
    statuses = [(await attacker.get("/c2c/ro", headers=_bearer(f"ghp_junk_{n}"))).status_code for n in range(12)]
    assert statuses == [403] * 3 + [503] * 9
    assert fake_github.calls["user"] == 3
    capped = await attacker.get("/c2c/ro", headers=_bearer("ghp_junk_more"))
    assert capped.status_code == 503
    assert 1 <= int(capped.headers["retry-after"]) <= 20  # a validation every 20 s for this address
    # Another address: its own share; the process budget has 7 left (the 9 capped requests took none).
    other = make_client("34.120.0.99")
    for login in ("alice", "bob", "carol"):
        assert (await other.get("/c2c/ro", headers=_bearer(fake_github.issue_token(login)))).status_code == 200
    assert fake_github.calls["user"] == 6
    # The process cap still holds over every address: 4 left, whoever asks.
    crowd = [make_client(f"192.0.2.{n}") for n in range(6)]
    results = [
        (await each.get("/c2c/ro", headers=_bearer(f"ghp_crowd_{n}"))).status_code for n, each in enumerate(crowd)
    ]
    assert results == [403] * 4 + [503] * 2
    assert fake_github.calls["user"] == 10


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("52.94.7.66", "52.94.7.66"),
        ("2a00:1450:4007:80e::200e", "2a00:1450:4007:80e::/64"),  # one host holds a whole /64
        ("2a00:1450:4007:80e:1:2:3:4", "2a00:1450:4007:80e::/64"),
        ("::ffff:52.94.7.66", "52.94.7.66"),
        # no share, the process cap only: a proxy's address (every client behind it would share
        # one), loopback, link-local, and what is no address (a server's proxy headers copy any text)
        ("10.0.0.5", None),
        ("192.168.1.2", None),
        ("127.0.0.1", None),
        ("fe80::1", None),
        ("testclient", None),
        ("", None),
    ],
)
def test_the_share_of_a_client(host: str, key: str | None) -> None:
    assert _github.share_key((host, 50000)) == key


async def test_no_share_behind_a_proxy_whose_headers_are_not_read(
    github_mode: Any, make_client: Any, fake_github: Any
) -> None:
    """Every client behind a proxy has the proxy's (private) address when its headers are not
    read: no share there, or the whole service would get one client's."""
    github_mode.set(C2C__AUTH__GITHUB__BEARER_VALIDATIONS_PER_CLIENT_PER_MINUTE="2")
    behind_proxy = make_client("10.0.0.5")
    statuses = [(await behind_proxy.get("/c2c/ro", headers=_bearer(f"ghp_many_{n}"))).status_code for n in range(5)]
    assert statuses == [403] * 5  # refused by GitHub, never capped at 2


def test_client_shares_are_bounded_and_given_back() -> None:
    """The per-address buckets: the least recently seen forgotten beyond `size`; a validation the
    process cap then refused is given back to the address."""
    caps = _github.ClientRateCaps(size=2, clock=lambda: 1000.0)
    assert caps.take("a", 1) is None
    assert caps.take("a", 1) == 60.0
    caps.give_back("a", 1)
    assert caps.take("a", 1) is None
    assert caps.take("b", 1) is None
    assert caps.take("c", 1) is None  # "a" forgotten: full again
    assert caps.take("a", 1) is None
    assert caps.take("c", 1) == 60.0


async def test_no_credential_never_waits_on_a_slow_github(
    github_mode: Any, client: httpx.AsyncClient, fake_github: Any, h: types.ModuleType
) -> None:
    github_mode.set(C2C__AUTH__GITHUB__BEARER_MAX_CONCURRENCY="2", C2C__AUTH__GITHUB__TIMEOUT="5")
    fake_github.hang = True  # GitHub answers nothing until released (at most 10 s)
    pending = [asyncio.create_task(client.get("/c2c/ro", headers=_bearer(f"ghp_slow_{n}"))) for n in range(6)]
    try:
        for _ in range(500):  # at most 10 s for the validations to reach GitHub
            if fake_github.calls["user"] >= 2:
                break
            await asyncio.sleep(0.02)
        # Validations pending at GitHub: requests without a credential answer at once (generous bound:
        # GitHub holds the validations for seconds).
        started = time.monotonic()
        assert (await client.get("/api/open")).status_code == 200
        status = await client.get("/c2c/auth/status")
        assert status.json()["is_logged_in"] is False
        assert (await client.get("/c2c/ro")).status_code == 403
        assert time.monotonic() - started < 2.0
        await asyncio.sleep(0.3)
        # At most two validations in flight at GitHub; the others wait for a slot.
        assert fake_github.calls["user"] == 2
    finally:
        fake_github.release.set()
        answers = await asyncio.gather(*pending)
    assert {answer.status_code for answer in answers} <= {403, 503}
