"""Token kinds, pinned algorithm, required claims; tampered cookies never accepted, never a 500 (weak points 2, 5)."""

from __future__ import annotations

import base64
import json
import time
import types
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from c2c_auth import _sessions
from c2c_auth._tokens import ISSUER, SESSION_FORMAT, STATE_AUDIENCE, InvalidToken, Keys

COOKIE = "c2c-jwt-auth"
MASTER = "k" * 40
KEY = Keys(MASTER, "HS256")


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "typ": "session",
        "ver": SESSION_FORMAT,
        "sid": "abc",
        "iat": now,
        "exp": now + 600,
        "mth": "secret",
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _sign(claims: dict[str, Any], key: str | bytes = MASTER, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm)


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_round_trip(algorithm: str) -> None:
    # Short masters are fine (no InsecureKeyLengthWarning per cookie: startup() reports a short secret once).
    keys = Keys("short", algorithm)
    token = keys.encode("session", {"mth": "secret"}, 60)
    claims = keys.decode(token, "session")
    assert claims["mth"] == "secret"
    assert claims["ver"] == 1
    assert len(claims["sid"]) >= 20
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    with pytest.raises(InvalidToken):
        Keys("short", "HS256" if algorithm != "HS256" else "HS384").decode(token, "session")
    state = keys.encode("oauth-state", {"sth": "x"}, 60)
    assert keys.decode(state, "oauth-state")["sth"] == "x"


def test_session_is_signed_with_the_master_itself_and_has_no_audience() -> None:
    """What 0.14-style application code does: `jwt.decode(cookie, secret, algorithms=["HS256"])`."""
    token = KEY.encode("session", {"mth": "github_oauth", "login": "alice", "display_name": "A", "url": "u"}, 60)
    claims = jwt.decode(token, MASTER, algorithms=["HS256"])
    assert {key: claims[key] for key in ("login", "display_name", "url", "typ", "ver")} == {
        "login": "alice",
        "display_name": "A",
        "url": "u",
        "typ": "session",
        "ver": 1,
    }
    assert "aud" not in claims
    assert "token" not in claims


def test_state_and_session_never_swap() -> None:
    """Different keys (the state key is derived), different kinds: refused both ways, by the signature first."""
    state = KEY.encode("oauth-state", {"sth": "x", "sid": "abc", "ver": 1}, 60)
    session = KEY.encode("session", {"mth": "secret"}, 60)
    with pytest.raises(InvalidToken):
        KEY.decode(state, "session")
    with pytest.raises(InvalidToken):
        KEY.decode(session, "oauth-state")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(state, MASTER, algorithms=["HS256"], options={"verify_aud": False})
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(session, KEY.state_signing, algorithms=["HS256"])
    assert KEY.state_signing != KEY.session_signing
    # Even a state token signed with the session key is refused: it has an audience and another kind.
    forged = _sign(_claims(typ="oauth-state", aud=STATE_AUDIENCE))
    with pytest.raises(InvalidToken):
        KEY.decode(forged, "session")


def test_secret_mode_without_jwt_secret_derives_the_session_key() -> None:
    keys = Keys("a shared secret long enough for hs256", "HS256", session_key_is_master=False)
    token = keys.encode("session", {"mth": "secret"}, 60)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "a shared secret long enough for hs256", algorithms=["HS256"])
    assert keys.decode(token, "session")["mth"] == "secret"


def test_later_additions_are_optional_claims() -> None:
    """A newer writer's extra claims are ignored, so a format addition never logs anyone out."""
    token = _sign(_claims(future_claim={"x": 1}, another="y"))
    assert KEY.decode(token, "session")["another"] == "y"


@pytest.mark.parametrize(
    "token",
    [
        # a state token is never a session (derived key, kind, audience)
        pytest.param(KEY.encode("oauth-state", {"mth": "secret", "sid": "a", "ver": 1}, 60), id="state-as-session"),
        pytest.param(_sign(_claims(typ="oauth-state")), id="wrong-typ"),
        pytest.param(_sign(_claims(aud="c2c-auth:session")), id="with-aud"),
        pytest.param(_sign(_claims(iss="someone-else")), id="wrong-iss"),
        # required claims and the format version
        pytest.param(_sign(_claims(exp=None)), id="no-exp"),
        pytest.param(_sign(_claims(iat=None)), id="no-iat"),
        pytest.param(_sign(_claims(iss=None)), id="no-iss"),
        pytest.param(_sign(_claims(typ=None)), id="no-typ"),
        pytest.param(_sign(_claims(ver=None)), id="no-ver"),
        pytest.param(_sign(_claims(sid=None)), id="no-sid"),
        pytest.param(_sign(_claims(sid="")), id="empty-sid"),
        pytest.param(_sign(_claims(ver=2)), id="ver-2"),
        pytest.param(_sign(_claims(ver="1")), id="ver-text"),
        pytest.param(_sign(_claims(ver=True)), id="ver-bool"),
        pytest.param(_sign(_claims(exp=int(time.time()) - 5)), id="expired"),
        # c2casgiutils 0.14's cookies, signed with the same secret: logged out once after the upgrade
        pytest.param(
            _sign({"login": "a", "display_name": "A", "url": "u", "token": "gho_x", "iat": 1, "exp": 2**31}),
            id="0.14-session",
        ),
        pytest.param(_sign({"oauth_state": "s", "iat": 1, "exp": 2**31}), id="0.14-state"),
        pytest.param(_sign({"secret": "s", "iat": 1, "exp": 2**31}), id="0.14-secret-session"),
        # pinned algorithm and key
        pytest.param(_sign(_claims(), MASTER * 2, "HS512"), id="hs512"),
        pytest.param(
            _b64(b'{"alg":"none","typ":"JWT"}') + "." + _b64(json.dumps(_claims()).encode()) + ".", id="alg-none"
        ),
        pytest.param(_sign(_claims(), KEY.state_signing), id="state-key"),
        pytest.param(_sign(_claims(), "other" * 8), id="other-key"),
        # junk
        pytest.param("", id="empty"),
        pytest.param("a.b.c", id="junk"),
        pytest.param("x" * 9000, id="huge"),
    ],
)
def test_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        KEY.decode(token, "session")


