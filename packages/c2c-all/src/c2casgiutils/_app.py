"""The `/c2c` sub-application: index page, health checks, authentication and the tools.

Mount it with `app.mount("/c2c", c2casgiutils.app)`. Routes (relative to the mount):

| route | access |
|---|---|
| `GET /` (`c2c_index`) | everyone; content depends on the caller's access |
| `GET /health_checks`, `/health` | everyone (details per `C2C__HEALTH_CHECKS__DETAILS`) |
| `/auth/...` | see c2c-auth |
| `GET /headers/...` | read-only |
| `GET /logging/level`, `GET /logging/overrides` | read-only |
| `POST /logging/level`, `DELETE /logging/level` | read-write |
| `GET /versions` | read-only |
| `GET /static/...` (`c2c_static`) | everyone |

The OpenAPI schema and its documentation pages are not served: they would describe every admin
endpoint to anonymous callers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib.metadata import version
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

import c2c_auth
import c2c_health
from c2casgiutils.tools import headers as headers_tool
from c2casgiutils.tools import logging_ as logging_tool

LOG = logging.getLogger(__name__)

_HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(_HERE / "templates"))

__all__ = ["access_summary", "create_app"]


async def _read_json(path: Path) -> Any:
    def read() -> Any:
        return json.loads(path.read_text(encoding="utf-8"))

    return await asyncio.to_thread(read)


async def access_summary(request: Request, response: Response) -> dict[str, Any]:
    """Who is calling and what they may do, as the index page shows it."""
    info = await c2c_auth.get_auth(request, response)
    read_only, read_write, admin = (
        await c2c_auth.check_read_only_access(info, request, response),
        await c2c_auth.check_read_write_access(info, request, response),
        await c2c_auth.check_admin_access(info, request, response),
    )
    user = info.user
    return {
        "mode": c2c_auth.auth_type().name.lower(),
        "is_logged_in": info.is_logged_in,
        "display_name": (user.display_name or user.login or None) if info.is_logged_in else None,
        "user_url": (user.url or None) if info.is_logged_in else None,
        "read_only": read_only,
        "read_write": read_write,
        "admin": admin,
    }


async def _authorized_for_details(request: Request) -> bool:
    """Health-check details are shown to callers with read-only access."""
    response = Response()
    info = await c2c_auth.get_auth(request, response)
    return await c2c_auth.check_read_only_access(info, request, response)


def create_app() -> FastAPI:
    """Build a new `/c2c` sub-application (the package's `app` is one built on first use)."""
    from c2casgiutils import config

    app = FastAPI(title="C2C ASGI Utils", docs_url=None, redoc_url=None, openapi_url=None)
    read_only = c2c_auth.require_read_only_access
    read_write = c2c_auth.require_read_write_access

    app.include_router(c2c_health.create_router(authorize=_authorized_for_details))
    app.include_router(c2c_auth.create_router(), prefix="/auth")
    app.include_router(headers_tool.create_router(read_only))
    app.include_router(logging_tool.create_router(read_only, read_write))

    @app.get("/versions", dependencies=[Depends(read_only)], tags=["versions"])
    async def versions() -> Any:
        """The `versions.json` written by `c2casgiutils-genversion` (`C2C__TOOLS__VERSIONS_FILE`)."""
        path = Path(config.settings.tools.versions_file)
        try:
            return await _read_json(path)
        except FileNotFoundError:
            raise HTTPException(404, f"no versions file ({path.name}): run c2casgiutils-genversion") from None
        except (OSError, ValueError) as error:
            LOG.error("Cannot read the versions file %s: %s", path, error)
            raise HTTPException(500, "the versions file cannot be read (see the logs)") from None

    @app.get("/", response_class=HTMLResponse, name="c2c_index", include_in_schema=False)
    async def index(request: Request) -> HTMLResponse:
        """The admin page."""
        access = await access_summary(request, Response())
        context = {
            "request": request,
            "nonce": getattr(request.state, "nonce", ""),
            # Paths, not absolute URLs: no mixed content behind a TLS proxy without forwarded headers.
            "base": request.scope.get("root_path", "").rstrip("/"),
            "auth": access,
            "application_module": config.settings.tools.logging.application_module,
            "version": version("c2c-all"),
        }
        response = TEMPLATES.TemplateResponse(request, "index.html", context)
        response.headers["Cache-Control"] = "no-store"
        # A stale session cookie cleared by get_auth must reach the browser.
        return c2c_auth.apply_pending_cookies(request, response)

    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="c2c_static")
    return app
