"""The /c2c page's Audit section in real Chromium (issue 16 item 4).

Three uvicorn replicas of `test_index_browser.py`'s application (under the real CSP) share a real
redis-server. Another one gets a refused login and a level change, a third one is killed; the
admin logs in on the first one, sets a level through the form and opens the audit trail with the
keyboard: both replicas' actions newest first, with who and the client, the killed replica listed as
not answering; light and dark themes, desktop and phone (390 px) widths, no horizontal overflow, no
secret in the page, no CSP violation, no console error. The DOM, contrast and overflow checks are
`test_index_browser.py`'s.

`C2C_UPDATE_SCREENSHOTS=1` writes the README's screenshots to `packages/c2c-all/docs/`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import _c2c_all_browser as _browser
import httpx
from playwright.sync_api import Page, expect

SECRET = _browser.SECRET

DOCS = Path(__file__).parent.parent / "docs"
UPDATE_SCREENSHOTS = os.environ.get("C2C_UPDATE_SCREENSHOTS") == "1"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1000, "height": 800}
KEY = {"X-API-Key": SECRET}


def _port_is_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _act(url: str, logger: str) -> int:
    """A refused login and a level set on the replica at `url`; returns its pid."""
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.post("/c2c/auth/login", headers={"X-API-Key": "wrong"}).status_code == 401
        assert (
            client.post("/c2c/logging/level", json={"name": logger, "level": "ERROR"}, headers=KEY).status_code == 200
        )
        own = client.get("/c2c/audit", headers=KEY).json()["entries"]
    (pid,) = {entry["pid"] for entry in own if entry["action"] == "level_set" and entry["details"]["name"] == logger}
    return int(pid)


def _kill(url: str, pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    port = int(url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 10
    while _port_is_open(port) and time.monotonic() < deadline:
        time.sleep(0.05)


def _open_audit_by_keyboard(tab: Page) -> None:
    """Tab to the button from the control before it and press Enter."""
    button = tab.get_by_role("button", name="Show audit trail", exact=True)
    previous = tab.locator("#config button, #logging button").last
    previous.focus()
    for _ in range(5):
        tab.keyboard.press("Tab")
        if tab.evaluate("document.activeElement?.dataset?.action") == "audit":
            break
    expect(button).to_be_focused()
    tab.keyboard.press("Enter")
    expect(tab.locator("[data-status=audit]")).to_contain_text("Audit trail loaded")


# The Audit section's elements that stick out of the viewport, or a section that scrolls sideways.
# (Only this section: the other sections are their own tests'.)
AUDIT_OVERFLOW = """
() => {
  const width = document.documentElement.clientWidth;
  const section = document.querySelector("#audit");
  const problems = [...section.querySelectorAll("*")]
    .filter((element) => element.checkVisibility())
    .filter((element) => {
      const box = element.getBoundingClientRect();
      return box.left < -1 || box.right > width + 1;
    })
    .map((element) => `${element.tagName.toLowerCase()}.${element.className} "${element.textContent.slice(0, 40)}"`);
  for (const element of [section, ...section.querySelectorAll(".table-wrap")]) {
    if (element.scrollWidth > element.clientWidth + 1) problems.push(`${element.className} scrolls sideways`);
  }
  return problems;
}
"""


def _overflow_problems(tab: Page) -> list[str]:
    return list(tab.evaluate(AUDIT_OVERFLOW))


def _screenshot(tab: Page, name: str) -> None:
    if UPDATE_SCREENSHOTS:
        DOCS.mkdir(exist_ok=True)
        tab.evaluate("document.activeElement?.blur()")
        tab.locator("#audit").screenshot(path=str(DOCS / name), animations="disabled", caret="hide")


def test_audit_section(tmp_path: Path, redis_server: Any, page: tuple[Page, Any]) -> None:
    tab, log = page
    settings = _browser.SERVER_ENV | {"C2C__REDIS__URL": redis_server.url, "C2C__TOOLS__AUDIT__TIMEOUT": "1.5"}
    with contextlib.ExitStack() as stack:
        server, other, dead = (
            stack.enter_context(_browser._serve(tmp_path / name, settings)) for name in ("main", "other", "dead")
        )
        other_pid = _act(other.url, "other_app")
        killed = _act(dead.url, "dead_app")
        _kill(dead.url, killed)
        tab.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
        _browser._log_in(tab, server)
        nav = tab.get_by_role("navigation", name="Sections").get_by_role("link")
        expect(nav.filter(has_text="Audit")).to_have_attribute("href", "#audit")
        tab.locator("#set-level-name").fill("browser_app.audited")
        tab.get_by_role("button", name="Set level", exact=True).click()
        expect(tab.locator("[data-output=set-level]")).not_to_be_empty()
        _browser._settle(tab)

        _open_audit_by_keyboard(tab)
        rows = tab.locator("#audit tbody tr")
        actions = rows.locator("td.audit-action").all_text_contents()
        assert actions[:2] == ["Level set", "Login"], actions  # newest first
        assert {"Level set", "Login", "Refused logins"} <= set(actions)
        expect(rows.first.locator("td.audit-who")).to_have_text("secret")
        expect(rows.first.locator("td.audit-client")).to_have_text("127.0.0.1")
        expect(rows.first.locator("td.audit-details")).to_have_text("browser_app.audited → DEBUG")
        replicas = set(rows.locator("td.audit-replica").all_text_contents())
        assert len(replicas) == 2, replicas  # both live replicas' actions
        assert any(f"({other_pid})" in replica for replica in replicas)
        expect(rows.filter(has_text="Refused logins").locator("td.audit-details")).to_contain_text("1 refused")
        missing = tab.locator("#audit .audit-replicas")
        expect(missing).to_contain_text("1 not answering")
        expect(missing.locator("li .badge")).to_have_text("missing")
        expect(missing.locator("li")).to_contain_text(f"({killed})")
        assert SECRET not in tab.content()

        for viewport, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
            tab.set_viewport_size(viewport)  # type: ignore[arg-type]
            for scheme in ("light", "dark"):
                assert _browser._theme_problems(tab, scheme) == []
                if viewport is DESKTOP or scheme == "light":
                    _screenshot(tab, f"audit-{scheme}{suffix}.png".replace("-light-phone", "-phone"))
            assert _overflow_problems(tab) == []
            # The whole page too: the Replicas table and the level change's answers, with a replica
            # killed (a long MissingAnswer), fit a phone.
            assert _browser._overflow_problems(tab) == []
        assert log.errors == [], "\n".join(log.errors)
        assert _browser._csp_violations(tab) == []


def test_audit_section_is_for_admins_only(tmp_path: Path, page: tuple[Page, Any]) -> None:
    """Without a login there is no Audit section nor link."""
    tab, log = page
    with _browser._serve(tmp_path / "server", _browser.SERVER_ENV) as server:
        tab.goto(f"{server.url}/c2c/")
        expect(tab.locator("#audit")).to_have_count(0)
        expect(tab.get_by_role("navigation", name="Sections").get_by_role("link", name="Audit")).to_have_count(0)
    assert log.errors == [], "\n".join(log.errors)
