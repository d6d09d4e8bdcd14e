"""The Redis broadcaster class, for direct use (needs the `redis` extra: `c2c-broadcast[redis]`)."""

from c2c_broadcast._redis import RedisBroadcaster

__all__ = ["RedisBroadcaster"]
