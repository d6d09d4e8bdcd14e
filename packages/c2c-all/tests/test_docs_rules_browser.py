"""The default `docs` / `redoc` header rules in a real browser (issue 14, item 13).

Those rules give Swagger UI and ReDoc the CSP they need, `'unsafe-inline'` scripts included. They
used to apply to any HTML page whose path ends in `docs` or `redoc`, so a script injected into a
user's page at `/user/docs` ran. They now apply to FastAPI's own pages only (`app.docs_url`,
`app.redoc_url`, relative to `root_path`).

A real uvicorn server (a subprocess) runs a FastAPI application behind `ArmorHeaderMiddleware`
with the default rules and `docs_url=app.docs_url, redoc_url=app.redoc_url`, and a route
`/{user}/{page}` whose HTML carries an inline script, standing for stored content injected into
the page. Headless Debian Chromium loads the pages. The CDN files of Swagger UI and ReDoc are
served by the test (Playwright's routing, under their real `https://cdn.jsdelivr.net/` URLs, so the
browser applies the CSP to them exactly as to the real files): small stand-ins that fetch the
OpenAPI document and write its title in the page. No request leaves the machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import _c2c_all_browser
import pytest
from playwright.sync_api import Browser, Page, Route

LOOPBACK = "127.0.0.1"
TIMEOUT_MS = 10_000
START_TIMEOUT = 60.0  # a bound for "does not hang": under coverage on two cores a start takes seconds
TITLE = "Docs rules test"

APP_SOURCE = f'''\
"""The docs-rules browser test's application: FastAPI's docs pages and a page with injected content."""

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from c2casgiutils.headers import ArmorHeaderMiddleware

app = FastAPI(title="{TITLE}")


@app.get("/{{user}}/{{page}}", response_class=HTMLResponse)
async def user_page(user: str, page: str) -> str:
    # Content stored by a user, served without escaping: the inline script the CSP must stop.
    return (
        "<!DOCTYPE html><html><head><title>notes</title></head><body><p id=content>notes</p>"
        "<script>window.injected = true; document.getElementById('content').textContent = 'injected';</script>"
        "</body></html>"
    )


app.add_middleware(ArmorHeaderMiddleware, docs_url=app.docs_url, redoc_url=app.redoc_url)
'''

# Stand-ins for the CDN bundles: each fetches the OpenAPI document (connect-src) and shows its title.
SWAGGER_BUNDLE = """
window.SwaggerUIBundle = function (config) {
  fetch(config.url).then((response) => response.json()).then((spec) => {
    document.querySelector(config.dom_id).textContent = "swagger: " + spec.info.title;
  });
};
window.SwaggerUIBundle.presets = {apis: {}};
window.SwaggerUIBundle.SwaggerUIStandalonePreset = {};
"""
REDOC_BUNDLE = """
const element = document.querySelector("redoc");
fetch(element.getAttribute("spec-url")).then((response) => response.json()).then((spec) => {
  element.textContent = "redoc: " + spec.info.title;
});
"""
CDN_FILES = {
    "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js": ("text/javascript", SWAGGER_BUNDLE),
    "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css": ("text/css", "body { margin: 0 }"),
    "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js": ("text/javascript", REDOC_BUNDLE),
}

# Runs in every document before the page's scripts: collect CSP violations.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _c2c_all_browser._serve(tmp_path_factory.mktemp("docs-rules-browser"), {}, APP_SOURCE) as running:
        yield running.url


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    """A fresh context: the CDN files served locally, any other outside request refused."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    context.add_init_script(CSP_LISTENER)

    def handle(route: Route) -> None:
        url = route.request.url
        if url.startswith(server + "/"):
            route.continue_()
        elif url in CDN_FILES:
            content_type, body = CDN_FILES[url]
            route.fulfill(status=200, content_type=content_type, body=body)
        elif url.startswith(("https://fonts.googleapis.com/", "https://fastapi.tiangolo.com/")):
            route.fulfill(status=200, content_type="text/css", body="")
        else:
            route.abort()

    context.route("**/*", handle)
    try:
        yield context.new_page()
    finally:
        context.close()


def _violations(page: Page) -> list[str]:
    return list(page.evaluate("window.__cspViolations"))


@pytest.mark.parametrize(
    ("path", "selector", "text"), [("/docs", "#swagger-ui", "swagger"), ("/redoc", "redoc", "redoc")]
)
def test_fastapis_docs_pages_still_work(page: Page, server: str, path: str, selector: str, text: str) -> None:
    """Swagger UI's inline bootstrap script and CDN bundle run; ReDoc's bundle runs; no CSP violation."""
    response = page.goto(server + path)
    assert response is not None
    assert response.status == 200
    assert "https://cdn.jsdelivr.net/npm/" in response.headers["content-security-policy"]
    page.locator(selector).filter(has_text=f"{text}: {TITLE}").wait_for()
    assert _violations(page) == []


@pytest.mark.parametrize("path", ["/user/docs", "/user/redoc", "/user/docs/"])
def test_injected_script_does_not_run_on_other_docs_paths(page: Page, server: str, path: str) -> None:
    """A page whose path merely ends in docs / redoc keeps the strict CSP: the inline script is blocked."""
    response = page.goto(server + path)
    assert response is not None
    assert response.status == 200
    # Parsing blocks on an inline script: by the load event it has run, or been refused.
    assert page.evaluate("window.injected") is None, "the injected script ran"
    assert page.locator("#content").text_content() == "notes"
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    page.wait_for_function("window.__cspViolations.length > 0")
    assert any(violation.startswith("script-src") for violation in _violations(page)), _violations(page)
