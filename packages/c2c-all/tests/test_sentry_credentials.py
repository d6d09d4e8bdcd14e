"""No credential reaches Sentry, local variables included (on by default, as in c2casgiutils 0.14).

The events go to a real local HTTP server standing in for Sentry (`_sentry_stand_in`), through the
SDK's real integrations: a FastAPI app served through httpx, and the logging integration (what a
failing health check logs with its traceback). Each credential is a marker that must appear nowhere
in what the stand-in received, in any form; some values that are no credential must stay.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
import sentry_sdk
from _sentry_stand_in import SentryStandIn
from fastapi import FastAPI, HTTPException, Request
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from c2casgiutils import config, sentry
from c2casgiutils._scrub import _basic_credentials, is_credential_name, settings_secrets
from c2casgiutils._settings import SentrySettings
from c2casgiutils.logging_filters import REDACTED

SESSION_JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZG1pbiIsInNpZCI6IjEyMyJ9.c2Vzc2lvbi1zaWduYXR1cmUx"
DEVICE = "1.dev1ce1d.1796590000.devicemac0123456789"
BEARER = "gho_bearerT0kenFromTheClient42"
GITHUB_TOKEN = "gho_gitHubAccessT0kenOfTheSession"
API_KEY = "apiKeyHeaderValue-7781"
PG_PASSWORD = "pgPassw0rd-from-the-url"
HTTP_PASSWORD = "m0nitorPassw0rd"
# Configured in the settings: hidden wherever they appear, under any name.
AUTH_SECRET = "auth-shared-secret-marker-0123456789"
JWT_SECRET = "jwt-signing-secret-marker-0123456789abc"
BROADCAST_SECRET = "broadcast-secret-marker-0123456789abcdef"
GITHUB_SECRET = "github-client-secret-marker-0123"
REDIS_PASSWORD = "redisPassw0rdMarker"
CREDENTIALS = (
    SESSION_JWT,
    DEVICE,
    BEARER,
    GITHUB_TOKEN,
    API_KEY,
    PG_PASSWORD,
    HTTP_PASSWORD,
    AUTH_SECRET,
    JWT_SECRET,
    BROADCAST_SECRET,
    GITHUB_SECRET,
    REDIS_PASSWORD,
)
KEPT = ("keep-me-visible-42", "boom-marker", "pgadmin", "page=2", "demo-agent/1.0")


def _assert_no_credential(text: str) -> None:
    for credential in CREDENTIALS:
        for form in {credential, credential[:24], base64.b64encode(credential.encode()).decode()[:16]}:
            where = text.find(form)
            assert where < 0, f"{credential} leaked: ...{text[max(0, where - 200) : where + 60]}..."


@pytest.fixture(autouse=True)
def _settings_with_secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    for name in list(os.environ):
        if name.upper().startswith("C2C__"):
            monkeypatch.delenv(name)
    for name, value in {
        "C2C__AUTH__SECRET": AUTH_SECRET,
        "C2C__AUTH__JWT__SECRET": JWT_SECRET,
        "C2C__BROADCAST__SECRET": BROADCAST_SECRET,
        "C2C__AUTH__GITHUB__CLIENT_SECRET": GITHUB_SECRET,
        "C2C__REDIS__URL": f"redis://default:{REDIS_PASSWORD}@127.0.0.1:1/0",
    }.items():
        monkeypatch.setenv(name, value)
    config.reload()
    yield
    monkeypatch.undo()
    config.reload()


def _github_request(token: str) -> None:
    """Where c2c-auth's GitHub client fails: its headers in a nested local variable."""
    kwargs = {"headers": {"Authorization": f"Bearer {token}", "Accept": "application/json"}, "timeout": 5}
    raise ConnectionError(f"GitHub answered HTTP 500 ({len(kwargs)} arguments)")


