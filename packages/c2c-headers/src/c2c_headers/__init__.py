"""c2c_headers: pure-ASGI security headers (rules, CSP nonces) and trusted forwarded headers.

Standard library only. See the package README for the rules, the defaults and the migration notes
from ``c2casgiutils.headers``.
"""

from importlib.metadata import version as _version

from c2c_headers._engine import EngineName, UnsupportedPatternError
from c2c_headers._hosts import TrustedHosts, parse_trusted_hosts
from c2c_headers._rules import CSP_NONCE, DEFAULT_HEADERS_CONFIG, Header, HeaderMatcher, HeadersConfig, HeaderValue
from c2c_headers.armor import ArmorHeaderMiddleware
from c2c_headers.forwarded import ORIGINAL_SCOPE_KEY, ForwardedHeadersMiddleware

__version__ = _version("c2c-headers")

__all__ = [
    "CSP_NONCE",
    "DEFAULT_HEADERS_CONFIG",
    "ORIGINAL_SCOPE_KEY",
    "ArmorHeaderMiddleware",
    "EngineName",
    "ForwardedHeadersMiddleware",
    "Header",
    "HeaderMatcher",
    "HeaderValue",
    "HeadersConfig",
    "TrustedHosts",
    "UnsupportedPatternError",
    "__version__",
    "parse_trusted_hosts",
]
