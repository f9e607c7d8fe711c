"""State in Redis, shared by processes on several hosts: each operation is one Lua script call.

Keys, all under the prefix:
  c:<cap>   hash {committed, reserved}: reserved is the sum of the members of z:<cap>
  z:<cap>   sorted set of "<reservation id>:<amount>" scored by expiry time, so that expired
            reservations can be found, and their amounts moved from reserved to committed (spent
            at the worst case: their holder may have died after being billed), from the cap alone
  r:<id>    hash {cap: amount} of one reservation, for commit and release; it outlives the ttl
            by the keep time, so that a late settle of an expired reservation can correct it:
            on each cap, a member still in z:<cap> is live, a missing one has expired
  b:<name>  hash {tokens, ts} of one token bucket
  epoch     the marker of this state's life: a Redis restarted empty, flushed or failed over to a
            replica that lacks it has none, and reserve refuses until the day is rebuilt
Scripts read the server's TIME, so hosts whose clocks disagree still agree on expiry and refill.
Cap keys expire 3 days after their last write, so that old budget days do not pile up.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lyra.errors import StateReset, StateUnavailable
from lyra.state.base import EXPIRED_KEEP_S, BucketLevel, CapUsage, Charge, Refusal, StateBackend
from lyra.state.memory import check_actual, merge_charges

CAP_KEEP_S = 3 * 24 * 3600
# A reservation's own hash r:<id> outlives its ttl by the keep time (EXPIRED_KEEP_S by default) so
# that a late settle finds its amounts; the cap never depends on it, since z:<cap> alone moves
# expired amounts to committed. Once it is gone, a late commit counts its actual in full.
_HELD = "lyra: reservation already held"

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# Drops the expired members of z:<cap> and moves their amounts from reserved to committed in c:<cap>.
_PURGE = """
local function purge(ckey, zkey, now)
  local expired = redis.call('ZRANGEBYSCORE', zkey, '-inf', now)
  if #expired > 0 then
    local moved = 0
    for _, member in ipairs(expired) do
      moved = moved + tonumber(string.match(member, ':(%d+)$'))
    end
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
    if moved > 0 then
      redis.call('HINCRBY', ckey, 'reserved', -moved)
      redis.call('HINCRBY', ckey, 'committed', moved)
    end
  end
end
"""

# Undoes each hold of a reservation, then forgets it: a hold still in its cap's sorted set is live
# (even past its ttl) and leaves reserved; one already purged expired into committed and leaves that.
_DROP = """
local function drop(prefix, rkey, rid)
  local held = redis.call('HGETALL', rkey)
  for i = 1, #held, 2 do
    local cap, amount = held[i], held[i + 1]
    local field = 'committed'
    if redis.call('ZREM', prefix .. 'z:' .. cap, rid .. ':' .. amount) == 1 then
      field = 'reserved'
    end
    if amount ~= '0' then
      redis.call('HINCRBY', prefix .. 'c:' .. cap, field, -tonumber(amount))
    end
  end
  redis.call('DEL', rkey)
