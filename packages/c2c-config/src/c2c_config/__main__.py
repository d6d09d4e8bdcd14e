"""`python -m c2c_config docs MODULE:CLASS FILE [--check]`: write or check the generated settings reference."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from c2c_config._docs import load_settings_class, update_file


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m c2c_config", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    docs = commands.add_parser("docs", help="generate the settings reference table into a Markdown file")
    docs.add_argument("settings", help="the settings class, as module:Class (e.g. c2casgiutils.config:Settings)")
    docs.add_argument("file", type=Path, help="the Markdown file holding the generated table")
    docs.add_argument("--check", action="store_true", help="do not write; exit 1 when the file is stale")
    args = parser.parse_args(argv)
    try:
        settings_class = load_settings_class(args.settings)
    except (ValueError, TypeError) as error:
        print(f"python -m c2c_config docs: {error}", file=sys.stderr)
        return 2
    up_to_date = update_file(args.file, settings_class, check=args.check)
    if args.check and not up_to_date:
        print(f"{args.file} is stale: run python -m c2c_config docs {args.settings} {args.file}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
