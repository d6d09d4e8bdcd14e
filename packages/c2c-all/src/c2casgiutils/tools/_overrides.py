"""The logging tool's stored overrides in Redis: their keys, their signatures, and a bounded read.

`OverrideStore` writes an override (`persist`: the level under `<prefix><name>`, as c2casgiutils
0.14 stored it, and with a broadcast secret its signature next to it, in one transaction) and reads
them all back (`read`), whatever the keys under the prefix hold: `SCAN` in batches, one script per
batch for the values, the signatures and the `PTTL`s, at most `MAX_KEYS` keys read and
`MAX_OVERRIDES` overrides accepted, each ignored key warned about once. Every Redis call is bounded
by `C2C__REDIS__TIMEOUT` (`bounded`); a failure is a `RedisUnavailableError`.

The logging tool (`c2casgiutils.tools.logging_`) decides what to do with the overrides (apply them,
revert them, broadcast the changes); this module only knows how they are stored. Its warnings are
the tool's: they are logged under the tool's logger name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from c2casgiutils.tools._levels import validate_level, validate_logger_name, validate_settable_logger_name

if TYPE_CHECKING:
    from c2c_config.redis import RedisClient, RedisFactory

LOG = logging.getLogger("c2casgiutils.tools.logging_")
"""The logging tool's logger: an operator's logging configuration names that one."""

SIGNATURE_KEY_PREFIX = "c2c_logging_signature:"
"""Prefix of the keys holding the signatures of the stored overrides (with a broadcast secret)."""
SIGNATURE_LABEL = b"c2casgiutils logging override signature v1"
"""What the signing key is derived with from the broadcast secret (a key for this use only)."""
MAX_KEYS = 10_000
"""How many keys under the prefix one read of the stored overrides looks at; beyond, the rest is not
read (one warning) and the overrides already applied are kept."""
MAX_OVERRIDES = 1000
"""How many stored overrides one read accepts (the first by name); the others are ignored."""
MAX_NAMED_WARNINGS = 10
"""How many newly ignored keys one read names, a warning each; the others get one warning with their count."""
_SCAN_COUNT = 1000  # the keys one `SCAN` call asks for: one batch of `MGET`s and `PTTL`s
_READ_CHUNK = 1000  # the most override keys one read script gets (Lua's `unpack` has a stack limit)

# The values, signatures and `PTTL`s of a batch of overrides, read at once: a write (`persist`, a
# MULTI/EXEC of value and signature) cannot fall between them, as it could between separate commands
# (a new level with the old signature: a false "bad signature"). Read only: it runs on a replica too.
# KEYS: the override keys, then their signature keys when signed; ARGV[1]: how many override keys.
# `MGET` answers nil for a key of another type (no `WRONGTYPE`); one slot on a cluster (hash tag).
# Values and signatures are read cut (`GETRANGE`): a value of any size written under the prefix costs
# no more than a valid one (ARGV[2], ARGV[3]: the most bytes read of each); `lengths` (`STRLEN`)
# tells a cut value from a valid one. A key holding another type reads as nil (as `MGET` answers).
_READ_SCRIPT = """
local n = tonumber(ARGV[1])
local function cut(key, most)
  if redis.call('TYPE', key)['ok'] ~= 'string' then return false, 0 end
  return redis.call('GETRANGE', key, 0, most - 1), redis.call('STRLEN', key)
end
local values, signatures, ttls, lengths = {}, {}, {}, {}
for i = 1, n do
  values[i], lengths[i] = cut(KEYS[i], tonumber(ARGV[2]))
  ttls[i] = redis.call('PTTL', KEYS[i])