end
"""

# KEYS: c:<cap>, z:<cap> for each cap, then r:<id>, then epoch.
# ARGV: id, ttl in seconds, lifetime of r:<id> in ms, cap key lifetime, then cap, limit, amount per cap,
# then the expected epoch ('' to skip the check).
# Returns nil when every charge is held, {0, 0} when the epoch differs, else {index of the refusing
# cap (1-based), used}.
_RESERVE = _NOW + _PURGE + """
local n = (#KEYS - 2) / 2
local rkey = KEYS[#KEYS - 1]
local expected = ARGV[#ARGV]
if expected ~= '' and redis.call('GET', KEYS[#KEYS]) ~= expected then
  return {0, 0}
end
if redis.call('EXISTS', rkey) == 1 then
  return redis.error_reply('""" + _HELD + """')
end
for i = 1, n do
  local ckey, zkey = KEYS[2 * i - 1], KEYS[2 * i]
  purge(ckey, zkey, now)
  local v = redis.call('HMGET', ckey, 'committed', 'reserved')
  local used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
  if used + tonumber(ARGV[3 * i + 4]) > tonumber(ARGV[3 * i + 3]) then
    return {i, used}
  end
end
local expires_at = now + tonumber(ARGV[2])
for i = 1, n do
  local ckey, zkey = KEYS[2 * i - 1], KEYS[2 * i]
  local cap, amount = ARGV[3 * i + 2], ARGV[3 * i + 4]
  redis.call('ZADD', zkey, expires_at, ARGV[1] .. ':' .. amount)
  redis.call('HINCRBY', ckey, 'reserved', amount)
  redis.call('EXPIRE', ckey, ARGV[4])
  redis.call('EXPIRE', zkey, ARGV[4])
  redis.call('HSET', rkey, cap, amount)
end
redis.call('PEXPIRE', rkey, ARGV[3])
return nil
"""

# KEYS: r:<id>, then c:<cap> for each cap in actual.  ARGV: prefix, id, cap key lifetime, amounts.
_COMMIT = _DROP + """
drop(ARGV[1], KEYS[1], ARGV[2])
for i = 2, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'committed', ARGV[i + 2])
  redis.call('EXPIRE', KEYS[i], ARGV[3])
end
return nil
"""

# KEYS: r:<id>.  ARGV: prefix, id.
_RELEASE = _DROP + """
drop(ARGV[1], KEYS[1], ARGV[2])
return nil
"""

# KEYS: c:<cap>, z:<cap> for each cap.  Returns committed, reserved per cap.
_USAGE = _NOW + _PURGE + """
local out = {}
for i = 1, #KEYS, 2 do
  purge(KEYS[i], KEYS[i + 1], now)
  local v = redis.call('HMGET', KEYS[i], 'committed', 'reserved')
  out[#out + 1] = tonumber(v[1]) or 0
  out[#out + 1] = tonumber(v[2]) or 0
end
return out
"""

# KEYS: c:<cap> for each cap.  ARGV: cap key lifetime, then the values.
_SEED = """
for i = 1, #KEYS do
  local value = tonumber(ARGV[i + 1])
  local committed = tonumber(redis.call('HGET', KEYS[i], 'committed')) or 0
  if value > committed then
    redis.call('HSET', KEYS[i], 'committed', ARGV[i + 1])
  end
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return nil
"""

# KEYS: epoch, then c:<cap> for each cap.  ARGV: epoch, cap key lifetime, then the values to add.
# Returns the epoch stored afterwards.
_INSTALL = """
local current = redis.call('GET', KEYS[1])
if current then
  return current
end
for i = 2, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'committed', ARGV[i + 1])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""

# KEYS: b:<name>.  ARGV: capacity, refill per second, amount, lifetime of a bucket that never refills.
# Returns the wait in seconds ('0' when taken, '-1' never) and the tokens left, as strings: Redis
# would truncate a Lua number.
_TAKE = _NOW + """
local capacity, rate, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = capacity
if v[1] then
  tokens = math.min(capacity, tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * rate)
end
local wait = 0
if tokens >= amount then
  tokens = math.min(capacity, tokens - amount)
elseif rate > 0 then
  wait = (amount - tokens) / rate
else
  wait = -1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', now))
-- Once full again the bucket equals a new one, so it may go; one that never refills goes with
-- the caps of its day.
if rate > 0 then
  redis.call('EXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate) + 60)
else
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return {string.format('%.17g', wait), string.format('%.17g', tokens)}
"""


class RedisBackend(StateBackend):
    """Caps, reservations and buckets in Redis; reserve, commit, release and take are one EVALSHA each."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "lyra:",
        max_connections: int = 64,
        socket_timeout_s: float = 2.0,
        expired_keep_s: float = EXPIRED_KEEP_S,
    ) -> None:
        self.prefix = prefix
        self._keep_ms = math.ceil(expired_keep_s * 1000)
        # A bounded pool that waits for a free connection: a burst of a thousand concurrent
        # requests must not open a thousand sockets. No retry policy, on purpose: a script whose
        # reply was lost may have run, and running a commit twice would count its money twice.
        pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=None,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            decode_responses=True,
        )
        self._redis: Redis = Redis(connection_pool=pool)
        register = self._redis.register_script
        self._reserve, self._commit, self._release = register(_RESERVE), register(_COMMIT), register(_RELEASE)
        self._usage, self._seed, self._take = register(_USAGE), register(_SEED), register(_TAKE)
        self._install = register(_INSTALL)
        self._epoch_key = f"{prefix}epoch"

    async def epoch(self) -> str | None:
        """The marker stored in Redis, or None after a restart without persistence or a flush."""
        async with _reachable():
            value = await self._redis.get(self._epoch_key)
        return None if value is None else str(value)

    async def install_epoch(self, epoch: str, committed: Mapping[str, int]) -> str:
        """Add `committed` and store `epoch`, unless a marker is stored already."""
        keys = [self._epoch_key, *(self._cap(cap) for cap in committed)]
        async with _reachable():
            return str(await self._install(keys=keys, args=[epoch, CAP_KEEP_S, *committed.values()]))

    def _cap(self, cap: str) -> str:
        return f"{self.prefix}c:{cap}"

    def _zset(self, cap: str) -> str:
        return f"{self.prefix}z:{cap}"

    async def reserve(self, reservation_id: str, charges: Sequence[Charge], ttl_s: float) -> Refusal | None:
        """All or nothing: hold every charge, or none and say which cap refused."""
        merged = merge_charges(charges)
        keys: list[str] = []
        held_ms = math.ceil(ttl_s * 1000) + self._keep_ms
        args: list[Any] = [reservation_id, repr(float(ttl_s)), held_ms, CAP_KEEP_S]
        for cap, (limit, amount) in merged.items():
            keys += (self._cap(cap), self._zset(cap))
            args += (cap, limit, amount)
        keys += (f"{self.prefix}r:{reservation_id}", self._epoch_key)
        args.append(self.expected_epoch or "")
        try:
            async with _reachable():
                refused = await self._reserve(keys=keys, args=args)
        except ResponseError as exc:
            if _HELD in str(exc):
                raise ValueError(f"reservation {reservation_id!r} is already held") from exc
            raise
        if refused is None:
            return None
        if int(refused[0]) == 0:
            raise StateReset("the budget state in Redis was reset (no epoch marker); "
                             "it is being rebuilt from the ledger")
        cap, (limit, amount) = list(merged.items())[int(refused[0]) - 1]
        return Refusal(cap=cap, limit=limit, used=int(refused[1]), amount=amount)

    async def commit(self, reservation_id: str, actual: Mapping[str, int]) -> None:
        """Replace the reservation by what was really spent."""
        check_actual(actual)
        spent = {cap: amount for cap, amount in actual.items() if amount}
        keys = [f"{self.prefix}r:{reservation_id}", *(self._cap(cap) for cap in spent)]
        async with _reachable():
            await self._commit(keys=keys, args=[self.prefix, reservation_id, CAP_KEEP_S, *spent.values()])

    async def release(self, reservation_id: str) -> None:
        """Drop a reservation without spending anything."""
        async with _reachable():
            await self._release(keys=[f"{self.prefix}r:{reservation_id}"], args=[self.prefix, reservation_id])

    async def usage(self, caps: Sequence[str]) -> dict[str, CapUsage]:
        """Committed (with expired holds) and reserved (live holds only) amounts of each cap."""
        if not caps:
            return {}
        keys = [key for cap in caps for key in (self._cap(cap), self._zset(cap))]
        async with _reachable():
            values = await self._usage(keys=keys)
        return {
            cap: CapUsage(committed=int(values[2 * i]), reserved=int(values[2 * i + 1]))
            for i, cap in enumerate(caps)
        }

    async def seed_committed(self, values: Mapping[str, int]) -> None:
        """Raise each cap's committed amount to at least the given value."""
        if values:
            async with _reachable():
                await self._seed(keys=[self._cap(cap) for cap in values], args=[CAP_KEEP_S, *values.values()])

    async def take_level(self, bucket: str, capacity: float, refill_per_s: float,
                         amount: float) -> BucketLevel:
        """Token bucket: take `amount` (wait 0.0) or nothing (the wait in seconds), and the level after."""
        if amount > capacity:
            # Never fits: the level is not worth a round trip, and a full bucket is what a new one holds.
            return BucketLevel(math.inf, capacity)
        args: list[str | int] = [*(repr(float(x)) for x in (capacity, refill_per_s, amount)), CAP_KEEP_S]
        async with _reachable():
            wait_text, tokens_text = await self._take(keys=[f"{self.prefix}b:{bucket}"], args=args)
        wait = float(wait_text)
        return BucketLevel(math.inf if wait < 0 else wait, float(tokens_text))

    async def close(self) -> None:
        """Close the client and its connection pool."""
        await self._redis.aclose()


@contextlib.asynccontextmanager
async def _reachable() -> AsyncIterator[None]:
    """Turn an unreachable, hung or failing Redis into StateUnavailable (one line, fail closed)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise StateUnavailable(f"the budget state in Redis cannot be reached ({type(exc).__name__}); "
                               "refusing until it is back") from exc
