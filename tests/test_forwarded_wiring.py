"""`C2C__PROXY_HEADERS__TRUST_HOST` reaches `ForwardedHeadersMiddleware` in the documented wiring.

The c2c-all README's wiring (and the demo, `examples/demo/app.py`, which is that wiring complete)
builds the middleware from `config.settings.proxy_headers`. Each case imports the demo in a fresh
interpreter with the environment given (settings are read at import), takes the middleware the
application registered, and runs a request from the trusted proxy with a client-chosen
`X-Forwarded-Host` through it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import asyncio, json
from c2c_headers import ForwardedHeadersMiddleware
import examples.demo.app as demo

(entry,) = [m for m in demo.app.user_middleware if m.cls is ForwardedHeadersMiddleware]
seen = {}

async def inner(scope, receive, send):
    seen.update(host=dict(scope["headers"]).get(b"host", b"").decode(), scheme=scope["scheme"])

middleware = entry.cls(inner, *entry.args, **entry.kwargs)
scope = {
    "type": "http", "scheme": "http", "path": "/", "root_path": "", "query_string": b"",
    "headers": [(b"host", b"internal:8000"), (b"x-forwarded-proto", b"https"),
                (b"x-forwarded-host", b"client-chosen.example")],
    "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
}
asyncio.run(middleware(scope, None, None))
print(json.dumps(seen))
"""


def _probe(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("C2C__", "DEMO_"))}
    env.update(
        {
            "C2C__PROXY_HEADERS__TYPE": "x-forwarded",
            "C2C__PROXY_HEADERS__TRUSTED_HOSTS": "127.0.0.1",
            "DEMO_DATABASE": str(tmp_path / "demo.sqlite3"),
            **settings,
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.parametrize(
    ("settings", "host"),
    [
        ({}, "client-chosen.example"),  # the default believes it, as c2casgiutils 0.14 did
        ({"C2C__PROXY_HEADERS__TRUST_HOST": "true"}, "client-chosen.example"),
        ({"C2C__PROXY_HEADERS__TRUST_HOST": "false"}, "internal:8000"),
    ],
)
def test_trust_host_setting_reaches_the_middleware(tmp_path: Path, settings: dict[str, str], host: str) -> None:
    assert _probe(tmp_path, **settings) == {"host": host, "scheme": "https"}
