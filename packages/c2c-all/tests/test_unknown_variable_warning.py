"""The unknown-variable warning of c2c-config, once per process in a real application (issue 15, item 4).

c2casgiutils builds a settings object per package (and `config.reload()` re-reads them all): a
mistyped `C2C__` variable used to be reported 8 times at start-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_once_in_a_real_application_process() -> None:
    """A c2casgiutils application started, then its settings reloaded: one line per variable."""
    script = textwrap.dedent(
        """
        import asyncio, logging
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        from fastapi import FastAPI
        import c2casgiutils
        from c2casgiutils import config

        async def main() -> None:
            await c2casgiutils.startup(FastAPI())
            await c2casgiutils.shutdown()

        asyncio.run(main())
        config.reload()
        """
    )
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env.update({"C2C__REDIS__URLL": "redis://localhost", "C2C__PROMETHEUS__PORTT": "9100"})
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "Ignored environment variable" in line]
    assert sorted(lines) == [
        "c2c_config: Ignored environment variable: C2C__PROMETHEUS__PORTT is not a known setting; "
        "did you mean C2C__PROMETHEUS__PORT?",
        "c2c_config: Ignored environment variable: C2C__REDIS__URLL is not a known setting; "
        "did you mean C2C__REDIS__URL?",
    ]
