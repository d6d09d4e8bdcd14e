"""Security and forwarded headers: the public surface of c2c-headers (re-exported, nothing else here).

The default ``docs`` and ``redoc`` rules (Swagger UI's and ReDoc's CSP, with ``'unsafe-inline'``
scripts) apply to FastAPI's own pages only, ``/docs`` and ``/redoc`` relative to ``root_path``.
An application that moves them passes its URLs, which the middleware compiles at construction::

    app = FastAPI(docs_url="/api/docs", redoc_url=None)
    app.add_middleware(headers.ArmorHeaderMiddleware, docs_url=app.docs_url, redoc_url=app.redoc_url)

(``None`` drops the rule.) The `/c2c` sub-application serves no docs pages.
"""

from c2c_headers import (
    CSP_HARDENING,
    CSP_NONCE,
    DEFAULT_HEADERS_CONFIG,
    ORIGINAL_SCOPE_KEY,
    PEER_SCOPE_KEY,
    ArmorHeaderMiddleware,
    EngineName,
    ForwardedHeadersMiddleware,
    Header,
    HeaderMatcher,
    HeadersConfig,
    HeaderValue,
    RequestIdFilter,
    RequestIdMiddleware,
    TrustedHosts,
    UnsupportedPatternError,
    current_request_id,
    is_valid_request_id,
    parse_trusted_hosts,
    request_id_context,
)

__all__ = [
    "CSP_HARDENING",
    "CSP_NONCE",
    "DEFAULT_HEADERS_CONFIG",
    "ORIGINAL_SCOPE_KEY",
    "PEER_SCOPE_KEY",
    "ArmorHeaderMiddleware",
    "EngineName",
    "ForwardedHeadersMiddleware",
    "Header",
    "HeaderMatcher",
    "HeaderValue",
    "HeadersConfig",
    "RequestIdFilter",
    "RequestIdMiddleware",
    "TrustedHosts",
    "UnsupportedPatternError",
    "current_request_id",
    "is_valid_request_id",
    "parse_trusted_hosts",
    "request_id_context",
]
