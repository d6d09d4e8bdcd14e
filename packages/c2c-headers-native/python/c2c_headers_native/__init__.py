"""c2c_headers_native: the c2c-headers rule engine in Rust.

Install ``c2c-headers[native]``; c2c-headers then selects this engine automatically. The public
surface is the engine contract: ``RuleEngine(rules, request_target=None)`` built from `Rule`
records, its ``match``, ``match_scope`` and ``apply``, the ``Match`` handle, and the typed errors
`PatternNotSupported` and `ScopeNotSupported`. The package imports nothing of c2c-headers.
"""

from c2c_headers_native._contract import PatternNotSupported, Rule, ScopeNotSupported
from c2c_headers_native._native import Match, RuleEngine, __version__

__all__ = ["Match", "PatternNotSupported", "Rule", "RuleEngine", "ScopeNotSupported", "__version__"]
