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
  least WCAG AA (4.5:1, 3:1 for large text), and the border of every form field against the card,
  at least 3:1 (WCAG 1.4.11);
- keyboard use: Tab visits every control in document order, each one matches `:focus-visible`,
  has a visible outline (or box shadow) contrasting 3:1 with what surrounds it, and is on screen;
- the layout at phone width (360 px; 320 and 375 px with a long logger name and filter word in
  every tool): nothing wider than the viewport (`document.documentElement.scrollWidth <=
  innerWidth`), no level badge broken over two lines; under WCAG 1.4.12's text spacing no label
  is cut; the text follows the browser's font size setting (`rem`);
- robustness: a 2xx answer that is not JSON (a proxy's login page, by `page.route`) is an error in
  every tool, never a success; a tool's button keeps the keyboard focus; a session ended elsewhere
  gives every tool the "log in again" hint, the Configuration and Audit errors in their live status;
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

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from _c2c_all_browser import (
    COMMON_ENV,
    LOGGER,
    LOOPBACK,
    PHONE_VIEWPORT,
    SECRET,
    SERVER_ENV,
    SNAPSHOTS,
    TAB_STOPS,
    TEST_USER,
    VIEWPORT,
    BrowserLog,
    Server,
    _assert_sections,
    _assert_snapshot,
    _button,
    _colour,
    _csp_violations,
    _gross_difference,
    _keyboard_problems,
    _log_in,
    _overflow_problems,
    _screenshot,
    _serve,
    _settle,
    _theme_problems,
    open_page,
)
from PIL import Image, ImageFilter
from playwright.sync_api import Browser, Locator, Page, Route, expect


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The application in secret mode, shared by the tests of the module."""
    with _serve(tmp_path_factory.mktemp("index-browser"), SERVER_ENV) as running:
        yield running


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
    # One h1, the page's title in the top bar, in the look of the top bar's brand (not a big heading).
    title = tab.get_by_role("heading", level=1)
    expect(title).to_have_text("c2c admin")
    expect(title.get_by_role("link")).to_have_attribute("href", "/c2c/")
    expect(title).to_have_css("margin-top", "0px")
    expect(title.locator("span")).to_have_css("font-size", "17.6px")  # 1.1rem
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
    # The reloaded page starts from what changed: the access state has the focus, not the body.
    expect(tab.locator("#access .state")).to_be_focused()
    tab.reload()  # once only: a page loaded afterwards starts at its top (the keyboard walk below)
    expect(tab.locator("#access .state")).not_to_be_focused()
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
    # NOTSET is also a misspelled name's answer: the page says what it means.
    expect(tab.locator("[data-output=get-level] .hint")).to_contain_text("check the spelling")
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
    expect(tab.locator("[data-output=get-level] .hint")).to_have_count(0)

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
    refused = tab.locator("[data-output=get-level] .error")
    expect(refused).to_contain_text("Invalid input (HTTP 422): name: invalid logger name")
    expect(tab.locator("[data-output=get-level] .error")).to_contain_text("<img src=x>")
    expect(tab.locator("main img")).to_have_count(0)
    tab.get_by_label("Logger").first.fill(LOGGER)

    # Deleting the override restores the level; the keyboard focus stays in the section (the
    # Delete button went with the table it was in).
    tab.get_by_role("button", name=f"Delete the override of {LOGGER}").focus()
    tab.keyboard.press("Enter")
    expect(tab.locator("[data-output=overrides]")).to_contain_text("No override")
    expect(tab.locator('button[data-action="overrides"]')).to_be_focused()
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


def test_without_javascript(server: Server, browser: Browser) -> None:
    """JavaScript off: a wrong secret, the right one and a logout each come back to the page, which
    says what happened (never a raw JSON answer), in the page's own styles and under its CSP."""
    with open_page(browser, javascript=False) as (tab, log):
        tab.goto(f"{server.url}/c2c/")
        expect(tab.locator("noscript")).to_have_count(1)
        # The health form needs the script: the note links to the report itself.
        report = tab.locator("main .note-warn").get_by_role("link", name="health report")
        expect(report).to_have_attribute("href", "/c2c/health_checks")
        expect(report).to_be_visible()
        tab.get_by_label("Secret").fill("not the secret")
        with tab.expect_navigation():
            tab.get_by_role("button", name="Log in").click()
        assert tab.url == f"{server.url}/c2c/?login=failed"
        expect(tab.get_by_role("alert")).to_have_text("✗ Wrong secret: you are not logged in.")
        secret = tab.get_by_label("Secret")
        expect(secret).to_have_attribute("aria-invalid", "true")
        expect(secret).to_have_accessible_description("Wrong secret: you are not logged in.")
        expect(secret).to_be_focused()
        _assert_sections(tab, login=True, tools=False, write=False)
        assert _theme_problems(tab, "light") == []

        secret.fill(SECRET)
        with tab.expect_navigation():
            tab.get_by_role("button", name="Log in").click()
        assert tab.url == f"{server.url}/c2c/"
        expect(tab.locator("#access .state-ok")).to_have_text("● Logged in with the shared secret.")
        expect(tab.get_by_role("alert")).to_have_count(0)

        with tab.expect_navigation():
            tab.get_by_role("button", name="Log out").click()
        assert tab.url == f"{server.url}/c2c/?login=logged-out"
        expect(tab.locator("#access [role=status].state")).to_have_text("You are logged out.")
        _assert_sections(tab, login=True, tools=False, write=False)
        # Once logged in, a stale `?login=` says nothing.
        _log_in_without_script(tab, server)
        tab.goto(f"{server.url}/c2c/?login=failed")
        expect(tab.get_by_role("alert")).to_have_count(0)
        assert log.errors == [], "\n".join(log.errors)
        assert _csp_violations(tab) == []


def _log_in_without_script(tab: Page, server: Server) -> None:
    tab.goto(f"{server.url}/c2c/")
    tab.get_by_label("Secret").fill(SECRET)
    with tab.expect_navigation():
        tab.get_by_role("button", name="Log in").click()
    expect(tab.locator("#access .state-ok")).to_be_visible()


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

    # Form fields whose boundary is faint against the card (WCAG 1.4.11): each one reported.
    tab.reload()
    _settle(tab)
    _break(tab, "input, select { border-color: rgb(213, 219, 225) !important; }")
    problems = _theme_problems(tab, "light")
    assert len(problems) == 3, problems  # the secret, the names and the tags
    faint = "light: input#login-secret: border contrast 1.40:1 < 3:1 (rgb(213, 219, 225) on rgb(255, 255, 255))"
    assert problems[0] == faint, problems

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
    # pydantic's prefix of a validator's own message is not shown
    (
        "describeError",
        [422, {"detail": [{"loc": ["query", "name"], "msg": "Value error, invalid logger name"}]}],
        "Invalid input (HTTP 422): name: invalid logger name",
    ),
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


# Every tool of the page: its button, and where its answer (or error) is shown.
TOOLS = [
    ("Run checks", "[data-output=health]"),
    ("Ask every replica", "[data-output=replicas]"),
    ("Show request headers", "[data-status=headers]"),
    ("Get level", "[data-output=get-level]"),
    ("Set level", "[data-output=set-level]"),
    ("Refresh", "[data-output=overrides]"),
    ("Show configuration", "[data-status=config]"),
    ("Show audit trail", "[data-status=audit]"),
]
# What the tools say when they succeed: none of it may show for an answer that is not the application's.
SUCCESS_TEXTS = re.compile(
    r"Applied|Healthy|Nothing checked|headers received|loaded|No override|replicas? answered|In line"
)


def test_answers_that_are_not_json(server: Server, page: tuple[Page, BrowserLog]) -> None:
    """A 2xx answer that is not JSON (an SSO proxy's login page, followed by fetch) is an error in every tool."""
    tab, log = page
    _log_in(tab, server)
    login_page = "<!doctype html><title>Sign in</title><form><input name=user></form>"

    def proxy_login_page(route: Route) -> None:
        if route.request.resource_type == "fetch":
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=login_page)
        else:
            route.continue_()

    tab.route("**/c2c/**", proxy_login_page)
    for name, where in TOOLS:
        region = tab.locator(where)
        region.evaluate("(element) => element.replaceChildren()")
        _button(tab, name)
        _settle(tab)
        expect(region.locator(".error"), name).to_have_text(
            "✗ Unexpected answer (HTTP 200, text/html): not the c2c application's JSON; a proxy's login page? "
            "Reload the page.",
            use_inner_text=True,
        )
        expect(region, name).not_to_contain_text(SUCCESS_TEXTS)
    # No stale success elsewhere either: the tables and reports of a tool's previous answer are gone.
    expect(tab.locator("[data-output=headers], [data-output=config], [data-output=audit]")).to_have_text(["", "", ""])
    expect(tab.locator(".notice, .summary, .replica-summary")).to_have_count(0)
    assert log.errors == [], "\n".join(log.errors)
    assert _csp_violations(tab) == []


