"""The audit trail: the admin actions of every replica (`GET /c2c/audit`, admin access).

Admin actions are INFO records with structured fields (`c2c_auth.AUDIT_FIELDS`: `audit_action`,
`audit_who`, `audit_client`, `audit_time`, `audit_details`, given with `extra=`):

- c2c-auth writes logins, logouts and refused logins (counted per budget and minute) on
  `c2c_auth.audit`;
- the logging tool writes `level_set` and `level_deleted` on `c2casgiutils.audit` (`record()`).

`install()` (called by `c2casgiutils.startup`) puts one `AuditHandler` on both loggers (and sets
them to INFO when they have no level): it keeps the last `C2C__TOOLS__AUDIT__SIZE` records of the
process in memory. `GET /c2c/audit?limit=` asks every replica for its records through broadcast
(channel `CHANNEL`, waiting `C2C__TOOLS__AUDIT__TIMEOUT`), merges them newest first and lists the
replicas (`ok`, `missing`: expected but no answer in time, `error`: its handler failed, or its
answer was over `C2C__BROADCAST__MAX_MESSAGE_SIZE`: ask for a smaller `limit`). A record never holds
a secret, a token or a cookie. An application records its own admin actions with `record()`.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError

import c2c_auth
from c2c_auth import TemporarilyUnavailable, require_read_write_access

AUDIT_LOGGER_NAME = "c2casgiutils.audit"
"""The logger of c2c-all's admin actions (c2c-auth's are on `c2c_auth.AUDIT_LOGGER_NAME`)."""
LOG = logging.getLogger(AUDIT_LOGGER_NAME)
CHANNEL = "c2casgiutils.tools.audit.entries"
"""The broadcast channel on which each replica answers with its records."""
MAX_LIMIT = 1000

__all__ = [
    "AUDIT_LOGGER_NAME",
    "CHANNEL",
    "AuditEntry",
    "AuditHandler",
    "AuditReplica",
    "AuditResponse",
    "c2c_audit",
    "get_handler",
    "install",
    "record",
    "router",
    "startup",
]


class AuditEntry(BaseModel):
    """One admin action: when (seconds since the epoch), what, who, from which client, and details."""

    time: float
    action: str
    who: str
    client: str
    logger: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    hostname: str | None = None
    pid: int | None = None


class AuditReplica(BaseModel):
    """A replica of the answer: `ok` (with its number of records), `missing` or `error`."""

    hostname: str | None = None
    pid: int | None = None
    status: Literal["ok", "missing", "error"]
    entries: int = 0
    detail: str | None = None


class AuditResponse(BaseModel):
    """The answer of `GET /c2c/audit`: the records of every replica, newest first, and the replicas."""

    entries: list[AuditEntry]
    replicas: list[AuditReplica]


def _entry(record: logging.LogRecord) -> dict[str, Any]:
    details = getattr(record, "audit_details", None)
    return {
        "time": float(getattr(record, "audit_time", record.created)),
        "action": str(getattr(record, "audit_action", "other")),
        "who": str(getattr(record, "audit_who", "unknown")),
        "client": str(getattr(record, "audit_client", "unknown")),
        "logger": record.name,
        "message": record.getMessage()[:500],
        "details": dict(details) if isinstance(details, dict) else {},
    }


class AuditHandler(logging.Handler):
    """Keeps the last `size` audit records of the process in memory (as JSON-ready dictionaries)."""

    def __init__(self, size: int) -> None:
        super().__init__(logging.INFO)
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self._guard = threading.Lock()

    @property
    def size(self) -> int:
        """How many records are kept."""
        return self._entries.maxlen or 0

    def resize(self, size: int) -> None:
        """Keep `size` records from now on (the newest ones stay)."""
        with self._guard:
            if size != self.size:
                self._entries = collections.deque(self._entries, maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record."""
        try:
            entry = _entry(record)
        except Exception:  # a record we cannot read must not break the caller
            self.handleError(record)
            return
        with self._guard:
            self._entries.append(entry)

    def entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The kept records, newest first (at most `limit`)."""
        with self._guard:
            newest_first = list(reversed(self._entries))
        return newest_first if limit is None else newest_first[:limit]

    def clear(self) -> None:
        """Forget the kept records."""
        with self._guard:
            self._entries.clear()


_HANDLER: AuditHandler | None = None


def _size() -> int:
    from c2casgiutils import config

    return config.settings.tools.audit.size


def get_handler() -> AuditHandler:
    """The process's audit handler (created on first use, not installed)."""
    global _HANDLER
    if _HANDLER is None:
        _HANDLER = AuditHandler(_size())
    return _HANDLER