end
for i = n + 1, #KEYS do signatures[i - n] = cut(KEYS[i], tonumber(ARGV[3])) end
return {values, signatures, ttls, lengths}
"""
MAX_VALUE_LENGTH = 64
"""The most bytes of a stored override's value read (a level name is at most 8 characters): a longer
value is ignored (with a warning) without being downloaded."""
_MAX_SIGNATURE_READ = 128  # a signature is `<at most 18 digits>:<64 hex digits>`: a longer one is cut, and fails
_MAX_SHOWN = 200  # characters of a key name, a value or a reason put in a warning
_MAX_WARNED = 2 * MAX_KEYS + 100
"""How many ignored keys the warnings remember (least recently seen forgotten first): more than one read sees."""


class RedisUnavailableError(Exception):
    """Redis refused, failed or did not answer within `C2C__REDIS__TIMEOUT`; the routes answer 503."""


def redis_timeout() -> float:
    """`C2C__REDIS__TIMEOUT` in seconds, read at call time."""
    from c2casgiutils import config

    return config.settings.redis.timeout.total_seconds()


@contextlib.asynccontextmanager
async def bounded(what: str, *, request: bool = False) -> AsyncIterator[None]:
    """Bound the Redis calls of the block by `C2C__REDIS__TIMEOUT`; a failure is a `RedisUnavailableError`.

    `request`: the block serves a request. Then Redis is not asked when this very request already
    waited for it in vain (its session check timed out: `c2c_config.redis.unreachable_here`), so
    that a frozen Redis costs a request one `C2C__REDIS__TIMEOUT`, not one per call it makes.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisClusterException, RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from c2c_config import redis as c2c_redis

    if request and c2c_redis.unreachable_here():
        raise RedisUnavailableError(
            f"Redis is unavailable ({what}: not asked again, it failed earlier in this request:"
            f" {c2c_redis.unreachable_reason()})"
        )
    seconds = redis_timeout()
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        c2c_redis.note_unreachable(f"TimeoutError: no answer within {seconds:g} s")
        raise RedisUnavailableError(f"Redis did not answer within {seconds:g} s ({what})") from None
    except (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError) as error:
        # A cluster with no master for a slot, or no node reachable, raises `RedisClusterException`,
        # which is no `RedisError`: it is "Redis is unavailable" as well.
        c2c_redis.note_unreachable(type(error).__name__)
        raise RedisUnavailableError(f"Redis is unavailable ({what}: {type(error).__name__})") from error
    except RedisError as error:  # Redis answered (out of memory, read-only replica...): not a reason to skip it
        raise RedisUnavailableError(f"Redis is unavailable ({what}: {type(error).__name__})") from error


def _derived_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), SIGNATURE_LABEL, hashlib.sha256).digest()


def _signing_key() -> bytes | None:
    """The key that signs the stored overrides, derived from `C2C__BROADCAST__SECRET`; None without a secret."""
    from c2casgiutils import config

    secret = config.settings.broadcast.secret
    return None if secret is None else _derived_key(secret.get_secret_value())


def _verifying_keys() -> tuple[bytes, ...] | None:
    """The keys a stored override's signature may be made with: the signing key, then those derived from
    `C2C__BROADCAST__ACCEPTED_SECRETS` (a rotation in progress); None without a secret."""
    from c2casgiutils import config

    signing = _signing_key()
    if signing is None:
        return None
    accepted = config.settings.broadcast.accepted_secrets
    return (signing, *(_derived_key(secret.get_secret_value()) for secret in accepted))


def _override_signature(key: bytes, name: str, level: str, expiry_ms: int, written_ms: int) -> str:
    """The hex HMAC of one override: its logger name, its level, its expiry (ms since the epoch, 0
    for none) and when it was written (ms since the epoch)."""
    message = json.dumps(
        ["logging override", name, level, expiry_ms, written_ms], separators=(",", ":"), ensure_ascii=True
    )
    return hmac.new(key, message.encode("ascii"), hashlib.sha256).hexdigest()


CLUSTER_TAG = "{c2c_logging}"
"""The key prefix of the stored overrides on a Redis Cluster when `C2C__TOOLS__LOGGING__REDIS_PREFIX` is empty."""


def cluster_prefix(prefix: str) -> str:
    """The key prefix of the stored overrides on a Redis Cluster: `prefix` holding a hash tag.

    Every override and its signature then live in one hash slot (one master): a change is one
    transaction and the list is one `SCAN` of that master. A prefix that already holds a non-empty
    hash tag (`{app}logging_`) is kept; any other is put in braces (`c2c_logging_level_` →
    `{c2c_logging_level_}`); an empty one becomes `CLUSTER_TAG`, and one starting with `}` (in
    braces, an empty tag: Redis would hash each whole key) goes after it (`{c2c_logging}}x`). On a
    single Redis (URL or Sentinel) the prefix is used as it is, as in c2casgiutils 0.14.
    """
    start = prefix.find("{")
    if start != -1 and prefix.find("}", start + 1) > start + 1:
        return prefix
    if not prefix:
        return CLUSTER_TAG
    return CLUSTER_TAG + prefix if prefix.startswith("}") else "{" + prefix + "}"


