"""`Finding`, the severities, and the catalogue of every finding the deploy check can report."""

from __future__ import annotations

import dataclasses
from typing import Final, Literal

Severity = Literal["error", "warning", "info"]
"""How bad a finding is: an `error` stops a deployment, a `warning` is a risk, an `info` a remark."""

SEVERITY_RANK: Final[dict[str, int]] = {"info": 0, "warning": 1, "error": 2}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem found by the deploy check: a stable id, a severity, what is wrong and how to fix it."""

    id: str
    severity: Severity
    message: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        """The JSON form (`--json`): the keys `id`, `severity`, `message`, `fix`."""
        return {"id": self.id, "severity": self.severity, "message": self.message, "fix": self.fix}

    def __str__(self) -> str:
        return f"{self.id} [{self.severity}] {self.message}\n    fix: {self.fix}"


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of finding: its id, severity and fix; `Kind.at(message)` makes the finding."""

    id: str
    severity: Severity
    fix: str

    def at(self, message: str) -> Finding:
        """The finding of this kind with `message`."""
        return Finding(self.id, self.severity, message, self.fix)


SETTINGS_INVALID = Kind("C2C-E001", "error", "correct the variable named in the message, which says what it accepts")
APP_IMPORT = Kind("C2C-E002", "error", "pass the application as module:attribute, importable from this directory")
APP_SETTINGS_INVALID = Kind(
    "C2C-E002",
    "error",
    "correct the environment variable named in the message: the application's own settings refused it while its "
    "module was imported (the module:attribute itself is right)",
)
"""The import failed on the service's own settings (a pydantic `ValidationError`), not on a wrong name."""
MIDDLEWARE = Kind("C2C-E003", "error", "correct the middleware's configuration (the message names the rule and header)")
STARTUP = Kind("C2C-E004", "error", "make the lifespan startup succeed (the message says what failed)")
REDIS_DOWN = Kind("C2C-E005", "error", "check C2C__REDIS__URL / C2C__REDIS__SENTINELS and that Redis is reachable")
HEALTH_FAILED = Kind("C2C-E006", "error", "make the health check pass (its error is in the message)")
SHUTDOWN = Kind("C2C-E007", "error", "make the lifespan shutdown end without error within the timeout")
URL_UNREADABLE = Kind(
    "C2C-E008", "error", "give the service's /c2c URL and --secret (read-only access to /c2c/headers)"
)
TEST_AUTH = Kind("C2C-E009", "error", "unset C2C__AUTH__TEST__USERNAME outside development")
INSECURE_URL = Kind(
    "C2C-E010",
    "error",
    "give the service's https:// URL (or a loopback http:// one), or pass --allow-insecure-http to send the "
    "credentials over plain http anyway",
)
NO_AUTH = Kind(
    "C2C-W001",
    "warning",
    "set C2C__AUTH__GITHUB__... (or C2C__AUTH__SECRET): without authentication the /c2c tools are locked",
)
TRUST_ANY_PROXY = Kind(
    "C2C-W002",
    "warning",
    "list the reverse proxies' addresses or networks in C2C__PROXY_HEADERS__TRUSTED_HOSTS instead of '*'",
)
PROXY_NONE = Kind(
    "C2C-W003",
    "warning",
    "set C2C__PROXY_HEADERS__TYPE=x-forwarded (or forwarded) and C2C__PROXY_HEADERS__TRUSTED_HOSTS to the proxies",
)
SECRET_IN_QUERY = Kind(
    "C2C-W004",
    "warning",
    "set C2C__AUTH__SECRET_IN_QUERY=false (send the secret in X-API-Key or the login form)",
)
UNSIGNED_BROADCAST = Kind(
    "C2C-W005",
    "warning",
    "set C2C__BROADCAST__SECRET to a long random value shared by every replica",
)
HSTS_OVER_HTTP = Kind(
    "C2C-W006",
    "warning",
    "serve over https and unset C2C__HTTP, or remove Strict-Transport-Security with a rule in HTTP mode",
)
SHORT_JWT_SECRET = Kind(
    "C2C-W007", "warning", "set C2C__AUTH__JWT__SECRET to a long random value (openssl rand -hex 32)"
)
SHORT_SHARED_SECRET = Kind(
    "C2C-W008", "warning", "set C2C__AUTH__SECRET to a long random value, or use GitHub authentication"
)
CSP_NO_DEFAULT_SRC = Kind(
    "C2C-W009", "warning", "add a default-src directive (e.g. default-src 'self') to the rule's Content-Security-Policy"
)
UNKNOWN_VARIABLE = Kind("C2C-W010", "warning", "correct the variable's name or remove it")
CSP_NO_BASE_URI = Kind(
    "C2C-W012",
    "warning",
    "add base-uri and form-action to the rule's Content-Security-Policy (spread headers.CSP_HARDENING into it)",
)
LIVENESS_DEPENDENCY = Kind(
    "C2C-W011",
    "warning",
    "tag the check readiness (not liveness): /livez failing makes Kubernetes restart every pod during an outage",
)
CORS_ANY_ORIGIN_WITH_CREDENTIALS = Kind(
    "C2C-W013",
    "warning",
    "list the origins that may call the service (allow_origins=[...]), or set allow_credentials=False",
)
NOT_CHECKED = Kind("C2C-I001", "info", "fix the errors above, or pass the application as module:attribute")
HEALTH_NONE = Kind("C2C-I002", "info", "register health checks on c2casgiutils.health_checks.FACTORY")
SHARED_REDIS_NAMES = Kind(
    "C2C-I003",
    "info",
    "if several services share this Redis server, give each its own C2C__REDIS__BROADCAST_PREFIX, "
    "C2C__TOOLS__LOGGING__REDIS_PREFIX and C2C__AUTH__REDIS_PREFIX",
)

SHARED_SECRET_MIN_LENGTH: Final = 16
"""A shared secret (`C2C__AUTH__SECRET`) shorter than this is reported (C2C-W008)."""
JWT_SECRET_MIN_BYTES: Final[dict[str, int]] = {"HS256": 32, "HS384": 48, "HS512": 64}
"""The shortest JWT secret per algorithm (RFC 7518 section 3.2: at least the hash size)."""
