"""c2c_headers_native: the c2c-headers rule engine in Rust.

Install ``c2c-headers[native]``; c2c-headers then selects this engine automatically. The public
surface is the engine contract: ``RuleEngine(rules, request_target=None)`` built from `Rule`
records, its ``match``, ``match_scope`` and ``apply``, the ``Match`` handle, and the typed errors
`PatternNotSupported` and `ScopeNotSupported`; and ``ForwardedRewriter``, which applies the rewrites
c2c-headers' ``ForwardedHeadersMiddleware`` resolved (kept in a dict it shares) to the requests
that repeat them. The package imports nothing of c2c-headers.
"""

from c2c_headers_native._contract import PatternNotSupported, Rule, ScopeNotSupported
from c2c_headers_native._native import ForwardedRewriter, Match, RuleEngine, __version__

__all__ = [
    "ForwardedRewriter",
    "Match",
    "PatternNotSupported",
    "Rule",
    "RuleEngine",
    "ScopeNotSupported",
    "__version__",
]
