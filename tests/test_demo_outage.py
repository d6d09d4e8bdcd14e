"""The demo while Redis is unreachable: its broadcast route answers 503 with a generic JSON detail, never a 500.

The cause (which Redis, what error) is in the service's log, not in the answer to an anonymous caller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from c2c_testing import free_port

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json
import logging
from fastapi.testclient import TestClient
import examples.demo.app as demo

logging.basicConfig(level=logging.WARNING, format="LOG %(name)s %(levelname)s %(message)s")

with TestClient(demo.app, raise_server_exceptions=False) as client:  # startup does not wait for Redis
    echo = client.get("/api/echo", params={"message": "hi"})
    live = client.get("/c2c/livez")
print(json.dumps({"status": echo.status_code, "body": echo.text, "live": live.status_code}))
"""


def test_echo_answers_503_while_redis_is_unreachable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("C2C__", "DEMO_"))}
    env.update(
        {
            # A password in the URL: it must not show in the answer.
            "C2C__REDIS__URL": f"redis://:demo-password@127.0.0.1:{free_port()}",
            "C2C__REDIS__TIMEOUT": "1",
            "C2C__BROADCAST__CONNECT_TIMEOUT": "1",
            "C2C__PROMETHEUS__PORT": "0",
            "DEMO_DATABASE": str(tmp_path / "demo.sqlite3"),
            "DEMO_ALLOWED_HOSTS": "testserver",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503, answer
    assert json.loads(answer["body"]) == {"detail": "Broadcast unavailable (details are in the service logs)"}
    # Nothing of the deployment in the answer: not the Redis address, not the error.
    for detail in ("redis://", "127.0.0.1", "unreachable", "Error", "demo-password"):
        assert detail not in answer["body"], detail
    # The cause is logged for the operators, without the password.
    logged = [line for line in result.stderr.splitlines() if line.startswith("LOG examples.demo.app WARNING")]
    assert len(logged) == 1, result.stderr[-3000:]
    assert "GET /api/echo answered 503: " in logged[0] and "is unreachable" in logged[0]
    assert "@127.0.0.1:" in logged[0]  # which Redis (its password hidden)
    assert "demo-password" not in result.stdout + result.stderr
    assert answer["live"] == 200
