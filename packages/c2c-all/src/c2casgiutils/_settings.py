"""The sections owned by c2c-all (sentry, tools) and the unified `Settings` composing every package's."""

from __future__ import annotations

import datetime
import os
from typing import Any, ClassVar

from pydantic import (
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from c2c_auth import AuthSettings
from c2c_broadcast import BroadcastSettings
from c2c_config import CoreSettings, Duration, Section, StringList
from c2c_health import HealthChecksSettings


class SentrySettings(Section):
    """Sentry error tracking; fields are `sentry_sdk.init` keyword arguments, plus `tags`."""

    extra_prefixes: ClassVar[tuple[str, ...]] = ("tag_",)

    dsn: str | None = Field(default=None, repr=False, description="Sentry DSN")
    debug: bool = Field(default=False, description="Enable Sentry debug mode")
    release: str | None = Field(default=None, description="Sentry release version")
    environment: str = Field(default="production", description="Sentry environment")
    dist: str | None = Field(default=None, description="Sentry distribution")
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0, description="Sample rate for error events")
    ignore_errors: StringList = Field(default_factory=list, description="List of exception class names to ignore")
    max_breadcrumbs: int = Field(default=100, ge=0, description="Maximum number of breadcrumbs to capture")
    attach_stacktrace: bool = Field(default=False, description="Attach stack trace to all messages")
    send_default_pii: bool | None = Field(default=None, description="Send default PII")
    event_scrubber: str | None = Field(
        default=None,
        description=(
            "Event scrubber for sensitive information: a comma-separated list of extra field names to scrub "
            "(added to the SDK's own sensitive names, and to those `sentry.init` scrubs everywhere)"
        ),
    )
    include_source_context: bool = Field(default=True, description="Include source context in events")
    include_local_variables: bool = Field(
        default=True,
        description="Include local variables in events (scrubbed of credentials by `sentry.init`, see `scrub_event`)",
    )
    add_full_stack: bool = Field(default=False, description="Add full stack trace to events")
    max_stack_frames: int = Field(default=100, ge=0, description="Maximum number of stack frames to capture")
    server_name: str | None = Field(default=None, description="Server name for Sentry events")
    project_root: str = Field(
        default_factory=os.getcwd,
        description="Root directory of the project",
        json_schema_extra={"doc_default": "the working directory"},
    )
    in_app_include: StringList = Field(default_factory=list, description="List of module prefixes that are in the app")
    in_app_exclude: StringList = Field(
        default_factory=list, description="List of module prefixes that are not in the app"
    )
    max_request_body_size: str = Field(default="medium", description="Maximum request body size to capture")
    max_value_length: int = Field(default=1024, ge=1, description="Maximum length of values in event payloads")
    ca_certs: str | None = Field(default=None, description="Path to alternative CA bundle file in PEM format")
    send_client_reports: bool = Field(default=True, description="Send client reports to Sentry")
    traces_sample_rate: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Sample rate for performance traces (unset: no tracing); probe and metrics routes are never traced",
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Default tags for Sentry events: each variable C2C__SENTRY__TAG_<NAME> sets the tag <name> "
            "(lower-cased), e.g. C2C__SENTRY__TAG_SERVICE=my-service sets the tag service."
        ),
        json_schema_extra={"env_pattern": "TAG_<NAME>"},
        # Not an SDK option: left out of model_dump() so `sentry_sdk.init(**settings.model_dump())` works.
        exclude=True,
    )

    @model_serializer(mode="wrap")
    def _as_sdk_options(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        """In python mode, the keyword arguments of the installed sentry-sdk's `init` (2.x or 3.x).

        `sentry_sdk.init(**config.settings.sentry.model_dump())`, as the c2casgiutils README does,
        works with either major (`c2casgiutils._sentry_sdk.adapt_dump`); JSON dumps show the fields.
        """
        data = handler(self)
        if info.mode_is_json() or not isinstance(data, dict):
            return data
        from c2casgiutils._sentry_sdk import adapt_dump  # imports sentry_sdk: only when dumped

        return adapt_dump(self, data)

    @property
    def url(self) -> str | None:
        """The DSN under the name the c2casgiutils README used (`config.settings.sentry.url`)."""
        return self.dsn

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, value: str | None) -> str | None:
        """A DSN the SDK can read, refused here with the variable named rather than at `sentry.init` (a
        `BadDsn` traceback that names none); an empty value is no DSN. The message never repeats it."""
        if value is None or not value.strip():
            return None
        from sentry_sdk.utils import BadDsn, Dsn

        try:
            Dsn(value.strip())
        except BadDsn as error:
            reason = str(error).split(":")[0] if str(error) else "unreadable"
            raise ValueError(f"not a Sentry DSN ({reason}): https://<key>@<host>/<project id>") from None
        return value.strip()

    @model_validator(mode="before")
    @classmethod
    def build_sentry_tags(cls, data: Any) -> Any:
        """Collect the `C2C__SENTRY__TAG_<NAME>` variables into `tags` (its c2casgiutils 0.14 name).

        The environment source hands `C2C__SENTRY__TAG_SERVICE` over as the key `tag_service`.
        """
        if isinstance(data, dict):
            tags = {key[len("tag_") :].lower(): value for key, value in data.items() if key.lower().startswith("tag_")}
            if tags:
                data = {key: value for key, value in data.items() if not key.lower().startswith("tag_")}
                data["tags"] = {**dict(data.get("tags") or {}), **tags}
        return data


