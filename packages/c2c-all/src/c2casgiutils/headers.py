"""Security and forwarded headers: the public surface of c2c-headers (re-exported, nothing else here)."""

from c2c_headers import (
    CSP_NONCE,
    DEFAULT_HEADERS_CONFIG,
    ORIGINAL_SCOPE_KEY,
    ArmorHeaderMiddleware,
    EngineName,
    ForwardedHeadersMiddleware,
    Header,
    HeaderMatcher,
    HeadersConfig,
    HeaderValue,
    TrustedHosts,
    UnsupportedPatternError,
    parse_trusted_hosts,
)

__all__ = [
    "ArmorHeaderMiddleware",
    "CSP_NONCE",
    "DEFAULT_HEADERS_CONFIG",
    "EngineName",
    "ForwardedHeadersMiddleware",
    "Header",
    "HeaderMatcher",
    "HeaderValue",
    "HeadersConfig",
    "ORIGINAL_SCOPE_KEY",
    "TrustedHosts",
    "UnsupportedPatternError",
    "parse_trusted_hosts",
]
