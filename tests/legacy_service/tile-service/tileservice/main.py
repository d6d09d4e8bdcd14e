"""The tile service application, wired as the c2casgiutils 0.14 README and scaffold wire one."""

import base64
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Protocol

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

import c2casgiutils
from c2casgiutils import auth, broadcast, config, headers, health_checks, redis_utils
from c2casgiutils.auth import READ_ONLY_AUTH_CONFIG, AuthConfig, AuthInfo
from c2casgiutils.broadcast import MissingAnswer
from c2casgiutils.broadcast import types as broadcast_types
from c2casgiutils.config import GitHubAccessType
from tileservice.config import settings

_LOG = logging.getLogger(__name__)

# Pushing to the service's repository is needed to purge the tile caches.
WRITE_AUTH_CONFIG = AuthConfig(
    github_repository=settings.admin_repository,
    github_access_type_read_write=settings.admin_access_type,
)
READ_AUTH_CONFIG = AuthConfig(
    github_repository=settings.admin_repository,
    github_access_type_read_only=settings.read_access_type,
)
ADMIN_AUTH_CONFIG = AuthConfig(
    github_repository=settings.admin_repository,
    github_access_type_admin=GitHubAccessType.ADMIN,
)

# Two databases: the layer catalogue and the tile cache index.
main_engine = create_async_engine(f"sqlite+aiosqlite:///{settings.main_database}")
MainSession = async_sessionmaker(main_engine, expire_on_commit=False)
cache_engine = create_async_engine(f"sqlite+aiosqlite:///{settings.cache_database}")
CacheSession = async_sessionmaker(cache_engine, expire_on_commit=False)

health_checks.FACTORY.add(health_checks.Redis(tags=["liveness", "redis", "all"]))
health_checks.FACTORY.add(health_checks.SQLAlchemy(Session=MainSession, tags=["database", "main", "all"]))
health_checks.FACTORY.add(health_checks.SQLAlchemy(Session=CacheSession, tags=["database", "cache", "all"]))

_TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

# A transparent 1x1 PNG: the tiles of this service are all the same.
_TILE = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
# Tiles rendered by this replica, per layer: what a purge empties.
_RENDERED: dict[str, set[str]] = {}


class PurgeResult(BaseModel):
    """What one replica purged."""

    layer: str
    removed: int


async def _purge_cache(*, layer: str) -> PurgeResult:
    """Forget the tiles of a layer rendered by this replica (called on every replica)."""
    removed = len(_RENDERED.pop(layer, set()))
    _LOG.info("Purged %d tiles of %s", removed, layer)
    return PurgeResult(layer=layer, removed=removed)


class PurgeHandler(Protocol):
    """The broadcast purge: every replica's answer."""

    async def __call__(
        self, *, layer: str
    ) -> list[broadcast_types.BroadcastResponse[PurgeResult] | MissingAnswer] | None: ...


# Late assignment (README pattern): set by the lifespan.
purge_cache: PurgeHandler = None  # type: ignore[assignment]


@asynccontextmanager
async def _lifespan(main_app: FastAPI) -> AsyncIterator[None]:
    """Handle application lifespan events."""
    _LOG.info("Starting the tile service")
    await c2casgiutils.startup(main_app)
    global purge_cache  # pylint: disable=global-statement
    purge_cache = await broadcast.decorate(_purge_cache, expect_answers=True)
    yield


app = FastAPI(title="Tile service", lifespan=_lifespan)
app.mount("/c2c", c2casgiutils.app)
# Login and logout at the application level too (the c2c console has its own under /c2c/auth).
app.include_router(auth.router, prefix="/auth", tags=["auth"])

# Rules written for 0.14: the path is matched without its leading slash.
app.add_middleware(
    headers.ArmorHeaderMiddleware,
    headers_config={
        "http": {"headers": {"Strict-Transport-Security": None} if config.settings.http else {}},
        "tiles": {
            "path_match": r"^tiles/",
            "headers": {
                "Cross-Origin-Resource-Policy": "cross-origin",
                "Access-Control-Allow-Origin": "*",
                "Cache-Control": ["public", "max-age=86400"],
            },
            "order": 1,
        },
        "admin_ui": {
            "path_match": r"(.*/)?admin/?$",
            "headers": {
                "Content-Security-Policy": {
                    "default-src": ["'self'"],
                    "script-src": ["'self'", headers.CSP_NONCE],
                    "style-src": ["'self'", headers.CSP_NONCE],
                },
                "Cache-Control": "no-store",
            },
            "order": 1,
        },
        "api_read": {
            "path_match": r"^api/",
            "methods": ["GET", "HEAD"],
            "headers": {"Cache-Control": ["private", "max-age=60"]},
            "order": 2,
        },
        "api_write": {
            "path_match": r"^api/",
            "methods": ["POST", "PUT", "DELETE"],
            "headers": {"Cache-Control": "no-store"},
            "order": 2,
        },
        "not_api": {
            "path_match": r"^(?!api/)",
            "headers": {"X-Robots-Tag": "noindex, nofollow"},
            "order": 3,
        },
    },
)