# The page's requests answered half a second late; the health report's counted.
SLOW_FETCH = """
() => {
  window.__healthRequests = 0;
  const original = window.fetch;
  window.fetch = async (resource, options) => {
    if (new URL(String(resource), location.href).pathname.endsWith("/health_checks")) window.__healthRequests += 1;
    await new Promise((resolve) => setTimeout(resolve, 500));
    return original(resource, options);
  };
}
"""


def test_tool_buttons_keep_the_focus(server: Server, page: tuple[Page, BrowserLog]) -> None:
    """A tool's button pressed with the keyboard keeps the focus while and after its request runs."""
    tab, log = page
    _log_in(tab, server)
    for name, where in TOOLS:
        button = tab.get_by_role("button", name=name, exact=True)
        tab.locator(where).evaluate("(element) => element.replaceChildren()")
        button.focus()
        tab.keyboard.press("Space")
        expect(tab.locator(where), name).not_to_be_empty()
        _settle(tab)
        expect(button, name).to_be_focused()
        assert tab.evaluate("document.activeElement.matches(':focus-visible')"), name
    # While its request runs the button says it is busy, keeps the focus and ignores another press.
    tab.evaluate(SLOW_FETCH)
    button = tab.get_by_role("button", name="Run checks", exact=True)
    button.focus()
    tab.keyboard.press("Space")
    expect(button).to_have_attribute("aria-disabled", "true")
    expect(button).to_be_focused()
    tab.keyboard.press("Space")
    tab.keyboard.press("Enter")
    _settle(tab)
    expect(button).not_to_have_attribute("aria-disabled", "true")
    assert tab.evaluate("window.__healthRequests") == 1
    # The Set level above made an override: leave none behind for the other tests of the module.
    tab.get_by_role("button", name=f"Delete the override of {LOGGER}").click()
    expect(tab.locator("[data-output=overrides]")).to_contain_text("No override")
    assert log.errors == [], "\n".join(log.errors)


