"""The "Replicas" section of the /c2c page in headless Chromium, against replicas on a real Redis.

Four uvicorn processes of one application share a real `redis-server`: `main` (the one the
browser visits, version 1.0.0), `other` (version 2.0.0 and a failing health check), `override`
(a logging override applied on that replica only) and `killed` (SIGKILL once registered, so the
registry still lists it: it must show as missing). The section must list the four, mark the
differences by a class and a text marker, in light and dark themes, at desktop and phone width,
without a CSP violation or console error; the checks (contrast, overflow, CSP) are
`test_index_browser.py`'s.

`C2C_UPDATE_SCREENSHOTS=1` rewrites the README's screenshots (packages/c2c-all/docs/replicas-*.png).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import _c2c_all_browser as _browser
import httpx
import pytest
from playwright.sync_api import Page, expect

from c2c_testing import RedisServer, free_port, stop_process, wait_for_port

SECRET = _browser.SECRET

DOCS = Path(__file__).parent.parent / "docs"
UPDATE_SCREENSHOTS = os.environ.get("C2C_UPDATE_SCREENSHOTS") == "1"
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1000, "height": 800}
OVERRIDDEN = "replica_browser.payments"

APP_SOURCE = '''\
"""The replicas browser test's application: one replica, shaped by REPLICA_* variables."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import c2casgiutils
from c2casgiutils.headers import ArmorHeaderMiddleware
from c2casgiutils.health_checks import FACTORY, Check, Result


class Cache(Check):
    async def check(self) -> Result:
        return Result(503, {"error": "the cache is down"})


