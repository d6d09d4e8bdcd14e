"""The findings that need the application: import, middleware stack, the `/c2c` mount, header rules."""

from __future__ import annotations

import importlib
from typing import Any

from c2c_headers import ArmorHeaderMiddleware
from c2c_headers._csp import has_default_src  # the rule compiler's own reading of a rendered policy
from c2casgiutils._settings import Settings
from c2casgiutils.check._config import authentication_mode
from c2casgiutils.check._findings import (
    APP_IMPORT,
    CSP_NO_DEFAULT_SRC,
    HSTS_OVER_HTTP,
    MIDDLEWARE,
    NO_AUTH,
    Finding,
)

_HSTS = b"strict-transport-security"
_CSP = (b"content-security-policy", b"content-security-policy-report-only")
_MAX_DEPTH = 200


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
            if header in _CSP and value is not None and not has_default_src(value.decode("latin-1")):
                findings.append(
                    CSP_NO_DEFAULT_SRC.at(
                        f"header rule {rule.name!r}: {header.decode()} has no default-src, so every fetch "
                        "directive it does not name allows any source"
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
    return findings