async def test_a_failed_request_sends_no_cookie_token_or_header(sentry_stand_in: SentryStandIn) -> None:
    """A 5xx from a route: the scope's headers (frame variables), a chained GitHub error's locals."""
    assert sentry.init(SentrySettings(dsn=sentry_stand_in.dsn))
    app = FastAPI()

    @app.get("/c2c/logging/overrides")
    async def overrides() -> None:
        visible = "keep-me-visible-42"
        try:
            _github_request(GITHUB_TOKEN)
        except ConnectionError as error:
            raise HTTPException(503, f"boom-marker: GitHub unavailable ({visible})") from error

    headers = {
        "Cookie": f"c2c-auth-device={DEVICE}; c2c-jwt-auth={SESSION_JWT}; theme=dark",
        "Authorization": f"Bearer {BEARER}",
        "X-Api-Key": API_KEY,
        "User-Agent": "demo-agent/1.0",
    }
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/c2c/logging/overrides?page=2", headers=headers)
    assert response.status_code == 503
    sentry_sdk.flush(timeout=5)
    events = sentry_stand_in.events()
    assert events, "the 503 was not captured"
    sent = sentry_stand_in.text()
    _assert_no_credential(sent)
    for kept in ("keep-me-visible-42", "boom-marker", "page=2", "demo-agent/1.0"):
        assert kept in sent, kept
    # The frames still carry their variables: the scope is there, only the credentials are gone.
    frames = [
        frame for event in events for value in event["exception"]["values"] for frame in value["stacktrace"]["frames"]
    ]
    assert any("vars" in frame for frame in frames)
    assert REDACTED in sent


async def test_credentials_as_mapping_keys_never_leave(sentry_stand_in: SentryStandIn) -> None:
    """A token cache or a sessions dict keyed by the credential (`{token: user}`): the keys are scrubbed too."""
    assert sentry.init(SentrySettings(dsn=sentry_stand_in.dsn))
    app = FastAPI()

    @app.get("/boom")
    async def boom(request: Request) -> None:
        sessions = {request.headers["authorization"].removeprefix("Bearer "): {"user": "alice"}}
        seen = {request.cookies["c2c-jwt-auth"]: 1, "keep-me-visible-42": 2}
        by_secret = {str(config.settings.auth.secret): "bob"}
        raise RuntimeError(f"boom-marker {len(sessions) + len(seen) + len(by_secret)}")

    headers = {"Cookie": f"c2c-jwt-auth={SESSION_JWT}", "Authorization": f"Bearer {GITHUB_TOKEN}"}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/boom", headers=headers)).status_code == 500
    sentry_sdk.flush(timeout=5)
    assert sentry_stand_in.events()
    sent = sentry_stand_in.text()
    _assert_no_credential(sent)
    assert "keep-me-visible-42" in sent and "boom-marker" in sent


def test_scrubbed_keys_stay_distinct() -> None:
    first, second = "ghp_" + "A" * 36, "ghp_" + "B" * 36
    frame_vars = {"users": {first: "a", second: "b", "plain": "c"}}
    scrubbed = sentry.scrub_event({"exception": {"values": [{"stacktrace": {"frames": [{"vars": frame_vars}]}}]}})
    shown = scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]["users"]
    assert shown == {REDACTED: "a", f"{REDACTED} (2)": "b", "plain": "c"}
    attributes = {f"sentry.message.parameter.{first}": {"value": 1}}
    assert sentry.scrub_event({"attributes": attributes}) == {
        "attributes": {f"sentry.message.parameter.{REDACTED}": {"value": 1}}
    }


def test_a_credential_the_sdk_cut_short_is_hidden() -> None:
    """sentry-sdk cuts long strings (`max_value_length`, with `...`) before the hooks see them."""
    cut_secret = "x" * 1000 + AUTH_SECRET[:20] + "..."
    cut_url = "y" * 1000 + f"redis://app:{REDIS_PASSWORD[:12]}..."
    event = {"exception": {"values": [{"value": cut_secret}, {"value": cut_url}, {"value": "Loading..."}]}}
    with_secret = sentry._scrub(event)  # the configured secrets are the settings'
    values = [value["value"] for value in with_secret["exception"]["values"]]
    assert values[0].endswith(f"x{REDACTED}...")
    assert values[1].endswith(f"redis://app:{REDACTED}...")
    assert values[2] == "Loading..."


