"""Sentry initialised from the settings, sending to a real local HTTP server that records envelopes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from _sentry_stand_in import SentryStandIn, reset_sentry

from c2casgiutils import sentry
from c2casgiutils._settings import SentrySettings


@pytest.fixture(autouse=True)
def _no_sentry_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    yield
    reset_sentry()


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
    assert sentry_stand_in.traced() == ["/api/items"]


# --- sentry-sdk 2.x and 3.x (CI runs this module on both) -------------------------------------------


def test_the_settings_dump_is_what_the_installed_sdk_accepts(sentry_stand_in: SentryStandIn) -> None:
    """The c2casgiutils README's `sentry_sdk.init(**config.settings.sentry.model_dump())`, on either major."""
    settings = SentrySettings(dsn=sentry_stand_in.dsn, event_scrubber="X-Internal-Ref, case_ref", environment="e")
    dumped = settings.model_dump()
    if sentry.SPANS_ONLY:
        assert not {"send_default_pii", "include_local_variables", "include_source_context"} & set(dumped)
        assert dumped["data_collection"]["user_info"] is False
        assert dumped["data_collection"]["url_query_params"] == {
            "mode": "denylist",
            "terms": ["x-internal-ref", "case_ref"],
        }
    else:
        assert dumped["include_local_variables"] is True
        assert type(dumped["event_scrubber"]).__name__ == "EventScrubber"  # not the text, which broke every capture
    assert "event_scrubber" in settings.model_dump(mode="json")  # the fields as configured, for display
    sentry_sdk.init(**dumped)
    sentry_sdk.set_extra("case_ref", "ref-4471-secret")
    sentry_sdk.capture_message("dumped settings work")
    sentry_sdk.flush(timeout=5)
    events = sentry_stand_in.events()
    assert [event.get("message") or event["logentry"]["message"] for event in events] == ["dumped settings work"]
    assert events[0]["environment"] == "e"
    assert "ref-4471-secret" not in sentry_stand_in.text()


@pytest.mark.parametrize(
    "value", ["X-Internal-Ref, case_ref", '["X-Internal-Ref", "case_ref"]', " x-internal-ref ,CASE_REF,"]
)
def test_event_scrubber_names_are_read_as_every_list_setting(value: str) -> None:
    """A comma list or a JSON array (`parse_string_list`): the SDK's denylist gets names, not `["pin"`."""
    from c2casgiutils._sentry_sdk import extra_scrubbed_names

    assert extra_scrubbed_names(SentrySettings(event_scrubber=value)) == ["x-internal-ref", "case_ref"]


def test_options_are_checked_against_the_installed_sdk() -> None:
    settings = SentrySettings(dsn="http://k@127.0.0.1:1/1")
    with pytest.raises(TypeError, match="has no option 'no_such_option'"):
        sentry.sdk_options(settings, no_such_option=1)
    options = sentry.sdk_options(settings, max_breadcrumbs=7, shutdown_timeout=1)
    assert options["max_breadcrumbs"] == 7 and options["shutdown_timeout"] == 1
    if sentry.SPANS_ONLY:
        with pytest.raises(TypeError, match="give before_send_span instead of before_send_transaction"):
            sentry.sdk_options(settings, before_send_transaction=lambda event, hint: event)
        merged = sentry.sdk_options(settings, data_collection={"user_info": True})["data_collection"]
        assert merged["user_info"] is True and merged["cookies"] == {"mode": "off"}  # updated key by key
        logging_integrations = [item for item in options["integrations"] if item.identifier == "logging"]
        assert len(logging_integrations) == 1  # ERROR records are events, as with 2.x
    else:
        assert "data_collection" not in options and "integrations" not in options


def _failing_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom with a client")

    return app


async def _fail_once(app: Any) -> None:
    import httpx

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("198.51.100.7", 4321))
    headers = {
        "Cookie": "theme=dark; tracking=Cookie-Value-381; session=Sess-Value-77",
        "X-Forwarded-For": "203.0.113.9",
        "User-Agent": "t/1",
    }
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/boom", headers=headers)).status_code == 500
    sentry_sdk.flush(timeout=5)


