"""The `/c2c` admin page in a real browser: headless Chromium against a real uvicorn server.

The server (a subprocess) runs a small FastAPI application that mounts `c2casgiutils.app` at `/c2c`
behind `ArmorHeaderMiddleware` with the default rules, so the page lives under the real
Content-Security-Policy with per-request nonces; authentication is in secret mode. The tests drive
the page as an admin would: log in through the form, run the health checks, read the request
headers, get and change a logger's level, and compare screenshots (light and dark) with the PNGs in
`tests/snapshots/`.

Snapshots: set `C2C_UPDATE_SNAPSHOTS=1` to rewrite them, then look at them and commit them. They are
taken with Debian's `chromium` and the DejaVu fonts (`bash scripts/install-services.sh` installs
both); a missing snapshot fails. The parts that change from run to run (durations, host name and
pid of the replica, time left of an override, version) are replaced by fixed texts first.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image, ImageChops
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Request, expect, sync_playwright

from c2c_testing import free_port, stop_process, wait_for_port

LOOPBACK = "127.0.0.1"
SECRET = "browser-test-secret"  # a test value, not a credential
LOGGER = "browser_app"
TIMEOUT_MS = 10_000
START_TIMEOUT = 10.0
VIEWPORT = {"width": 1000, "height": 800}
SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE_SNAPSHOTS = os.environ.get("C2C_UPDATE_SNAPSHOTS") == "1"
# A pixel differs when one of its channels moves by more than PIXEL_THRESHOLD (rounding in the
# rasteriser stays below); the page matches when at most MAX_DIFF_RATIO of its pixels differ: about
# 880 px of this page, a few glyphs redrawn by another Chromium. Runs on one machine are identical;
# recolouring the green of the healthy checks changes about 1,300 px and fails.
PIXEL_THRESHOLD = 8
MAX_DIFF_RATIO = 0.0005
MISSING_CHROMIUM = (
    "The browser test needs Debian's `chromium` on PATH (Playwright's own browser download is not used).\n"
    "Install it with `bash scripts/install-services.sh` (from the repository root, as root), "
    "or directly: `apt-get install -y chromium fonts-dejavu-core`."
)

COMMON_ENV = {
    # Plain http on the loopback: a Secure cookie would never come back.
    "C2C__AUTH__JWT__COOKIE__SECURE": "false",
    "C2C__TOOLS__LOGGING__APPLICATION_MODULE": LOGGER,
}
SERVER_ENV = COMMON_ENV | {"C2C__AUTH__SECRET": SECRET}
TEST_USER = "Tess <b>Ter</b>"  # markup in a display name stays text

# The application under test; written to a temporary directory and served by uvicorn.
APP_SOURCE = '''\
"""The browser test's application: the /c2c sub-application, the default headers, two checks."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import c2casgiutils
from c2casgiutils.headers import ArmorHeaderMiddleware
from c2casgiutils.health_checks import FACTORY, Check, Result

LOG = logging.getLogger("browser_app")


class Database(Check):
    async def check(self) -> Result:
        return Result(200, {"connections": 3, "markup": "<b>shown as text</b>"})


class Cache(Check):
    async def check(self) -> Result:
        return Result(503, {"error": "the cache is <i>down</i>"})