def test_a_configured_secret_is_hidden_base64_hex_and_in_a_url_path(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "kQ7/vR2+xP9=mN4/tL8+wZ3"
    monkeypatch.setenv("C2C__AUTH__SECRET", secret)
    config.reload()
    encoded = secret.encode()
    shown = {
        "path": f"404 for url 'https://files.example/download/{quote(secret)}/report.pdf'",
        "lower": re.sub("%[0-9A-F]{2}", lambda match: match.group(0).lower(), quote(secret, safe="")),
        "b64": base64.b64encode(encoded).decode(),
        "b64url": base64.urlsafe_b64encode(encoded).decode().rstrip("="),
        "hex": encoded.hex(),
    }
    event = {"exception": {"values": [{"stacktrace": {"frames": [{"vars": shown}]}}]}}
    text = json.dumps(sentry.scrub_event(event))
    for form in shown.values():
        assert form not in text, form
    assert "files.example/download" in text


async def test_a_deliberate_503_sends_no_event_an_ordinary_one_does(sentry_stand_in: SentryStandIn) -> None:
    """`TemporarilyUnavailable` (the bearer cap, GitHub or Redis down) would be one event per request."""
    from c2c_auth import TemporarilyUnavailable

    assert sentry.init(SentrySettings(), dsn=sentry_stand_in.dsn)  # a DSN given as an option is enough
    app = FastAPI()

    @app.get("/capped")
    async def capped() -> None:
        raise TemporarilyUnavailable("Too many GitHub token checks right now", headers={"Retry-After": "1"})

    @app.get("/ours")
    async def ours() -> None:
        raise HTTPException(503, "the application's own 503 marker")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for _ in range(5):
            assert (await client.get("/capped")).status_code == 503
        assert (await client.get("/ours")).status_code == 503
    sentry_sdk.flush(timeout=5)
    errors = [value["value"] for event in sentry_stand_in.events() for value in event["exception"]["values"]]
    assert errors == ["the application's own 503 marker"]


def _check_database(url: str) -> None:
    """Where asyncpg and an HTTP check fail: credentials in dicts, positional lists, URLs and requests."""
    cparams = {"user": "pgadmin", "password": PG_PASSWORD, "database": "postgres"}
    params = ["pgadmin", PG_PASSWORD, "postgres"]  # a positional password: hidden as a collected value
    parts = urlsplit(url)
    basic = base64.b64encode(f"monitor:{HTTP_PASSWORD}".encode()).decode()
    request = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {basic}\r\n\r\n"
    raise OSError(f"connection refused ({len(cparams)}, {len(params)}, {parts.hostname}, {len(request)})")


def test_a_failing_check_logged_with_its_traceback_sends_no_password(sentry_stand_in: SentryStandIn) -> None:
    """c2c-health logs a check's exception at ERROR with its traceback: the logging integration's event."""
    assert sentry.init(SentrySettings(dsn=sentry_stand_in.dsn))
    try:
        _check_database(f"http://monitor:{HTTP_PASSWORD}@127.0.0.1:9/health")
    except OSError:
        logging.getLogger("c2c_health").error("Health check 'db' failed with an exception", exc_info=True)
    sentry_sdk.flush(timeout=5)
    assert sentry_stand_in.events(), "the ERROR record was not sent"
    sent = sentry_stand_in.text()
    _assert_no_credential(sent)
    assert "pgadmin" in sent and "connection refused" in sent


def _connect(password: str) -> None:
    raise ConnectionRefusedError("database refused the connection")


def _open_database(value: str) -> None:
    _connect(value)


def test_a_password_variable_s_value_is_hidden_in_the_other_frames(sentry_stand_in: SentryStandIn) -> None:
    """The SDK's own scrubber empties `password` before the hook runs: its value is read from the
    exception's frames, and hidden where the caller holds it under an innocent name."""
    assert sentry.init(SentrySettings(dsn=sentry_stand_in.dsn))
    value = "frame-password-" + os.urandom(6).hex()
    try:
        _open_database(value)
    except ConnectionRefusedError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=5)
    assert sentry_stand_in.events()
    sent = sentry_stand_in.text()
    assert value not in sent
    assert "_open_database" in sent and "database refused the connection" in sent


def _event_with_frames(*frames: dict[str, Any]) -> dict[str, Any]:
    return {"exception": {"values": [{"type": "RuntimeError", "value": "x", "stacktrace": {"frames": list(frames)}}]}}


