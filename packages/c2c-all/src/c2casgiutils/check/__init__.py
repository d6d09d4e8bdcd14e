"""The deploy check: `python -m c2casgiutils check [module:app]` (or the `c2casgiutils-check` script).

It loads the settings (every invalid variable is listed, and every unknown `C2C__` variable),
reports risky values, and, given the application: imports it, builds its middleware stack (an
invalid header rule is reported), runs its lifespan startup within `--timeout`, connects to Redis
(URL or Sentinel, within `C2C__REDIS__TIMEOUT`), runs every registered health check once, and
shuts the application down. With `--url` (the running service's `/c2c` address) it reads the
request-headers tool to see whether requests arrive through a proxy that the settings ignore. The
secret (and the URL's credentials) go only over https or to a loopback host; plain http to another
host is refused (`C2C-E010`, nothing sent) unless `--allow-insecure-http` is given. No message
shows a credential of `--url` (`c2casgiutils.check._remote`).

Each problem is a `Finding`: a stable id (`C2C-E...` error, `C2C-W...` warning, `C2C-I...` info),
a severity, a message and the fix. The exit status is 1 when a finding reaches `--fail-level`
(default `error`; `warning` makes warnings fail too, as Django's `check --deploy`), else 0.
`--json` prints the findings as a JSON list of objects with the keys `id`, `severity`, `message`
and `fix`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Sequence

import httpx

from c2c_config.redis import reset_factory
from c2casgiutils._settings import Settings
from c2casgiutils.check._application import application_findings, import_application, middleware_stack
from c2casgiutils.check._config import load_settings, settings_findings, shared_secret
from c2casgiutils.check._findings import NOT_CHECKED, SEVERITY_RANK, Finding, Severity
from c2casgiutils.check._remote import remote_findings
from c2casgiutils.check._runtime import LifespanRunner, running_findings

__all__ = ["CheckOptions", "Finding", "LifespanRunner", "Severity", "exit_status", "main", "run_check"]

DEFAULT_TIMEOUT = 20.0
"""Seconds given to the lifespan startup, to its shutdown and to the `--url` request."""


@dataclasses.dataclass(frozen=True)
class CheckOptions:
    """What to check: the application (`module:attribute`), the running service's `/c2c` URL, the limits."""

    app: str | None = None
    url: str | None = None
    secret: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    transport: httpx.AsyncBaseTransport | None = None
    """The HTTP transport for `url` (tests); None for the network."""
    allow_insecure_http: bool = False
    """Send the credentials to `url` over plain http even to a non-loopback host (`--allow-insecure-http`)."""


async def run_check(options: CheckOptions) -> list[Finding]:
    """Run the deploy check and return every finding, most severe first (stable order within a severity)."""
    settings, findings = load_settings()
    if settings is None:
        findings.append(NOT_CHECKED.at("the application and the service were not checked: the settings are invalid"))
        return _sorted(findings)
    findings.extend(settings_findings(settings))
    if options.app is not None:
        findings.extend(await _application(options.app, settings, options.timeout))
    if options.url is not None:
        secret = options.secret if options.secret is not None else shared_secret(settings) or None
        findings.extend(
            await remote_findings(
                options.url, secret, settings, options.timeout, options.transport, options.allow_insecure_http
            )
        )
    return _sorted(findings)


async def _application(spec: str, settings: Settings, limit: float) -> list[Finding]:
    app, findings = import_application(spec)
    if app is None:
        return findings
    layers, findings = middleware_stack(app)
    if findings:
        findings.append(NOT_CHECKED.at("the application was not started: its middleware stack is invalid"))
        return findings
    findings = application_findings(app, layers, settings)
    try:
        findings.extend(await running_findings(app, settings, limit))
    finally:
        await reset_factory()  # the check's own Redis connections
    return findings


def _sorted(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda finding: -SEVERITY_RANK[finding.severity])


def exit_status(findings: Sequence[Finding], fail_level: Severity = "error") -> int:
    """1 when a finding is at least as severe as `fail_level`, else 0."""
    threshold = SEVERITY_RANK[fail_level]
    return 1 if any(SEVERITY_RANK[finding.severity] >= threshold for finding in findings) else 0


def _positive(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


def build_parser(prog: str = "c2casgiutils-check") -> argparse.ArgumentParser:
    """The command line of the deploy check."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Check a service's configuration before it is deployed (exit 1 on problems).",
    )
    parser.add_argument("app", nargs="?", help="the ASGI application as module:attribute, e.g. my_service.main:app")
    parser.add_argument(
        "--url",
        help=(
            "the running service's /c2c URL: read what requests carry through it. The secret (and the URL's "
            "credentials) are sent over https, or plain http to a loopback host only (see --allow-insecure-http); "
            "messages never show them"
        ),
    )
    parser.add_argument(
        "--secret", help="the secret for --url (read-only access to /c2c/headers; default: C2C__AUTH__SECRET)"
    )
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help=(
            "send the secret to a plain http:// --url on another host than this machine (refused otherwise, "
            "C2C-E010): it crosses the network in clear, use it on a trusted network only"
        ),
    )
    parser.add_argument(
        "--fail-level",
        choices=["error", "warning", "info"],
        default="error",
        help="the least severe finding that makes the check fail (default: error)",
    )
    parser.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=DEFAULT_TIMEOUT,
        help=f"seconds for the lifespan startup, its shutdown and --url (default: {DEFAULT_TIMEOUT:g})",
    )
    return parser


def _report(findings: Sequence[Finding]) -> str:
    counts = {severity: sum(1 for f in findings if f.severity == severity) for severity in ("error", "warning", "info")}
    summary = ", ".join(
        f"{count} {severity}{'s' if count != 1 and severity != 'info' else ''}" for severity, count in counts.items()
    )
    lines = [str(finding) for finding in findings]
    lines.append(f"Deploy check: {summary}." if findings else "Deploy check: no problem found.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "c2casgiutils-check") -> int:
    """Run the deploy check from the command line; return the exit status (the console script's entry point)."""
    args = build_parser(prog).parse_args(argv)
    # As uvicorn does: the application is imported from the working directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    options = CheckOptions(
        app=args.app,
        url=args.url,
        secret=args.secret,
        timeout=args.timeout,
        allow_insecure_http=args.allow_insecure_http,
    )
    findings = asyncio.run(run_check(options))
    if args.json:
        print(json.dumps([finding.to_dict() for finding in findings], indent=2))
    else:
        print(_report(findings))
    return exit_status(findings, args.fail_level)
