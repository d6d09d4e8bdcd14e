"""The health history on the /c2c page, in headless Chromium against a real uvicorn server.

Issue 16 item 3: next to each check of the Health section, an inline-SVG sparkline of the check's
last results (from `GET /c2c/health_checks/history`), the failures marked by a distinct mark with
its own `<title>`, a summary for screen readers (`role="img"`, `aria-label`). Asserted under the
real CSP (ArmorHeaderMiddleware, nonces), with the page's own checks of `test_index_browser.py`
(contrast of every text in light and dark, no horizontal overflow at phone width, no console
error, no CSP violation): the failures counted on the page are the ones the server recorded, no
element has a `style` attribute, and an anonymous visitor never asks for the history.

Set `C2C_UPDATE_SCREENSHOTS=1` to write the README's screenshots (light, dark, phone) to
`packages/c2c-all/docs/`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _c2c_all_browser as CHECKS
import pytest
from playwright.sync_api import Browser, Page, expect

LOOPBACK = "127.0.0.1"
SECRET = "health-history-secret"  # a test value, not a credential
TIMEOUT_MS = 10_000
START_TIMEOUT = 60.0  # a bound for "does not hang": under coverage on two cores a start takes seconds
HISTORY_SIZE = 20
RUNS = 6
# `flaky` fails on every third run: at least twice in RUNS runs.
FLAKY_FAILURES = RUNS // 3
DOCS = Path(__file__).parent.parent / "docs"
UPDATE_SCREENSHOTS = os.environ.get("C2C_UPDATE_SCREENSHOTS") == "1"
SETTINGS = {
    "C2C__AUTH__JWT__COOKIE__SECURE": "false",
    "C2C__AUTH__SECRET": SECRET,
    "C2C__HEALTH_CHECKS__HISTORY_SIZE": str(HISTORY_SIZE),
    "C2C__TOOLS__LOGGING__APPLICATION_MODULE": "history_app",
}

APP_SOURCE = '''\
"""Three checks: always healthy, failing every third run, and a slower one."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import c2casgiutils
from c2casgiutils.headers import ArmorHeaderMiddleware
from c2casgiutils.health_checks import FACTORY, Check, Result


class Database(Check):
    async def check(self) -> Result:
        return Result(200, {"connections": 3})


class Flaky(Check):
    runs = 0

    async def check(self) -> Result:
        Flaky.runs += 1
        await asyncio.sleep(0.002 * (Flaky.runs % 4))
        if Flaky.runs % 3 == 0:
            return Result(503, {"error": "the upstream is <i>down</i>"})
        return Result(200, {})


class Search(Check):
    runs = 0

    async def check(self) -> Result:
        Search.runs += 1
        await asyncio.sleep(0.001 * (Search.runs % 5))
        return Result(200, {})


