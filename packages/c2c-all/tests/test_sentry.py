"""Sentry initialised from the settings, sending to a real local HTTP server that records envelopes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import sentry_sdk
from _sentry_stand_in import SentryStandIn

from c2casgiutils import sentry
from c2casgiutils._settings import SentrySettings


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


def test_not_initialised_without_dsn() -> None:
    assert sentry.init(SentrySettings()) is False


def test_event_reaches_the_server_with_tags(sentry_stand_in: SentryStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = sentry_stand_in.dsn
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
    events = sentry_stand_in.events()
    assert len(events) == 1
    event = events[0]
    assert event["tags"]["service"] == "demo-service"
    assert event["environment"] == "testing"
    assert event["exception"]["values"][0]["value"] == "boom for sentry"
    config.reload()


def test_string_event_scrubber_does_not_break_capture(sentry_stand_in: SentryStandIn) -> None:
    """c2casgiutils passed the string to the SDK, and every capture failed."""
    dsn = sentry_stand_in.dsn
    assert sentry.init(SentrySettings(dsn=dsn, event_scrubber="password,api_key"))
    sentry_sdk.set_extra("api_key", "should-be-filtered")
    sentry_sdk.capture_message("hello")
    sentry_sdk.flush(timeout=5)
    events = sentry_stand_in.events()
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


async def test_probe_routes_are_not_traced(sentry_stand_in: SentryStandIn) -> None:
    """A real FastAPI app under the SDK's integrations: /api is traced, the health checks and metrics are not."""
    import httpx
    from fastapi import FastAPI

    dsn = sentry_stand_in.dsn
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
        for item in sentry_stand_in.items()
        if item.get("type") == "transaction" and "transaction" in item  # the payload, not the item header
    ]
    assert transactions == ["/api/items"], transactions
