"""`secret`, `code` and `state` query values out of the access logs and Sentry events (issue 14 item 10).

Real servers: uvicorn and granian subprocesses whose access log is captured, once with the filter
installed by `c2casgiutils.startup()`, once (uvicorn) with only the scaffold's `logging.yaml`;
Sentry events go to a real local HTTP server standing in for Sentry.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import sentry_sdk
from _sentry_stand_in import SentryStandIn
from hypothesis import given
from hypothesis import strategies as st

from c2c_config import is_credential_name
from c2c_testing import free_port, stop_process, wait_for_port
from c2casgiutils import sentry
from c2casgiutils._settings import SentrySettings
from c2casgiutils.logging_filters import (
    REDACTED,
    RedactSecretsFilter,
    install_access_log_filters,
    redact_query,
    redact_text,
)

REPO = Path(__file__).resolve().parents[3]
SCAFFOLD_LOGGING = REPO / "scaffold" / "{{cookiecutter.project_slug}}" / "logging.yaml"
SECRET = "redaction-test-secret-value-32-bytes"
# Values that must never be written anywhere, and one that must stay.
SENSITIVE = {"secret": "S3kr1tValue", "code": "C0deValue", "state": "St4teValue"}
QUERY = urlencode({**SENSITIVE, "keep": "visible1"})


def _assert_redacted(text: str) -> None:
    for value in SENSITIVE.values():
        where = text.find(value)
        assert where < 0, f"{value} leaked: ...{text[max(0, where - 300) : where + 50]}..."
    assert "visible1" in text
    assert f"secret={REDACTED}" in text


# --- the functions --------------------------------------------------------------------------------------

_NAMES = st.sampled_from(
    ["secret", "code", "state", "Secret", "%73ecret", "STATE", "keep", "page", "codes", "", "token", "Access_Token"]
    + ["password", "api_key", "client%2Dsecret", "username", "sort"]
)
_VALUES = st.text(alphabet="abcXYZ019%+-._~=", max_size=8)


@given(st.lists(st.tuples(_NAMES, st.sampled_from(["=", ""]), _VALUES), max_size=6))
def test_redact_query_hides_exactly_the_sensitive_values(parts: list[tuple[str, str, str]]) -> None:
    query = "&".join(name + separator + (value if separator else "") for name, separator, value in parts)
    redacted = redact_query(query)
    before = parse_qsl(query, keep_blank_values=True)
    after = parse_qsl(redacted, keep_blank_values=True)
    assert len(before) == len(after)
    for (name, value), (name_after, value_after) in zip(before, after, strict=True):
        assert name == name_after
        if (name.casefold() in {"secret", "code", "state"} or is_credential_name(name)) and value:
            assert value_after == REDACTED
        else:
            assert value_after == value  # everything else is kept as it was


def test_credential_parameters_are_redacted_by_default() -> None:
    """Besides `secret`, `code` and `state`: every parameter with a credential name (c2c-config's rule)."""
    query = "page=2&token=T0ken&password=Pw1&client_secret=Cs1&api_key=K1&username=bob"
    assert redact_query(query) == (
        f"page=2&token={REDACTED}&password={REDACTED}&client_secret={REDACTED}&api_key={REDACTED}&username=bob"
    )
    assert redact_query(query, ["page"]) == query.replace("page=2", f"page={REDACTED}")  # an explicit list only


def test_redact_text_finds_queries_in_log_lines() -> None:
    line = f'127.0.0.1:5000 - "GET /c2c/?{QUERY} HTTP/1.1" 200 ref="https://x/c2c?code=C0deValue#top"'
    _assert_redacted(redact_text(line))
    assert redact_text("no query here") == "no query here"
    assert redact_text("/c2c/auth/github/callback?code=abc&state=def") == (
        f"/c2c/auth/github/callback?code={REDACTED}&state={REDACTED}"
    )


def _record(name: str, msg: str, args: Any) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)


