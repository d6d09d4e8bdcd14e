"""`python -m c2c_health URL`: a probe for container HEALTHCHECK and exec probes.

Exit status 0 when the URL answers 2xx within the timeout, else 1 with one line on stderr saying
why (never 2, which Docker reserves). Imports only the standard library: it starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import NoReturn

from c2c_health._http import HTTPProbeError, fetch_status, mask_password

DEFAULT_TIMEOUT = 5.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(1, f"unhealthy: bad arguments: {message}\n")


def _positive(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


async def _fetch(url: str, seconds: float) -> int:
    async with asyncio.timeout(seconds):
        return await fetch_status(url)


def probe(url: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str]:
    """GET `url` once; return whether it answered 2xx within `timeout` seconds, and why (one line)."""
    shown = mask_password(url)
    try:
        status = asyncio.run(_fetch(url, timeout))
    except TimeoutError:
        return False, f"unhealthy: no answer from {shown} within {timeout:g} s"
    except ValueError as error:
        return False, f"unhealthy: {error}"
    except HTTPProbeError as error:
        return False, f"unhealthy: {shown}: {error}"
    except OSError as error:
        return False, f"unhealthy: cannot connect to {shown}: {error.strerror or error}"
    if 200 <= status < 300:
        return True, f"healthy: {shown} answered {status}"
    return False, f"unhealthy: {shown} answered {status}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the probe from the command line; return the exit status."""
    parser = _Parser(
        prog="python -m c2c_health",
        description="GET a health URL: exit 0 when it answers 2xx within the timeout, else 1.",
    )
    parser.add_argument("url", help="e.g. http://127.0.0.1:8080/c2c/health_checks?tags=liveness")
    parser.add_argument(
        "--timeout", type=_positive, default=DEFAULT_TIMEOUT, help="seconds to wait for the answer (default: 5)"
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing when healthy")
    args = parser.parse_args(argv)
    healthy, message = probe(args.url, args.timeout)
    if not healthy:
        print(message, file=sys.stderr)
        return 1
    if not args.quiet:
        print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