@given(token=st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789", min_size=12, max_size=24))
def test_a_query_or_header_credential_is_hidden_where_the_caller_holds_it(token: str) -> None:
    """A token in a URL's query (after other text: `https://h/x?access_token=...`), or after the
    scheme of an `Authorization` header even when it looks like a word: hidden in the caller's
    variable too."""
    url = f"'https://api.example.com/x?access_token={token}&page=2'"
    header = [["b'authorization'", f"b'Bearer {token}'"]]
    for frame in ({"function": "call", "vars": {"url": url}}, {"function": "call", "vars": {"headers": header}}):
        caller = {"function": "outer", "vars": {"tok": repr(token)}}
        sent = json.dumps(sentry.scrub_event(_event_with_frames(caller, frame)))
        assert token not in sent
    assert "page=2" in json.dumps(sentry.scrub_event(_event_with_frames({"function": "call", "vars": {"url": url}})))


def test_configured_secrets_are_hidden_under_any_name(sentry_stand_in: SentryStandIn) -> None:
    """Every secret of the settings, wherever it shows: a message, an innocent variable, an extra."""
    assert sentry.init(SentrySettings(dsn=sentry_stand_in.dsn))
    settings = config.settings
    compared = [str(settings.auth.secret), str(settings.auth.jwt.secret), str(settings.broadcast.secret)]
    sentry_sdk.set_extra("github", {"id": "client-id", "value": str(settings.auth.github.client_secret)})
    try:
        raise ValueError(f"compared {compared[0]} with {compared[2]}; redis://:{REDIS_PASSWORD}@h/0 answered no")
    except ValueError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=5)
    assert sentry_stand_in.events()
    _assert_no_credential(sentry_stand_in.text())


def test_settings_secrets_are_credentials_not_names_or_addresses() -> None:
    """Where a credential goes (`token_url`) or what it is called (`state_cookie`) is no secret."""

    class Custom(BaseModel):
        api_token: str = "custom-api-token-value"
        token_url: str = "https://idp.example/oauth/token"
        session_cookie: str = "my-session"
        backend: str = f"postgresql://app:{PG_PASSWORD}@db/app"
        listed: list[str] = Field(default_factory=lambda: [f"https://u:{HTTP_PASSWORD}@h/"])

    found = set(settings_secrets(Custom()))
    assert found == {"custom-api-token-value", PG_PASSWORD, HTTP_PASSWORD}
    defaults = set(settings_secrets(config.settings))
    assert "c2c-state" not in defaults
    assert not any("://" in secret for secret in defaults), defaults


def test_the_cached_name_rule_answers_as_the_rule() -> None:
    """Short names are answered from a cache: the same answer, per set of extra names too."""
    extra = frozenset({"x_internal"})
    for _ in range(2):
        assert is_credential_name("X-Internal", extra)
        assert not is_credential_name("X-Internal")
        assert is_credential_name("password")
        assert is_credential_name(b"password")
        long_name = "visible_" * 40 + "password"
        assert is_credential_name(long_name)
        assert not is_credential_name("visible_" * 40)


# --- the rules, on hand-made and generated events ----------------------------------------------------


def test_credential_names() -> None:
    for name in (
        "password",
        "Authorization",
        "b'authorization'",
        "X-Api-Key",
        "client_secret",
        "sentinel_password",
        "c2c-jwt-auth",
        "c2c-auth-device",
        "Cookie",
        "set-cookie",
        "access_token",
        "PHPSESSID",
        "session_id",
    ):
        assert is_credential_name(name), name
    for name in ("author", "oauth_url", "state", "code", "headers", "key", "status_code", "visible", "user", "page"):
        assert not is_credential_name(name), name
    assert is_credential_name("X-Internal", frozenset({"x_internal"}))


def test_scrub_event_keeps_the_structure() -> None:
    event = {
        "exception": {"values": [{"stacktrace": {"frames": [{"vars": {"count": 3, "password": None, "ok": True}}]}}]},
        "request": {"headers": {"User-Agent": "demo-agent/1.0"}, "query_string": "page=2&token=abcdefgh"},
    }
    scrubbed = sentry.scrub_event(event)
    frame_vars = scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]
    assert frame_vars == {"count": 3, "password": None, "ok": True}  # no value, nothing to hide
    assert scrubbed["request"]["headers"] == {"User-Agent": "demo-agent/1.0"}
    assert scrubbed["request"]["query_string"] == f"page=2&token={REDACTED}"


