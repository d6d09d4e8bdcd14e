"""c2c_headers_native: the c2c-headers rule engine in Rust.

Install ``c2c-headers[native]``; c2c-headers then selects this engine automatically. The public
surface is the engine contract of ``c2c_headers._engine``: ``RuleEngine(rules)``, its ``match``,
``match_scope`` and ``apply``, and the ``Match`` handle.
"""

from c2c_headers_native._native import Match, RuleEngine, __version__

__all__ = ["Match", "RuleEngine", "__version__"]
