"""The Redis clients of c2casgiutils 0.14's `redis_utils`, from the toolkit's one client factory.

```python
from c2casgiutils import redis_utils

master, replica, sentinel = redis_utils.get()  # each None when Redis is not configured
if master is not None:
    await master.set("key", "value")
```

- `get()` returns the running event loop's clients (`c2c_config.redis`): a process that runs several
  loops one after the other (a `TestClient` per test) gets fresh clients in each, and the clients of
  a loop are closed on that loop when it ends. Outside a running loop it returns one set kept apart.
  In URL mode the replica is the master and `sentinel` is None; in Sentinel mode the master and a
  replica are found through the Sentinels; in cluster mode (`C2C__REDIS__CLUSTER`, new) master and
  replica are the same `redis.asyncio.RedisCluster`. Responses are decoded to `str` (as in 0.14).
- `cleanup()` forgets the clients (0.14 dropped its references the same way); their connections are
  closed when their loop ends, or at once by `await c2casgiutils.shutdown()`.
- `settings` is `c2casgiutils.config.settings`.

Unlike 0.14, the URL is never logged with its password, and `C2C__REDIS__DB` applies in URL mode
when the URL names no database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from c2c_config.redis import get_factory
from c2casgiutils import config

if TYPE_CHECKING:
    from redis.asyncio.sentinel import Sentinel

    from c2c_config.redis import RedisClient
    from c2casgiutils._settings import Settings

__all__ = ["cleanup", "get", "settings"]  # noqa: F822 - settings is provided by __getattr__


def get() -> tuple[RedisClient | None, RedisClient | None, Sentinel | None]:
    """`(master, replica, sentinel)`: the running loop's Redis clients, each None when Redis is not configured."""
    factory = get_factory(config.settings.redis)
    if not factory.configured:
        return None, None, None
    return factory.master(), factory.replica(), factory.sentinel()


def cleanup() -> None:
    """Forget the running loop's clients (their connections close when the loop ends, or at shutdown)."""
    get_factory(config.settings.redis).forget()


def __getattr__(name: str) -> Any:
    if name == "settings":
        result: Settings = config.settings
        return result
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