_SECRET_TEXT = st.text(alphabet="abcdefghijXYZ0123456789-_.~", min_size=8, max_size=24).filter(
    lambda text: any(c.isdigit() for c in text) and any(c.isalpha() for c in text)
)
_PLAIN_NAMES = st.sampled_from(["count", "visible", "path", "method", "user", "items", "name"])
_CREDENTIAL_NAMES = st.sampled_from(["password", "token", "Authorization", "api_key", "client_secret", "cookie"])


@st.composite
def _events(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A frame's variables: credentials under credential names and as header pairs, plus plain values."""
    secrets: list[str] = []
    variables: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 4))):
        secret = draw(_SECRET_TEXT)
        secrets.append(secret)
        placement = draw(st.sampled_from(["key", "nested", "pair", "bytes-pair", "url"]))
        name = draw(_CREDENTIAL_NAMES)
        plain = f"{draw(_PLAIN_NAMES)}{index}"  # each secret where it can be told (no overwriting)
        if placement == "key":
            variables[f"{plain}_{name}"] = secret
        elif placement == "nested":
            variables[plain] = {name: secret, "kept": index}
        elif placement == "pair":
            variables.setdefault("headers", []).append([name.lower(), secret])
        elif placement == "bytes-pair":
            variables.setdefault("scope", {"headers": []})["headers"].append([f"b'{name.lower()}'", f"b'{secret}'"])
        else:
            variables[plain] = f"https://user:{secret}@example.test/path"
        # The same value again where nothing names it: a copy in a positional list.
        if draw(st.booleans()):
            variables.setdefault("args", []).append(secret)
    frames = [{"function": "f", "vars": variables}]
    return {"exception": {"values": [{"value": "boom", "stacktrace": {"frames": frames}}]}}, secrets


@given(_events())
def test_no_generated_credential_survives(case: tuple[dict[str, Any], list[str]]) -> None:
    event, secrets = case
    scrubbed = sentry.scrub_event(json.loads(json.dumps(event)))
    text = json.dumps(scrubbed)
    for secret in secrets:
        assert secret not in text, (secret, text)
    assert "boom" in text
    assert sentry.scrub_event(json.loads(text)) == scrubbed  # a second pass changes nothing


# --- a second audit: escaped forms, odd names, texts, hostile input ---------------------------------