def signature_key(prefix: str, name: str) -> str:
    """The Redis key of an override's signature: outside `prefix`, so neither we nor 0.14 read it as an override."""
    base = SIGNATURE_KEY_PREFIX + prefix
    for lead in ("", "_", "#"):  # the prefix cannot start with two different characters
        if not prefix or not (lead + base).startswith(prefix):
            return lead + base + name
    raise AssertionError("unreachable")  # pragma: no cover


class _IgnoredOverrideError(ValueError):
    """A stored override that is not applied (the message says why)."""


class _StaleOverrideError(_IgnoredOverrideError):
    """A validly signed override written before one this process saw later (or before its removal)."""


def _ms_field(text: str) -> int | None:
    """A signature's number of ms (ASCII digits, at most 18), or None."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _verified_times(keys: tuple[bytes, ...], name: str, level: str, signature: object, now_ms: int) -> tuple[int, int]:
    """Check an override's signature: its signed `(expiry, written)` in ms, or `_IgnoredOverrideError`."""
    if not isinstance(signature, str):
        raise _IgnoredOverrideError("not signed (a broadcast secret is set)")
    fields = signature.split(":")
    expiry_ms, written_ms = (_ms_field(fields[0]), _ms_field(fields[1])) if len(fields) == 3 else (None, None)
    if expiry_ms is None or written_ms is None or not fields[2].isascii():
        raise _IgnoredOverrideError("malformed signature")
    digest = fields[2]
    if not any(
        hmac.compare_digest(digest, _override_signature(key, name, level, expiry_ms, written_ms)) for key in keys
    ):
        raise _IgnoredOverrideError("bad signature (changed, or copied from another logger's override)")
    if expiry_ms and expiry_ms <= now_ms:
        raise _IgnoredOverrideError("signed expiry passed (a replayed override)")
    return expiry_ms, written_ms


_MAX_REMEMBERED = 10_000  # loggers whose latest signed write (or removal) a store remembers