async def test_without_send_default_pii_no_address_or_cookie_is_sent(sentry_stand_in: SentryStandIn) -> None:
    """sentry-sdk 3 collects the user's address by default: the settings' default (unset) keeps 2.x's none."""
    assert sentry.init(SentrySettings(dsn=sentry_stand_in.dsn))
    await _fail_once(_failing_app())
    assert sentry_stand_in.events(), "the 500 was not captured"
    sent = sentry_stand_in.text()
    assert "boom with a client" in sent and "t/1" in sent
    for personal in ("203.0.113.9", "198.51.100.7", "Cookie-Value-381", "Sess-Value-77"):
        assert personal not in sent, personal


@pytest.mark.filterwarnings("ignore:The send_default_pii option is deprecated:DeprecationWarning")  # 2.7x's
async def test_with_send_default_pii_the_address_is_sent(sentry_stand_in: SentryStandIn) -> None:
    assert sentry.init(SentrySettings(dsn=sentry_stand_in.dsn, send_default_pii=True))
    await _fail_once(_failing_app())
    sent = sentry_stand_in.text()
    assert "boom with a client" in sent
    assert "REMOTE_ADDR" in sent and "Cookie-Value-381" in sent
    assert "Sess-Value-77" not in sent  # a credential-named cookie is hidden all the same


def test_sentry_logs_are_scrubbed_and_carry_the_request_id(sentry_stand_in: SentryStandIn) -> None:
    """Sentry logs (off by default on both majors): the same scrubbing as events, the request id attribute."""
    from sentry_sdk.integrations.logging import LoggingIntegration

    from c2c_headers.request_id import request_id_context
    from c2casgiutils._sentry_sdk import SDK_OPTIONS

    if "enable_logs" not in SDK_OPTIONS and not sentry.SPANS_ONLY:
        pytest.skip(f"sentry-sdk {sentry_sdk.VERSION} has no Sentry logs")
    if sentry.SPANS_ONLY:
        options: dict[str, Any] = {"integrations": [LoggingIntegration(level=logging.INFO)]}  # type: ignore[call-arg,unused-ignore]
    else:
        options = {"enable_logs": True}
    assert sentry.init(SentrySettings(dsn=sentry_stand_in.dsn), **options)
    request_id = "5e0c" * 8
    with request_id_context(request_id):
        logging.getLogger("sentry_logs_test").warning("connecting to postgresql://app:Pg-Log-Secret-99@db/app")
    sentry_sdk.flush(timeout=5)
    logs = [log for log in sentry_stand_in.logs() if "connecting to" in log["body"]]
    assert len(logs) == 1, sentry_stand_in.text()[:2000]
    assert "Pg-Log-Secret-99" not in sentry_stand_in.text()
    assert logs[0]["attributes"]["request_id"]["value"] == request_id


def test_a_setting_the_installed_sdk_lacks_is_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    from c2casgiutils._sentry_sdk import adapt_dump

    with caplog.at_level(logging.WARNING, logger="c2casgiutils.sentry"):
        adapted = adapt_dump(SentrySettings(), {"environment": "e", "retired_option": True})
    assert adapted == {"environment": "e"}
    assert "C2C__SENTRY__RETIRED_OPTION is ignored: sentry-sdk" in caplog.text


def test_a_span_or_log_the_scrubber_fails_on_is_sent_without_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never raw: a span (which the SDK cannot drop) keeps its ids and times, a log its level."""
    from c2casgiutils import _scrub

    def broken(self: object, value: object, key: object = None) -> object:
        raise RecursionError("too deep")

    from c2casgiutils._sentry_sdk import SDK_OPTIONS

    monkeypatch.setattr(_scrub.Scrubber, "walk", broken)
    stream: dict[str, Any] = {"trace_lifecycle": "stream"} if "trace_lifecycle" in SDK_OPTIONS else {}
    options = sentry.sdk_options(SentrySettings(dsn="http://k@127.0.0.1:1/1"), **stream)
    span = {"name": "GET /x?token=abc", "span_id": "s1", "status": "ok", "attributes": {"url.full": "/x?token=abc"}}
    log = {"body": "password=abc", "level": "warn", "timestamp": 1.0, "attributes": {"a": "abc"}}
    if "before_send_span" in options:
        assert options["before_send_span"](span, {}) == {
            "name": "[REDACTED: the event could not be scrubbed]",
            "span_id": "s1",
            "status": "ok",
            "attributes": {},
        }
    if "before_send_log" in options:
        assert options["before_send_log"](log, {}) == {
            "body": "[REDACTED: the event could not be scrubbed]",
            "level": "warn",
            "timestamp": 1.0,
            "attributes": {},
        }