def test_a_configured_secret_is_hidden_in_its_escaped_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret with a backslash, both quotes and non-ASCII text, as `repr`, bytes `repr` and JSON show it."""
    secret = "SEKRETp\\a'ss\"w\u00f6rd12"
    monkeypatch.setenv("C2C__AUTH__SECRET", secret)
    config.reload()
    shown = {
        "as_str": repr(secret),
        "as_bytes": repr(secret.encode()),
        "as_json": repr(json.dumps({"x": secret})),
        "as_json_utf8": repr(json.dumps({"x": secret}, ensure_ascii=False).encode()),
        "url_encoded": "https://h/p?x=" + quote(secret, safe=""),
    }
    event = {"exception": {"values": [{"stacktrace": {"frames": [{"vars": shown}]}}]}}
    text = json.dumps(sentry.scrub_event(event))
    assert "SEKRET" not in text, text


def test_header_names_variable_names_and_texts() -> None:
    """Names the first rules missed (audit): header names by c2c-config's rule, camelCase and compound
    variable names, credentials inside repr/YAML/JSON text, token user-info and GitHub tokens."""
    frame_vars = {
        "scope": {"headers": [["b'x-signature-256'", "b'sha256=SEKRETsig0'"], ["b'x-key'", "b'SEKRETxkey0'"]]},
        "accessToken": "SEKRETat0001",
        "clientSecret": "SEKRETcs0001",
        "refreshtoken": "SEKRETrt0001",
        "db_pass": "SEKRETdbp001",
        "pw": "SEKRETpw0001",
        "XApiKey": "SEKRETxak001",
        "as_repr": "{'Authorization': 'SEKRETauthz1'}",
        "as_kwargs": "connect(password='SEKRETconn01')",
        "as_yaml": "password: SEKRETyaml01",
        "token_user": "https://SEKRETtokenuser0123456789@github.com/x.git",
        "github": "cloning with ghp_SEKRETabcdefghijklmnopqrstuvwxyz01",
        # Kept: not credentials.
        "key": "user:42",
        "code": 500,
        "state": "ok",
        "status_code": 503,
        "author": "somebody",
    }
    event = {
        "request": {"headers": {"X-Hub-Signature": "sha256=SEKREThub001", "Ocp-Apim-Subscription-Key": "SEKRETaz0001"}},
        "exception": {"values": [{"stacktrace": {"frames": [{"vars": frame_vars}]}}]},
    }
    scrubbed = sentry.scrub_event(event)
    text = json.dumps(scrubbed)
    assert "SEKRET" not in text, text
    kept = scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]
    assert (kept["key"], kept["code"], kept["state"], kept["status_code"], kept["author"]) == (
        "user:42",
        500,
        "ok",
        503,
        "somebody",
    )


def test_a_basic_credential_is_hidden_decoded_too() -> None:
    """The password of an `Authorization: Basic` header, wherever it shows in clear (a driver's error)."""
    token = base64.b64encode(b"monitor:Pw-Decoded-771").decode()
    event = {
        "breadcrumbs": {"values": [{"data": {"headers": f"Authorization: Basic {token}"}}]},
        "message": "login refused for monitor:Pw-Decoded-771, then with Pw-Decoded-771 alone",
        "extra": {"not_base64": "Basic ###########"},
    }
    scrubbed = sentry.scrub_event(event)
    assert "Pw-Decoded-771" not in json.dumps(scrubbed) and token not in json.dumps(scrubbed)
    assert scrubbed["message"] == f"login refused for {REDACTED}, then with {REDACTED} alone"
    assert scrubbed["extra"] == {"not_base64": "Basic ###########"}  # not a token: left as it was
    assert _basic_credentials(base64.b64encode(b"no-colon-here").decode()) == []
    assert _basic_credentials("bm90LXV0Zjj/") == []  # not UTF-8 once decoded


def test_hostile_input_neither_loses_nor_hangs_the_event() -> None:
    """A lone surrogate (the SDK drops an event whose hook raises) and 200 000-character strings of
    every shape the patterns look for: scrubbed, and in linear time (a quadratic pattern would take
    many minutes here, and the CI run's limit would end it)."""
    scrubbed = sentry.scrub_event({"extra": {"access_token": "abc\ud800defgh", "copy": "abc\ud800defgh"}})
    assert scrubbed == {"extra": {"access_token": REDACTED, "copy": REDACTED}}
    size = 200_000
    for text in ("a" * size, "a=" * (size // 2), "x://" * (size // 4), "eyJ" * (size // 3), "ghp_" * (size // 4)):
        for shaped in (text, "Bearer " + text, "'a': " + text, "https://" + text + "@h"):
            assert isinstance(sentry.scrub_event({"extra": {"value": shaped}})["extra"]["value"], str)


def test_an_event_the_scrubber_fails_on_is_sent_bare(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Should scrubbing fail anyway, the event keeps where it happened and nothing else (not lost, not raw)."""
    from c2casgiutils import _scrub

    def broken(self: Any, value: Any, key: object = None) -> None:
        raise RuntimeError("scrubber bug")

    monkeypatch.setattr(_scrub.Scrubber, "collect", broken)
    frame = {"filename": "app.py", "function": "handler", "lineno": 12, "vars": {"password": "SEKRETbare01"}}
    event = {
        "event_id": "abc",
        "level": "error",
        "extra": {"x": "SEKRETbare01"},
        "exception": {"values": [{"type": "ValueError", "value": "SEKRETbare01", "stacktrace": {"frames": [frame]}}]},
    }
    with caplog.at_level(logging.WARNING, logger="c2casgiutils.sentry"):
        bare = sentry.scrub_event(event)
    assert "SEKRET" not in json.dumps(bare)
    assert bare["event_id"] == "abc"
    assert bare["exception"]["values"][0]["type"] == "ValueError"
    assert bare["exception"]["values"][0]["stacktrace"]["frames"] == [
        {"filename": "app.py", "function": "handler", "lineno": 12}
    ]
    assert "could not be scrubbed (RuntimeError)" in caplog.text