class OverrideStore:
    """The stored overrides of one process: written, read, and what the last read left out.

    The state is the process's, as the levels are: `ignored` counts the keys the last read ignored,
    `complete` says whether it saw every key under the prefix (`MAX_KEYS`), `incomplete` why it may
    have missed overrides (`MAX_KEYS`, `MAX_OVERRIDES`) and `incomplete_since` since when; each
    ignored key is warned about once (`warn_once`, the least recently seen forgotten first).
    """

    def __init__(self) -> None:
        self.ignored = 0
        self.complete = True
        self.incomplete: str | None = None
        self.incomplete_since: float | None = None
        # Hashes of (key, value, reason) warned about, least recently seen first: one warning each.
        self._warned: dict[int, None] = {}
        # By logger: the newest signed write this process accepted or made, or when it was told of the
        # override's deletion (ms since the epoch), least recently changed first. A signed override written
        # earlier is a replay (a deleted or replaced override written back with its signature).
        self._latest: dict[str, int] = {}
        # The loggers whose stored override the last read ignored as stale: their level stays as it is.
        self.stale: set[str] = set()

    def _remember(self, name: str, at_ms: int) -> None:
        if at_ms < self._latest.get(name, 0):
            return
        self._latest.pop(name, None)
        self._latest[name] = at_ms
        while len(self._latest) > _MAX_REMEMBERED:
            del self._latest[next(iter(self._latest))]

    def removed(self, name: str) -> None:
        """The override of `name` was deleted (a DELETE here, or its broadcast): one signed before now is stale.

        Not called for an override a read merely does not find: a Redis replica that lags can show
        that absence, and the override written before it would then be refused.
        """
        self._remember(name, int(time.time() * 1000))

    async def persist(self, master: RedisClient, name: str, level: str | None, duration: float | None) -> None:
        """Store (or, with `level=None`, delete) the override of `name`, with its signature when a secret is set.

        Raises:
            RedisUnavailableError: Redis failed or did not answer within `C2C__REDIS__TIMEOUT`.
        """
        prefix = key_prefix()
        key, sig_key = prefix + name, signature_key(prefix, name)
        signing_key = _signing_key()
        # Later than anything this process saw for `name`: its own replicas refuse an earlier one.
        now_ms = max(int(time.time() * 1000), self._latest.get(name, 0) + 1)
        async with bounded("storing the logging override", request=True):
            if level is None:
                await master.delete(key, sig_key)  # one slot on a cluster: one command
                self._remember(name, now_ms)
                return
            # Redis expires both keys together (relative TTL: Redis's clock); the signed expiry is ours.
            px = max(int(duration * 1000), 1) if duration else None
            expiry_ms = now_ms + px if px else 0
            async with master.pipeline(transaction=True) as pipe:
                pipe.set(key, level, px=px)
                if signing_key is None:
                    pipe.delete(sig_key)
                else:
                    digest = _override_signature(signing_key, name, level, expiry_ms, now_ms)
                    pipe.set(sig_key, f"{expiry_ms}:{now_ms}:{digest}", px=px)
                await pipe.execute()
            self._remember(name, now_ms)

    async def read(self, *, request: bool = False) -> list[tuple[str, str, float | None]]:
        """The stored overrides: `(name, level, seconds left or None)`, invalid or unsigned entries skipped.

        `request`: read for a request (see `bounded`: not asked within the skip window).

        Raises:
            RedisUnavailableError: Redis failed or did not answer within `C2C__REDIS__TIMEOUT`.
        """
        async with bounded("reading the logging overrides", request=request):
            return await self._stored_overrides(key_prefix())

    async def _stored_overrides(self, prefix: str) -> list[tuple[str, str, float | None]]:
        """Read the overrides under `prefix`: bounded work and bounded warnings, whatever the keys hold.

        The keys come from `SCAN` in batches, undecoded (a name that is not UTF-8 is skipped, not an
        error); each batch is read by one script (`_READ_SCRIPT`: the values, the signatures and the
        `PTTL`s, with no write between them), plus a pipeline of `TYPE`s for the keys that hold no
        string. At most `MAX_KEYS` keys are read and `MAX_OVERRIDES` overrides accepted; a key that
        is no valid override is ignored.
        """
        replica = factory().replica()
        assert replica is not None
        verifying_keys = _verifying_keys()
        self.stale = set()
        result: list[tuple[str, str, float | None]] = []
        ignored: list[tuple[str, str, str]] = []  # (key shown, value, reason)
        seen: set[bytes] = set()  # a `SCAN` may return a key twice
        complete = True
        # Closed here even when a command fails: no async generator left for the loop's finaliser.
        async with contextlib.aclosing(_key_batches(replica, prefix)) as batches:
            async for batch in batches:
                fresh = [key for key in dict.fromkeys(batch) if key not in seen]
                room = MAX_KEYS - len(seen)
                if len(fresh) > room:
                    fresh, complete = fresh[:room], False
                seen.update(fresh)
                result.extend(await self._read_batch(replica, prefix, fresh, verifying_keys, ignored))
                if not complete:
                    break
        result.sort()
        for name, level, _ in result[MAX_OVERRIDES:]:
            ignored.append((shown(prefix + name), level, f"more than {MAX_OVERRIDES} overrides stored"))
        self.ignored, self.complete = len(ignored), complete
        incomplete = [
            *([] if complete else [f"more than {MAX_KEYS} keys under the prefix: only {MAX_KEYS} were read"]),
            *(
                [f"{len(result)} valid overrides stored: only {MAX_OVERRIDES} applied"]
                if len(result) > MAX_OVERRIDES
                else []
            ),
        ]
        if incomplete:
            if self.incomplete is None:
                self.incomplete_since = time.time()
            self.incomplete = "incomplete read of the stored overrides (some may not be applied): " + "; ".join(
                incomplete
            )
        else:
            self.incomplete = self.incomplete_since = None
        self._report(ignored)
        if not complete:
            self.warn_once(
                shown(prefix) + "*",
                "",
                f"more than {MAX_KEYS} keys under the prefix: only {MAX_KEYS} were read, "
                "the overrides among the others are not applied",
            )
        return result[:MAX_OVERRIDES]

    async def _read_batch(
        self,
        client: RedisClient,
        prefix: str,
        keys: list[bytes],
        verifying_keys: tuple[bytes, ...] | None,
        ignored: list[tuple[str, str, str]],
    ) -> list[tuple[str, str, float | None]]:
        """The overrides of one batch of keys (a few round trips for the whole batch); `ignored` gets the others."""
        candidates: list[tuple[bytes, str]] = []  # the key and the logger name
        for key in keys:
            try:
                text = key.decode()
            except UnicodeDecodeError:
                ignored.append((shown(key), "", "the key name is not UTF-8"))
                continue
            try:
                candidates.append((key, validate_logger_name(text[len(prefix) :])))
            except ValueError as error:
                ignored.append((shown(key), "", _short(str(error))))
        if not candidates:
            return []
        values, signatures, ttls, types = await _fetch(client, prefix, candidates, verifying_keys is not None)
        result = []
        for (key, name), value, ttl, signature in zip(candidates, values, ttls, signatures, strict=True):
            if value is None:
                kind = types.get(key, "none")
                if kind != "none":  # "none": deleted or expired since the `SCAN`
                    ignored.append((shown(key), "", f"not an override: the key holds a {_short(kind)}, not a string"))
                continue
            level = _decoded(value)
            if isinstance(value, _TooLong):
                ignored.append(
                    (shown(key), level, f"the value is {value.length} bytes long: no level is over {MAX_VALUE_LENGTH}")
                )
                continue
            try:
                ttl_ms = int(ttl)
                result.append(
                    self._checked_override(
                        verifying_keys, name, level, ttl_ms, None if signature is None else _decoded(signature)
                    )
                )
            except (ValueError, TypeError) as error:
                if isinstance(error, _StaleOverrideError):
                    self.stale.add(name)
                ignored.append((shown(key), level, _short(str(error))))
        return result

    def _checked_override(
        self, verifying_keys: tuple[bytes, ...] | None, name: str, level: str, ttl: int, signature: object
    ) -> tuple[str, str, float | None]:
        """`(name, level, seconds left)` of a stored override, or a `ValueError` saying why it is ignored."""
        name, level = validate_settable_logger_name(name), validate_level(level)
        expires_in = ttl / 1000 if ttl > 0 else None
        if verifying_keys is not None:
            now_ms = int(time.time() * 1000)
            expiry_ms, written_ms = _verified_times(verifying_keys, name, level, signature, now_ms)
            if written_ms < self._latest.get(name, 0):
                raise _StaleOverrideError(
                    "written before a newer override or a removal this replica saw for this logger (a replayed"
                    " override, or a read from a Redis replica that lags)"
                )
            self._remember(name, written_ms)
            if expiry_ms:  # the signed expiry wins over a TTL changed (or removed) in Redis
                expires_in = min(expires_in or float("inf"), (expiry_ms - now_ms) / 1000)
        return name, level, expires_in

    def _first_time(self, key: str, value: str, reason: str) -> bool:
        """Whether this ignored key, value and reason is new; remembered (least recently seen forgotten first)."""
        marker = hash((key, value[:100], reason))
        if marker in self._warned:
            del self._warned[marker]  # seen again: the most recent now
            self._warned[marker] = None
            return False
        while len(self._warned) >= _MAX_WARNED:
            del self._warned[next(iter(self._warned))]
        self._warned[marker] = None
        return True

    def warn_once(self, key: str, value: str, reason: str) -> None:
        """One warning per ignored key, value and reason (the synchronisation reads them every round)."""
        if self._first_time(key, value, reason):
            LOG.warning("Ignored the stored logging override %s: %s", key, reason)

    def _report(self, ignored: Sequence[tuple[str, str, str]]) -> None:
        """Warn about the newly ignored keys of one read: `MAX_NAMED_WARNINGS` named, the others counted in one."""
        named = unnamed = 0
        for key, value, reason in ignored:
            if not self._first_time(key, value, reason):
                continue
            if named < MAX_NAMED_WARNINGS:
                named += 1
                LOG.warning("Ignored the stored logging override %s: %s", key, reason)
            else:
                unnamed += 1
        if unnamed:
            LOG.warning(
                "Ignored %d more stored logging overrides (at most %d named per read; sync_status().ignored "
                "counts the ignored keys)",
                unnamed,
                MAX_NAMED_WARNINGS,
            )