FACTORY.add(Database(tags=["readiness"], name="database"))
FACTORY.add(Flaky(tags=["readiness", "upstream"], name="flaky"))
FACTORY.add(Search(tags="search", name="search"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await c2casgiutils.startup(app)
    yield


app = FastAPI(lifespan=lifespan)
app.mount("/c2c", c2casgiutils.app)
app.add_middleware(ArmorHeaderMiddleware)
'''

# The sparklines as the page drew them: per check, its label, failure marks, titles, points.
SPARKLINES = """
() => [...document.querySelectorAll(".checks > li.check")].map((item) => {
  const chart = item.querySelector("svg.sparkline");
  return {
    name: item.querySelector(".check-name")?.textContent,
    label: chart?.getAttribute("aria-label") ?? null,
    role: chart?.getAttribute("role") ?? null,
    title: chart?.querySelector(":scope > title")?.textContent ?? null,
    failures: chart ? chart.querySelectorAll(".spark-fail").length : null,
    failureTitles: chart ? [...chart.querySelectorAll(".spark-fail > title")].map((t) => t.textContent) : [],
    linePoints: chart?.querySelector(".spark-line")?.getAttribute("points")?.split(" ").length ?? 0,
    note: item.querySelector(".history-note")?.textContent ?? null,
    nextToName: item.querySelector(".check-name")?.nextElementSibling?.classList.contains("check-history") ?? false,
    width: chart?.getBoundingClientRect().width ?? 0,
  };
})
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with CHECKS._serve(tmp_path_factory.mktemp("health-history"), SETTINGS, APP_SOURCE) as running:
        yield running.url


@contextlib.contextmanager
def _page(browser: Browser, viewport: dict[str, int]) -> Iterator[tuple[Page, Any]]:
    context = browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        color_scheme="light",
        reduced_motion="reduce",
        locale="en-US",
        timezone_id="UTC",
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    context.add_init_script(CHECKS.CSP_LISTENER)
    page = context.new_page()
    log = CHECKS.BrowserLog()
    page.on("console", log.console)
    page.on("pageerror", log.page_error)
    page.on("request", log.request)
    try:
        yield page, log
    finally:
        context.close()


def _log_in(page: Page, server: str) -> None:
    page.goto(f"{server}/c2c/")
    page.get_by_label("Secret").fill(SECRET)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#logging")).to_be_visible()
    CHECKS._settle(page)


def _run_checks(page: Page, tags: str = "") -> None:
    """Run the checks once and wait for the report and its sparklines."""
    page.get_by_role("textbox", name="Tags").fill(tags)
    page.get_by_role("button", name="Run checks", exact=True).click()
    CHECKS._settle(page)
    expect(page.locator(".checks > li.check").first).to_be_visible()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.checks > li.check')].every((li) => li.querySelector('svg.sparkline'))"
    )


def _page_problems(page: Page, log: Any) -> list[str]:
    problems: list[str] = list(log.errors) + list(CHECKS._csp_violations(page))
    return problems


def _styled(page: Page) -> list[str]:
    """Elements with a `style` attribute (before any screenshot: Playwright adds some for those)."""
    return list(page.evaluate("[...document.querySelectorAll('[style]')].map((e) => e.outerHTML.slice(0, 80))"))


def _screenshot(page: Page, name: str, tmp_path: Path) -> None:
    page.evaluate(CHECKS.NORMALISE_DYNAMIC)
    page.mouse.move(0, 0)
    target = (DOCS if UPDATE_SCREENSHOTS else tmp_path) / f"console-health-history-{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.locator("#health").screenshot(path=str(target), animations="disabled", caret="hide")
    assert target.stat().st_size > 1000


def test_sparklines_mark_the_failures(server: str, browser: Browser, tmp_path: Path) -> None:
    """Logged in: one sparkline per check, next to its name, its failures marked and labelled; light and dark."""
    with _page(browser, {"width": 1000, "height": 800}) as (page, log):
        _log_in(page, server)
        for _ in range(RUNS):
            _run_checks(page)
        lines = {line["name"]: line for line in page.evaluate(SPARKLINES)}
        # What the server recorded (the application may have run its checks before: at startup).
        history = page.evaluate(
            "async () => (await (await fetch('/c2c/health_checks/history', {cache: 'no-store'})).json())"
        )
        assert history["size"] == HISTORY_SIZE
        recorded = {entry["name"]: entry["history"] for entry in history["checks"]}
        assert set(lines) == set(recorded) == {"database", "flaky", "search"}
        for name, line in lines.items():
            runs = len(recorded[name])
            failures = sum(point["status_code"] >= 400 for point in recorded[name])
            assert RUNS <= runs <= HISTORY_SIZE, recorded[name]
            assert line["role"] == "img", line
            assert line["nextToName"], line
            assert line["label"] == line["title"], line
            assert line["label"].startswith(f"History of {name}: {runs} runs, "), line
            assert line["linePoints"] == runs, line
            assert line["failures"] == failures, (line, recorded[name])
            assert line["note"] == (f"{failures}/{runs} failed" if failures else f"{runs} OK"), line
            assert 100 <= line["width"] <= 140, line
        flaky = lines["flaky"]
        assert flaky["failures"] >= FLAKY_FAILURES, flaky
        assert f"{flaky['failures']} failed" in flaky["label"], flaky
        assert all(re.match(r"^Failed 503 at \d\d:\d\d:\d\d, \S+ \S?s$", title) for title in flaky["failureTitles"]), (
            flaky
        )
        if recorded["flaky"][-1]["status_code"] >= 400:
            assert flaky["label"].endswith(flaky["failureTitles"][-1]), flaky
        assert lines["database"]["failures"] == 0
        assert "none failed" in lines["database"]["label"]
        flaky_runs = len(recorded["flaky"])

        # A filtered run: only that check, still with its whole history.
        _run_checks(page, tags="upstream")
        (only,) = page.evaluate(SPARKLINES)
        assert only["name"] == "flaky"
        assert only["label"].startswith(f"History of flaky: {flaky_runs + 1} runs"), only

        _run_checks(page)
        assert _styled(page) == []
        for scheme in ("dark", "light"):
            assert CHECKS._theme_problems(page, scheme) == []
            page.emulate_media(color_scheme=scheme)
            _screenshot(page, scheme, tmp_path)
        assert _page_problems(page, log) == []


def test_phone_layout(server: str, browser: Browser, tmp_path: Path) -> None:
    """At 360 px the sparklines fit: no horizontal overflow, readable in both themes."""
    with _page(browser, CHECKS.PHONE_VIEWPORT) as (page, log):
        _log_in(page, server)
        _run_checks(page)
        _run_checks(page)
        assert len(page.evaluate(SPARKLINES)) == 3
        assert _styled(page) == []
        assert CHECKS._overflow_problems(page) == []
        assert CHECKS._theme_problems(page, "dark") == []
        assert CHECKS._theme_problems(page, "light") == []
        _screenshot(page, "phone", tmp_path)
        assert _page_problems(page, log) == []


def test_anonymous_visitors_get_no_history(server: str, browser: Browser) -> None:
    """Without read-only access: the report, no sparkline, and the history is never requested."""
    with _page(browser, {"width": 1000, "height": 800}) as (page, log):
        page.goto(f"{server}/c2c/")
        page.get_by_role("button", name="Run checks", exact=True).click()
        CHECKS._settle(page)
        expect(page.locator(".checks > li.check")).to_have_count(3)
        page.wait_for_timeout(300)  # time for a sparkline that should not come
        assert page.locator("svg.sparkline").count() == 0
        assert not any("/health_checks/history" in url for url in log.requests), log.requests
        answer = page.evaluate("async () => (await fetch('/c2c/health_checks/history')).status")
        assert answer == 403
        assert CHECKS._csp_violations(page) == []


def test_history_route_needs_read_only_access(c2c_client_factory: Any) -> None:
    """In-process: the /c2c app serves the history to read-only callers only, without any payload.

    In a thread of its own: the sync Playwright of this module keeps an event loop in the main thread.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _history_route(c2c_client_factory)).result(timeout=30)


async def _history_route(c2c_client_factory: Any) -> None:
    from c2casgiutils.health_checks import FACTORY, Check, Result

    class Leaky(Check):
        async def check(self) -> Result:
            return Result(503, {"error": "postgresql://admin:hunter2@db.internal/app"})

    FACTORY.add(Leaky(name="leaky-history"))
    try:
        env = SETTINGS | {"C2C__HEALTH_CHECKS__HISTORY_SIZE": "3"}
        async with c2c_client_factory(env) as client:
            for _ in range(4):
                await client.get("/c2c/health_checks?name=leaky-history")
            anonymous = await client.get("/c2c/health_checks/history")
            assert anonymous.status_code == 403
            assert "leaky-history" not in anonymous.text
            allowed = await client.get("/c2c/health_checks/history?name=leaky-history", headers={"X-API-Key": SECRET})
            assert allowed.status_code == 200
            (entry,) = allowed.json()["checks"]
            assert [point["status_code"] for point in entry["history"]] == [503, 503, 503]
            assert "hunter2" not in allowed.text
            assert "db.internal" not in allowed.text
            # The report's answer is unchanged: no history in it.
            report = await client.get("/c2c/health_checks?name=leaky-history", headers={"X-API-Key": SECRET})
            assert set(report.json()) == {"status_code", "time_taken", "entities"}
    finally:
        FACTORY.remove("leaky-history")
