"""The `/c2c` tools: the admin page, the request-headers tool, the logging tool and the versions file.

`router` holds their routes (relative to the `/c2c` mount); `c2casgiutils.app` includes it, and an
application that builds its own sub-application may include it too:

| route | endpoint | access |
|---|---|---|
| `GET /` | `c2c_index` | everyone; the content depends on the access |
| `GET /headers/...` | `headers.c2c_headers`, `c2c_headers_path`, `c2c_headers_path2` | read-only |
| `GET /logging/level` | `logging_.c2c_logging_level` | read-only |
| `GET /logging/overrides` | `logging_.c2c_logging_overrides` | read-only |
| `POST /logging/level` | `logging_.c2c_logging_set_level` | read-write |
| `DELETE /logging/level` | `logging_.c2c_logging_delete_level` | read-write |
| `GET /audit` | `audit.c2c_audit` | read-write (admin actions of every replica) |
| `GET /config` | `config_.c2c_config` | admin |
| `GET /replicas` | `replicas.c2c_replicas` | read-only |
| `GET /versions` | `c2c_versions` | read-only |

The page loads its files from `/static` next to these routes (`c2casgiutils.app` serves them).
`startup(main_app)` starts what the tools need in the running event loop (the logging tool).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

import c2c_auth
import c2casgiutils
from c2c_auth import AuthInfo, get_auth, require_read_only_access
from c2casgiutils import auth as auth  # `auth`, `config`, `logging_tools`: attributes here in 0.14
from c2casgiutils import config as config
from c2casgiutils.tools import config_, headers, logging_
from c2casgiutils.tools import logging_ as logging_tools  # noqa: F401
from c2casgiutils.tools.audit import install as audit_install
from c2casgiutils.tools.audit import router as audit_router
from c2casgiutils.tools.audit import startup as audit_startup
from c2casgiutils.tools.replicas import installed_versions
from c2casgiutils.tools.replicas import router as replicas_router
from c2casgiutils.tools.replicas import startup as replicas_startup

if TYPE_CHECKING:
    from fastapi import FastAPI

LOG = logging.getLogger(__name__)

_PACKAGE = Path(__file__).parent.parent
TEMPLATES = Jinja2Templates(directory=str(_PACKAGE / "templates"))
"""The templates of the admin page."""

__all__ = ["access_summary", "c2c_index", "c2c_versions", "config_", "headers", "logging_", "router", "startup"]


async def access_summary(request: Request, response: Response, auth_info: AuthInfo | None = None) -> dict[str, Any]:
    """Who is calling and what they may do, as the index page shows it (`auth_info` defaults to `get_auth`'s)."""
    info = await c2c_auth.get_auth(request, response) if auth_info is None else auth_info
    # One wait for a GitHub that cannot answer, not one per level.
    levels = await c2c_auth.access_levels(info, request, response)
    user = info.user
    return {
        "mode": c2c_auth.auth_type().name.lower(),
        "is_logged_in": info.is_logged_in,
        "display_name": (user.display_name or user.login or None) if info.is_logged_in else None,
        "user_url": (user.url or None) if info.is_logged_in else None,
        "read_only": levels["read_only"],
        "read_write": levels["read_write"],
        "admin": levels["admin"],
    }


async def _read_json(path: Path) -> Any:
    def read() -> Any:
        return json.loads(path.read_text(encoding="utf-8"))

    return await asyncio.to_thread(read)


router = APIRouter()
"""Every tool route: the page, `/headers`, `/logging`, `/versions`."""


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, name="c2c_index", include_in_schema=False)
async def c2c_index(request: Request, auth_info: Annotated[AuthInfo, Depends(get_auth)]) -> HTMLResponse:
    """The admin page: what it offers depends on the caller's access."""
    access = await access_summary(request, Response(), auth_info)
    context = {
        "request": request,
        "nonce": getattr(request.state, "nonce", ""),
        # Paths, not absolute URLs: no mixed content behind a TLS proxy without forwarded headers.
        "base": request.scope.get("root_path", "").rstrip("/"),
        "auth": access,
        # The outcome of a login or logout submitted without JavaScript (c2c-auth sends the browser
        # back here with it); anything else is ignored.
        "login": request.query_params.get("login") if not access["is_logged_in"] else None,
        "application_module": config.settings.tools.logging.application_module,
        "version": c2casgiutils.__version__,  # read once at import: no metadata lookup per request
    }
    response = TEMPLATES.TemplateResponse(request, "index.html", context)
    response.headers["Cache-Control"] = "no-store"
    # A stale session cookie cleared by get_auth must reach the browser.
    return c2c_auth.apply_pending_cookies(request, response)


@router.get("/versions", tags=["versions"])
async def c2c_versions(_: Annotated[None, Depends(require_read_only_access)]) -> Any:
    """The `versions.json` written by `c2casgiutils-genversion` (`C2C__TOOLS__VERSIONS_FILE`).

    Without that file, the installed distributions in the same shape (`replicas.installed_versions`).
    """
    path = Path(config.settings.tools.versions_file)
    try:
        return await _read_json(path)
    except FileNotFoundError:
        return await asyncio.to_thread(installed_versions)
    except (OSError, ValueError) as error:
        LOG.error("Cannot read the versions file %s: %s", path, error)
        raise HTTPException(500, "the versions file cannot be read (see the logs)") from None


router.include_router(headers.router, prefix="/headers")
router.include_router(logging_.router, prefix="/logging")
router.include_router(audit_router)
router.include_router(replicas_router)
router.include_router(config_.router)


async def startup(main_app: FastAPI | None = None) -> None:
    """Start the tools in the running event loop (the logging tool); `main_app` is accepted as in 0.14 and not used."""
    await logging_.startup(main_app)
    audit_install()
    await audit_startup()
    await replicas_startup(main_app)
