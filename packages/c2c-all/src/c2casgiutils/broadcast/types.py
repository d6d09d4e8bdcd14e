"""The answer types of a broadcast: `c2c_broadcast.types` (re-exported, nothing else here)."""

from c2c_broadcast.types import (
    BroadcastResponse,
    ErrorAnswer,
    MissingAnswer,
)

__all__ = [
    "BroadcastResponse",
    "ErrorAnswer",
    "MissingAnswer",
]