FACTORY.add(Database(tags=["liveness", "database"], name="database"))
FACTORY.add(Cache(tags="readiness", name="cache"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await c2casgiutils.startup(app)
    yield


app = FastAPI(lifespan=lifespan)
app.mount("/c2c", c2casgiutils.app)
app.add_middleware(ArmorHeaderMiddleware)
'''

# Runs in every document before the page's scripts: report CSP violations to the test.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const where = `${event.sourceFile}:${event.lineNumber}`;
  const text = `${event.violatedDirective} blocked ${event.blockedURI || "inline"} (${where})`;
  window.__cspViolations.push(text);
  console.error(`CSP violation: ${text}`);
});
"""

# Fixed texts for what changes between runs, so that the screenshots compare.
NORMALISE_DYNAMIC = """
() => {
  const fixed = {duration: "1.23 ms", replica: "replica-host · pid 1234", expires: "5 min", version: "0.0.0"};
  for (const element of document.querySelectorAll("[data-dynamic]")) {
    element.textContent = fixed[element.dataset.dynamic] ?? "…";
  }
  document.activeElement?.blur();
}
"""

# A failed fetch is logged by Chromium as a console error: these answers are expected.
EXPECTED_FAILED_LOADS = (
    ("/c2c/health_checks", 503),  # the failing check
    ("/c2c/auth/login", 401),  # the wrong secret
    ("/c2c/logging/level", 400),  # the invalid logger name
)


@dataclass(frozen=True)
class Server:
    """The running uvicorn server."""

    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


@dataclass
class BrowserLog:
    """What the page reported: console errors, uncaught exceptions, and every URL it requested."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type not in ("error", "assert"):
            return
        location = message.location.get("url", "")
        if message.text.startswith("Failed to load resource"):
            for path, status in EXPECTED_FAILED_LOADS:
                if location.split("?")[0].endswith(path) and f"status of {status} " in message.text:
                    return
        self.errors.append(f"console {message.type}: {message.text} ({location})")

    def page_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")

    def request(self, request: Request) -> None:
        self.requests.append(request.url)


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:]) or "    (empty)"


@contextlib.contextmanager
def _serve(directory: Path, settings: dict[str, str]) -> Iterator[Server]:
    """Run uvicorn serving `APP_SOURCE` from `directory` with these `C2C__` settings (and no other)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "browser_app.py").write_text(APP_SOURCE, encoding="utf-8")
    log_path = directory / "server.log"
    # Only our settings: a C2C__ variable of the developer's shell (Redis, GitHub...) would change the page.
    env = {name: value for name, value in os.environ.items() if not name.startswith("C2C__")} | settings
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "browser_app:app", "--app-dir", str(directory)]
    argv += ["--host", LOOPBACK, "--port", str(port), "--no-access-log"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=directory)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"uvicorn exited with {process.returncode}:\n{_log_tail(log_path)}", pytrace=False)
            try:
                wait_for_port(LOOPBACK, port, timeout=0.25)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    pytest.fail(f"uvicorn did not listen within {START_TIMEOUT:g} s:\n{_log_tail(log_path)}")
        yield Server(port=port, log=log_path)
    finally:
        stop_process(process, timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The application in secret mode, shared by the tests of the module."""
    with _serve(tmp_path_factory.mktemp("index-browser"), SERVER_ENV) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium (`--no-sandbox`: the tests may run as root)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"], timeout=TIMEOUT_MS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, BrowserLog]]:
    """A fresh browser context (no cookies), fixed viewport, light scheme, every wait bounded."""
    context = browser.new_context(
        viewport=VIEWPORT,  # type: ignore[arg-type]
        color_scheme="light",
        reduced_motion="reduce",
        locale="en-US",
        timezone_id="UTC",
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)  # instead of 5 s: two shared cores may be busy
    context.add_init_script(CSP_LISTENER)
    new_page = context.new_page()
    log = BrowserLog()
    new_page.on("console", log.console)
    new_page.on("pageerror", log.page_error)
    new_page.on("request", log.request)
    try:
        yield new_page, log
    finally:
        context.close()


def _button(page: Page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()


def _colour(page: Page, selector: str, prop: str) -> tuple[int, ...]:
    value = page.locator(selector).first.evaluate(f"(element) => getComputedStyle(element).{prop}")
    return tuple(int(part) for part in re.findall(r"\d+", str(value))[:3])


def _luminance(rgb: tuple[int, ...]) -> float:
    red, green, blue = rgb
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def _screenshot(page: Page) -> bytes:
    page.evaluate(NORMALISE_DYNAMIC)
    page.mouse.move(0, 0)  # no hover style
    return page.screenshot(full_page=True, animations="disabled", caret="hide")


def _assert_snapshot(actual_png: bytes, name: str, out_dir: Path) -> None:
    """Compare a screenshot with `snapshots/<name>` (rewrite it with `C2C_UPDATE_SNAPSHOTS=1`)."""
    expected_path = SNAPSHOTS / name
    if UPDATE_SNAPSHOTS:
        SNAPSHOTS.mkdir(exist_ok=True)
        expected_path.write_bytes(actual_png)
        return
    actual_path = out_dir / name
    actual_path.write_bytes(actual_png)
    if not expected_path.exists():
        pytest.fail(
            f"missing snapshot {expected_path} (this run's screenshot: {actual_path}); "
            "run the test with C2C_UPDATE_SNAPSHOTS=1, look at the image and commit it",
            pytrace=False,
        )
    with Image.open(expected_path) as stored, Image.open(io.BytesIO(actual_png)) as taken:
        expected, actual = stored.convert("RGB"), taken.convert("RGB")
    if expected.size != actual.size:
        pytest.fail(
            f"{name}: the page is {actual.size[0]}x{actual.size[1]} px, the snapshot {expected.size[0]}x"
            f"{expected.size[1]} px (screenshot: {actual_path}; C2C_UPDATE_SNAPSHOTS=1 rewrites the snapshot)",
            pytrace=False,
        )
    red, green, blue = ImageChops.difference(expected, actual).split()
    strongest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    mask = strongest.point(lambda value: 255 if value > PIXEL_THRESHOLD else 0)
    differing = mask.histogram()[255]
    ratio = differing / (actual.size[0] * actual.size[1])
    if ratio > MAX_DIFF_RATIO:
        diff_path = out_dir / f"diff-{name}"
        mask.save(diff_path)
        pytest.fail(
            f"{name}: {differing} pixels ({ratio:.2%}) differ from the snapshot (at most {MAX_DIFF_RATIO:.2%}); "
            f"screenshot {actual_path}, differing pixels in white: {diff_path}",
            pytrace=False,
        )


def test_anonymous_page(server: Server, page: tuple[Page, BrowserLog]) -> None:
    """Under the real CSP, without login: the login form and the health checks, no tool, no error."""
    tab, log = page
    response = tab.goto(f"{server.url}/c2c/")
    assert response is not None
    assert response.status == 200
    expect(tab).to_have_title(f"c2c admin · {LOGGER}")
    policy = response.headers["content-security-policy"]
    nonce = re.search(r"script-src 'self' 'nonce-([^']+)'", policy)
    assert nonce is not None, policy
    assert f"style-src 'self' 'nonce-{nonce.group(1)}'" in policy
    # The browser hides the attribute, not the property: the page's own script carries this request's nonce.
    assert tab.evaluate("document.querySelector('script[type=module]').nonce") == nonce.group(1)

    expect(tab.get_by_label("Secret")).to_be_visible()
    expect(tab.locator("#headers")).to_have_count(0)
    expect(tab.locator("#logging")).to_have_count(0)

    _button(tab, "Run checks")
    expect(tab.locator(".checks > li")).to_have_count(2)
    expect(tab.locator(".summary")).to_contain_text("Unhealthy 503")
    # Anonymous callers get the generic message, not the check's own payload.
    expect(tab.locator(".check.fail .payload")).not_to_contain_text("down")
    # Filtered by tag: only the passing check, so a green report.
    tab.get_by_role("textbox", name="Tags").fill("liveness")
    _button(tab, "Run checks")
    expect(tab.locator(".summary.ok")).to_have_text(re.compile(r"^✓ Healthy 200\s*1 check, passing\s*\S+ \S?s$"))
    expect(tab.locator(".checks > li")).to_have_count(1)
    expect(tab.locator(".check.ok .check-name")).to_have_text("database")

    assert log.errors == []
    assert tab.evaluate("window.__cspViolations") == []
    assert all(url.startswith(f"{server.url}/") for url in log.requests), log.requests


def test_admin_page(server: Server, page: tuple[Page, BrowserLog], tmp_path: Path) -> None:
    """Log in, run the checks, change a level, compare the screenshots, read the headers, log out."""
    tab, log = page
    tab.goto(f"{server.url}/c2c/")

    # A wrong secret: a readable error, still logged out.
    tab.get_by_label("Secret").fill("not the secret")
    _button(tab, "Log in")
    expect(tab.locator("[data-output=login] .error")).to_contain_text("Invalid secret")
    # The right one: the page reloads with the tools.
    tab.get_by_label("Secret").fill(SECRET)
    with tab.expect_navigation():
        _button(tab, "Log in")
    expect(tab.get_by_text("Logged in with the shared secret")).to_be_visible()
    expect(tab.locator("#logging")).to_be_visible()

    # Health checks: the failing one makes the report 503; the page shows it all, in red and green.
    _button(tab, "Run checks")
    expect(tab.locator(".checks > li")).to_have_count(2)
    expect(tab.locator(".summary.fail")).to_contain_text("Unhealthy 503")
    expect(tab.locator(".summary")).to_contain_text("2 checks, 1 failing")
    passing, failing = tab.locator(".check.ok"), tab.locator(".check.fail")
    expect(passing.locator(".check-name")).to_have_text("database")
    expect(passing.locator(".badge")).to_have_text("✓ OK 200")
    expect(passing.locator(".tag")).to_have_text(["liveness", "database"])
    expect(failing.locator(".check-name")).to_have_text("cache")
    expect(failing.locator(".badge")).to_have_text("✗ Failed 503")
    expect(passing.locator(".duration")).to_have_text(re.compile(r"^\d+(\.\d+)? (ns|µs|ms|s)$"))
    # Payloads are text: the markup in them is shown, never interpreted.
    expect(failing.locator(".payload")).to_contain_text('"error": "the cache is <i>down</i>"')
    expect(passing.locator(".payload")).to_contain_text("<b>shown as text</b>")
    expect(tab.locator(".payload i, .payload b")).to_have_count(0)
    ok_colour = _colour(tab, ".check.ok", "borderLeftColor")
    fail_colour = _colour(tab, ".check.fail", "borderLeftColor")
    assert ok_colour[1] > ok_colour[0], ok_colour  # green
    assert fail_colour[0] > fail_colour[1], fail_colour  # red

    # Logging: the level before, a change for 5 minutes on every replica, the level after.
    expect(tab.get_by_label("Logger").first).to_have_value(LOGGER)
    _button(tab, "Get level")
    expect(tab.locator("[data-output=get-level] .level").first).to_have_text("NOTSET")
    tab.get_by_label("Level", exact=True).select_option("DEBUG")
    tab.get_by_label("Revert after (minutes)").fill("5")
    _button(tab, "Set level")
    expect(tab.locator("[data-output=set-level] .notice")).to_contain_text(f"Applied: {LOGGER} DEBUG")
    expect(tab.locator(".replicas > li")).to_have_count(1)
    expect(tab.locator(".replicas > li .level").first).to_have_text("DEBUG")
    override = tab.locator(".overrides tbody tr")
    expect(override).to_have_count(1)
    expect(override).to_contain_text(LOGGER)
    expect(override.locator(".level")).to_have_text("DEBUG")
    _button(tab, "Get level")
    expect(tab.locator("[data-output=get-level] .level")).to_have_text(["DEBUG", "DEBUG"])

    _assert_snapshot(_screenshot(tab), "index-light.png", tmp_path)

    # Dark mode follows the system preference.
    light_background = _colour(tab, "body", "backgroundColor")
    tab.emulate_media(color_scheme="dark")
    dark_background = _colour(tab, "body", "backgroundColor")
    assert _luminance(dark_background) < 60 < 200 < _luminance(light_background), (dark_background, light_background)
    assert _luminance(_colour(tab, "body", "color")) > 180
    _assert_snapshot(_screenshot(tab), "index-dark.png", tmp_path)
    tab.emulate_media(color_scheme="light")

    # The request-headers tool: what the application saw, credentials masked, values shown as text.
    tab.context.set_extra_http_headers({"X-Request-Id": "<b>request-1</b>"})
    _button(tab, "Show request headers")
    headers_table = tab.locator("table.kv", has=tab.locator("caption", has_text=re.compile("^Headers$")))

    def header_row(name: str) -> Locator:
        return headers_table.locator("tr", has=tab.locator("th", has_text=re.compile(f"^{name}$")))

    expect(header_row("host")).to_contain_text(f"{LOOPBACK}:{server.port}")
    # Cookie names are shown, their values masked.
    expect(header_row("cookie")).to_have_text(re.compile(r"^cookie[^=;\s]+=\*{5}(; [^=;\s]+=\*{5})*$"))
    expect(header_row("x-request-id")).to_have_text("x-request-id<b>request-1</b>")
    expect(headers_table.locator("b")).to_have_count(0)
    expect(tab.locator("[data-status=headers]")).to_contain_text("headers received")
    tab.context.set_extra_http_headers({})

    # A rejected logger name: the server's message, markup included, as text.
    tab.get_by_label("Logger").first.fill("<img src=x>")
    _button(tab, "Get level")
    expect(tab.locator("[data-output=get-level] .error")).to_contain_text("Bad request (HTTP 400): invalid logger name")
    expect(tab.locator("[data-output=get-level] .error")).to_contain_text("<img src=x>")
    expect(tab.locator("main img")).to_have_count(0)
    tab.get_by_label("Logger").first.fill(LOGGER)

    # Deleting the override restores the level.
    tab.get_by_role("button", name=f"Delete the override of {LOGGER}").click()
    expect(tab.locator("[data-output=overrides]")).to_contain_text("No override")
    _button(tab, "Get level")
    expect(tab.locator("[data-output=get-level] .level").first).to_have_text("NOTSET")

    # Logging out: back to the login form.
    with tab.expect_navigation():
        _button(tab, "Log out")
    expect(tab.get_by_label("Secret")).to_be_visible()
    expect(tab.locator("#logging")).to_have_count(0)

    assert log.errors == [], "\n".join(log.errors)
    assert tab.evaluate("window.__cspViolations") == []
    assert all(url.startswith(f"{server.url}/") for url in log.requests), log.requests

    # Control: the listener does see a violation (an inline style without the nonce).
    tab.evaluate("document.head.append(Object.assign(document.createElement('style'), {textContent: 'p {}'}))")
    tab.wait_for_function("window.__cspViolations.length > 0", timeout=TIMEOUT_MS)
    assert any("style-src" in error for error in log.errors), log.errors


@pytest.mark.parametrize(
    ("settings", "tools"),
    [
        pytest.param({}, False, id="none"),
        pytest.param({"C2C__AUTH__TEST__USERNAME": TEST_USER}, True, id="test"),
    ],
)
def test_other_modes(settings: dict[str, str], tools: bool, page: tuple[Page, BrowserLog], tmp_path: Path) -> None:
    """No authentication: health checks only; test mode: a warning and every tool, read-write."""
    tab, log = page
    with _serve(tmp_path / "server", COMMON_ENV | settings) as running:
        tab.goto(f"{running.url}/c2c/")
        expect(tab.get_by_label("Secret")).to_have_count(0)
        if tools:
            expect(tab.locator("#access .note-warn")).to_contain_text(
                f"Test mode: every request is logged in as {TEST_USER}."
            )
            expect(tab.locator("#access b")).to_have_count(0)
            expect(tab.get_by_role("button", name="Set level", exact=True)).to_be_visible()
            expect(tab.locator("[data-output=overrides]")).to_contain_text("No override")
        else:
            expect(tab.locator("#access")).to_have_count(0)
            expect(tab.locator("#headers, #logging, #more")).to_have_count(0)
        _button(tab, "Run checks")
        expect(tab.locator(".checks > li")).to_have_count(2)
        # The details are for callers with access: the test user has it, anonymous callers do not.
        expect(tab.locator(".check.fail .payload")).to_contain_text("down" if tools else "check failed")
    assert log.errors == [], "\n".join(log.errors)
    assert tab.evaluate("window.__cspViolations") == []


# The page's formatting functions, called in the browser: (function, arguments, expected text).
FORMATTING = [
    # durations (seconds) in the unit that suits them
    ("formatDuration", [0], "0 s"),
    ("formatDuration", [3e-9], "3 ns"),
    ("formatDuration", [4.2e-7], "420 ns"),
    ("formatDuration", [1.234e-5], "12.3 µs"),
    ("formatDuration", [0.00089], "890 µs"),
    ("formatDuration", [0.0123], "12.3 ms"),
    ("formatDuration", [0.5], "500 ms"),
    ("formatDuration", [1.5], "1.5 s"),
    ("formatDuration", [125], "125 s"),
    ("formatDuration", [None], "–"),
    # time left of an override
    ("formatRemaining", [45], "45 s"),
    ("formatRemaining", [299.6], "5 min"),
    ("formatRemaining", [3725], "1 h 2 min"),
    ("formatRemaining", [90000], "1 d 1 h"),
    # error answers
    ("describeError", [404, None], "Not found (HTTP 404)"),
    ("describeError", [503, {"detail": "Redis is down"}], "Unavailable (HTTP 503): Redis is down"),
    (
        "describeError",
        [422, {"detail": [{"loc": ["body", "duration"], "msg": "too long"}]}],
        "Invalid input (HTTP 422): duration: too long",
    ),
    (
        "describeError",
        [403, {"detail": "You don't have read-write access"}],
        "Access denied (HTTP 403): You don't have read-write access. Reload the page and log in again if your "
        "session expired.",
    ),
    (
        "describeError",
        [401, {"detail": "Invalid secret"}, {"sessionHint": False}],
        "Not logged in (HTTP 401): Invalid secret",
    ),
    ("describeError", [502, None], "Server error (HTTP 502)"),
]


def test_formatting(server: Server, page: tuple[Page, BrowserLog]) -> None:
    """Durations, times left and error messages as the page writes them (its module's exported functions)."""
    tab, log = page
    tab.goto(f"{server.url}/c2c/")
    # Importing the page's own URL returns the module already loaded: nothing runs twice.
    results = tab.evaluate(
        """async (cases) => {
          const module = await import(document.querySelector("script[type=module]").src);
          return cases.map(([name, args]) => module[name](...args));
        }""",
        [[name, args] for name, args, _ in FORMATTING],
    )
    assert results == [expected for _, _, expected in FORMATTING]
    assert log.errors == []
