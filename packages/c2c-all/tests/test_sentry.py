"""Sentry initialised from the settings, sending to a real local HTTP server that records envelopes."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk

from c2c_testing import free_port
from c2casgiutils import sentry
from c2casgiutils._settings import SentrySettings


class _Recorder(http.server.BaseHTTPRequestHandler):
    envelopes: list[list[dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        items = []
        for line in body.splitlines():
            try:
                items.append(json.loads(line))
            except ValueError:
                items.append({"raw": line.decode("utf-8", "replace")})
        self.server.envelopes.append(items)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def sentry_server() -> Iterator[tuple[str, list[list[dict[str, Any]]]]]:
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Recorder)
    server.envelopes = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{port}/42", server.envelopes  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _no_sentry_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    yield
    sentry_sdk.init()  # a disabled client: later tests send nothing
    sentry_sdk.get_isolation_scope().clear()
    sentry_sdk.get_global_scope().clear()


def _events(envelopes: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [item for envelope in envelopes for item in envelope if "exception" in item or "message" in item]


def test_not_initialised_without_dsn() -> None:
    assert sentry.init(SentrySettings()) is False


def test_event_reaches_the_server_with_tags(
    sentry_server: tuple[str, list[list[dict[str, Any]]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn, envelopes = sentry_server
    monkeypatch.setenv("C2C__SENTRY__DSN", dsn)
    monkeypatch.setenv("C2C__SENTRY__TAG_SERVICE", "demo-service")
    monkeypatch.setenv("C2C__SENTRY__ENVIRONMENT", "testing")
    monkeypatch.setenv("C2C__SENTRY__EVENT_SCRUBBER", "x-internal-token")
    from c2casgiutils import config

    config.reload()
    assert sentry.init() is True
    try:
        secret_value = "value-to-scrub"  # noqa: F841 - a local variable the scrubber must hide
        raise RuntimeError("boom for sentry")
    except RuntimeError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=5)
    events = _events(envelopes)
    assert len(events) == 1
    event = events[0]
    assert event["tags"]["service"] == "demo-service"
    assert event["environment"] == "testing"
    assert event["exception"]["values"][0]["value"] == "boom for sentry"
    config.reload()


def test_string_event_scrubber_does_not_break_capture(sentry_server: tuple[str, list[list[dict[str, Any]]]]) -> None:
    """c2casgiutils passed the string to the SDK, and every capture failed."""
    dsn, envelopes = sentry_server
    assert sentry.init(SentrySettings(dsn=dsn, event_scrubber="password,api_key"))
    sentry_sdk.set_extra("api_key", "should-be-filtered")
    sentry_sdk.capture_message("hello")
    sentry_sdk.flush(timeout=5)
    events = _events(envelopes)
    assert len(events) == 1
    assert "should-be-filtered" not in json.dumps(events[0])


def test_sdk_options() -> None:
    settings = SentrySettings(dsn="http://k@127.0.0.1:1/1", traces_sample_rate=0.5, tags={"a": "b"})
    options = sentry.sdk_options(settings)
    assert "tags" not in options
    assert options["dsn"] == "http://k@127.0.0.1:1/1"
    assert options["environment"] == "production"
    sampler = options["traces_sampler"]
    assert sampler({"asgi_scope": {"path": "/c2c/health_checks"}}) == 0.0
    assert sampler({"asgi_scope": {"path": "/metrics"}}) == 0.0
    assert sampler({"asgi_scope": {"path": "/api/items"}}) == 0.5
    assert sampler({"asgi_scope": {"path": "/api/items"}, "parent_sampled": True}) == 1.0


async def test_probe_routes_are_not_traced(sentry_server: tuple[str, list[list[dict[str, Any]]]]) -> None:
    """A real FastAPI app under the SDK's integrations: /api is traced, the health checks and metrics are not."""
    import httpx
    from fastapi import FastAPI

    dsn, envelopes = sentry_server
    assert sentry.init(SentrySettings(dsn=dsn, traces_sample_rate=1.0))
    app = FastAPI()

    @app.get("/api/items")
    async def items() -> dict[str, str]:
        return {}

    @app.get("/c2c/health_checks")
    async def health() -> dict[str, str]:
        return {}

    @app.get("/metrics")
    async def metrics() -> str:
        return ""

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        for path in ("/api/items", "/c2c/health_checks", "/metrics"):
            assert (await client.get(path)).status_code == 200
    sentry_sdk.flush(timeout=5)
    transactions = [
        item["transaction"]
        for envelope in envelopes
        for item in envelope
        if item.get("type") == "transaction" and "transaction" in item  # the payload, not the item header
    ]
    assert transactions == ["/api/items"], transactions
