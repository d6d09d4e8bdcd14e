"""The request-headers tool: what the application receives of a request (behind proxies, after middlewares).

`GET /headers/`, `/headers/{path}`, `/headers/{path_1}/{path_2}` (read-only access, under the
`/c2c` mount) answer a `HeadersResponse`: `{"headers", "client_info", "scope"}`.

Every header is shown in clear, except credentials, which are masked by name (`*****`). Names are
compared case-insensitively, with `-`, `_` and other punctuation alike (`X-Auth-Token`, `X_CSRF`,
`x-api-key`); a name is a credential when:

- it is `Authorization`, `Proxy-Authorization`, `X-API-Key` or `Cookie` (`MASKED_HEADERS`; the
  cookie names are kept and every value masked: `session=*****; theme=*****`);
- c2c-config's rule says so (`c2c_config.is_credential_name`, the toolkit's one vocabulary, which
  the access logs and the Sentry scrubber use too): it contains one of `MASKED_FRAGMENTS` anywhere
  (`pass`, `pwd`, `secret`, `token`, `auth`, `credential`, `signature`, `apikey`, `accesskey`,
  `clientkey`, `privatekey`, `secretkey`, `signingkey`, `encryptionkey`, `session`, `sessid`,
  `csrf`, `xsrf`, `jwt`, `cookie`, `bearer`): `client_secret`, `X-Amz-Security-Token`, `db_pwd`;
  one of its words is in `MASKED_WORDS` (`key`, `pass`, `pw`, `sid`, `sig`, `otp`, `pin`,
  `ticket`, `verifier`), words being split at punctuation, digits and lower-to-upper case changes
  (`X-Access-Key`, `sigValue`, `code_verifier`; not `Keep-Alive`, `keyboard`, `signal`); it ends
  with `key`; or it is one of `MASKED_NAMES` as a whole (`code`, `state`: the OAuth callback's
  parameters; `country_code` is shown);
- it contains one of the fragments of the setting `C2C__TOOLS__HEADERS__MASKED_NAMES` (a
  comma-separated list, matched like `MASKED_FRAGMENTS`).

Query parameters with such names are masked the same way, wherever they appear: `query_params`,
the request URL (`url_str`, `url.query`, `url.fragment`) and the query and fragment of URL-valued
headers (`Referer: https://example.org/?pwd=*****`, `X-Original-URL: /api?key=*****`,
`X-Forwarded-Uri`, ...), whose user-info password is hidden too (`https://user:***@host/`). A
parameter name is compared after URL decoding (`%6Bey`). Repeated headers and parameters are
joined with `, ` (`; ` for `Cookie`). `NameMasker` is the rule, `mask_query` and
`mask_url_queries` apply it to a query and to a text holding URLs (the configuration tool masks
the query parameters of URL settings with them).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from c2c_auth import require_read_only_access
from c2c_config import CREDENTIAL_FRAGMENTS, CREDENTIAL_NAMES, CREDENTIAL_WORDS, is_credential_name, redact_url
from c2casgiutils import auth as auth  # an attribute of this module in 0.14

MASK = "*****"
"""What replaces a masked value."""

MASKED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
"""Header names always masked (`cookie` keeps its cookie names)."""

MASKED_FRAGMENTS = CREDENTIAL_FRAGMENTS
"""A header, query or path parameter whose normalised name (case-folded, punctuation removed) contains
one of these is masked (c2c-config's `CREDENTIAL_FRAGMENTS`)."""

MASKED_WORDS = CREDENTIAL_WORDS
"""A name with one of these as a whole word (`X-Client-Key`, `access_key`, `sigValue`) is masked
(c2c-config's `CREDENTIAL_WORDS`)."""

MASKED_NAMES = CREDENTIAL_NAMES
"""A name that is one of these as a whole is masked: the OAuth callback's `code` and `state`
(c2c-config's `CREDENTIAL_NAMES`)."""

_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")
# The query and the fragment of the URLs in a text: after a '?' or a '#', up to the next '#' or a space.
_URL_QUERY = re.compile(r"([?#])([^#\s]*)")

__all__ = [
    "MASK",
    "MASKED_FRAGMENTS",
    "MASKED_HEADERS",
    "MASKED_NAMES",
    "MASKED_WORDS",
    "HeadersClientInfoResponse",
    "HeadersResponse",
    "NameMasker",
    "c2c_headers",
    "c2c_headers_path",
    "c2c_headers_path2",
    "describe_request",
    "mask_query",
    "mask_url_queries",
    "router",
]

ScopeValue = str | int | float | bool | list[str | int] | None
URLValue = str | int | bool | None


class HeadersClientInfoResponse(BaseModel):
    """The request's URL as the application sees it (credential-named query parameters masked)."""

    url_str: str
    url: dict[str, URLValue]
    base_url_str: str
    base_url: dict[str, URLValue]
    query_params: dict[str, str]
    path_params: dict[str, str]


class HeadersResponse(BaseModel):
    """The answer of the request-headers tool."""

    headers: dict[str, str]
    client_info: HeadersClientInfoResponse
    scope: dict[str, ScopeValue]


def _normalise(name: str) -> str:
    return _NOT_ALPHANUMERIC.sub("", name.casefold())


class NameMasker:
    """Decides which names hold credentials (see the module's documentation): `MASKED_HEADERS`,
    `MASKED_FRAGMENTS`, `MASKED_WORDS`, `MASKED_NAMES`, and `extra` fragments (the setting
    `C2C__TOOLS__HEADERS__MASKED_NAMES`)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        fragments = {_normalise(fragment) for fragment in extra}
        self.extra = tuple(sorted(fragment for fragment in fragments if fragment))

    def __call__(self, name: str) -> bool:
        """Whether the value of a header, parameter or scope entry called `name` is masked."""
        return name.strip().casefold() in MASKED_HEADERS or is_credential_name(name) or self.by_extra(name)

    def by_extra(self, name: str) -> bool:
        """Whether `name` contains one of the `extra` fragments (`C2C__TOOLS__HEADERS__MASKED_NAMES`)."""
        normalised = _normalise(name)
        return any(fragment in normalised for fragment in self.extra)


def mask_query(query: str, masked: Callable[[str], bool], mask: str = MASK) -> str:
    """A raw query string with the values of the parameters whose (decoded) name is `masked` replaced by `mask`.

    The other parameters are kept byte for byte; pairs are split on `&` and `=` as Starlette does.
    """
    if "=" not in query:
        return query
    pieces = []
    for piece in query.split("&"):
        name, equal, _ = piece.partition("=")
        if equal and masked(urllib.parse.unquote_plus(name)):
            piece = f"{name}={mask}"
        pieces.append(piece)
    return "&".join(pieces)


def mask_url_queries(text: str, masked: Callable[[str], bool], mask: str = MASK) -> str:
    """`text` with `mask_query` applied to the query and the fragment of every URL in it.

    A query runs from a `?` (a fragment from a `#`) to the next `#` or white space:
    `see https://h/p?a=1&pwd=x#access_token=y` → `see https://h/p?a=1&pwd=*****#access_token=*****`.
    Text without `?` or `#` is returned as it is.
    """
    if "?" not in text and "#" not in text:
        return text
    return _URL_QUERY.sub(lambda match: match[1] + mask_query(match[2], masked, mask), text)


def _mask_cookies(value: str) -> str:
    pieces = []
    for piece in value.split(";"):
        name, equal, _ = piece.strip().partition("=")
        pieces.append(f"{name}={MASK}" if equal else MASK)
    return "; ".join(pieces)


def _header_value(name: str, value: str, masked: Callable[[str], bool]) -> str:
    if name == "cookie":
        return _mask_cookies(value)
    if masked(name):
        return MASK
    if "@" in value:  # a URL with credentials (`https://user:password@host/`): its password is hidden
        value = redact_url(value)
    # A URL (Referer, X-Original-URL, X-Forwarded-Uri...): its query and fragment parameters are masked by name.
    return mask_url_queries(value, masked)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _url_details(url: Any) -> dict[str, URLValue]:
    return {
        "scheme": url.scheme,
        "netloc": url.netloc,
        "path": url.path,
        "query": url.query,
        "fragment": url.fragment,
        "hostname": url.hostname,
        "port": url.port,
        "is_secure": url.is_secure,
    }


def _masker() -> NameMasker:
    from c2casgiutils import config  # read per request: `config.reload()` applies at once

    return NameMasker(config.settings.tools.headers.masked_names)


def describe_request(request: Request, masked: Callable[[str], bool] | None = None) -> HeadersResponse:
    """What the application receives of `request`, credentials masked by name (see the module's documentation).

    `masked` decides which names are credentials (default: `NameMasker` with the configured
    `C2C__TOOLS__HEADERS__MASKED_NAMES`).
    """
    is_masked = _masker() if masked is None else masked
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        value = _header_value(name, raw_value.decode("latin-1"), is_masked)
        if name in headers:
            value = f"{headers[name]}{'; ' if name == 'cookie' else ', '}{value}"
        headers[name] = value

    url = request.url
    # The query as the URL parser sees it, and a fragment (a '#' decoded from the path lands there).
    masked_url = url.replace(query=mask_query(url.query, is_masked), fragment=mask_query(url.fragment, is_masked))
    query_params: dict[str, str] = {}
    for name in request.query_params:
        query_params[name] = MASK if is_masked(name) else ", ".join(request.query_params.getlist(name))

    scope: dict[str, ScopeValue] = {}
    for key, value in request.scope.items():
        if key in ("client", "server") and isinstance(value, tuple | list):
            scope[key] = [item for item in value if isinstance(item, str | int)]
        elif _scalar(value):
            scope[key] = MASK if isinstance(value, str) and is_masked(key) else value
    return HeadersResponse(
        headers=headers,
        client_info=HeadersClientInfoResponse(
            url_str=str(masked_url),
            url=_url_details(masked_url),
            base_url_str=str(request.base_url),
            base_url=_url_details(request.base_url),
            query_params=query_params,
            path_params={name: MASK if is_masked(name) else str(value) for name, value in request.path_params.items()},
        ),
        scope=scope,
    )


router = APIRouter(tags=["headers"])
"""The request-headers routes (read-only access), relative as in 0.14 (`/`, `/{path}`,
`/{path_1}/{path_2}`): `c2casgiutils.tools.router` includes them under `/headers`."""


@router.get("/")
async def c2c_headers(request: Request, _: Annotated[None, Depends(require_read_only_access)]) -> HeadersResponse:
    """What the application receives of this request (`GET /c2c/headers/`)."""
    return describe_request(request)


@router.get("/{path}")
async def c2c_headers_path(
    request: Request,
    path: str,
    param: Annotated[str | None, Query()] = None,
    _: Annotated[None, Depends(require_read_only_access)] = None,
) -> HeadersResponse:
    """The same, with one path parameter (`GET /c2c/headers/{path}`), to see what a route receives."""
    del path, param  # shown through the request
    return describe_request(request)


@router.get("/{path_1}/{path_2}")
async def c2c_headers_path2(
    request: Request,
    path_1: str,
    path_2: str,
    param_1: Annotated[str | None, Query()] = None,
    param_2: Annotated[str | None, Query()] = None,
    _: Annotated[None, Depends(require_read_only_access)] = None,
) -> HeadersResponse:
    """The same, with two path parameters (`GET /c2c/headers/{path_1}/{path_2}`)."""
    del path_1, path_2, param_1, param_2  # shown through the request
    return describe_request(request)
