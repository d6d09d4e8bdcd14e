# ruff: noqa: E501  (the README samples are kept verbatim, long lines included)
"""Every code sample of the c2casgiutils README runs unchanged against c2c-all.

Each sample below is the README's code as written. A sample assumes names it does not import
(`FastAPI`, `_LOGGER`, `your_async_sessionmaker`...): the `PRELUDE` provides them, the way the
surrounding application would. The `DRIVER` then exercises what the sample built (lifespan,
requests, broadcast calls). Each runs in its own Python process: the samples are module-level code
with process-wide effects (metrics registry, health-check factory, Sentry).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from c2c_testing import free_port

PRELUDE = """
import asyncio, json, logging, os, sys
from pathlib import Path
from typing import Any
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.testclient import TestClient
from pydantic import BaseModel
from c2casgiutils import headers
_LOGGER = logging.getLogger("sample")
"""

MAIN_APP = '''
import c2casgiutils
from c2casgiutils import broadcast
from c2casgiutils import config
from prometheus_client import start_http_server
from prometheus_fastapi_instrumentator import Instrumentator
from contextlib import asynccontextmanager
@asynccontextmanager
async def _lifespan(main_app: FastAPI) -> None:
    """Handle application lifespan events."""
    _LOGGER.info("Starting the application")
    await c2casgiutils.startup(main_app)
    yield
app = FastAPI(title="My fastapi_app application", lifespan=_lifespan)
app.mount('/c2c', c2casgiutils.app)
# For security headers (and compression)
# Add TrustedHostMiddleware (should be first)
app.add_middleware(
    TrustedHostMiddleware,
    allowed_hosts=["*"], # Configure with specific hosts in production
)
# Add GZipMiddleware
app.add_middleware(GZipMiddleware, minimum_size=1000)
# Set all CORS origins enabled
app.add_middleware(
    CORSMiddleware,
    allow_origins=["*"],
    allow_credentials=True,
    allow_methods=["*"],
    allow_headers=["*"],
)
app.add_middleware(headers.ArmorHeaderMiddleware,
    headers_config={
        "http": {"headers": {"Strict-Transport-Security": None} if not config.settings.http else {}},
    }
)
# Optional: trust host/port from forwarded proxy headers
if config.settings.proxy_headers.type != "none":
    app.add_middleware(
        headers.ForwardedHeadersMiddleware,
        trusted_hosts=config.settings.proxy_headers.trusted_hosts,
        headers_type=config.settings.proxy_headers.type,
    )
# Get Prometheus HTTP server port from environment variable 9000 by default
start_http_server(config.settings.prometheus.port)
instrumentator = Instrumentator(should_instrument_requests_inprogress=True)
instrumentator.instrument(app)
'''

MAIN_APP_DRIVER = """
with TestClient(app, base_url="https://testserver", client=("127.0.0.1", 50000)) as client:
    index = client.get("/c2c/")
    assert index.status_code == 200, index.status_code
    assert "nonce-" in index.headers["content-security-policy"]
    health = client.get("/c2c/health_checks")
    assert health.status_code == 200, health.text
    assert health.json()["entities"] == []
    assert health.headers["x-frame-options"] == "DENY"
    # The sample removes HSTS when C2C__HTTP is false (the README's inverted condition, kept as written).
    assert "strict-transport-security" not in health.headers
    forwarded = client.get("/c2c/health_checks", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example"})
    assert forwarded.status_code == 200
import urllib.request
metrics = urllib.request.urlopen(f"http://127.0.0.1:{config.settings.prometheus.port}/metrics", timeout=5).read().decode()
assert "http_requests_total" in metrics or "http_request_duration" in metrics, metrics[:500]
print("OK")
"""

BROADCAST = '''
import c2casgiutils
from c2casgiutils.broadcast import MissingAnswer
from c2casgiutils.broadcast import types as broadcast_types
from typing import Protocol
class EchoResponse(BaseModel):
    """Response from broadcast endpoint."""
    result: list[dict[str, Any]] | None = None
class EchoHandlerProto(Protocol):
    async def __call__(self, *, message: str) -> list[broadcast_types.BroadcastResponse[EchoResponse]|MissingAnswer] | None: ...
# Late assignment
echo_handler: EchoHandlerProto = None # type: ignore[assignment]
# Create a handler that will receive broadcasts
async def _echo_handler(*, message: str) -> EchoResponse:
    """Echo handler for broadcast messages."""
    return EchoResponse(message="Broadcast echo: " + message)
# Subscribe the handler to a channel on module import
@asynccontextmanager
async def _lifespan(main_app: FastAPI) -> None:
    """Handle application lifespan events."""
    _LOGGER.info("Starting the application")
    await c2casgiutils.startup(main_app)
    # Register the echo handler
    global echo_handler # pylint: disable=global-statement
    echo_handler = await broadcast.decorate(_echo_handler, expect_answers=True)
    yield
'''

BROADCAST_PRELUDE = """
from contextlib import asynccontextmanager
from c2casgiutils import broadcast
"""

BROADCAST_DRIVER = """
app = FastAPI(lifespan=_lifespan)
@app.get("/echo")
async def echo(message: str) -> Any:
    answers = await echo_handler(message=message)
    return [answer.model_dump() for answer in answers]
with TestClient(app) as client:
    answers = client.get("/echo", params={"message": "hi"}).json()
assert len(answers) == 1, answers
assert answers[0]["pid"] == os.getpid()
assert answers[0]["payload"] == {"result": None}  # the README's model has no `message` field
print("OK")
"""

HEALTH_CHECKS = """
from c2casgiutils import health_checks
# Add Redis health check
health_checks.FACTORY.add(health_checks.Redis(tags=["liveness", "redis", "all"]))
# Add SQLAlchemy database connection check
from sqlalchemy.ext.asyncio import async_sessionmaker, AsyncSession
health_checks.FACTORY.add(health_checks.SQLAlchemy(Session=your_async_sessionmaker, tags=["database", "all"]))
# Add Alembic migration version check
health_checks.FACTORY.add(health_checks.Alembic(
    Session=your_async_sessionmaker,
    config_file="alembic.ini",
    tags=["migrations", "database", "all"]
))
from c2casgiutils.health_checks import Check, Result
class MyCustomCheck(Check):
    async def check(self) -> Result:
        # Your check logic here
        try:
            # Perform your check...
            return Result(status_code=200, payload={"message": "Everything is fine!"})
        except Exception as e:
            return Result(status_code=500, payload={"error": str(e)})
# Add your custom check
health_checks.FACTORY.add(MyCustomCheck(tags=["custom", "all"]))
"""

HEALTH_PRELUDE = """
from sqlalchemy.ext.asyncio import async_sessionmaker as _maker, create_async_engine
your_async_sessionmaker = _maker(create_async_engine("sqlite+aiosqlite:///" + os.environ["SAMPLE_DB"]))
"""

HEALTH_DRIVER = """
import c2casgiutils
app = FastAPI()
app.mount("/c2c", c2casgiutils.app)
with TestClient(app) as client:
    custom = client.get("/c2c/health_checks", params={"name": "MyCustomCheck"})
    assert custom.status_code == 200, custom.text
    # Payloads are public only with C2C__HEALTH_CHECKS__DETAILS=always (set by the test); by default an
    # anonymous caller sees {} for a healthy check and a generic error for a failing one.
    assert custom.json()["entities"][0]["payload"] == {"message": "Everything is fine!"}
    database = client.get("/c2c/health_checks", params={"tags": "database,critical"})
    names = sorted(entity["name"] for entity in database.json()["entities"])
    assert names == ["Alembic", "SQLAlchemy"], names
    sqlalchemy = [e for e in database.json()["entities"] if e["name"] == "SQLAlchemy"][0]
    assert sqlalchemy["status_code"] == 200
    redis = client.get("/c2c/health_checks", params={"name": "Redis"})
    assert redis.status_code == 200  # Redis not configured: nothing to check
print("OK")
"""

ARMOR_DEFAULT = """
from c2casgiutils.headers import ArmorHeaderMiddleware
# Use default security headers
app.add_middleware(ArmorHeaderMiddleware)
"""

ARMOR_RULES = """
from c2casgiutils.headers import ArmorHeaderMiddleware
headers_config = {
    "api_endpoints": {
        "path_match": r"^/api/.*", # Regex pattern for paths
        "headers": {
            "Access-Control-Allow-Origin": "*",
            "X-Custom-Header": "api-value"
        },
        "order": 1 # Processing order
    },
    "admin_section": {
        "netloc_match": r"^admin\\..*", # Regex for host matching
        "path_match": r"^/admin/.*",
        "headers": {
            "X-Robots-Tag": "noindex, nofollow"
        },
        "status_code": 200, # Only apply for specific status code
        "order": 2
    },
    "success_responses": {
        "headers": {
            "Cache-Control": ["public", "max-age=3600"]
        },
        "status_code": (200, 299), # Apply for a range of status codes (200-299)
        "order": 3
    },
    "api_methods": {
        "path_match": r"^/api/.*",
        "methods": ["GET", "HEAD"], # Only apply for specific HTTP methods
        "headers": {
            "Cache-Control": ["public", "max-age=3600"]
        },
        "order": 4
    },
    "remove_header": {
        "headers": {
            "Server": None # Remove header by setting to None
        }
    }
}
app.add_middleware(ArmorHeaderMiddleware, headers_config=headers_config)
"""

VALUE_TYPES = """
headers_config = {
    # String value
    "X-Custom": "value",
    # List (joined with "; ")
    "Cache-Control": ["no-cache", "no-store", "must-revalidate"],
    # Dictionary (for complex headers like CSP)
    "Content-Security-Policy": {
        "default-src": ["'self'"],
        "script-src": ["'self'", "https://cdn.example.com"],
        "style-src": ["'self'", "'unsafe-inline'"]
    },
    # List (joined with ", ") for Permissions-Policy
    "Permissions-Policy": ["geolocation=()", "microphone=()"],
    # Remove header
    "Unwanted-Header": None
}
"""

NONCE = """
from c2casgiutils import headers
# Configure CSP with nonce
custom_config = {
    "my_page": {
        "path_match": r"^/my-page/?",
        "headers": {
            "Content-Security-Policy": {
                "default-src": ["'self'"],
                "script-src": ["'self'", headers.CSP_NONCE],
                "style-src": ["'self'", headers.CSP_NONCE],
            }
        }
    }
}
"""

METHODS = """
config_methods = {
    "api_post_endpoints": {
        "path_match": r"^/api/.*",
        "methods": ["POST", "PUT", "PATCH"], # Only apply for these methods
        "headers": {
            "Cache-Control": "no-store"
        }
    },
    "api_get_endpoints": {
        "path_match": r"^/api/.*",
        "methods": ["GET", "HEAD"], # Only apply for GET and HEAD requests
        "headers": {
            "Cache-Control": ["public", "max-age=3600"]
        }
    }
}
"""

HEADERS_DRIVER = """
from fastapi.templating import Jinja2Templates
from c2casgiutils.headers import ArmorHeaderMiddleware
template_dir = Path(os.environ["SAMPLE_DIR"])
(template_dir / "index.html.jinja2").write_text('<script nonce="{{ nonce }}">1</script>')
templates = Jinja2Templates(directory=str(template_dir))

def build(config, use_default=True):
    inner = FastAPI()

    @inner.api_route("/api/items", methods=["GET", "POST"])
    async def items() -> dict[str, str]:
        return {"ok": "yes"}

    @inner.get("/admin/x")
    async def admin() -> dict[str, str]:
        return {}

    @inner.get("/my-page")
    async def page(request: Request) -> Any:
        # The README's call is `TemplateResponse("index.html.jinja2", {...})`, Starlette's signature
        # before 1.0; Starlette 1.x takes the request first. The context is the README's.
        return templates.TemplateResponse(
            request,
            "index.html.jinja2",
            {
                "request": request,
                "nonce": getattr(request.state, "nonce", ""),
            },
        )

    inner.add_middleware(ArmorHeaderMiddleware, headers_config=config, use_default=use_default)
    return TestClient(inner)

# Default rules only.
app = FastAPI()
ARMOR_DEFAULT_PLACEHOLDER
assert TestClient(app).get("/nothing").headers["x-content-type-options"] == "nosniff"

client = build(headers_config)
api = client.get("/api/items")
assert api.headers["x-custom-header"] == "api-value", dict(api.headers)
assert api.headers["access-control-allow-origin"] == "*"
assert api.headers["cache-control"] == "public, max-age=3600"
assert "x-robots-tag" not in api.headers
admin = client.get("/admin/x", headers={"host": "admin.example.com"})
assert admin.headers["x-robots-tag"] == "noindex, nofollow"
assert "x-robots-tag" not in client.get("/admin/x").headers

methods_client = build(config_methods)
assert methods_client.post("/api/items").headers["cache-control"] == "no-store"
assert methods_client.get("/api/items").headers["cache-control"] == "public, max-age=3600"

values_client = build({"values": {"headers": headers_config_values}}, use_default=False)
values = values_client.get("/api/items").headers
assert values["x-custom"] == "value"
assert values["cache-control"] == "no-cache, no-store, must-revalidate"
assert values["permissions-policy"] == "geolocation=(), microphone=()"
assert "script-src 'self' https://cdn.example.com" in values["content-security-policy"]

nonce_client = build(custom_config)
page = nonce_client.get("/my-page")
csp = page.headers["content-security-policy"]
nonce = page.text.split('nonce="')[1].split('"')[0]
assert f"'nonce-{nonce}'" in csp, (csp, page.text)
print("OK")
"""

SENTRY = """
import os
import sentry_sdk
from c2casgiutils import config
# Initialize Sentry if the URL is provided
if config.settings.sentry.dsn or 'SENTRY_DSN' in os.environ:
    _LOGGER.info("Sentry is enabled with URL: %s", config.settings.sentry.url or os.environ.get("SENTRY_DSN"))
    sentry_sdk.init(**{k: v for k, v in config.settings.sentry.model_dump().items() if v is not None and k != "tags"})
    for tag, value in config.settings.sentry.tags.items():
        sentry_sdk.set_tag(tag, value)
"""

SENTRY_DRIVER = """
client = sentry_sdk.get_client()
assert client.is_active(), "Sentry initialised from the settings"
assert client.options["environment"] == "sample-env"
assert sentry_sdk.get_isolation_scope()._tags.get("service") == "sample"
print("OK")
"""

CLI = '''
from c2casgiutils import cli
import asyncio
from argparse import ArgumentParser
async def main_() -> None:
    """Main entry point for CLI."""
    parser = ArgumentParser(description="My Application CLI")
    cli.add_arguments(parser)
    args = parser.parse_args()
    await cli.init(args)
    # Initialize Sentry if the URL is provided
    if config.settings.sentry.dsn or "SENTRY_DSN" in os.environ:
        _LOGGER.info("Sentry is enabled with URL: %s", config.settings.sentry.dsn or os.environ.get("SENTRY_DSN"))
        sentry_sdk.init(**config.settings.sentry.model_dump())
    if c2casgiutils.config.settings.prometheus.port is not None:
        prometheus_client.start_http_server(c2casgiutils.config.settings.prometheus.port)
# This method is required for console_scripts entry point
def main() -> None:
    """Main entry point for CLI."""
    asyncio.run(main_())
if __name__ == "__main__":
    main()
'''

CLI_PRELUDE = """
import c2casgiutils, prometheus_client, sentry_sdk
from c2casgiutils import config
"""

CLI_DRIVER = """
assert logging.getLogger("sample_cli").level == logging.ERROR, "the logging configuration was applied"
assert sentry_sdk.get_client().is_active()
print("OK")
"""


def _run(code: str, env: dict[str, str], cwd: Path, argv: list[str] | None = None) -> None:
    script = cwd / "sample.py"
    script.write_text(code, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith(("C2C__", "SENTRY_"))}
    result = subprocess.run(
        [sys.executable, str(script), *(argv or [])],
        env={**clean, "C2C__PROMETHEUS__PORT": str(free_port()), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    assert result.stdout.strip().endswith("OK"), result.stdout


def test_main_application(tmp_path: Path) -> None:
    _run(PRELUDE + MAIN_APP + MAIN_APP_DRIVER, {}, tmp_path)


@pytest.mark.parametrize("proxy_type", ["x-forwarded", "forwarded"])
def test_main_application_with_proxy_headers(tmp_path: Path, proxy_type: str) -> None:
    env = {"C2C__PROXY_HEADERS__TYPE": proxy_type, "C2C__HTTP": "true"}
    driver = MAIN_APP_DRIVER.replace(
        'assert "strict-transport-security" not in health.headers',
        'assert "strict-transport-security" in health.headers',
    )
    _run(PRELUDE + MAIN_APP + driver, env, tmp_path)


def test_broadcast_echo(tmp_path: Path) -> None:
    _run(PRELUDE + BROADCAST_PRELUDE + BROADCAST + BROADCAST_DRIVER, {}, tmp_path)


def test_health_checks(tmp_path: Path) -> None:
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n", encoding="utf-8")
    env = {"SAMPLE_DB": str(tmp_path / "db.sqlite3"), "C2C__HEALTH_CHECKS__DETAILS": "always"}
    _run(PRELUDE + HEALTH_PRELUDE + HEALTH_CHECKS + HEALTH_DRIVER, env, tmp_path)


def test_headers(tmp_path: Path) -> None:
    driver = HEADERS_DRIVER.replace("ARMOR_DEFAULT_PLACEHOLDER", textwrap.dedent(ARMOR_DEFAULT).strip())
    code = (
        PRELUDE
        + VALUE_TYPES.replace("headers_config =", "headers_config_values =")
        + ARMOR_RULES.replace("app.add_middleware(ArmorHeaderMiddleware, headers_config=headers_config)", "")
        + NONCE
        + METHODS
        + driver
    )
    _run(code, {"SAMPLE_DIR": str(tmp_path)}, tmp_path)


def test_sentry(tmp_path: Path) -> None:
    env = {
        "C2C__SENTRY__DSN": "http://key@127.0.0.1:9/1",
        "C2C__SENTRY__ENVIRONMENT": "sample-env",
        "C2C__SENTRY__TAG_SERVICE": "sample",
    }
    _run(PRELUDE + SENTRY + SENTRY_DRIVER, env, tmp_path)


def test_cli(tmp_path: Path) -> None:
    (tmp_path / "logging.yaml").write_text(
        "version: 1\ndisable_existing_loggers: false\nloggers:\n  sample_cli:\n    level: ERROR\n", encoding="utf-8"
    )
    code = PRELUDE + CLI_PRELUDE + CLI.replace('if __name__ == "__main__":\n    main()\n', "main()\n") + CLI_DRIVER
    _run(code, {"C2C__SENTRY__DSN": "http://key@127.0.0.1:9/1"}, tmp_path)