async def require_write(
    auth_info: Annotated[AuthInfo, Depends(auth.get_auth)], request: Request, response: Response
) -> None:
    """Dependency: push access to the service's repository."""
    await auth.require_access(auth_info, WRITE_AUTH_CONFIG, request, response)


@app.get("/")
async def root() -> dict[str, str]:
    """Say hello."""
    return {"service": "tileservice"}


@app.get("/tiles/{layer}/{z}/{x}/{y}.png")
async def tile(layer: str, z: int, x: int, y: int) -> Response:
    """Serve a tile (and count the hits of the layer in Redis, for every replica)."""
    if layer not in settings.layers:
        raise HTTPException(status_code=404, detail=f"Unknown layer {layer}")
    _RENDERED.setdefault(layer, set()).add(f"{z}/{x}/{y}")
    master, _, _ = redis_utils.get()
    if master is not None:
        await master.incr(settings.hits_prefix + layer)
    return Response(content=_TILE, media_type="image/png")


@app.get("/api/layers")
async def layers() -> dict[str, list[str]]:
    """The layers served."""
    return {"layers": settings.layers}


@app.get("/api/hits/{layer}")
async def hits(layer: str) -> dict[str, Any]:
    """How many tiles of the layer were served, by every replica."""
    _, replica, _ = redis_utils.get()
    if replica is None:
        raise HTTPException(status_code=503, detail="Redis is not configured")
    value = await replica.get(settings.hits_prefix + layer)
    return {"layer": layer, "hits": int(value or 0)}


@app.post("/api/layers/{layer}/purge", dependencies=[Depends(require_write)])
async def purge(layer: str) -> dict[str, Any]:
    """Purge the tiles of a layer on every replica."""
    answers = await purge_cache(layer=layer)
    replicas: list[dict[str, Any]] = []
    missing = 0
    for answer in answers or []:
        if isinstance(answer, MissingAnswer):
            missing += 1
        else:
            replicas.append({"hostname": answer.hostname, "pid": answer.pid, "removed": answer.payload.removed})
    return {"layer": layer, "replicas": replicas, "missing": missing}


@app.get("/api/access")
async def access(
    auth_info: Annotated[AuthInfo, Depends(auth.get_auth)], request: Request, response: Response
) -> dict[str, Any]:
    """What the caller may do (the UI hides what it may not)."""
    return {
        "logged_in": auth_info.is_logged_in,
        "login": auth_info.user.login,
        "read": await auth.check_access(auth_info, READ_ONLY_AUTH_CONFIG, request, response),
        "read_layers": await auth.check_access(auth_info, READ_AUTH_CONFIG, request, response),
        "write": await auth.check_access(auth_info, WRITE_AUTH_CONFIG, request, response),
    }


class Job(BaseModel):
    """A seeding job for the worker."""

    layer: str
    zoom: int = 0


@app.post("/api/jobs", dependencies=[Depends(auth.auth_required)])
async def add_job(job: Job) -> dict[str, int]:
    """Queue a seeding job (any logged-in user)."""
    if job.layer not in settings.layers:
        raise HTTPException(status_code=400, detail=f"Unknown layer {job.layer}")
    master, _, _ = redis_utils.get()
    if master is None:
        raise HTTPException(status_code=503, detail="Redis is not configured")
    length = await master.lpush(settings.jobs_key, job.model_dump_json())
    return {"queued": int(length)}


@app.delete("/api/jobs")
async def clear_jobs(
    access_context: Annotated[auth.AccessContext, Depends(auth.get_access_context)],
) -> dict[str, int]:
    """Drop every queued job (admin only)."""
    await access_context.require_access(ADMIN_AUTH_CONFIG)
    master, _, _ = redis_utils.get()
    if master is None:
        raise HTTPException(status_code=503, detail="Redis is not configured")
    removed = await master.delete(settings.jobs_key)
    return {"removed": int(removed)}


@app.get("/api/session")
async def session(request: Request) -> dict[str, Any]:
    """The caller's session, read from the c2c authentication cookie."""
    cookie = request.cookies.get(config.settings.auth.jwt.cookie.name)
    if cookie is None:
        raise HTTPException(status_code=401, detail="Not logged in")
    secret = config.settings.auth.jwt.secret
    if secret is None:
        raise HTTPException(status_code=503, detail="No session secret configured")
    try:
        payload = jwt.decode(cookie, secret, algorithms=["HS256"])
    except jwt.InvalidTokenError as error:
        raise HTTPException(status_code=401, detail="Invalid session") from error
    return {
        "logged_in": True,
        "login": payload.get("login", ""),
        "display_name": payload.get("display_name", ""),
        "expires": payload["exp"],
        "claims": sorted(payload),
    }


@app.get("/admin/")
async def admin_ui(request: Request, auth_info: Annotated[AuthInfo, Depends(auth.get_auth)]) -> Response:
    """The administration page (inline script and style, allowed by the CSP nonce)."""
    return _TEMPLATES.TemplateResponse(
        request,
        "admin.html",
        {
            "nonce": request.state.nonce,
            "logged_in": auth_info.is_logged_in,
            "login": auth_info.user.login,
            "layers": settings.layers,
        },
    )
