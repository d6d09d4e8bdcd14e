"""The findings that come from the settings alone: every invalid value, unknown variables, risky values."""

from __future__ import annotations

from collections.abc import Mapping

from c2c_config import ConfigError, find_unknown_variables
from c2casgiutils._settings import Settings
from c2casgiutils.check._findings import (
    JWT_SECRET_MIN_BYTES,
    SECRET_IN_QUERY,
    SETTINGS_INVALID,
    SHARED_REDIS_NAMES,
    SHARED_SECRET_MIN_LENGTH,
    SHORT_JWT_SECRET,
    SHORT_SHARED_SECRET,
    TEST_AUTH,
    TRUST_ANY_PROXY,
    UNKNOWN_VARIABLE,
    UNSIGNED_BROADCAST,
    Finding,
)


def load_settings(environ: Mapping[str, str] | None = None) -> tuple[Settings | None, list[Finding]]:
    """Build the settings from the environment; on bad values, one finding per invalid variable.

    Unknown `C2C__` variables are reported in both cases (a typo often explains an invalid value).
    """
    findings: list[Finding] = []
    settings: Settings | None
    try:
        settings = Settings()
    except ConfigError as error:
        settings = None
        findings.extend(SETTINGS_INVALID.at(problem) for problem in error.problems)
    for unknown in find_unknown_variables(Settings, environ):
        findings.append(UNKNOWN_VARIABLE.at(str(unknown)))
    return settings, findings


def shared_secret(settings: Settings) -> str:
    """The shared secret of the `/c2c` pages, empty when unset."""
    secret = settings.auth.secret
    return secret.get_secret_value() if secret is not None else ""


def authentication_mode(settings: Settings) -> str:
    """`secret`, `test`, `github` or `none`, decided as c2c-auth decides it."""
    if shared_secret(settings):
        return "secret"
    if settings.auth.test.username:
        return "test"
    if settings.auth.github.configured:
        return "github"
    return "none"


def _secret_findings(settings: Settings) -> list[Finding]:
    findings = []
    mode = authentication_mode(settings)
    secret = shared_secret(settings)
    if mode == "secret" and settings.auth.secret_in_query:
        findings.append(
            SECRET_IN_QUERY.at(
                "C2C__AUTH__SECRET_IN_QUERY is true: the secret is accepted in the 'secret' query parameter, "
                "where access logs, proxies and browser history keep it"
            )
        )
    if secret and len(secret) < SHARED_SECRET_MIN_LENGTH:
        findings.append(
            SHORT_SHARED_SECRET.at(
                f"C2C__AUTH__SECRET is {len(secret)} characters long (fewer than {SHARED_SECRET_MIN_LENGTH}): "
                "it can be guessed"
            )
        )
    jwt = settings.auth.jwt.secret.get_secret_value() if settings.auth.jwt.secret is not None else ""
    needed = JWT_SECRET_MIN_BYTES[settings.auth.jwt.algorithm]
    if jwt and len(jwt.encode()) < needed:
        findings.append(
            SHORT_JWT_SECRET.at(
                f"C2C__AUTH__JWT__SECRET is {len(jwt.encode())} bytes long, fewer than the {needed} that "
                f"{settings.auth.jwt.algorithm} needs: session cookies can be forged by brute force"
            )
        )
    if mode == "test":
        findings.append(
            TEST_AUTH.at(
                f"C2C__AUTH__TEST__USERNAME is set: every request is logged in as {settings.auth.test.username!r}"
            )
        )
    if settings.redis.configured:
        defaults = [
            name
            for name, value, default in (
                ("C2C__REDIS__BROADCAST_PREFIX", settings.redis.broadcast_prefix, "broadcast_api_"),
                ("C2C__TOOLS__LOGGING__REDIS_PREFIX", settings.tools.logging.redis_prefix, "c2c_logging_level_"),
                ("C2C__AUTH__REDIS_PREFIX", settings.auth.redis_prefix, "c2c-auth:"),
            )
            if value == default
        ]
        if defaults:
            findings.append(
                SHARED_REDIS_NAMES.at(
                    f"{', '.join(defaults)} keep their default: services sharing one Redis server (pub/sub "
                    "ignores the database number) would change each other's log levels, list each other's "
                    "replicas and wait for each other's answers"
                )
            )
    return findings


def settings_findings(settings: Settings) -> list[Finding]:
    """The risky values of `settings` (those that need no application to be seen)."""
    findings = _secret_findings(settings)
    if "*" in settings.proxy_headers.trusted_hosts:
        findings.append(
            TRUST_ANY_PROXY.at(
                "C2C__PROXY_HEADERS__TRUSTED_HOSTS holds '*': any client that reaches the service can set "
                "its own address, scheme and host with proxy headers"
            )
        )
    broadcast_secret = settings.broadcast.secret
    if settings.redis.configured and not (broadcast_secret is not None and broadcast_secret.get_secret_value()):
        findings.append(
            UNSIGNED_BROADCAST.at(
                "Redis is configured without C2C__BROADCAST__SECRET: anyone who can publish on the Redis "
                "server can call the broadcast handlers (logging levels...) of every replica"
            )
        )
    return findings