def test_filter_on_uvicorn_and_granian_records() -> None:
    uvicorn_record = _record(
        "uvicorn.access", '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:1", "GET", f"/c2c/?{QUERY}", "1.1", 200)
    )
    assert RedactSecretsFilter().filter(uvicorn_record) is True
    _assert_redacted(uvicorn_record.getMessage())
    granian_record = _record(
        "granian.access",
        '%(addr)s "%(method)s %(path)s?%(query_string)s" %(status)d %(_h0)s',
        {"addr": "127.0.0.1", "method": "GET", "path": "/c2c/", "query_string": QUERY, "status": 200, "_h0": "-"},
    )
    assert RedactSecretsFilter().filter(granian_record) is True
    _assert_redacted(granian_record.getMessage())


def test_install_covers_the_loggers_and_their_handlers_once() -> None:
    logger = logging.getLogger("uvicorn.access")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    saved = (logger.handlers[:], logger.filters[:], logger.level, logger.propagate)
    logger.handlers[:] = [handler]
    logger.filters[:] = []
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        assert install_access_log_filters() >= 2  # the logger and its handler (granian's too)
        assert install_access_log_filters() == 0  # idempotent
        assert sum(isinstance(item, RedactSecretsFilter) for item in logger.filters) == 1
        assert sum(isinstance(item, RedactSecretsFilter) for item in handler.filters) == 1
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", f"/c2c/?{QUERY}", "1.1", 200)
        # A child logger's record reaches the handler without passing the parent's own filters.
        logging.getLogger("uvicorn.access.child").info("GET /c2c/?%s", QUERY)
        _assert_redacted(stream.getvalue())
        assert stream.getvalue().count(f"secret={REDACTED}") == 2
    finally:
        logger.handlers[:], logger.filters[:], level, logger.propagate = saved
        logger.setLevel(level)


# --- real servers ---------------------------------------------------------------------------------------

APP_WITH_STARTUP = """\
import c2casgiutils
from fastapi import FastAPI

app = FastAPI(lifespan=c2casgiutils.lifespan)
app.mount("/c2c", c2casgiutils.app)
"""

APP_WITHOUT_STARTUP = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/c2c/auth/github/callback")
async def callback() -> dict[str, str]:
    return {}
"""


def _serve(tmp_path: Path, source: str, command: list[str], requests: list[tuple[str, dict[str, str]]]) -> str:
    """Run a server on `source`, send `requests` (path, headers), stop it, return its output."""
    (tmp_path / "redaction_app.py").write_text(source)
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("C2C__")}
    env["C2C__AUTH__SECRET"] = SECRET
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [arg.replace("{port}", str(port)) for arg in command],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for path, headers in requests:
                assert client.get(path, headers=headers).status_code < 500
        deadline = time.monotonic() + 5  # the access line is written after the response
        while time.monotonic() < deadline and log.read_text().count("visible1") < len(requests):
            time.sleep(0.05)
    finally:
        stop_process(process, timeout=5)
    return log.read_text()


UVICORN = [sys.executable, "-m", "uvicorn", "redaction_app:app", "--port", "{port}"]


def test_uvicorn_access_log_is_redacted_after_startup(tmp_path: Path) -> None:
    output = _serve(tmp_path, APP_WITH_STARTUP, UVICORN, [(f"/c2c/health?{QUERY}", {}), (f"/c2c/?{QUERY}", {})])
    assert "GET /c2c/health?" in output
    _assert_redacted(output)


def test_uvicorn_with_the_scaffold_logging_config(tmp_path: Path) -> None:
    """The scaffold's logging.yaml alone (no startup()) keeps the OAuth callback's code and state out."""
    config = tmp_path / "logging.yaml"
    config.write_text(SCAFFOLD_LOGGING.read_text().replace("{{ cookiecutter.project_slug }}", "redaction_app"))
    command = [*UVICORN, "--log-config", str(config)]
    output = _serve(tmp_path, APP_WITHOUT_STARTUP, command, [(f"/c2c/auth/github/callback?{QUERY}", {})])
    assert "GET /c2c/auth/github/callback?" in output
    _assert_redacted(output)


def test_granian_access_log_is_redacted_after_startup(tmp_path: Path) -> None:
    """granian's default format has no query; a format that logs it (and the Referer) is redacted too."""
    fmt = '%(addr)s "%(method)s %(path)s?%(query_string)s %(protocol)s" %(status)d referer=%(header{referer})s'
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--port", "{port}", "--workers", "1"]
    command += ["--access-log", "--access-log-fmt", fmt, "redaction_app:app"]
    referer = {"Referer": f"http://127.0.0.1/c2c/?secret={SENSITIVE['secret']}"}
    output = _serve(tmp_path, APP_WITH_STARTUP, command, [(f"/c2c/health?{QUERY}", referer)])
    assert "GET /c2c/health?" in output
    assert f"referer=http://127.0.0.1/c2c/?secret={REDACTED}" in output
    _assert_redacted(output)