async def _fetch(
    client: RedisClient, prefix: str, candidates: Sequence[tuple[bytes, str]], signed: bool
) -> tuple[list[Any], list[Any], list[Any], dict[bytes, str]]:
    """The values, signatures (None each without a secret) and `PTTL`s of `(key, name)`s, read at once
    (`_READ_SCRIPT`, per chunk), and the type of each key holding no string (a pipeline of `TYPE`s)."""
    from redis.client import NEVER_DECODE

    raw: dict[str, Any] = {NEVER_DECODE: True}  # values as bytes: one that is not UTF-8 is no error
    values: list[Any] = []
    signatures: list[Any] = []
    ttls: list[Any] = []
    for start in range(0, len(candidates), _READ_CHUNK):
        chunk = candidates[start : start + _READ_CHUNK]
        keys: list[bytes | str] = [key for key, _ in chunk]
        if signed:
            keys += [signature_key(prefix, name) for _, name in chunk]
        reply = await client.execute_command(
            "EVAL", _READ_SCRIPT, len(keys), *keys, len(chunk), MAX_VALUE_LENGTH, _MAX_SIGNATURE_READ, **raw
        )
        chunk_values, chunk_signatures, chunk_ttls, chunk_lengths = reply
        # A value longer than any level: cut when read, marked so that it is ignored (`_TooLong`).
        values += [
            _TooLong(value, int(length)) if value is not None and int(length) > MAX_VALUE_LENGTH else value
            for value, length in zip(chunk_values, chunk_lengths, strict=True)
        ]
        signatures += chunk_signatures if signed else [None] * len(chunk)
        ttls += chunk_ttls
    missing = [key for (key, _), value in zip(candidates, values, strict=True) if value is None]
    types: dict[bytes, str] = {}
    if missing:
        async with client.pipeline(transaction=False) as pipe:
            for key in missing:
                pipe.type(key)
            types = {key: _decoded(kind) for key, kind in zip(missing, await pipe.execute(), strict=True)}
    return values, signatures, ttls, types


