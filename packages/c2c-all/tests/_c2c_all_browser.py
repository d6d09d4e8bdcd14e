"""The /c2c page in real Chromium: what the browser tests of c2c-all share.

A small FastAPI application (`APP_SOURCE`) mounting `c2casgiutils.app` behind `ArmorHeaderMiddleware`
served by a real uvicorn (`_serve`), the browser's log (`BrowserLog`: console errors, uncaught
exceptions, CSP violations, requests outside the server) and the checks of the page (contrast of
every text and form field border in both themes, keyboard focus, overflow at phone width, the
coarse screenshot diff).
`test_index_browser.py` documents what each check asserts; the console sections' tests
(`test_console_*_browser.py`) use the same ones.
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
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect, sync_playwright

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
    if (!(ownText || field) || element.matches(":disabled, [aria-disabled=true]")) continue;
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

# Every visible form field's boundary (its border) against what surrounds it: WCAG 1.4.11, 3:1.
FIELD_BORDER_PROBLEMS = f"""
(limit) => {{
  {PAGE_HELPERS}
  const problems = [];
  let checked = 0;
  for (const element of document.body.querySelectorAll("input:not([type=hidden]), select, textarea")) {{
    if (element.matches(":disabled") || !element.checkVisibility({{visibilityProperty: true}})) continue;
    const style = getComputedStyle(element);
    const around = background(element.parentElement);
    const border = rgba(style.borderTopColor);
    const width = parseFloat(style.borderTopWidth);
    const ratio = border && width >= 1 ? contrast(over(border, around), around) : 1;
    checked += 1;
    if (ratio < limit) {{
      const colours = `${{style.borderTopColor}} on ${{css(around)}}`;
      problems.push(`${{describe(element)}}: border contrast ${{ratio.toFixed(2)}}:1 < ${{limit}}:1 (${{colours}})`);
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

# Until the page's requests are answered: no busy region, no disabled (or busy: aria-disabled) button.
SETTLED = "() => !document.querySelector('[aria-busy=true], button:disabled, button[aria-disabled=true]')"

# A failed fetch is logged by Chromium as a console error: these answers are expected.
EXPECTED_FAILED_LOADS = (
    ("/c2c/health_checks", 503),  # the failing check
    ("/c2c/auth/login", 401),  # the wrong secret
    ("/c2c/logging/level", 422),  # the invalid logger name
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
def _serve(directory: Path, settings: dict[str, str], app_source: str = APP_SOURCE) -> Iterator[Server]:
    """Run uvicorn serving `app_source` (its `app`) from `directory` with these `C2C__` settings (and no other)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "browser_app.py").write_text(app_source, encoding="utf-8")
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
    problems += [f"{scheme}: {problem}" for problem in _contrast_problems(page)]
    return problems + [f"{scheme}: {problem}" for problem in _field_border_problems(page)]


def _field_border_problems(page: Page) -> list[str]:
    """Every visible form field whose border contrasts less than 3:1 with what surrounds it (WCAG 1.4.11)."""
    result = page.evaluate(FIELD_BORDER_PROBLEMS, MIN_FOCUS_CONTRAST)
    return list(result["problems"])


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


@contextlib.contextmanager
def launch_browser() -> Iterator[Browser]:
    """Headless Debian Chromium (`--no-sandbox`: the tests may run as root); conftest's `browser` fixture."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"], timeout=TIMEOUT_MS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def open_page(browser: Browser, *, javascript: bool = True) -> Iterator[tuple[Page, BrowserLog]]:
    """A fresh browser context (no cookies), fixed viewport, light scheme, every wait bounded; conftest's `page`.

    `javascript=False` disables scripts in the context, as a browser with JavaScript off.
    """
    context = browser.new_context(
        java_script_enabled=javascript,
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