def test_encrypted_claims_are_bound_to_their_kind() -> None:
    blob = KEY.encrypt({"at": "gho_secret"}, "oauth-state")
    assert "gho_secret" not in base64.urlsafe_b64decode(blob + "==").decode("latin-1")
    with pytest.raises(InvalidToken):
        KEY.decrypt(blob, "session")
    with pytest.raises(InvalidToken):
        Keys("other" * 8, "HS256").decrypt(KEY.encrypt({"at": "x"}, "session"), "session")
    assert KEY.decrypt(KEY.encrypt({"at": "x"}, "session"), "session") == {"at": "x"}
    with pytest.raises(InvalidToken):
        KEY.decrypt(12, "session")


def _segments(token: str) -> tuple[bytes, ...] | None:
    try:
        return tuple(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in token.split("."))
    except ValueError:
        return None


_COOKIE_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=';,"\\')


@st.composite
def _tampered(draw: st.DrawFn, token: str) -> str:
    header, payload, signature = token.split(".")
    choice = draw(st.sampled_from(["flip", "truncate", "replace-payload", "swap-header", "random", "append"]))
    if choice == "flip":
        index = draw(st.integers(0, len(token) - 1))
        char = draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."))
        return token[:index] + char + token[index + 1 :]
    if choice == "truncate":
        return token[: draw(st.integers(0, len(token) - 1))]
    if choice == "replace-payload":
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        key = draw(st.sampled_from(sorted(claims) + ["new"]))
        claims[key] = draw(st.one_of(st.text(max_size=20), st.integers(), st.none(), st.booleans()))
        return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    if choice == "swap-header":
        alg = draw(st.sampled_from(["none", "HS512", "RS256", "ES256", "HS384"]))
        return f"{_b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{payload}.{signature}"
    if choice == "append":
        return token + draw(st.text(_COOKIE_CHARS, min_size=1, max_size=10))
    return draw(st.text(_COOKIE_CHARS, max_size=300))


async def _probe(client: httpx.AsyncClient, value: str) -> tuple[bool, list[int]]:
    """Send `value` as the session cookie to the status and a protected route."""
    headers = {"Cookie": f"{COOKIE}={value}"}
    status = await client.get("/c2c/auth/status", headers=headers)
    protected = await client.get("/c2c/logged", headers=headers)
    return status.json()["is_logged_in"], [status.status_code, protected.status_code]


@given(data=st.data())
async def test_tampered_secret_session(secret_mode: Any, make_client: Any, h: types.ModuleType, data: Any) -> None:
    client = make_client()
    login = await client.get("/c2c/auth/login", headers={"X-API-Key": h.SHARED_SECRET})
    token = h.set_cookies(login)[COOKIE]["value"]
    assert (await _probe(make_client(), token)) == (True, [200, 200])  # the property is not vacuous
    tampered = data.draw(_tampered(token))
    logged_in, codes = await _probe(make_client(), tampered)
    assert 500 not in codes
    if _segments(tampered) == _segments(token):
        return  # same bytes (base64's unused padding bits): the same token
    assert logged_in is False
    assert codes == [200, 403]


@given(data=st.data())
@example(data=None)
async def test_tampered_github_session(
    github_mode: Any, make_client: Any, github_http: Any, fake_github: Any, h: types.ModuleType, data: Any
) -> None:
    keys = _sessions.keys()
    assert keys is not None
    token = fake_github.issue_token("carol")
    ght = keys.encrypt({"at": token}, "session")
    session = keys.encode("session", {"mth": "github_oauth", "login": "carol", "ght": ght, "pth": "/c2c/"}, 600)
    client = make_client()
    if data is None:
        # The untampered session is accepted: the property below is not vacuous.
        assert (await _probe(client, session)) == (True, [200, 200])
        return
    tampered = data.draw(_tampered(session))
    logged_in, codes = await _probe(client, tampered)
    assert 500 not in codes
    if _segments(tampered) == _segments(session):
        return
    assert logged_in is False
    assert codes == [200, 403]


@given(data=st.data())
async def test_tampered_state_cookie(
    github_mode: Any, make_client: Any, fake_github: Any, h: types.ModuleType, data: Any
) -> None:
    client = make_client()
    started = await h.start_flow(client)
    ((name, cookie),) = h.set_cookies(started).items()
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    tampered = data.draw(_tampered(cookie["value"]))
    client.cookies.clear()
    calls_before = fake_github.calls["token"]  # the fake GitHub is shared by the examples
    response = await client.get(
        "/c2c/auth/github/callback",
        params={"state": state, "code": "any"},
        headers={"Cookie": f"{name}={tampered}"},
    )
    assert response.status_code != 500
    if _segments(tampered) == _segments(cookie["value"]):
        return
    assert response.status_code == 400
    assert COOKIE not in h.set_cookies(response)
    assert fake_github.calls["token"] == calls_before  # refused before any call to GitHub
