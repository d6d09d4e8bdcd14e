"""Helpers for command-line programs that use the toolkit (`add_arguments`, `init`).

```python
parser = argparse.ArgumentParser()
cli.add_arguments(parser)
args = parser.parse_args()
await cli.init(args)
```

`init` configures logging from the YAML file given by `--logging-config` (read off the event
loop), then starts the broadcaster and the logging tool, so a command-line process also obeys
log-level changes made for the whole cluster and restores the persisted overrides.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import logging.config
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

LOG = logging.getLogger(__name__)

__all__ = ["add_arguments", "init", "load_logging_config"]

# c2casgiutils 0.14 imported `broadcast` and `logging_ as logging_tools` at the top of this module,
# and tests patch `init`'s calls through them (`mock.patch("c2casgiutils.cli.logging_tools.startup")`).
# They are the modules `init` calls, imported on first access: `import c2casgiutils.cli` stays cheap.
_MODULES = {"broadcast": "c2casgiutils.broadcast", "logging_tools": "c2casgiutils.tools.logging_"}


def __getattr__(name: str) -> ModuleType:
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def add_arguments(arg_parser: argparse.ArgumentParser, default_logging_config: str | None = "logging.yaml") -> None:
    """Add `--logging-config PATH` (a YAML `logging.config.dictConfig` file) to `arg_parser`."""
    arg_parser.add_argument(
        "--logging-config",
        default=default_logging_config,
        help=f"logging configuration file, YAML for logging.config.dictConfig (default: {default_logging_config})",
    )


def _read_logging_config(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        content = yaml.safe_load(stream)
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a mapping for logging.config.dictConfig")
    return content


async def load_logging_config(path: str | Path) -> bool:
    """Apply the YAML logging configuration at `path`; return False (with a log line) when it cannot be used."""
    file = Path(path)
    try:
        content = await asyncio.to_thread(_read_logging_config, file)
        logging.config.dictConfig(content)
    except FileNotFoundError:
        LOG.warning("Logging configuration %s not found, logging left as it is", file)
        return False
    except (OSError, yaml.YAMLError, ValueError, TypeError) as error:
        LOG.error("Cannot use the logging configuration %s: %s", file, error)
        return False
    return True


async def init(args: argparse.Namespace) -> None:
    """Configure logging from `args.logging_config`, then start broadcast and the logging tool."""
    from c2casgiutils import broadcast  # imported late: keep `import c2casgiutils.cli` cheap
    from c2casgiutils.tools import logging_ as logging_tool

    path = getattr(args, "logging_config", None)
    if path:
        await load_logging_config(path)
    await broadcast.startup()
    await logging_tool.startup()
