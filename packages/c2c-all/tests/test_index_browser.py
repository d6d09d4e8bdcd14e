"""The `/c2c` admin page in a real browser: headless Chromium against a real uvicorn server.

The server (a subprocess) runs a small FastAPI application that mounts `c2casgiutils.app` at `/c2c`
behind `ArmorHeaderMiddleware` with the default rules, so the page lives under the real
Content-Security-Policy with per-request nonces; authentication is in secret mode. The tests drive
the page as an admin would: log in through the form, run the health checks, read the request
headers, get and change a logger's level.

What the page must look like is asserted on the DOM and the computed styles, not on pixels:

- the sections each access level sees and does not see (login form, tools, the read-write form);
- both themes (`prefers-color-scheme: light` and `dark`): the body's background and text colours,
  and the contrast of every visible text (and form field) against the background it sits on, at
  least WCAG AA (4.5:1, 3:1 for large text);
- keyboard use: Tab visits every control in document order, each one matches `:focus-visible`,
  has a visible outline (or box shadow) contrasting 3:1 with what surrounds it, and is on screen;
- the layout at phone width (360 px): nothing wider than the viewport
  (`document.documentElement.scrollWidth <= innerWidth`);
- no console error, no uncaught exception, no CSP violation (a `securitypolicyviolation`
  listener), no request outside the server.

`test_checks_catch_a_broken_page` breaks the page on purpose (no focus outline, a wide element,
faint text, an inline style without the nonce, no stylesheet) and asserts each check reports it:
a check that cannot fail proves nothing.

The screenshots (light and dark) compared with the PNGs in `tests/snapshots/` are only a safety net
for gross breakage (a blank page, a missing stylesheet, a collapsed layout): both images are reduced
to cells of 16x16 px (their mean colour), and the comparison fails when the page height changes by
more than a quarter, or when the cells that have no cell of about their colour (24 of 255 in each
channel) within one cell in the other image are more than 20 % of the cells with content. Another
Chromium's glyphs, a line moved by less than a cell, a recoloured badge pass; the checks above are
what catches those.
Set `C2C_UPDATE_SNAPSHOTS=1` to rewrite them, then look at them and commit them. They are taken with
Debian's `chromium` and the DejaVu fonts (`bash scripts/install-services.sh` installs both); a
missing snapshot fails. The parts that change from run to run (durations, host name and pid of the
replica, time left of an override, version) are replaced by fixed texts first.
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
from typing import Any, Literal

import pytest
from PIL import Image, ImageChops, ImageFilter
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Request, expect, sync_playwright

from c2c_testing import free_port, stop_process, wait_for_port

LOOPBACK = "127.0.0.1"
SECRET = "browser-test-secret"  # a test value, not a credential
LOGGER = "browser_app"
TIMEOUT_MS = 10_000
START_TIMEOUT = 60.0  # a bound for "does not hang": under coverage on two cores a start takes seconds
VIEWPORT = {"width": 1000, "height": 800}
SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE_SNAPSHOTS = os.environ.get("C2C_UPDATE_SNAPSHOTS") == "1"
PHONE_VIEWPORT = {"width": 360, "height": 740}
# The safety net: the screenshots are compared as grids of CELL x CELL px mean colours; a cell
# differs when no cell within one cell of it in the other image is within CELL_THRESHOLD in each
# channel (so a shift of less than a cell is no difference); the page matches when the cells that
# differ, either way, are at most MAX_CELL_RATIO of the cells with content (not the background), and
# its height is within MAX_HEIGHT_CHANGE of the snapshot's. Measured on the snapshots (light / dark):
# a blur 0 %, a 12 px shift 2 %, grey levels instead of colours 11 % / 15 %, the last quarter of the
# page gone 9 % / 13 %, the lower half gone 31 % / 43 %, all but the top bar gone 57 % and more.
CELL = 16
CELL_THRESHOLD = 24
MAX_CELL_RATIO = 0.20
MAX_HEIGHT_CHANGE = 0.25
# WCAG 2.1 AA: text (1.4.3) and the focus indicator, a user-interface component (1.4.11).
MIN_TEXT_CONTRAST = 4.5
MIN_LARGE_TEXT_CONTRAST = 3.0
MIN_FOCUS_CONTRAST = 3.0
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

# Colour helpers shared by the checks below (run in the page): parse a computed colour, composite
# it over another, the background an element sits on, WCAG relative luminance and contrast ratio.
PAGE_HELPERS = """
const rgba = (value) => {
  const parts = (String(value).match(/[\\d.]+/g) || []).map(Number);
  return parts.length < 3 ? null : [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
};
const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
const background = (element) => {
  const layers = [];
  for (let node = element; node instanceof Element; node = node.parentElement) {
    const colour = rgba(getComputedStyle(node).backgroundColor);
    if (colour && colour[3] > 0) layers.push(colour);
    if (colour && colour[3] >= 1) break;
  }
  const dark = matchMedia("(prefers-color-scheme: dark)").matches;
  let result = dark ? [18, 18, 18, 1] : [255, 255, 255, 1];  // the canvas, when nothing is opaque
  for (const layer of layers.reverse()) result = over(layer, result);
  return result;
};
const opacity = (element) => {
  let value = 1;
  for (let node = element; node instanceof Element; node = node.parentElement) {
    value *= Number(getComputedStyle(node).opacity);
  }
  return value;
};
const luminance = (colour) => {
  const channel = (value) => (value <= 0.04045 ? value / 12.92 : ((value + 0.055) / 1.055) ** 2.4);
  const linear = colour.slice(0, 3).map((value) => channel(value / 255));
  return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
};
const contrast = (a, b) => {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
};
const css = (colour) => `rgb(${colour.slice(0, 3).map(Math.round).join(", ")})`;
const describe = (element) => {
  const label = element.getAttribute("aria-label") || element.textContent || element.value || "";
  const text = label.trim().replace(/\\s+/g, " ").slice(0, 40);
  const id = element.id ? `#${element.id}` : "";
  const classes = [...element.classList].map((name) => `.${name}`).join("");
  return `${element.tagName.toLowerCase()}${id}${classes}${text ? ` "${text}"` : ""}`;
};
"""

# Every visible text (an element with text of its own, or a form field) against its background.
CONTRAST_PROBLEMS = f"""
(limits) => {{
  {PAGE_HELPERS}
  const problems = [];
  let checked = 0;
  for (const element of document.body.querySelectorAll("*")) {{
    if (["SCRIPT", "STYLE", "NOSCRIPT", "OPTION"].includes(element.tagName)) continue;
    const ownText = [...element.childNodes].some((node) => node.nodeType === Node.TEXT_NODE && node.textContent.trim());
    const field = element.matches("input:not([type=hidden]), select, textarea");
    if (!(ownText || field) || element.matches(":disabled")) continue;
    if (!element.checkVisibility({{visibilityProperty: true}})) continue;
    const style = getComputedStyle(element);
    const back = background(element);
    const fore = rgba(style.color);
    fore[3] *= opacity(element);
    const ratio = contrast(over(fore, back), back);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const needed = large ? limits.large : limits.text;
    checked += 1;
    if (ratio < needed) {{
      const colours = `${{style.color}} on ${{css(back)}}`;
      problems.push(`${{describe(element)}}: contrast ${{ratio.toFixed(2)}}:1 < ${{needed}}:1 (${{colours}})`);
    }}
  }}
  return {{checked, problems}};
}}
"""

# The controls Tab must visit, in document order (no positive tabindex on this page).
TAB_STOPS = f"""
() => {{
  {PAGE_HELPERS}
  const selector = "a[href], button, input:not([type=hidden]), select, textarea, [tabindex]";
  return [...document.querySelectorAll(selector)]
    .filter((element) => element.tabIndex >= 0 && !element.matches(":disabled"))
    .filter((element) => element.checkVisibility({{visibilityProperty: true}}))
    .map(describe);
}}
"""

# The focused element: its name, whether it shows a focus indicator, and whether it is on screen.
FOCUS_STATE = f"""
() => {{
  {PAGE_HELPERS}
  const element = document.activeElement;
  if (!element || element === document.body || element === document.documentElement) return null;
  const style = getComputedStyle(element);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 1;
  const around = background(element.parentElement);
  const ring = outline ? rgba(style.outlineColor) : null;
  const rect = element.getBoundingClientRect();
  return {{
    name: describe(element),
    focusVisible: element.matches(":focus-visible"),
    outline,
    shadow: style.boxShadow !== "none",
    ringContrast: ring ? contrast(over(ring, around), around) : null,
    ring: ring ? `${{style.outlineColor}} on ${{css(around)}}` : null,
    onScreen: rect.width > 0 && rect.height > 0 && rect.bottom > 0 && rect.right > 0
      && rect.top < innerHeight && rect.left < innerWidth,
  }};
}}
"""

# Horizontal overflow: the page wider than the viewport, and the elements that stick out.
OVERFLOW_PROBLEMS = f"""
() => {{
  {PAGE_HELPERS}
  const width = document.documentElement.scrollWidth;
  if (width <= innerWidth) return [];
  // Wider than the viewport, or its content spilling out of it; the innermost ones.
  const spills = (element) => element.getBoundingClientRect().right > innerWidth + 0.5
    || (getComputedStyle(element).overflowX === "visible" && element.scrollWidth > element.clientWidth + 1);
  const wide = [...document.body.querySelectorAll("*")]
    .filter((element) => spills(element) && ![...element.children].some(spills))
    .map(describe);
  const culprits = wide.slice(0, 8).join(", ");
  return [`the page is ${{width}} px wide in a ${{innerWidth}} px viewport; sticking out: ${{culprits}}`];
}}
"""

# Until the page's requests are answered: no busy region, no disabled button.
SETTLED = "() => !document.querySelector('[aria-busy=true], button:disabled')"

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


def _relative_luminance(rgb: tuple[int, ...]) -> float:
    """WCAG relative luminance of an sRGB colour (0 for black, 1 for white)."""
    linear = [
        value / 255 / 12.92 if value / 255 <= 0.04045 else ((value / 255 + 0.055) / 1.055) ** 2.4 for value in rgb
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _settle(page: Page) -> None:
    """Wait until the page's own requests (the overrides, a check run) are answered."""
    page.wait_for_function(SETTLED)


def _contrast_problems(page: Page) -> list[str]:
    """Every visible text below WCAG AA contrast with its background (and at least one text checked)."""
    limits = {"text": MIN_TEXT_CONTRAST, "large": MIN_LARGE_TEXT_CONTRAST}
    result = page.evaluate(CONTRAST_PROBLEMS, limits)
    assert result["checked"] > 5, result  # the walk did find the page's texts
    return list(result["problems"])


def _theme_problems(page: Page, scheme: Literal["light", "dark"]) -> list[str]:
    """Under this colour scheme: the body's colours are the theme's, every text readable."""
    page.emulate_media(color_scheme=scheme)
    background = _relative_luminance(_colour(page, "body", "backgroundColor"))
    text = _relative_luminance(_colour(page, "body", "color"))
    # Relative luminance: the light theme's background at least 0.7 and its text at most 0.2, the dark
    # theme's the other way round (background at most 0.05, text at least 0.5).
    light_ok = background >= 0.7 and text <= 0.2
    dark_ok = background <= 0.05 and text >= 0.5
    problems = []
    if not (light_ok if scheme == "light" else dark_ok):
        problems.append(f"{scheme}: the body's luminance is {background:.3f}, its text's {text:.3f}")
    return problems + [f"{scheme}: {problem}" for problem in _contrast_problems(page)]


def _focus_problems(state: dict[str, Any]) -> list[str]:
    name = state["name"]
    problems = []
    if not state["focusVisible"]:
        problems.append(f"{name}: focused by Tab but not :focus-visible")
    if not (state["outline"] or state["shadow"]):
        problems.append(f"{name}: no focus outline nor box shadow")
    elif state["ringContrast"] is not None and state["ringContrast"] < MIN_FOCUS_CONTRAST:
        problems.append(f"{name}: focus outline contrast {state['ringContrast']:.2f}:1 ({state['ring']})")
    if not state["onScreen"]:
        problems.append(f"{name}: focused off screen")
    return problems


def _keyboard_problems(page: Page) -> list[str]:
    """Tab from the top of a freshly loaded page: every control in document order, each visibly focused."""
    expected: list[str] = page.evaluate(TAB_STOPS)
    visited: list[str] = []
    problems: list[str] = [] if expected else ["no control to Tab to"]
    for _ in expected:
        page.keyboard.press("Tab")
        state = page.evaluate(FOCUS_STATE)
        if state is None:
            problems.append(f"Tab left the page after {visited}")
            break
        visited.append(state["name"])
        problems += _focus_problems(state)
    if visited != expected:
        problems.append(f"Tab visited {visited}, the controls in document order are {expected}")
    return problems


def _overflow_problems(page: Page) -> list[str]:
    return list(page.evaluate(OVERFLOW_PROBLEMS))


def _csp_violations(page: Page) -> list[str]:
    return list(page.evaluate("window.__cspViolations"))


def _screenshot(page: Page) -> bytes:
    page.evaluate(NORMALISE_DYNAMIC)
    page.mouse.move(0, 0)  # no hover style
    return page.screenshot(full_page=True, animations="disabled", caret="hide")


def _cells(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The image as a grid of `size` cells, each the mean colour of its pixels."""
    return image.convert("RGB").resize(size, Image.Resampling.BOX)


def _far(difference: Image.Image) -> int:
    """How many cells of a difference image are off by more than CELL_THRESHOLD in some channel."""
    red, green, blue = difference.split()
    worst = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    return sum(worst.histogram()[CELL_THRESHOLD + 1 :])


def _content(cells: Image.Image) -> int:
    """How many cells are not the page's background (its most common cell colour, within the threshold)."""
    colours = cells.getcolors(cells.width * cells.height) or [(0, (0, 0, 0))]
    _, background = max(colours, key=lambda pair: pair[0])
    assert isinstance(background, tuple), background  # an RGB image
    return _far(ImageChops.difference(cells, Image.new("RGB", cells.size, background)))


def _unmatched(cells: Image.Image, other: Image.Image) -> int:
    """How many cells have, in every channel, no cell of `other` within one cell whose mean is close."""
    above = ImageChops.subtract(cells, other.filter(ImageFilter.MaxFilter(3)))
    below = ImageChops.subtract(other.filter(ImageFilter.MinFilter(3)), cells)
    return _far(ImageChops.lighter(above, below))


def _gross_difference(expected: Image.Image, actual: Image.Image) -> str | None:
    """What differs grossly between two screenshots (see the module's docstring), or None."""
    height_change = abs(actual.height - expected.height) / expected.height
    if actual.width != expected.width or height_change > MAX_HEIGHT_CHANGE:
        return f"the page is {actual.width}x{actual.height} px, the snapshot {expected.width}x{expected.height} px"
    grid = (max(1, expected.width // CELL), max(1, expected.height // CELL))
    before, after = _cells(expected, grid), _cells(actual, grid)
    differing = max(_unmatched(before, after), _unmatched(after, before))
    content = max(_content(before), _content(after), 1)
    ratio = differing / content
    if ratio > MAX_CELL_RATIO:
        return f"{differing} cells differ, {ratio:.0%} of the {content} with content (at most {MAX_CELL_RATIO:.0%})"
    return None


def _assert_snapshot(actual_png: bytes, name: str, out_dir: Path) -> None:
    """Compare a screenshot with `snapshots/<name>`, tolerantly (rewrite it with `C2C_UPDATE_SNAPSHOTS=1`)."""
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
        problem = _gross_difference(stored.convert("RGB"), taken.convert("RGB"))
    if problem is not None:
        pytest.fail(
            f"{name}: {problem} (screenshot {actual_path}; C2C_UPDATE_SNAPSHOTS=1 rewrites the snapshot)",
            pytrace=False,
        )


def _log_in(page: Page, server: Server) -> None:
    """Log in with the secret through the form; the page reloads with the tools."""
    page.goto(f"{server.url}/c2c/")
    page.get_by_label("Secret").fill(SECRET)
    with page.expect_navigation():
        _button(page, "Log in")
    expect(page.locator("#logging")).to_be_visible()
    _settle(page)


def _assert_sections(page: Page, *, login: bool, tools: bool, write: bool) -> None:
    """What an access level sees: the login form or not, the tools or not, the read-write form or not."""
    expect(page.locator("#health")).to_be_visible()
    expect(page.get_by_role("button", name="Run checks", exact=True)).to_be_visible()
    expect(page.locator("form[data-action=login]")).to_have_count(1 if login else 0)
    expect(page.get_by_label("Secret")).to_have_count(1 if login else 0)
    for section in ("#headers", "#logging", "#more"):
        expect(page.locator(section)).to_have_count(1 if tools else 0)
    navigation = page.get_by_role("navigation", name="Sections").get_by_role("link")
    expected_links = ["Access", "Health"]  # the page's order; the access section says how to configure a login
    if tools:
        expected_links += ["Replicas", "Headers", "Logging", "Configuration", *(["Audit"] if write else []), "More"]
    expect(navigation).to_have_text(expected_links)
    expect(page.locator("form[data-action=set-level]")).to_have_count(1 if write else 0)
    expect(page.get_by_role("button", name="Set level", exact=True)).to_have_count(1 if write else 0)


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

    _assert_sections(tab, login=True, tools=False, write=False)
    expect(tab.get_by_label("Secret")).to_be_visible()
    # Keyboard first, on the freshly loaded page: the skip link, the navigation, the form, the checks.
    assert _keyboard_problems(tab) == []

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
    _settle(tab)
    assert _theme_problems(tab, "dark") == []
    assert _theme_problems(tab, "light") == []

    assert log.errors == []
    assert _csp_violations(tab) == []
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
    _assert_sections(tab, login=False, tools=True, write=True)
    _settle(tab)
    assert _keyboard_problems(tab) == []

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

    # Every tool's output on the page: both themes readable, then the safety-net screenshots.
    _settle(tab)
    assert _theme_problems(tab, "light") == []
    _assert_snapshot(_screenshot(tab), "index-light.png", tmp_path)
    # Dark mode follows the system preference.
    assert _theme_problems(tab, "dark") == []
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

    # The keyboard in the dark theme too (its own focus colour), on the reloaded page.
    tab.emulate_media(color_scheme="dark")
    tab.reload()
    _settle(tab)
    assert _keyboard_problems(tab) == []
    tab.emulate_media(color_scheme="light")

    # Logging out: back to the login form.
    with tab.expect_navigation():
        _button(tab, "Log out")
    expect(tab.get_by_label("Secret")).to_be_visible()
    _assert_sections(tab, login=True, tools=False, write=False)

    assert log.errors == [], "\n".join(log.errors)
    assert _csp_violations(tab) == []
    assert all(url.startswith(f"{server.url}/") for url in log.requests), log.requests


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
        _assert_sections(tab, login=False, tools=tools, write=tools)
        if tools:
            expect(tab.locator("#access .note-warn")).to_contain_text(
                f"Test mode: every request is logged in as {TEST_USER}."
            )
            expect(tab.locator("#access b")).to_have_count(0)
            expect(tab.locator("[data-output=overrides]")).to_contain_text("No override")
        else:
            expect(tab.locator("#access .note-warn")).to_contain_text("No authentication is configured")
        _settle(tab)
        assert _keyboard_problems(tab) == []
        _button(tab, "Run checks")
        expect(tab.locator(".checks > li")).to_have_count(2)
        # The details are for callers with access: the test user has it, anonymous callers do not.
        expect(tab.locator(".check.fail .payload")).to_contain_text("down" if tools else "check failed")
        _settle(tab)
        assert _theme_problems(tab, "light") == []
        assert _theme_problems(tab, "dark") == []
    assert log.errors == [], "\n".join(log.errors)
    assert _csp_violations(tab) == []


def test_phone_layout(server: Server, page: tuple[Page, BrowserLog]) -> None:
    """At 360 px, logged out and with every tool's output shown: nothing wider than the viewport, all readable."""
    tab, log = page
    tab.set_viewport_size(PHONE_VIEWPORT)  # type: ignore[arg-type]
    tab.goto(f"{server.url}/c2c/")
    assert _overflow_problems(tab) == []
    _log_in(tab, server)
    assert _overflow_problems(tab) == []
    _button(tab, "Run checks")
    expect(tab.locator(".checks > li")).to_have_count(2)
    tab.get_by_label("Revert after (minutes)").fill("5")
    _button(tab, "Set level")
    expect(tab.locator(".overrides tbody tr")).to_have_count(1)
    # A long value without a space to break at: the headers table must wrap it, not widen the page.
    tab.context.set_extra_http_headers({"X-Long-Value": "0123456789abcdef" * 16})
    _button(tab, "Show request headers")
    expect(tab.locator("[data-status=headers]")).to_contain_text("headers received")
    tab.context.set_extra_http_headers({})
    _settle(tab)
    assert _overflow_problems(tab) == []
    assert _theme_problems(tab, "dark") == []
    assert _overflow_problems(tab) == []
    assert _theme_problems(tab, "light") == []
    # Leave no override behind for the other tests of the module.
    tab.get_by_role("button", name=f"Delete the override of {LOGGER}").click()
    expect(tab.locator("[data-output=overrides]")).to_contain_text("No override")
    assert log.errors == [], "\n".join(log.errors)
    assert _csp_violations(tab) == []


def _break(page: Page, rule: str) -> None:
    """Add a CSS rule to the page's own stylesheet (CSSOM: the CSP allows it, unlike a new <style>)."""
    page.evaluate("(rule) => document.styleSheets[0].insertRule(rule, document.styleSheets[0].cssRules.length)", rule)


def test_checks_catch_a_broken_page(server: Server, page: tuple[Page, BrowserLog]) -> None:
    """Each check reports what it claims to catch on a page broken on purpose (and nothing on the intact one)."""
    tab, log = page
    response = tab.goto(f"{server.url}/c2c/")
    assert response is not None
    assert response.status == 200
    _settle(tab)
    stops = len(tab.evaluate(TAB_STOPS))
    assert stops > 5
    # The intact page first: nothing to report.
    assert _keyboard_problems(tab) == []
    assert _theme_problems(tab, "light") == []

    # No focus indicator: every control reported, by name.
    tab.reload()
    _settle(tab)
    _break(tab, ":focus-visible { outline: none !important; box-shadow: none !important; }")
    problems = _keyboard_problems(tab)
    assert len([problem for problem in problems if problem.endswith("no focus outline nor box shadow")]) == stops, (
        problems
    )
    # A faint one: its contrast reported.
    tab.reload()
    _settle(tab)
    _break(tab, ":focus-visible { outline-color: rgb(230, 230, 230) !important; }")
    assert any("focus outline contrast" in problem for problem in _keyboard_problems(tab))
    # A skip link that stays off screen when focused.
    tab.reload()
    _settle(tab)
    _break(tab, ".skip-link:focus { top: -3rem !important; }")
    assert _keyboard_problems(tab) == ['a.skip-link "Skip to the content": focused off screen']

    # An element wider than a phone: the overflow and the culprit reported.
    tab.reload()
    tab.set_viewport_size(PHONE_VIEWPORT)  # type: ignore[arg-type]
    assert _overflow_problems(tab) == []
    tab.evaluate("""() => {
      const wide = Object.assign(document.createElement("p"), {id: "too-wide"});
      wide.textContent = "AWordTooLongForAPhone".repeat(4);
      document.querySelector("#health").append(wide);
    }""")
    problems = _overflow_problems(tab)
    assert len(problems) == 1, problems
    assert "wide in a 360 px viewport" in problems[0]
    assert 'p#too-wide "AWordTooLong' in problems[0]
    tab.set_viewport_size(VIEWPORT)  # type: ignore[arg-type]

    # Faint text, and dark text in the dark theme: the contrast reported, and the theme.
    tab.reload()
    _break(tab, ".hint { color: rgb(200, 200, 200) !important; }")
    problems = _theme_problems(tab, "light")
    assert len(problems) == 1, problems
    assert problems[0].startswith('light: p#health-hint.hint "Comma-separated; leave empty to run ever": contrast ')
    assert "< 4.5:1 (rgb(200, 200, 200) on " in problems[0]
    _break(tab, "body { color: rgb(27, 36, 48) !important; }")
    problems = _theme_problems(tab, "dark")
    assert any(problem.startswith("dark: the body's luminance is ") for problem in problems), problems
    assert any(problem.startswith('dark: h2#health-title "Health checks": contrast') for problem in problems)
    tab.emulate_media(color_scheme="light")

    # An inline style without the nonce: the CSP violation seen by the listener and in the console.
    tab.reload()
    assert _csp_violations(tab) == []
    tab.evaluate("document.head.append(Object.assign(document.createElement('style'), {textContent: 'p {}'}))")
    tab.wait_for_function("window.__cspViolations.length > 0")
    assert any("style-src" in violation for violation in _csp_violations(tab))
    assert any("CSP violation: style-src" in error for error in log.errors), log.errors

    # The safety net: a second screenshot passes, the page without its stylesheet or content fails.
    tab.reload()
    _settle(tab)
    with Image.open(io.BytesIO(_screenshot(tab))) as first, Image.open(io.BytesIO(_screenshot(tab))) as again:
        intact, intact_again = first.convert("RGB"), again.convert("RGB")
    assert _gross_difference(intact, intact_again) is None
    tab.evaluate("document.styleSheets[0].disabled = true")
    with Image.open(io.BytesIO(_screenshot(tab))) as taken:
        unstyled = _gross_difference(intact, taken.convert("RGB"))
    assert unstyled is not None
    tab.evaluate("document.styleSheets[0].disabled = false; document.querySelector('main').replaceChildren()")
    with Image.open(io.BytesIO(_screenshot(tab))) as taken:
        blank = _gross_difference(intact, taken.convert("RGB"))
    assert blank is not None
    assert "cells differ" in blank


@pytest.mark.parametrize("name", ["index-light.png", "index-dark.png"])
def test_snapshot_comparison_tolerance(name: str) -> None:
    """The safety net ignores rendering noise (a blur, a shift of a few pixels), sees a page half gone or re-themed."""
    with Image.open(SNAPSHOTS / name) as stored:
        expected = stored.convert("RGB")
    width, height = expected.size
    assert _gross_difference(expected, expected) is None
    assert _gross_difference(expected, expected.filter(ImageFilter.GaussianBlur(1.5))) is None
    background = expected.getpixel((width - 1, height - 1))
    assert isinstance(background, tuple), background
    shifted = Image.new("RGB", (width, height + 12), background)
    shifted.paste(expected, (3, 12))
    assert _gross_difference(expected, shifted) is None
    half_gone = expected.copy()
    half_gone.paste(background, (0, height // 2, width, height))
    assert _gross_difference(expected, half_gone) is not None
    # The other theme is no noise either.
    other = "index-dark.png" if name == "index-light.png" else "index-light.png"
    with Image.open(SNAPSHOTS / other) as stored:
        assert _gross_difference(expected, stored.convert("RGB")) is not None


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