def install() -> AuditHandler:
    """Put the audit handler on `c2c_auth.audit` and `c2casgiutils.audit` (once), sized by `C2C__TOOLS__AUDIT__SIZE`.

    A logger without a level is set to INFO, so that the records reach the handler whatever the
    root level.
    """
    handler = get_handler()
    handler.resize(_size())
    for name in (c2c_auth.AUDIT_LOGGER_NAME, AUDIT_LOGGER_NAME):
        logger = logging.getLogger(name)
        if handler not in logger.handlers:
            logger.addHandler(handler)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
    return handler


async def record(
    request: Request, action: str, details: dict[str, Any], auth_info: c2c_auth.AuthInfo | None = None
) -> None:
    """Write an admin action of `request`'s user on `c2casgiutils.audit` (who, client address, what, when).

    Pass the request's `AuthInfo` when the route has it (`Depends(c2c_auth.get_auth)`, resolved once per
    request): otherwise it is asked again.
    """
    info = await c2c_auth.get_auth(request, Response()) if auth_info is None else auth_info
    c2c_auth.audit_record(action, c2c_auth.audit_who(info), c2c_auth.audit_client(request), details, logger=LOG)


def _local_entries(limit: int) -> list[dict[str, Any]]:
    """The broadcast handler: this replica's records, newest first."""
    c2c_auth.flush_refused_logins()
    return get_handler().entries(max(1, min(int(limit), MAX_LIMIT)))


async def startup() -> None:
    """Answer the audit requests of the other replicas (subscribe `CHANNEL` in the running loop)."""
    from c2c_broadcast import subscribe

    await subscribe(CHANNEL, _local_entries)


def _timeout() -> float:
    from c2casgiutils import config

    return config.settings.tools.audit.timeout.total_seconds()


def _merge(answers: list[Any]) -> AuditResponse:
    from c2c_broadcast import BroadcastResponse, ErrorAnswer, MissingAnswer

    entries: list[AuditEntry] = []
    replicas: list[AuditReplica] = []
    for answer in answers:
        if isinstance(answer, BroadcastResponse):
            payload = answer.payload if isinstance(answer.payload, list) else []
            found = 0
            for item in payload:
                try:
                    entries.append(AuditEntry.model_validate({**item, "hostname": answer.hostname, "pid": answer.pid}))
                except (ValidationError, TypeError):
                    continue
                found += 1
            replicas.append(AuditReplica(hostname=answer.hostname, pid=answer.pid, status="ok", entries=found))
        elif isinstance(answer, ErrorAnswer):
            replicas.append(
                AuditReplica(hostname=answer.hostname, pid=answer.pid, status="error", detail=answer.error_type)
            )
        elif isinstance(answer, MissingAnswer):
            replicas.append(AuditReplica(hostname=answer.hostname, pid=answer.pid, status="missing"))
    entries.sort(key=lambda entry: entry.time, reverse=True)
    replicas.sort(key=lambda replica: (replica.status != "ok", replica.hostname or "", replica.pid or 0))
    return AuditResponse(entries=entries, replicas=replicas)


router = APIRouter(tags=["audit"])
"""The audit route; `c2casgiutils.tools.router` includes it."""


@router.get("/audit")
async def c2c_audit(
    _: Annotated[None, Depends(require_read_write_access)],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Records per replica")] = 100,
) -> AuditResponse:
    """The last admin actions of every replica, newest first (`GET /c2c/audit`, read-write access)."""
    import asyncio

    from c2c_broadcast import BroadcastUnavailableError, broadcast

    wait = _timeout()
    try:
        async with asyncio.timeout(wait + 5):
            answers = await broadcast(CHANNEL, {"limit": limit}, expect_answers=True, timeout=wait)
    except (TimeoutError, BroadcastUnavailableError) as error:
        raise TemporarilyUnavailable(f"the replicas cannot be asked ({type(error).__name__})") from None
    return _merge(list(answers))
