"""`python -m c2casgiutils check [module:app]`: the deploy check (see `c2casgiutils.check`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = "usage: python -m c2casgiutils check [module:app] [options]  (python -m c2casgiutils check --help)"


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the command named first; return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] != "check":
        print(USAGE, file=sys.stderr)
        return 2
    from c2casgiutils.check import main as check_main

    return check_main(arguments[1:], prog="python -m c2casgiutils check")


if __name__ == "__main__":
    sys.exit(main())
