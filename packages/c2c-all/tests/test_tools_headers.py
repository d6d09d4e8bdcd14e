"""The request-headers tool shows what the application receives, credentials masked by name."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from c2casgiutils.logging_filters import REDACTED_PARAMETERS
from c2casgiutils.tools.headers import MASK, NameMasker, describe_request, mask_query, mask_url_queries

SECRET = "headers-test-secret-value"
KEY = {"X-API-Key": SECRET}

# The names the issues list, written independently of the implementation (the test's own oracle).
CREDENTIAL_FRAGMENTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "session",
    "csrf",
    "apikey",
    "accesskey",
    "auth",
)
CREDENTIAL_NAMES = ("authorization", "proxy-authorization", "cookie", "x-api-key")
# Whole words of a name (`X-Client-Key`, `access_key`), and whole names (the OAuth callback's code).
CREDENTIAL_WORDS = ("key", "pass", "sig")
CREDENTIAL_WHOLE_NAMES = ("code", "state")


def is_credential(name: str) -> bool:
    """The oracle: the names the tool must mask (it may mask a few more: xsrf, credential, ...)."""
    squashed = re.sub(r"[^a-z0-9]", "", name.lower())
    words = re.split(r"[^a-z]+", re.sub(r"(?<=[a-z])(?=[A-Z])", "-", name).lower())
    return (
        name.lower() in CREDENTIAL_NAMES
        or any(fragment in squashed for fragment in CREDENTIAL_FRAGMENTS)
        or any(word in CREDENTIAL_WORDS for word in words)
        or squashed in CREDENTIAL_WHOLE_NAMES
    )


# --- the truth table of names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("Authorization", True),
        ("proxy-authorization", True),
        ("Cookie", True),
        ("X-API-Key", True),
        ("x_api_key", True),
        ("Api-Key", True),
        ("apikey", True),
        ("X-Auth-Token", True),
        ("X-Amz-Security-Token", True),
        ("X-CSRF-Token", True),
        ("X-XSRF-TOKEN", True),
        ("X-Session-Id", True),
        ("PHPSESSID", True),
        ("JSESSIONID", True),
        ("client_secret", True),
        ("Password", True),
        ("db_passwd", True),
        ("X-Forwarded-Client-Cert-Auth", True),
        ("access_token", True),
        ("X-Amz-Credential", True),
        ("X-Amz-Signature", True),
        ("private_key", True),
        ("x-jwt-assertion", True),
        ("oauth_verifier", True),
        # The security audit's names, in clear before.
        ("code", True),
        ("Code", True),
        ("pwd", True),
        ("db_pwd", True),
        ("pass", True),
        ("key", True),
        ("KEY", True),
        ("sig", True),
        ("access_key", True),
        ("accessKey", True),
        ("accesskey", True),
        ("X-Access-Key", True),
        ("X-Client-Key", True),
        ("clientkey", True),
        ("X-Goog-Api-Key", True),
        ("Ocp-Apim-Subscription-Key", True),
        ("state", True),
        ("code_verifier", True),
        ("sid", True),
        ("otp", True),
        ("ticket", True),
        ("passphrase", True),
        ("Sec-WebSocket-Key", True),
        # The toolkit's one rule (c2c-config's, which the access log applied already): `pass` anywhere
        # (`dbpass`, `smtppass`), a name ending with `key`; hiding too much here is harmless.
        ("dbpass", True),
        ("bypass", True),
        ("passenger", True),
        ("monkey", True),
        ("pin", True),
        ("X-Bearer-Token", True),
        # ... while the ordinary headers and parameters stay readable.
        ("Keep-Alive", False),
        ("Accept-Encoding", False),
        ("Content-Encoding", False),
        ("Accept-Language", False),
        ("Cache-Control", False),
        ("If-None-Match", False),
        ("Origin", False),
        ("Via", False),
        ("X-Original-URL", False),
        ("X-Forwarded-Uri", False),
        ("X-Forwarded-Prefix", False),
        ("sentry-trace", False),
        ("Sec-Fetch-Site", False),
        ("Sec-CH-UA-Platform", False),
        ("Upgrade-Insecure-Requests", False),
        ("country_code", False),
        ("error_code", False),
        ("statement", False),
        ("keyboard", False),
        ("signal", False),
        ("design", False),
        ("inside", False),
        ("Host", False),
        ("X-Forwarded-For", False),
        ("X-Forwarded-Proto", False),
        ("X-Forwarded-Host", False),
        ("Forwarded", False),
        ("X-Real-IP", False),
        ("X-Request-Id", False),
        ("traceparent", False),
        ("tracestate", False),
        ("baggage", False),
        ("User-Agent", False),
        ("Accept", False),
        ("Content-Type", False),
        ("Referer", False),
        ("X-Custom-Header", False),
        ("page", False),
        ("param_1", False),
        ("", False),
    ],
)
def test_masked_names(name: str, masked: bool) -> None:
    assert NameMasker()(name) is masked
    if masked:
        assert NameMasker()(name.upper()) and NameMasker()(name.lower())


def test_everything_the_access_log_redacts_is_masked() -> None:
    """The access log redacts `secret`, `code` and `state` (`logging_filters`): the tool never shows more."""
    masker = NameMasker()
    for name in REDACTED_PARAMETERS:
        assert masker(name) and masker(name.upper()), name


def test_extra_names_extend_the_list() -> None:
    masker = NameMasker(["X-Tenant", "customer", "", " "])
    assert masker("x-tenant") and masker("X_TENANT_ID") and masker("customer_id")
    assert masker("authorization")  # the built-in names stay
    assert not masker("x-request-id")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("page=2", "page=2"),
        ("token=abc", f"token={MASK}"),
        ("a=1&access_token=abc&b=2", f"a=1&access_token={MASK}&b=2"),
        ("%74oken=abc&x=%20y", f"%74oken={MASK}&x=%20y"),  # the name is decoded, the rest kept as sent
        ("api+key=abc", f"api+key={MASK}"),
        ("token", "token"),  # no value
        ("token=&page=1", f"token={MASK}&page=1"),
        ("session=a=b", f"session={MASK}"),
        ("a&&token=x", f"a&&token={MASK}"),
        ("code=abc&state=xyz&country_code=ch", f"code={MASK}&state={MASK}&country_code=ch"),
        (
            "pwd=a&pass=b&key=c&sig=d&access_key=e&q=f",
            f"pwd={MASK}&pass={MASK}&key={MASK}&sig={MASK}&access_key={MASK}&q=f",
        ),
        ("%6Bey=abc", f"%6Bey={MASK}"),
    ],
)
def test_mask_query(query: str, expected: str) -> None:
    assert mask_query(query, NameMasker()) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no URL here", "no URL here"),
        ("color #fff", "color #fff"),
        ("https://h/p?pwd=x&a=1", f"https://h/p?pwd={MASK}&a=1"),
        ("/api?key=x#access_token=y&b=2", f"/api?key={MASK}#access_token={MASK}&b=2"),
        ("https://h/?code=1 and https://i/?sig=2&c=3", f"https://h/?code={MASK} and https://i/?sig={MASK}&c=3"),
    ],
)
def test_mask_url_queries(text: str, expected: str) -> None:
    assert mask_url_queries(text, NameMasker()) == expected
    assert mask_url_queries(text, NameMasker(), "#") == expected.replace(MASK, "#")


# --- the property: no credential value anywhere ------------------------------------------------------


def _request(headers: list[tuple[str, str]], query: str, path: str = "/c2c/headers/") -> Request:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 40000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode("latin-1"),
        "headers": [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers],
    }
    return Request(scope)


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@st.composite
def _names(draw: st.DrawFn) -> str:
    """A header or parameter name: a listed credential, one with a fragment inside, or an ordinary one."""
    kind = draw(st.sampled_from(["listed", "fragment", "word", "whole", "plain"]))
    if kind == "listed":
        return draw(st.sampled_from(CREDENTIAL_NAMES))
    if kind == "word":  # a credential word among others: X-Client-Key, access_key, accessKey, KEY
        word = draw(st.sampled_from(CREDENTIAL_WORDS))
        around = st.lists(st.text(_LETTERS, min_size=1, max_size=6), max_size=2)
        words = [*draw(around), word, *draw(around)]
        if draw(st.booleans()):
            return words[0] + "".join(part.capitalize() for part in words[1:])
        case = draw(st.sampled_from([str.lower, str.upper, str.capitalize]))
        return draw(st.sampled_from(["-", "_", "."])).join(case(part) for part in words)
    if kind == "whole":
        return draw(st.sampled_from([name.upper() if draw(st.booleans()) else name for name in CREDENTIAL_WHOLE_NAMES]))
    if kind == "fragment":
        fragment = draw(st.sampled_from([*CREDENTIAL_FRAGMENTS, "api-key", "api_key", "Api-Key"]))
        fragment = "".join(c.upper() if draw(st.booleans()) else c for c in fragment)
        prefix = draw(st.text(_LETTERS + "-_", max_size=6))
        suffix = draw(st.text(_LETTERS + "-_", max_size=6))
        return prefix + fragment + suffix
    return draw(st.text(_LETTERS + "-", min_size=1, max_size=12).filter(lambda name: name.strip("-") != ""))


@st.composite
def _traffic(
    draw: st.DrawFn,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """Headers, query parameters, cookies and the parameters of a URL-valued header, each with a unique value.

    Values are upper-case (`V<n>X...`): header names come out lower-cased and parameter names are
    lower-case letters, so a value can only appear in the answer as a value.
    """
    counter = iter(range(10_000))

    def value() -> str:
        return f"V{next(counter)}X" + draw(st.text("ABCDEF0123456789", min_size=4, max_size=10))

    headers = [(name, value()) for name in draw(st.lists(_names(), max_size=8))]
    headers = [(name, val) for name, val in headers if name.lower() != "cookie"]
    params = [(name, value()) for name in draw(st.lists(_names(), max_size=8))]
    cookies = [(draw(st.text(_LETTERS + "_", min_size=1, max_size=8)), value()) for _ in range(draw(st.integers(0, 3)))]
    referer_params = [(name, value()) for name in draw(st.lists(_names(), max_size=6))]
    return headers, params, cookies, referer_params


def _encode_name(name: str, encode_first: bool) -> str:
    quoted = urllib.parse.quote(name, safe="")
    return f"%{ord(quoted[0]):02X}{quoted[1:]}" if encode_first and quoted else quoted


@settings(max_examples=300, deadline=None)
@given(traffic=_traffic(), encode_first=st.booleans())
@example(
    traffic=(
        [("Authorization", "VAX1"), ("X-Auth-Token", "VBX2"), ("X-Forwarded-For", "VCX3"), ("x-api-key", "VDX4")],
        [("access_token", "VEX5"), ("page", "VFX6"), ("token", "VGX7"), ("token", "VHX8")],
        [("session", "VIX9"), ("theme", "VJX10")],
        [("password", "VKX11"), ("q", "VLX12")],
    ),
    encode_first=True,
)
def test_no_credential_value_appears(
    traffic: tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]],
    encode_first: bool,
) -> None:
    headers, params, cookies, referer_params = traffic
    query = "&".join(f"{_encode_name(name, encode_first)}={val}" for name, val in params)
    all_headers = list(headers)
    if cookies:
        all_headers.append(("Cookie", "; ".join(f"{name}={val}" for name, val in cookies)))
    if referer_params:
        half = len(referer_params) // 2
        referer_query = "&".join(f"{urllib.parse.quote(name, safe='')}={val}" for name, val in referer_params[:half])
        all_headers.append(("Referer", f"https://example.org/page?{referer_query}#top"))
        original = "&".join(f"{urllib.parse.quote(name, safe='')}={val}" for name, val in referer_params[half:])
        all_headers.append(("X-Original-URL", f"/api/v1?{original}#{original}"))

    answer = describe_request(_request(all_headers, query), NameMasker()).model_dump_json()

    # Header names arrive lower-cased (HTTP ignores their case: `X-ClientKey` is `x-clientkey`, no word
    # `key` in it); parameter names as sent.
    received = [(name.lower(), val) for name, val in headers] + params + referer_params
    for name, val in received:
        if is_credential(name):
            assert val not in answer, (name, val)
    for _, val in cookies:
        assert val not in answer  # every cookie value is masked
    for name, _ in cookies:
        assert f"{name}={MASK}" in answer  # and its name kept
    # Nothing else is masked: the other headers and parameters are shown as received.
    masker = NameMasker()
    for name, val in [*headers, *params, *referer_params]:
        if not masker(name):
            assert val in answer, (name, val)


def test_shape_and_clear_values() -> None:
    request = _request(
        [
            ("Host", "example.org"),
            ("X-Forwarded-For", "203.0.113.7"),
            ("traceparent", "00-abc-def-01"),
            ("X-Custom", "one"),
            ("X-Custom", "two"),
            ("Cookie", "a=1; b=2"),
            ("Cookie", "c=3"),
            ("Authorization", "Basic dXNlcjpwYXNz"),
            ("X-Forwarded-Uri", "/app/callback?code=ok&state=s&access_token=leak"),
            ("Referer", "https://someone:leak@example.net/from?x=1"),
        ],
        "page=2&page=3&client_secret=leak&q=a%20b",
        path="/c2c/headers/x",
    )
    answer = describe_request(request, NameMasker())
    assert answer.headers == {
        "host": "example.org",
        "x-forwarded-for": "203.0.113.7",
        "traceparent": "00-abc-def-01",
        "x-custom": "one, two",
        "cookie": f"a={MASK}; b={MASK}; c={MASK}",
        "authorization": MASK,
        "x-forwarded-uri": f"/app/callback?code={MASK}&state={MASK}&access_token={MASK}",  # the OAuth callback
        "referer": "https://someone:***@example.net/from?x=1",  # a URL's password is hidden
    }
    info = answer.client_info
    assert info.url_str == f"http://example.org/c2c/headers/x?page=2&page=3&client_secret={MASK}&q=a%20b"
    assert info.url["query"] == f"page=2&page=3&client_secret={MASK}&q=a%20b"
    assert info.url["path"] == "/c2c/headers/x" and info.url["hostname"] == "example.org"
    assert info.query_params == {"page": "2, 3", "client_secret": MASK, "q": "a b"}
    assert info.base_url_str == "http://example.org/"
    assert answer.scope["client"] == ["127.0.0.1", 40000]
    assert "query_string" not in answer.scope and "headers" not in answer.scope
    assert "leak" not in answer.model_dump_json()


def test_a_query_decoded_from_the_path_stays_in_the_path() -> None:
    # '%3F' and '%23' in a path are decoded by the server; the URL keeps them encoded in its path, so
    # the query the tool masks is exactly the request's query string.
    answer = describe_request(_request([("Host", "h")], "page=1", path="/c2c/headers/a?b#c"), NameMasker())
    assert answer.client_info.url["path"] == "/c2c/headers/a%3Fb%23c"
    assert answer.client_info.url["query"] == "page=1"
    assert answer.client_info.url["fragment"] == ""


def test_credential_named_scope_entries_are_masked() -> None:
    request = _request([("Host", "h")], "")
    request.scope["auth_token"] = "leak"
    request.scope["app_name"] = "shown"
    answer = describe_request(request, NameMasker())
    assert answer.scope["auth_token"] == MASK
    assert answer.scope["app_name"] == "shown"


# --- through the application ---------------------------------------------------------------------------


@pytest.fixture
async def client(c2c_client_factory: Any) -> AsyncIterator[httpx.AsyncClient]:
    env = {"C2C__AUTH__SECRET": SECRET, "C2C__TOOLS__HEADERS__MASKED_NAMES": "X-Tenant, customer"}
    async with c2c_client_factory(env) as http_client:
        yield http_client


async def test_endpoint_shows_what_the_application_receives(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/c2c/headers/a/b?param_1=visible&secret=hidden-1&customer_id=hidden-2",
        headers={
            **KEY,
            "X-Forwarded-Proto": "https",
            "X-Request-Id": "req-42",
            "X-Tenant": "hidden-3",
            "Cookie": "c2c-jwt-auth=hidden-4; theme=hidden-5",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["headers"]["x-forwarded-proto"] == "https"
    assert body["headers"]["x-request-id"] == "req-42"
    assert body["headers"]["x-api-key"] == MASK
    assert body["headers"]["x-tenant"] == MASK  # C2C__TOOLS__HEADERS__MASKED_NAMES
    assert body["headers"]["cookie"] == f"c2c-jwt-auth={MASK}; theme={MASK}"
    assert body["client_info"]["query_params"] == {"param_1": "visible", "secret": MASK, "customer_id": MASK}
    assert body["client_info"]["path_params"] == {"path_1": "a", "path_2": "b"}
    assert body["client_info"]["url_str"].endswith(f"?param_1=visible&secret={MASK}&customer_id={MASK}")
    for hidden in (SECRET, "hidden-1", "hidden-2", "hidden-3", "hidden-4", "hidden-5"):
        assert hidden not in response.text, hidden


async def test_endpoint_masks_what_the_audit_found(client: httpx.AsyncClient) -> None:
    """The security audit's finds: the OAuth code, short names, access keys, URL-valued headers' queries."""
    params = {"code": "leak-1", "pwd": "leak-2", "pass": "leak-3", "key": "leak-4", "sig": "leak-5"}
    params |= {"access_key": "leak-6", "state": "leak-7", "page": "2", "country_code": "CH"}
    response = await client.get(
        "/c2c/headers/",
        params=params,
        headers={
            **KEY,
            "X-Access-Key": "leak-8",
            "X-Client-Key": "leak-9",
            "Referer": "https://app.example.org/login?user=bob&pwd=leak-10#access_token=leak-11",
            "X-Original-URL": "/api/items?key=leak-12&sort=name",
            "Accept-Encoding": "gzip",
            "Keep-Alive": "timeout=5",
            "X-Forwarded-Host": "app.example.org",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    for hidden in [*(f"leak-{number}" for number in range(1, 13)), SECRET]:
        assert hidden not in response.text, hidden
    assert body["client_info"]["query_params"] == {
        **dict.fromkeys(("code", "pwd", "pass", "key", "sig", "access_key", "state"), MASK),
        "page": "2",
        "country_code": "CH",
    }
    headers = body["headers"]
    assert headers["x-access-key"] == headers["x-client-key"] == MASK
    assert headers["referer"] == f"https://app.example.org/login?user=bob&pwd={MASK}#access_token={MASK}"
    assert headers["x-original-url"] == f"/api/items?key={MASK}&sort=name"
    assert headers["accept-encoding"] == "gzip"
    assert headers["keep-alive"] == "timeout=5"
    assert headers["x-forwarded-host"] == "app.example.org"


async def test_endpoint_needs_read_only_access(client: httpx.AsyncClient) -> None:
    for path in ("/c2c/headers/", "/c2c/headers/a", "/c2c/headers/a/b"):
        assert (await client.get(path)).status_code == 403
        assert (await client.get(path, headers=KEY)).status_code == 200
