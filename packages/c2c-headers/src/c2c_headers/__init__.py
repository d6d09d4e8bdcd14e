"""c2c_headers: pure-ASGI security headers (rules, CSP nonces) and trusted forwarded headers.

Standard library only. See the package README for the rules, the defaults and the migration notes
from ``c2casgiutils.headers``.

Importing the package is cheap (a gateway's cold start pays for it): the public names are loaded
from their modules on first use (``from c2c_headers import ArmorHeaderMiddleware`` loads the armor,
the rule compiler and the engine selector; `ForwardedHeadersMiddleware` alone does not), and
``__version__`` reads the installed distribution's metadata (``importlib.metadata``, tens of
milliseconds) only when asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers
    from c2c_headers._engine import EngineName, UnsupportedPatternError
    from c2c_headers._hosts import TrustedHosts, parse_trusted_hosts
    from c2c_headers._rules import (
        CSP_HARDENING,
        CSP_NONCE,
        DEFAULT_HEADERS_CONFIG,
        Header,
        HeaderMatcher,
        HeadersConfig,
        HeaderValue,
    )
    from c2c_headers.armor import ArmorHeaderMiddleware
    from c2c_headers.forwarded import ORIGINAL_SCOPE_KEY, PEER_SCOPE_KEY, ForwardedHeadersMiddleware
    from c2c_headers.request_id import (
        RequestIdFilter,
        RequestIdMiddleware,
        current_request_id,
        is_valid_request_id,
        request_id_context,
    )

    __version__: str

# public name -> the module that defines it
_LAZY = {
    "CSP_HARDENING": "c2c_headers._rules",
    "CSP_NONCE": "c2c_headers._rules",
    "DEFAULT_HEADERS_CONFIG": "c2c_headers._rules",
    "Header": "c2c_headers._rules",
    "HeaderMatcher": "c2c_headers._rules",
    "HeaderValue": "c2c_headers._rules",
    "HeadersConfig": "c2c_headers._rules",
    "EngineName": "c2c_headers._engine",
    "UnsupportedPatternError": "c2c_headers._engine",
    "TrustedHosts": "c2c_headers._hosts",
    "parse_trusted_hosts": "c2c_headers._hosts",
    "ArmorHeaderMiddleware": "c2c_headers.armor",
    "ORIGINAL_SCOPE_KEY": "c2c_headers.forwarded",
    "ForwardedHeadersMiddleware": "c2c_headers.forwarded",
    "PEER_SCOPE_KEY": "c2c_headers.forwarded",
    "RequestIdFilter": "c2c_headers.request_id",
    "RequestIdMiddleware": "c2c_headers.request_id",
    "current_request_id": "c2c_headers.request_id",
    "is_valid_request_id": "c2c_headers.request_id",
    "request_id_context": "c2c_headers.request_id",
}


def __getattr__(name: str) -> object:
    """Load a public name (or ``__version__``) on first access, then keep it in the module."""
    if name == "__version__":
        from importlib.metadata import version  # heavy: only when asked for

        value: object = version("c2c-headers")
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
    "__version__",
    "current_request_id",
    "is_valid_request_id",
    "parse_trusted_hosts",
    "request_id_context",
]
