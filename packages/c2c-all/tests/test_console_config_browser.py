"""The /c2c page's Configuration section and the newcomer fixes, in real Chromium (issue 16 items 2 and 6).

A real uvicorn server (the application of `test_index_browser.py`, under the real CSP) with a
real password-protected redis-server, secrets in its settings and a misspelled variable; the
tests drive the page with the keyboard where an operator would, in the light and dark themes, at
desktop and phone (390 px) widths, and check that no secret reaches the page, no CSP violation, no
console error. The DOM, contrast, keyboard and overflow checks are `test_index_browser.py`'s.

`C2C_UPDATE_SCREENSHOTS=1` writes the README's screenshots to `packages/c2c-all/docs/`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _c2c_all_browser as _browser
import pytest
from playwright.sync_api import Page, expect

SECRET = _browser.SECRET

DOCS = Path(__file__).parent.parent / "docs"
UPDATE_SCREENSHOTS = os.environ.get("C2C_UPDATE_SCREENSHOTS") == "1"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1000, "height": 800}
REDIS_PASSWORD = "redis-pw-Zq7-browser"  # test values, not credentials
BROADCAST_SECRET = "broadcast-Zq7-secret-0123456789"
OPTION_PASSWORD = "option-Zq7-password"
DSN_KEY = "dsnkeyZq7"
LONG_LOGGER = "browser_app.a_rather_long_module_name.with_a_deeply_nested_sub_package.and_its_logger"


@pytest.fixture
def server(tmp_path: Path, redis_server_factory: Any) -> Iterator[Any]:
    """The application in secret mode with Redis (a password), secrets in its settings and a typo."""
    redis = redis_server_factory(password=REDIS_PASSWORD)
    settings = _browser.SERVER_ENV | {
        "C2C__REDIS__URL": redis.url,
        "C2C__REDIS__OPTIONS": f"password={OPTION_PASSWORD},socket_timeout=3",
        "C2C__BROADCAST__SECRET": BROADCAST_SECRET,
        "C2C__SENTRY__DSN": f"https://{DSN_KEY}@sentry.example.org/7",
        "C2C__REDIS__URLL": "redis://typo",
    }
    with _browser._serve(tmp_path / "server", settings) as running:
        yield running


def _secrets_absent(tab: Page) -> None:
    html = tab.content()
    for secret in (SECRET, REDIS_PASSWORD, BROADCAST_SECRET, OPTION_PASSWORD, DSN_KEY):
        assert secret not in html, secret


def _show_configuration_by_keyboard(tab: Page) -> None:
    """Tab to the button (from the Logging section's last control) and press Enter; focus the filter with Tab."""
    button = tab.get_by_role("button", name="Show configuration", exact=True)
    tab.locator("#logging button").last.focus()
    for _ in range(5):
        tab.keyboard.press("Tab")
        if tab.evaluate("document.activeElement?.dataset?.action") == "config":
            break
    expect(button).to_be_focused()
    tab.keyboard.press("Enter")
    expect(tab.locator("#config-count")).to_contain_text(" settings")
    tab.keyboard.press("Tab")
    expect(tab.get_by_label("Filter settings")).to_be_focused()


def _rows(tab: Page) -> Any:
    return tab.locator("#config tbody tr:visible")


def _screenshot(tab: Page, name: str) -> None:
    if UPDATE_SCREENSHOTS:
        DOCS.mkdir(exist_ok=True)
        tab.evaluate("document.activeElement?.blur()")
        tab.locator("#config").screenshot(path=str(DOCS / name), animations="disabled", caret="hide")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_configuration_section(server: Any, page: tuple[Page, Any], viewport: dict[str, int]) -> None:
    """An admin filters the settings with the keyboard; masked values, sources, typos; both themes."""
    tab, log = page
    tab.set_viewport_size(viewport)  # type: ignore[arg-type]
    _browser._log_in(tab, server)
    nav = tab.get_by_role("navigation", name="Sections").get_by_role("link")
    expect(nav.filter(has_text="Configuration")).to_have_attribute("href", "#config")

    _show_configuration_by_keyboard(tab)
    total = _rows(tab).count()
    assert total > 50
    expect(tab.locator("#config-count")).to_have_text(f"{total} of {total} settings")
    unknown = tab.locator("#config .config-unknown")
    expect(unknown).to_contain_text("C2C__REDIS__URLL: did you mean C2C__REDIS__URL?")

    tab.keyboard.type("c2c__redis__url")
    expect(_rows(tab)).to_have_count(1)
    expect(tab.locator("#config-count")).to_have_text(f"1 of {total} settings")
    row = _rows(tab).first
    expect(row.locator(".config-name code")).to_have_text("C2C__REDIS__URL")
    expect(row.locator(".config-value code")).to_have_text(re.compile(r"redis://\*{10}@127\.0\.0\.1:\d+/0"))
    expect(row.locator(".config-source")).to_have_text("C2C__REDIS__URL")

    tab.get_by_label("Filter settings").fill("")
    tab.keyboard.type("options")
    expect(_rows(tab).locator(".config-value code").first).to_have_text('{"password":"**********","socket_timeout":3}')
    tab.get_by_label("Filter settings").fill("jwt algorithm")
    expect(_rows(tab).locator(".config-source")).to_have_text("default")
    tab.get_by_label("Filter settings").fill("no-such-setting-anywhere")
    expect(_rows(tab)).to_have_count(0)
    expect(tab.locator("#config-count")).to_have_text(f"No setting matches (0 of {total} settings).")
    tab.get_by_label("Filter settings").fill("redis")
    _browser._settle(tab)

    _secrets_absent(tab)
    suffix = "-phone" if viewport is PHONE else ""
    for scheme in ("light", "dark"):
        assert _browser._theme_problems(tab, scheme) == []
        if viewport is PHONE and scheme == "light":
            _screenshot(tab, "config-phone.png")
        elif viewport is DESKTOP:
            _screenshot(tab, f"config-{scheme}{suffix}.png")
    assert _browser._overflow_problems(tab) == []
    assert log.errors == [], "\n".join(log.errors)
    assert _browser._csp_violations(tab) == []


def test_nav_order_and_phone_overrides(server: Any, page: tuple[Page, Any]) -> None:
    """The navigation lists the sections in page order; on a 390 px phone the Delete buttons are on screen."""
    tab, log = page
    tab.set_viewport_size(PHONE)  # type: ignore[arg-type]
    _browser._log_in(tab, server)
    assert _nav_problems(tab) == []
    tab.locator("#set-level-name").fill(LONG_LOGGER)
    tab.get_by_role("button", name="Set level", exact=True).click()
    delete = tab.get_by_role("button", name=f"Delete the override of {LONG_LOGGER}")
    expect(delete).to_be_visible()
    _browser._settle(tab)
    box = delete.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"], box
    wrap = tab.locator("[data-output=overrides] .table-wrap")
    assert wrap.evaluate("(element) => element.scrollWidth <= element.clientWidth + 1"), "the table scrolls sideways"
    assert _browser._overflow_problems(tab) == []
    delete.click()
    expect(tab.locator("[data-output=overrides]")).to_contain_text("Deleted the override")
    assert log.errors == [], "\n".join(log.errors)
    assert _browser._csp_violations(tab) == []


# Every in-page link of the navigation, with the position of its target in the page (-1: missing).
NAV_TARGETS = """
() => {
  const sections = [...document.querySelectorAll("main section[id]")].map((section) => section.id);
  const links = [...document.querySelectorAll("nav a[href^='#']")].map((link) => link.getAttribute("href").slice(1));
  return {sections, links};
}
"""


def _nav_problems(tab: Page) -> list[str]:
    found = tab.evaluate(NAV_TARGETS)
    sections, links = found["sections"], found["links"]
    problems = [f"#{link}: no such section" for link in links if link not in sections]
    listed = [section for section in sections if section in links]
    if listed != [link for link in links if link in sections]:
        problems.append(f"the navigation lists {links}, the page's order is {sections}")
    problems += [f"section #{section} is not in the navigation" for section in sections if section not in links]
    return problems


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_no_authentication(page: tuple[Page, Any], tmp_path: Path, viewport: dict[str, int]) -> None:
    """A misspelled C2C__AUTH__SECRET: the page says how to configure, the log warns; the health filter speaks."""
    tab, log = page
    tab.set_viewport_size(viewport)  # type: ignore[arg-type]
    settings = _browser.COMMON_ENV | {"C2C__AUTH__SECERT": SECRET}
    with _browser._serve(tmp_path / "server", settings) as running:
        tab.goto(f"{running.url}/c2c/")
        access = tab.locator("#access")
        expect(access.locator(".note-warn")).to_contain_text("No authentication is configured")
        expect(access).to_contain_text("C2C__AUTH__SECRET")
        expect(access).to_contain_text("C2C__AUTH__GITHUB__CLIENT_SECRET")
        expect(tab.locator("#config")).to_have_count(0)
        assert _nav_problems(tab) == []
        _browser._settle(tab)
        assert _browser._keyboard_problems(tab) == []

        tab.get_by_label("Names").fill("no-such-check")
        tab.get_by_label("Names").press("Enter")
        expect(tab.locator("[data-output=health] .summary")).to_contain_text(
            "No check matches the names “no-such-check”. A probe with this filter passes without checking anything."
        )
        # Not green: the 200 of a filter that selects nothing is no health.
        expect(tab.locator("[data-output=health] .summary.warn .badge.warn")).to_have_text("⚠ Nothing checked 200")
        tab.get_by_label("Names").fill("")
        tab.get_by_label("Tags").fill("nothing-tagged")
        tab.get_by_label("Tags").press("Enter")
        expect(tab.locator("[data-output=health] .summary")).to_contain_text(
            "No check matches the tags “nothing-tagged”."
        )
        _browser._settle(tab)
        for scheme in ("light", "dark"):
            assert _browser._theme_problems(tab, scheme) == []
        assert _browser._overflow_problems(tab) == []
        if UPDATE_SCREENSHOTS and viewport is DESKTOP:
            tab.emulate_media(color_scheme="light")
            tab.locator("#access").screenshot(path=str(DOCS / "no-authentication.png"), animations="disabled")
    server_log = running.log.read_text(encoding="utf-8")
    assert "No authentication configured" in server_log
    assert server_log.count("No authentication configured") == 1
    assert "C2C__AUTH__SECERT is not a known setting; did you mean C2C__AUTH__SECRET?" in server_log
    assert log.errors == [], "\n".join(log.errors)
    assert _browser._csp_violations(tab) == []
