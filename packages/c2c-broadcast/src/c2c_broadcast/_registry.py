"""The registry of live replicas: who listens to a channel, kept by heartbeats.

One sorted set per channel, `<prefix>c2c_registry:<channel>`; member = the replica
(`{"h": hostname, "p": pid, "r": replica id}`, JSON with sorted keys), score = its expiry in
Redis's clock (ms). A replica refreshes its entries every `heartbeat_interval` (and at once after a
reconnection: a restarted Redis lost the registry), they live `replica_ttl` without heartbeats, and
a clean shutdown or a drain removes them. A call reads the registry in its publishing script
(`_calls.PUBLISH_SCRIPT`) and turns the members back into replicas with `parse_members`.

On a Redis Cluster the key is `{<prefix><channel>}:registry` (the slot of the channel's calls), and
the heartbeat script runs once per channel (their keys are in different slots), all in one
pipeline (one round trip per node).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from c2c_broadcast._settings import BroadcastSettings
from c2c_broadcast._status import RateLimitedLog, explained
from c2c_broadcast._subscriber import ErrorTypes
from c2c_broadcast._wire import Targets
from c2c_config import describe_error, raise_if_cancelled
from c2c_config.redis import RedisClient

MAX_REPLICAS = 5000
"""The most registry entries a call reads: what a flood of entries written by hand can cost a call."""


def max_entry_life_ms(settings: BroadcastSettings) -> int:
    """How far ahead a registry entry may expire: no heartbeat sets more than its `replica_ttl`; at
    least a day, so that the entries of replicas configured with a longer TTL count too. Entries
    further ahead (written by hand: `+inf` would never expire) are neither read nor kept."""
    return max(86_400_000, 2 * int(settings.replica_ttl.total_seconds() * 1000))


MAX_MEMBER_LENGTH = 1024
"""The longest registry entry (bytes) read or kept. `member()` writes `{"h": hostname, "p": pid, "r":
replica id}` in ASCII JSON, the replica id holding the hostname too: about 60 bytes plus twice the
hostname (under 200 with a 64-byte hostname, under 600 with a 253-byte one). A longer entry was
written by hand (one of 50 MB would cost every call that much, and every replica's memory): the
calls skip it and the heartbeat removes it."""


# Refresh this replica in the registry of every channel it listens to; forget expired replicas,
# entries expiring further ahead than any heartbeat sets (ARGV[3], `max_entry_life_ms`) and entries
# longer than ARGV[4] (`MAX_MEMBER_LENGTH`, among the first `MAX_REPLICAS`, ARGV[5]). The registry
# belongs to the broadcaster: a key of another type (written by hand) is deleted first, else every
# call and heartbeat on it would fail with WRONGTYPE. Returns {keys of another type deleted,
# oversize entries removed}.
HEARTBEAT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local limit = tonumber(ARGV[4])
local repaired = {}
local oversized = 0
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'zset' and kind ~= 'none' then
    redis.call('DEL', key)
    repaired[#repaired + 1] = key
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', key, '(' .. (now + tonumber(ARGV[3])), '+inf')
  for _, m in ipairs(redis.call('ZRANGE', key, 0, tonumber(ARGV[5]) - 1)) do
    if string.len(m) > limit then
      redis.call('ZREM', key, m)
      oversized = oversized + 1
    end
  end
  redis.call('ZADD', key, now + ttl, ARGV[1])
  redis.call('PEXPIRE', key, ttl * 2)
end
return {repaired, oversized}
"""


def registry_key(prefix: str, channel: str) -> str:
    """The sorted set of the replicas listening to `channel`."""
    return f"{prefix}c2c_registry:{channel}"


def member(hostname: str, pid: int, replica_id: str) -> str:
    """A replica's entry in the registry."""
    return json.dumps({"h": hostname, "p": pid, "r": replica_id}, sort_keys=True)


def parse_members(members: list[Any], targets: Targets) -> dict[str, tuple[str, int]]:
    """The registered replicas that `targets` addresses: replica id -> (hostname, pid); bad entries skipped."""
    registered: dict[str, tuple[str, int]] = {}
    for entry in members:
        try:
            info = json.loads(entry)
            replica, hostname, pid = info["r"], info["h"], info["p"]
        except (ValueError, TypeError, KeyError):
            continue
        valid = isinstance(replica, str) and isinstance(hostname, str) and isinstance(pid, int)
        if valid and (hostname, pid) in targets:
            registered[replica] = (hostname, pid)
    return registered


class Registry:
    """This replica's entries in the registry: register, unregister, and the heartbeat that keeps them."""

    def __init__(
        self,
        prefix: str,
        member: str,
        settings: BroadcastSettings,
        client: Callable[[], RedisClient],
        log: RateLimitedLog,
        key: Callable[[str], str] | None = None,
        cluster: bool = False,
        on_error: Callable[[BaseException], None] | None = None,
        on_success: Callable[[], None] | None = None,
    ) -> None:
        """Entries of `member` under `prefix`, written through `client()` (no I/O before `bind()`).

        `key(channel)`: the registry key (default `registry_key(prefix, channel)`); `cluster`: run
        the heartbeat script per channel; `on_error`: told of a failed heartbeat (it logs it; without
        it the heartbeat logs it itself, rate limited); `on_success`: told of a heartbeat that wrote.
        """
        self._on_error = on_error
        self._on_success = on_success
        self.prefix = prefix
        self._key = key
        self.cluster = cluster
        self.member = member
        self.settings = settings
        self._client = client
        self._log = log
        self._script: Any = None
        self.wake = asyncio.Event()
        """Set it to heartbeat now (a connection became ready)."""

    def key(self, channel: str) -> str:
        """The sorted set of the replicas listening to `channel`."""
        return self._key(channel) if self._key is not None else registry_key(self.prefix, channel)

    def bind(self, client: RedisClient) -> None:
        """Register the heartbeat script on the running loop's client (no I/O)."""
        self._script = client.register_script(HEARTBEAT_SCRIPT)

    async def register(self, channels: list[str]) -> None:
        """Add (or refresh) this replica in the registry of `channels`."""
        keys = [self.key(channel) for channel in channels]
        if not keys:
            return
        ttl_ms = int(self.settings.replica_ttl.total_seconds() * 1000)
        max_life = max_entry_life_ms(self.settings)
        args: list[str | int] = [self.member, ttl_ms, max_life, MAX_MEMBER_LENGTH, MAX_REPLICAS]
        if not self.cluster:
            self._report_repairs([await self._script(keys=keys, args=args)])
            return
        # One key per script run (a script's keys must share a slot); EVAL, since a pipeline cannot
        # reload a script a promoted replica never saw.
        async with self._client().pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.eval(HEARTBEAT_SCRIPT, 1, key, *args)
            self._report_repairs(await pipe.execute())

    def _report_repairs(self, replies: list[Any]) -> None:
        """Warn (rate limited) about what the heartbeat scripts removed: keys of another type, oversize entries."""
        for reply in replies:
            try:
                repaired, oversized = reply
            except (TypeError, ValueError):
                continue
            for key in repaired or []:
                shown = key.decode(errors="backslashreplace") if isinstance(key, bytes) else str(key)
                self._log.warning(
                    f"wrongtype:{shown}",
                    "Broadcast: the registry key %r held another type than a sorted set (written by hand?): deleted it",
                    shown,
                )
            if oversized:
                self._log.warning(
                    "oversized",
                    "Broadcast: removed %s registry entr(y/ies) longer than %d bytes (written by hand?)",
                    oversized,
                    MAX_MEMBER_LENGTH,
                )

    async def unregister(self, channels: list[str]) -> None:
        """Remove this replica from the registry of `channels`."""
        async with self._client().pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.zrem(self.key(channel), self.member)
            await pipe.execute()

    async def heartbeat(self, stopped: Callable[[], bool], channels: Callable[[], list[str] | None]) -> None:
        """Every `heartbeat_interval` (or when woken), refresh `channels()`; None means not now."""
        interval = self.settings.heartbeat_interval.total_seconds()
        while not stopped():
            raise_if_cancelled()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self.wake.wait()
            self.wake.clear()
            current = channels()
            if current is None:
                continue
            try:
                async with asyncio.timeout(interval):
                    await self.register(current)
            except ErrorTypes as failure:
                error = explained(failure, interval)
                if self._on_error is not None:
                    self._on_error(error)
                else:
                    self._log.warning("heartbeat", "Broadcast: heartbeat failed: %s", describe_error(error))
            else:
                if current and self._on_success is not None:
                    self._on_success()