def test_session_ended_elsewhere(server: Server, browser: Browser) -> None:
    """The session ended in another browser: every tool says so and how to go on, errors are announced."""
    with open_page(browser) as (tab, log):
        _log_in(tab, server)
        # The same session logged out elsewhere (its cookie copied to another browser): the server refuses it.
        other = browser.new_context(storage_state=tab.context.storage_state())
        try:
            assert other.request.post(f"{server.url}/c2c/auth/logout").ok
        finally:
            other.close()
        hint = "Reload the page and log in again if your session expired."
        for name, where in TOOLS:
            if name in ("Run checks", "Ask every replica"):
                continue  # the report is public; the replicas' below, with the rest
            tab.locator(where).evaluate("(element) => element.replaceChildren()")
            _button(tab, name)
            _settle(tab)
            error = tab.locator(where).locator(".error")
            expect(error, name).to_contain_text("Access denied (HTTP 403)")
            expect(error, name).to_contain_text(hint)
        _button(tab, "Ask every replica")
        _settle(tab)
        expect(tab.locator("[data-output=replicas] .error")).to_contain_text("Access denied (HTTP 403)")
        expect(tab.locator("[data-output=replicas] .error")).to_contain_text(hint)
        # Configuration and audit: the error is in the live status line, the region is empty.
        for section in ("config", "audit"):
            status = tab.locator(f"[data-status={section}]")
            expect(status).to_have_attribute("role", "status")
            expect(status).to_have_attribute("aria-live", "polite")
            expect(status.locator(".error")).to_contain_text(hint)
            expect(tab.locator(f"[data-output={section}]")).to_be_empty()
        # The refusals are logged by Chromium as failed loads: expected here, nothing else.
        unexpected = [error for error in log.errors if "status of 403 " not in error]
        assert unexpected == [], "\n".join(unexpected)
        assert _csp_violations(tab) == []


# A logger name without a place to break (dots and underscores are none), and a filter word as long.
LONG_NAME = f"{LOGGER}.{'averylongmodulenamewithoutanybreak' * 4}"
LEVEL_LINES = """
() => [...document.querySelectorAll(".level")].filter((element) => element.checkVisibility()).map((element) => {
  const range = document.createRange();
  range.selectNodeContents(element);
  const lines = new Set([...range.getClientRects()].map((rect) => Math.round(rect.top)));
  return [element.textContent, lines.size];
})
"""
# The places a long name or word goes, each wider than the viewport or spilling out of its box.
LONG_PLACES = "[data-output=health] .summary > span, .level-line, .level-line code, .replica-list li, .overrides code"
STICKING_OUT = """
(selector) => [...document.querySelectorAll(selector)]
  .filter((element) => element.getBoundingClientRect().right > innerWidth + 0.5
    || element.scrollWidth > element.clientWidth + 1)
  .map((element) => `${element.tagName.toLowerCase()}.${element.className}`)
"""