if os.environ.get("REPLICA_UNHEALTHY"):
    FACTORY.add(Cache(name="cache"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await c2casgiutils.startup(app)
    if os.environ.get("REPLICA_OVERRIDE"):
        from c2casgiutils.tools import logging_

        logging_.get_tool().apply(os.environ["REPLICA_OVERRIDE"], "DEBUG")  # this replica only
    yield
    await c2casgiutils.shutdown()


app = FastAPI(lifespan=lifespan, version=os.environ.get("REPLICA_VERSION", "1.0.0"))
app.mount("/c2c", c2casgiutils.app)
app.add_middleware(ArmorHeaderMiddleware)
'''


@dataclass
class Replica:
    """One uvicorn process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _start(directory: Path, name: str, redis_url: str, extra: dict[str, str]) -> Replica:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("C2C__", "REPLICA_"))}
    env |= _browser.SERVER_ENV | extra
    env |= {
        "C2C__REDIS__URL": redis_url,
        "C2C__BROADCAST__HEARTBEAT_INTERVAL": "1",
        "C2C__BROADCAST__REPLICA_TTL": "120",  # the killed replica stays registered during the tests
        "C2C__TOOLS__LOGGING__SYNC_INTERVAL": "0",  # the local override is not reverted by a sync
    }
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "replica_browser_app:app", "--app-dir", str(directory)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    with (directory / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=directory)
    return Replica(name, port, process)


def _ok_rows(replica: Replica) -> int:
    answer = httpx.get(f"{replica.url}/c2c/replicas?timeout=1", headers={"X-API-Key": SECRET}, timeout=15)
    assert answer.status_code == 200, answer.text
    return sum(row["status"] == "ok" for row in answer.json()["replicas"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Replica]]:
    """The four replicas on one Redis, `killed` killed once all four answered."""
    directory = tmp_path_factory.mktemp("replicas-browser")
    (directory / "replica_browser_app.py").write_text(APP_SOURCE, encoding="utf-8")
    redis = RedisServer().start()
    replicas: dict[str, Replica] = {}
    try:
        shapes = {
            "main": {},
            "other": {"REPLICA_VERSION": "2.0.0", "REPLICA_UNHEALTHY": "1"},
            "override": {"REPLICA_OVERRIDE": OVERRIDDEN},
            "killed": {},
        }
        for name, extra in shapes.items():
            replicas[name] = _start(directory, name, redis.url, extra)
        for replica in replicas.values():
            wait_for_port("127.0.0.1", replica.port, timeout=60)
        deadline = time.monotonic() + 60  # "does not hang": four processes start on two cores
        while _ok_rows(replicas["main"]) < 4:
            assert time.monotonic() < deadline, "the four replicas did not all answer"
            time.sleep(0.3)
        replicas["killed"].process.send_signal(signal.SIGKILL)
        replicas["killed"].process.wait(timeout=10)
        yield replicas
    finally:
        for replica in replicas.values():
            stop_process(replica.process, timeout=10)
        redis.close()


def _log_in(page: Page, replica: Replica) -> None:
    page.goto(f"{replica.url}/c2c/")
    page.get_by_label("Secret").fill(SECRET)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#replicas table.replica-table tbody tr")).to_have_count(4)


def _row(page: Page, replica: Replica) -> Any:
    return page.locator(f'#replicas tr[data-replica*=":{replica.process.pid}"]')


def _assert_rows(page: Page, cluster: dict[str, Replica]) -> None:
    main, other, override, killed = (cluster[name] for name in ("main", "other", "override", "killed"))
    expect(_row(page, main)).to_have_class("replica-row replica-ok")
    expect(_row(page, main).locator("td.replica-differs")).to_have_count(0)
    # Another version, unhealthy: both cells marked by a class and the text marker.
    other_row = _row(page, other)
    expect(other_row).to_have_class("replica-row replica-ok replica-row-differs")
    version = other_row.locator('td[data-label="Application"]')
    expect(version).to_have_class("replica-differs")
    expect(version).to_contain_text("≠ differs: 2.0.0")
    expect(other_row.locator('td[data-label="Health"]')).to_contain_text("Unhealthy 503 cache")
    # The override on that replica only.
    overrides = _row(page, override).locator('td[data-label="Overrides"]')
    expect(overrides).to_have_class("replica-differs")
    expect(overrides).to_contain_text(f"{OVERRIDDEN} = DEBUG")
    expect(_row(page, main).locator('td[data-label="Overrides"]')).to_have_text("none")
    # Killed: still registered, so listed as missing.
    killed_row = page.locator(f'#replicas tr.replica-missing[data-replica$=":{killed.process.pid}"]')
    expect(killed_row).to_have_count(1)
    expect(killed_row).to_contain_text("Missing")
    expect(page.locator("#replicas .replica-summary")).to_contain_text("4 replicas, 1 not answering, 2 differing")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_replicas_section(
    page: tuple[Page, Any], cluster: dict[str, Replica], scheme: Literal["light", "dark"], viewport: str
) -> None:
    browser_page, log = page
    browser_page.set_viewport_size(PHONE if viewport == "phone" else DESKTOP)  # type: ignore[arg-type]
    browser_page.emulate_media(color_scheme=scheme)
    _log_in(browser_page, cluster["main"])
    _browser._settle(browser_page)
    _assert_rows(browser_page, cluster)
    # The nav lists the section right after Health.
    links = browser_page.locator("nav .nav-links a").all_inner_texts()
    assert links[links.index("Health") + 1] == "Replicas", links
    problems = _browser._theme_problems(browser_page, scheme) + _browser._overflow_problems(browser_page)
    assert problems == []
    assert _browser._csp_violations(browser_page) == []
    assert log.errors == []
    assert all(url.startswith(cluster["main"].url) for url in log.requests), log.requests
    wrap = browser_page.locator("#replicas .replica-table-wrap")
    assert wrap.evaluate("(element) => element.scrollWidth <= element.clientWidth + 1"), "the table scrolls sideways"
    if viewport == "phone":  # stacked rows: each cell names its column
        label = browser_page.locator('#replicas td[data-label="Application"]').first
        assert "Application" in label.evaluate("(element) => getComputedStyle(element, '::before').content")
    if UPDATE_SCREENSHOTS and (viewport == "desktop" or scheme == "light"):
        DOCS.mkdir(exist_ok=True)
        name = "phone" if viewport == "phone" else scheme
        browser_page.mouse.move(0, 0)
        browser_page.locator("#replicas").screenshot(path=str(DOCS / f"replicas-{name}.png"), animations="disabled")


def test_replicas_refresh_by_keyboard(page: tuple[Page, Any], cluster: dict[str, Replica]) -> None:
    browser_page, log = page
    _log_in(browser_page, cluster["main"])
    _browser._settle(browser_page)
    button = browser_page.get_by_role("button", name="Ask every replica", exact=True)
    for _ in range(40):  # Tab from the top until the section's button has the focus
        browser_page.keyboard.press("Tab")
        if button.evaluate("(element) => element === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the replicas button")
    assert button.evaluate("(element) => element.matches(':focus-visible')")
    browser_page.locator("#replicas tbody").evaluate("(element) => element.replaceChildren()")
    browser_page.keyboard.press("Enter")
    expect(browser_page.locator("#replicas table.replica-table tbody tr")).to_have_count(4)
    _browser._settle(browser_page)
    _assert_rows(browser_page, cluster)
    assert log.errors == [] and _browser._csp_violations(browser_page) == []
