"""The findings that need the application: import, middleware stack, the `/c2c` mount, header rules."""

from __future__ import annotations

import importlib
from types import TracebackType
from typing import Any

import pydantic
from pydantic_settings import BaseSettings
from starlette.middleware.cors import CORSMiddleware

from c2c_headers import ArmorHeaderMiddleware
from c2c_headers._csp import has_default_src, missing_no_fallback  # the rule compiler's own reading
from c2casgiutils._settings import Settings
from c2casgiutils.check._config import authentication_mode
from c2casgiutils.check._findings import (
    APP_IMPORT,
    APP_SETTINGS_INVALID,
    CORS_ANY_ORIGIN_WITH_CREDENTIALS,
    CSP_NO_BASE_URI,
    CSP_NO_DEFAULT_SRC,
    HSTS_OVER_HTTP,
    MIDDLEWARE,
    NO_AUTH,
    Finding,
)

_HSTS = b"strict-transport-security"
_CSP = (b"content-security-policy", b"content-security-policy-report-only")
_CSP_ENFORCED = _CSP[0]
_MAX_DEPTH = 200
_MAX_CHAIN = 10


def _validation_error(error: BaseException) -> pydantic.ValidationError | None:
    """The pydantic `ValidationError` that made the import fail: `error` itself or its cause/context."""
    current: BaseException | None = error
    for _ in range(_MAX_CHAIN):
        if current is None:
            break
        if isinstance(current, pydantic.ValidationError):
            return current
        current = current.__cause__ or current.__context__
    return None


def _settings_class(traceback: TracebackType | None) -> type[BaseSettings] | None:
    """The `BaseSettings` subclass being built where the error was raised (the innermost such frame)."""
    found = None
    while traceback is not None:
        for name in ("__pydantic_self__", "self"):
            value = traceback.tb_frame.f_locals.get(name)
            if isinstance(value, BaseSettings):
                found = type(value)
        traceback = traceback.tb_next
    return found


def _variable(settings_class: type[BaseSettings], location: tuple[int | str, ...]) -> str:
    """The environment variable of an error's location, as pydantic-settings names it (best effort)."""
    fields = [str(part) for part in location]
    config = settings_class.model_config
    field = settings_class.model_fields.get(fields[0])
    alias = (field.validation_alias or field.alias) if field is not None else None
    name = alias if isinstance(alias, str) else str(config.get("env_prefix") or "") + fields[0]
    delimiter = config.get("env_nested_delimiter")
    if len(fields) > 1 and delimiter:
        name = delimiter.join([name, *fields[1:]])
    return name if config.get("case_sensitive") else name.upper()


def _settings_message(spec: str, error: pydantic.ValidationError, settings_class: type[BaseSettings]) -> str:
    """What the settings refused, variable by variable; never the values (they may be secrets)."""
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        location = tuple(detail["loc"])
        if location:
            problems.append(f"{_variable(settings_class, location)}: {detail['msg']}")
        else:  # a model validator: its message names what it checked
            problems.append(detail["msg"])
    return f"cannot import {spec}: its settings ({error.title}) refuse the environment: " + "; ".join(problems)


