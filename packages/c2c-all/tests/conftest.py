"""Fixtures shared by c2c-all's tests."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import c2casgiutils
from c2casgiutils import config
from c2casgiutils._app import create_app

ClientFactory = Callable[[Mapping[str, str]], AbstractAsyncContextManager[httpx.AsyncClient]]

# --import-mode=importlib does not put test folders on sys.path: make the shared modules
# (_c2c_all_browser.py, _c2c_all_env.py) importable.
sys.path.insert(0, str(Path(__file__).parent))

from _c2c_all_env import clear_c2c_variables  # noqa: E402 - importable once the folder is on sys.path


@pytest.fixture(autouse=True)
def _fresh_wrong_secret_budgets() -> Iterator[None]:
    """Each test starts with unspent wrong-secret budgets (process-wide without Redis), whatever ran before,
    and asks Redis at once (not skipped after an outage of the previous test)."""
    import c2c_auth._secret
    import c2c_auth._shared

    c2c_auth._secret.LIMITER.reset()
    c2c_auth._shared.reset_redis_state()
    yield
    c2c_auth._secret.LIMITER.reset()
    c2c_auth._shared.reset_redis_state()


@pytest.fixture
def fresh_logging_tool() -> Iterator[None]:
    """The logging tool (and its sync state) made anew for the test, and forgotten after it."""
    from c2casgiutils.tools import logging_ as logging_tool

    logging_tool._TOOL = None
    yield
    logging_tool._TOOL = None


@pytest.fixture
def c2c_client_factory(monkeypatch: pytest.MonkeyPatch) -> ClientFactory:
    """`async with factory({"C2C__...": ...}) as client`: an application with the /c2c app mounted and started.

    Only the given `C2C__` variables are set (the others are removed), the toolkit is started and
    shut down around the client, and the environment is put back and re-read afterwards.
    """

    @contextlib.asynccontextmanager
    async def factory(env: Mapping[str, str]) -> AsyncIterator[httpx.AsyncClient]:
        clear_c2c_variables(monkeypatch)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        config.reload()
        app = FastAPI()
        app.mount("/c2c", create_app())
        await c2casgiutils.startup(app)
        try:
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield client
        finally:
            await c2casgiutils.shutdown()
            clear_c2c_variables(monkeypatch)
            config.reload()

    return factory


@pytest.fixture
async def redis_client(
    request: pytest.FixtureRequest, c2c_client_factory: ClientFactory, redis_server: Any, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the /c2c app on the test's real Redis (`C2C__REDIS__TIMEOUT` 0.5 s), whose shared
    secret is the test module's `SECRET`."""
    env = {
        "C2C__AUTH__SECRET": request.module.SECRET,
        "C2C__REDIS__URL": redis_server.url,
        "C2C__REDIS__TIMEOUT": "0.5",
        "C2C__TOOLS__VERSIONS_FILE": str(tmp_path / "versions.json"),
    }
    async with c2c_client_factory(env) as client:
        yield client


# The browser tests' fixtures (headless Debian Chromium, a fresh context per test); `_c2c_all_browser` and
# Playwright are imported only by the tests that use them.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A `playwright.sync_api.Browser`: Debian's headless Chromium, closed after the module."""
    import _c2c_all_browser as _browser

    with _browser.launch_browser() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """`(Page, BrowserLog)`: a fresh context (no cookies), fixed viewport, light scheme, waits bounded."""
    import _c2c_all_browser as _browser

    with _browser.open_page(browser) as opened:
        yield opened


@pytest.fixture
def sentry_stand_in() -> Iterator[Any]:
    """A `_sentry_stand_in.SentryStandIn`: a real local HTTP server standing in for Sentry."""
    import _sentry_stand_in

    with _sentry_stand_in.sentry_stand_in() as stand_in:
        yield stand_in