class _TooLong(bytes):
    """The first `MAX_VALUE_LENGTH` bytes of a stored value of `length` bytes: no override."""

    length: int

    def __new__(cls, start: bytes, length: int) -> _TooLong:
        made = super().__new__(cls, start)
        made.length = length
        return made


def _decoded(value: object) -> str:
    """A reply as text: bytes that are not UTF-8 escaped (`\\xff`), cut after `_MAX_SHOWN` characters."""
    text = value[: _MAX_SHOWN * 4].decode(errors="backslashreplace") if isinstance(value, bytes) else str(value)
    return _short(text)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def shown(key: bytes | str) -> str:
    """A key name fit for a log line: not UTF-8 escaped, control characters escaped, long names cut."""
    text = _decoded(key)
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def factory() -> RedisFactory:
    from c2c_config.redis import get_factory
    from c2casgiutils import config

    return get_factory(config.settings.redis)


def key_prefix() -> str:
    """The prefix of the override keys: the setting's, with a hash tag on a cluster (`cluster_prefix`)."""
    from c2casgiutils import config

    prefix = config.settings.tools.logging.redis_prefix
    return cluster_prefix(prefix) if factory().cluster else prefix


async def _key_batches(client: RedisClient, prefix: str) -> AsyncGenerator[list[bytes], None]:
    """The keys under `prefix`, undecoded, a `SCAN` reply at a time (on a cluster, of the slot's master)."""
    from redis.asyncio.cluster import RedisCluster
    from redis.client import NEVER_DECODE

    match = _escape_glob(prefix) + "*"
    options: dict[str, Any] = {NEVER_DECODE: True}  # a key name that is not UTF-8 is no error
    if isinstance(client, RedisCluster):
        # A command routed by key first: the client follows `MOVED` and, after a failover, retries on
        # the refreshed topology, which a `SCAN` sent to one node does not do (the first call after a
        # failover would fail).
        await client.exists(prefix)
        options["target_nodes"] = client.get_node_from_key(prefix)  # the hash tag decides
    cursor = 0
    while True:
        reply: Any = await client.scan(cursor=cursor, match=match, count=_SCAN_COUNT, **options)
        next_cursor, keys = reply
        if isinstance(next_cursor, dict):  # a cluster answers per node: the one node asked
            next_cursor = next(iter(next_cursor.values()), 0)
        yield [key if isinstance(key, bytes) else str(key).encode() for key in keys]
        cursor = int(next_cursor)
        if not cursor:
            return


def _escape_glob(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