# --- Sentry ---------------------------------------------------------------------------------------------


async def test_sentry_events_are_scrubbed(sentry_stand_in: SentryStandIn) -> None:
    """An error in a request carrying the three values (query, Referer, breadcrumbs, message): none is sent."""
    from fastapi import FastAPI

    dsn = sentry_stand_in.dsn
    seen: list[str] = []

    def user_hook(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        seen.append(json.dumps(event, default=str))
        event.setdefault("tags", {})["user_hook"] = "ran"
        return event

    assert sentry.init(SentrySettings(dsn=dsn, traces_sample_rate=1.0), before_send=user_hook)
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        sentry_sdk.add_breadcrumb(
            category="httplib", data={"url": "https://api.example/x?state=St4teValue", "http.query": QUERY}
        )
        logging.getLogger("redaction_test").warning("calling https://api.example/cb?code=%s", SENSITIVE["code"])
        raise RuntimeError(f"failed on /boom?{QUERY}")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        headers = {"Referer": f"http://testserver/c2c/?secret={SENSITIVE['secret']}"}
        assert (await client.get(f"/boom?{QUERY}", headers=headers)).status_code == 500
    sentry_sdk.flush(timeout=5)
    sent = sentry_stand_in.text()
    assert "failed on /boom" in sent, sent[:2000]
    assert '"user_hook":"ran"' in sent.replace(" ", "")
    _assert_redacted(sent)
    assert seen and all(SENSITIVE["secret"] not in event for event in seen), "the user hook got the raw event"


def test_scrub_event_decoded_query_and_the_configured_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK stores the query URL-decoded (an encoded `&` in a value splits it), and the configured
    secret may show up anywhere (an exception message, a variable): both are caught."""
    from c2casgiutils import config

    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("C2C__AUTH__SECRET", "my&odd secret=value")
    config.reload()
    try:
        event = {
            "request": {"query_string": "secret=my&odd secret=value&keep=visible1", "url": "http://x/c2c"},
            "exception": {"values": [{"value": "compared with my&odd secret=value"}]},
            "extra": {"encoded": "x=my%26odd%20secret%3Dvalue", "qs": "code=C0deValue&state=St4teValue&page=2"},
            "breadcrumbs": {"values": [{"data": {"http.query": [["state", "St4teValue"], ["keep", "visible1"]]}}]},
        }
        text = json.dumps(sentry.scrub_event(event))
    finally:
        monkeypatch.delenv("C2C__AUTH__SECRET")
        config.reload()
    for leaked in ("odd", "C0deValue", "St4teValue", "my%26"):
        assert leaked not in text, text
    assert "visible1" in text and "page=2" in text
    # Without the configured secret, the decoded query still loses the pieces that followed the `&`.
    scrubbed = sentry.scrub_event({"request": {"query_string": "secret=ab&cd&keep=visible1"}})
    assert scrubbed["request"]["query_string"] == f"secret={REDACTED}&keep=visible1"