@pytest.mark.parametrize("width", [320, 375])
def test_long_names_on_a_phone(server: Server, page: tuple[Page, BrowserLog], width: int) -> None:
    """A long logger name and a long filter word in every tool at 320 and 375 px: nothing wider than
    the viewport, no level badge broken over two lines."""
    tab, log = page
    tab.set_viewport_size({"width": width, "height": 740})
    _log_in(tab, server)
    tab.get_by_label("Names").fill("nosuchcheck" * 8)
    _button(tab, "Run checks")
    expect(tab.locator("[data-output=health] .summary.warn")).to_contain_text("Nothing checked")
    tab.locator("#set-level-name").fill(LONG_NAME)
    _button(tab, "Set level")
    expect(tab.locator("[data-output=set-level] .notice")).to_contain_text("Applied")
    expect(tab.locator(".overrides tbody tr")).to_have_count(1)
    tab.locator("#get-level-name").fill(LONG_NAME)
    _button(tab, "Get level")
    expect(tab.locator("[data-output=get-level] .level-line")).to_contain_text(LONG_NAME)
    _button(tab, "Ask every replica")
    expect(tab.locator('#replicas td[data-label="Overrides"]')).to_contain_text(f"{LONG_NAME} = DEBUG")
    _button(tab, "Show configuration")
    _button(tab, "Show audit trail")
    expect(tab.locator("[data-status=audit]")).to_contain_text("Audit trail loaded")
    _settle(tab)
    broken = [line for line in tab.evaluate(LEVEL_LINES) if line[1] != 1]
    assert broken == []
    assert tab.evaluate(STICKING_OUT, LONG_PLACES) == []
    assert _overflow_problems(tab) == []
    assert _theme_problems(tab, "dark") == []
    tab.emulate_media(color_scheme="light")
    tab.get_by_role("button", name=f"Delete the override of {LONG_NAME}").click()
    expect(tab.locator("[data-output=overrides]")).to_contain_text("No override")
    assert _overflow_problems(tab) == []
    assert log.errors == [], "\n".join(log.errors)


# WCAG 1.4.12 text spacing: what a user's style sheet may set, no content or function may be lost.
TEXT_SPACING = (
    "* { line-height: 1.5 !important; letter-spacing: 0.12em !important; word-spacing: 0.16em !important; }",
    "p { margin-bottom: 2em !important; }",
)
CUT_LABELS = """
() => [...document.querySelectorAll("label")].filter((element) => element.checkVisibility())
  .filter((element) => element.scrollWidth > element.clientWidth + 1 || element.scrollHeight > element.clientHeight + 1)
  .map((element) => element.textContent)
"""


@pytest.mark.parametrize("width", [1000, 375])
def test_labels_under_text_spacing(server: Server, page: tuple[Page, BrowserLog], width: int) -> None:
    """With WCAG 1.4.12's text spacing every label is whole (it wraps, it is not cut), nothing overflows."""
    tab, log = page
    tab.set_viewport_size({"width": width, "height": 800})
    _log_in(tab, server)
    _button(tab, "Show configuration")
    _settle(tab)
    assert tab.evaluate(CUT_LABELS) == []
    for rule in TEXT_SPACING:
        _break(tab, rule)
    labels = tab.locator("label:visible")
    assert labels.count() >= 6
    assert tab.evaluate(CUT_LABELS) == []
    expect(tab.get_by_label("Revert after (minutes)")).to_be_visible()
    assert _overflow_problems(tab) == []
    assert log.errors == [], "\n".join(log.errors)


def test_text_follows_the_font_size_setting(server: Server, page: tuple[Page, BrowserLog]) -> None:
    """The page's text is 15 px at the browser's default size (16 px) and grows with the user's setting."""
    tab, log = page
    tab.goto(f"{server.url}/c2c/")
    assert tab.evaluate("getComputedStyle(document.body).fontSize") == "15px"
    session = tab.context.new_cdp_session(tab)
    session.send("Page.enable")
    session.send("Page.setFontSizes", {"fontSizes": {"standard": 24, "fixed": 20}})
    tab.reload()
    assert tab.evaluate("getComputedStyle(document.documentElement).fontSize") == "24px"  # the setting applied
    assert tab.evaluate("getComputedStyle(document.body).fontSize") == "22.5px"
    assert log.errors == [], "\n".join(log.errors)


def test_rejected_duration_clears_the_previous_answer(server: Server, page: tuple[Page, BrowserLog]) -> None:
    """A duration the browser refuses clears the server's error of the previous submission."""
    tab, log = page
    _log_in(tab, server)
    result = tab.locator("[data-output=set-level]")
    tab.locator("#set-level-name").fill("not a logger name")
    _button(tab, "Set level")
    expect(result.locator(".error")).to_contain_text("Invalid input (HTTP 422)")
    tab.locator("#set-level-name").fill(LOGGER)
    tab.get_by_label("Revert after (minutes)").fill("0.01")  # under the field's minimum, 0.1
    _button(tab, "Set level")
    expect(result).to_be_empty()
    assert tab.get_by_label("Revert after (minutes)").evaluate("(element) => element.validity.rangeUnderflow")
    _settle(tab)
    expect(tab.locator("[data-output=overrides]")).to_contain_text("No override")
    assert log.errors == [], "\n".join(log.errors)