def import_application(spec: str) -> tuple[Any, list[Finding]]:
    """Import `module:attribute` (the attribute may be dotted); a failure is a finding, not an exception."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        return None, [APP_IMPORT.at(f"{spec!r} is not of the form module:attribute (e.g. my_service.main:app)")]
    try:
        current: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            current = getattr(current, part)
    except Exception as error:
        invalid = _validation_error(error)
        settings_class = _settings_class(invalid.__traceback__) if invalid is not None else None
        if invalid is not None and settings_class is not None:
            return None, [APP_SETTINGS_INVALID.at(_settings_message(spec, invalid, settings_class))]
        return None, [APP_IMPORT.at(f"cannot import {spec}: {type(error).__name__}: {error}")]
    if not callable(current):
        return None, [APP_IMPORT.at(f"{spec} is a {type(current).__name__}, not an ASGI application")]
    return current, []


def middleware_stack(app: Any) -> tuple[list[Any], list[Finding]]:
    """Build a Starlette application's middleware stack as the server would; return its layers, outermost first.

    A middleware that refuses its configuration (an invalid header rule) is a finding. Another ASGI
    application gives itself as its only layer.
    """
    build = getattr(app, "build_middleware_stack", None)
    if build is None:
        return [app], []
    try:
        current = build()
    except Exception as error:
        return [], [MIDDLEWARE.at(f"the middleware stack cannot be built: {type(error).__name__}: {error}")]
    # Kept, as Starlette keeps the stack it builds on its first call: building it again would run
    # the middlewares' constructors twice (metrics registered twice...).
    app.middleware_stack = current
    layers: list[Any] = []
    while current is not None and len(layers) < _MAX_DEPTH:
        layers.append(current)
        current = getattr(current, "app", None)
    return layers, []


def _mounted_admin(app: Any) -> bool:
    """Whether the `/c2c` sub-application (or any mount ending in `/c2c`) is mounted on `app`."""
    import c2casgiutils

    admin = c2casgiutils.__dict__.get("_APP")
    for route in getattr(app, "routes", ()):
        mounted = getattr(route, "app", None)
        path = getattr(route, "path", "")
        if (admin is not None and mounted is admin) or (mounted is not None and path.rstrip("/").endswith("/c2c")):
            return True
    return False


def _unconditional(rule: Any) -> bool:
    return all(
        getattr(rule, name) is None for name in ("netloc_pattern", "path_pattern", "methods", "content_type_pattern")
    )


def _sends_hsts(armor: ArmorHeaderMiddleware) -> bool:
    """Whether some response gets Strict-Transport-Security (no later unconditional rule removes it)."""
    sends = False
    for rule in armor.rules:
        for header, value in rule.edits:
            if header != _HSTS:
                continue
            if value is not None:
                sends = True
            elif _unconditional(rule):
                sends = False
    return sends


def _armor_findings(armor: ArmorHeaderMiddleware, settings: Settings) -> list[Finding]:
    findings = []
    if settings.http and _sends_hsts(armor):
        findings.append(
            HSTS_OVER_HTTP.at(
                "C2C__HTTP is true (plain HTTP) and the header rules send Strict-Transport-Security: browsers "
                "then refuse plain HTTP for the host; or the service is served over https and C2C__HTTP is wrong"
            )
        )
    for rule in armor.rules:
        for header, value in rule.edits:
            if header not in _CSP or value is None:
                continue
            policy = value.decode("latin-1")
            if not has_default_src(policy):
                findings.append(
                    CSP_NO_DEFAULT_SRC.at(
                        f"header rule {rule.name!r}: {header.decode()} has no default-src, so every fetch "
                        "directive it does not name allows any source"
                    )
                )
            missing = missing_no_fallback(policy)
            if missing and header == _CSP_ENFORCED:
                findings.append(
                    CSP_NO_BASE_URI.at(
                        f"header rule {rule.name!r}: Content-Security-Policy has no {' and no '.join(missing)}, "
                        "which do not fall back to default-src: an injected <base> or <form> is obeyed"
                    )
                )
    return findings


def application_findings(app: Any, layers: list[Any], settings: Settings) -> list[Finding]:
    """The risky configuration seen in the application: the mount, the header rules of each ArmorHeaderMiddleware."""
    findings = []
    if _mounted_admin(app) and authentication_mode(settings) == "none":
        findings.append(
            NO_AUTH.at(
                "the /c2c application is mounted and no authentication is configured: nobody can use its "
                "tools (and adding one later in a hurry is how a weak secret gets deployed)"
            )
        )
    for layer in layers:
        if isinstance(layer, ArmorHeaderMiddleware):
            findings.extend(_armor_findings(layer, settings))
        if isinstance(layer, CORSMiddleware) and layer.allow_credentials and _any_origin(layer):
            findings.append(
                CORS_ANY_ORIGIN_WITH_CREDENTIALS.at(
                    "CORSMiddleware allows every origin with allow_credentials=True: Starlette then answers each "
                    "site with its own Origin, so any site can read this service's answers with the visitor's cookies"
                )
            )
    return findings


def _any_origin(cors: CORSMiddleware) -> bool:
    """Whether `cors` allows every origin: `*`, or a regular expression that matches any site."""
    if cors.allow_all_origins:
        return True
    pattern = cors.allow_origin_regex
    return pattern is not None and all(
        pattern.fullmatch(origin) for origin in ("https://attacker.example", "http://evil.test:8080", "null")
    )