class LoggingToolSettings(Section):
    """The logging-levels tool."""

    redis_prefix: str = Field(default="c2c_logging_level_", description="Redis prefix for logging settings")
    application_module: str = Field(default="c2casgiutils", description="Application module name for logging")
    sync_interval: Duration = Field(
        default=datetime.timedelta(seconds=30),
        description=(
            "With Redis: how often each replica re-reads the stored overrides and applies what it missed "
            "(it also does right after a Redis reconnection, and every second until a first read succeeds "
            "when Redis was unavailable at startup); 0 disables the periodic re-reading"
        ),
    )


class HeadersToolSettings(Section):
    """The request-headers tool."""

    masked_names: StringList = Field(
        default_factory=list,
        description=(
            "Names of more headers and query parameters whose values the request-headers and configuration "
            "tools mask, added to the toolkit's credential names (c2c_config.is_credential_name: authorization, "
            "cookie, x-api-key, code, state; any name containing pass, pwd, secret, token, auth, credential, "
            "signature, apikey, session, csrf, jwt, bearer...; any name with one of the words key, pw, sid, sig, "
            "otp, pin, ticket, verifier, or ending with key); "
            "an entry masks every name that contains it, compared case-insensitively, punctuation ignored"
        ),
    )


class AuditToolSettings(Section):
    """The audit trail (`GET /c2c/audit`): the admin actions each replica keeps in memory."""

    size: int = Field(default=200, ge=1, le=100_000, description="Audit records kept in memory per replica")
    timeout: Duration = Field(
        default=datetime.timedelta(seconds=5),
        description="How long GET /c2c/audit waits for the other replicas (a late one is shown as missing)",
    )


class ToolsSettings(Section):
    """The `/c2c` tools."""

    logging: LoggingToolSettings = Field(default_factory=LoggingToolSettings, description="Logging tool")
    headers: HeadersToolSettings = Field(default_factory=HeadersToolSettings, description="Request-headers tool")
    audit: AuditToolSettings = Field(default_factory=AuditToolSettings, description="Audit trail")
    versions_file: str = Field(
        default="versions.json", description="The file written by c2casgiutils-genversion, served at /c2c/versions"
    )
    max_body_size: int = Field(
        default=64 * 1024,
        ge=0,
        description=(
            "Largest request body, in bytes, that the /c2c sub-application accepts (a larger one gets 413 "
            "before it is read; access is checked before any body is read)"
        ),
    )


class Settings(CoreSettings):
    """Every setting of the toolkit, as `c2casgiutils.config.settings` documents them."""

    sentry: SentrySettings = Field(default_factory=SentrySettings, description="Sentry")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="Authentication")
    tools: ToolsSettings = Field(default_factory=ToolsSettings, description="Tools")
    health_checks: HealthChecksSettings = Field(default_factory=HealthChecksSettings, description="Health checks")
    broadcast: BroadcastSettings = Field(default_factory=BroadcastSettings, description="Broadcast")
