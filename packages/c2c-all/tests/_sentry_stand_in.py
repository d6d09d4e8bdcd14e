"""A real local HTTP server standing in for Sentry: it records every envelope the SDK sends."""

from __future__ import annotations

import gzip
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sentry_sdk

from c2c_testing import free_port


@dataclass
class SentryStandIn:
    """The stand-in's DSN and what it received: each envelope's body, decoded."""

    dsn: str
    bodies: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Every body received, one after the other."""
        return "\n".join(self.bodies)

    def items(self) -> list[dict[str, Any]]:
        """Every JSON line of every envelope (headers, item headers, payloads)."""
        found: list[dict[str, Any]] = []
        for body in self.bodies:
            for line in body.splitlines():
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if isinstance(item, dict):
                    found.append(item)
        return found

    def traced(self) -> list[str]:
        """The name of each traced request: a transaction (sentry-sdk 2.x) or a segment span (3.x)."""
        names: list[str] = []
        for item in self.items():
            if item.get("type") == "transaction" and "transaction" in item:  # the payload, not the item header
                names.append(item["transaction"])
            for span in item.get("items", []) if isinstance(item.get("items"), list) else []:
                if isinstance(span, dict) and span.get("is_segment") and "span_id" in span:
                    names.append(span["name"])
        return names

    def logs(self) -> list[dict[str, Any]]:
        """The Sentry logs received (`sentry_sdk.logger`, the logging integration's `level`)."""
        return [
            log
            for item in self.items()
            if isinstance(item.get("items"), list)
            for log in item["items"]
            if isinstance(log, dict) and "body" in log and "level" in log
        ]

    def events(self) -> list[dict[str, Any]]:
        """The error and message events received."""
        return [item for item in self.items() if "exception" in item or "message" in item or "logentry" in item]


class _Recorder(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.stand_in.bodies.append(body.decode("utf-8", "replace"))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def reset_sentry() -> None:
    """Close the current client, then a disabled one: later tests send nothing and run beside no thread of it.

    `sentry_sdk.init()` does not close the client it replaces: its batcher threads (Sentry logs,
    spans) would go on drawing from the global `random` between flushes, which Hypothesis reports
    as a strategy depending on external state in whatever test runs next.
    """
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.init()
    sentry_sdk.get_isolation_scope().clear()
    sentry_sdk.get_global_scope().clear()


@contextmanager
def sentry_stand_in() -> Iterator[SentryStandIn]:
    """Serve on a free loopback port; on exit, a disabled Sentry client (later tests send nothing)."""
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Recorder)
    stand_in = SentryStandIn(f"http://publickey@127.0.0.1:{port}/42")
    server.stand_in = stand_in  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        reset_sentry()
        server.shutdown()
        server.server_close()
        thread.join(5)
