"""The `health_checks` settings section and the settings class that composes it with the core sections."""

from __future__ import annotations

import datetime
from typing import Literal, Protocol

from pydantic import Field, field_validator

from c2c_config import CoreSettings, Duration, PrometheusSettings, Section, get_settings

DetailVisibility = Literal["never", "authorized", "always"]


class HealthChecksSettings(Section):
    """Health checks (`c2c_health`): timeouts, result cache and who sees the details of each check."""

    timeout: Duration = Field(
        default=datetime.timedelta(seconds=5),
        description=(
            "Default time limit of one health check (a check's own `timeout=` overrides it); "
            "a check still running then fails with the error 'timeout'"
        ),
    )
    cache_ttl: Duration = Field(
        default=datetime.timedelta(0),
        description=(
            "How long a health-check report is reused for the same filter (0 = no cache); "
            "while the cache is on, concurrent probes also share the run in progress"
        ),
    )
    details: DetailVisibility = Field(
        default="authorized",
        description=(
            "Who sees the full payload of each check (error texts, versions, URLs): 'never', 'authorized' "
            "(callers accepted by the router's authorize function; nobody when none is given) or 'always'; "
            "others get a generic message"
        ),
    )

    history_size: int = Field(
        default=60,
        ge=0,
        le=10_000,
        description=(
            "How many of its last results (time, status, latency) each check keeps in memory, per process, "
            "served at `/c2c/health_checks/history` and drawn on the /c2c page (0 = no history)"
        ),
    )

    drain_delay: Duration = Field(
        default=datetime.timedelta(0),
        description=(
            "After SIGTERM, how long `/c2c/readyz` answers 503 while the service keeps serving, before the "
            "server's own graceful shutdown starts (0 = at once); needs `startup()` and a server that handles "
            "SIGTERM in Python (uvicorn)"
        ),
    )

    @field_validator("details", mode="before")
    @classmethod
    def _lower_details(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: datetime.timedelta) -> datetime.timedelta:
        if value <= datetime.timedelta(0):
            raise ValueError("the health-check timeout must be longer than 0 s")
        return value


class Settings(CoreSettings):
    """The core sections plus `health_checks`: what `c2c_health` reads (through `get_settings(Settings)`)."""

    health_checks: HealthChecksSettings = Field(default_factory=HealthChecksSettings, description="Health checks")


class HealthSettingsSource(Protocol):
    """Any settings object with the two sections c2c-health reads (c2c-all's composed settings qualify)."""

    @property
    def health_checks(self) -> HealthChecksSettings:
        """The health-checks section."""

    @property
    def prometheus(self) -> PrometheusSettings:
        """The Prometheus section (metric name prefix)."""


def default_settings() -> HealthSettingsSource:
    """The process-wide `Settings`, read from the environment on first use (reload with `reload_settings`)."""
    return get_settings(Settings)
