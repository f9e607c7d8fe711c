"""Rate limits: token buckets per key and per model, and OpenRouter's free-model limits.

When a bucket is empty its callers queue in this process by priority (lyra.config.priority): one
pump per bucket takes each next token for the highest-priority waiter, first come first served
within a priority, sleeping until the bucket refills rather than polling it. A waiter whose
wait (the tokens queued ahead of it, at the refill rate) already passes its deadline is refused
at once. With `priority_headroom_share`, "normal" and "low" calls also leave that share of every
bucket untouched, so that a higher-priority call in any process sharing the bucket (SQLite, Redis)
finds a token at once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lyra.config import LimitSettings
from lyra.config.priority import PRIORITIES, RANK, PriorityTable
from lyra.days import budget_day
from lyra.errors import RateLimited
from lyra.log import get_logger
from lyra.routing.admission import BucketQueue, Waiter
from lyra.routing.router import AttemptContext, AttemptUsage
from lyra.state.base import BucketLevel, StateBackend

log = get_logger("lyra.routing.limits")

# Priorities that may take a bucket's last tokens: below these, calls leave the headroom.
_HEADROOM_FREE = RANK["high"]


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    capacity: float
    refill_per_s: float
    amount: float


class RateLimiter:
    """Takes a token from every bucket an attempt touches, waiting its turn up to the request's deadline.

    `clock` and `sleep` are the monotonic clock deadlines are measured on and the way to wait on
    it; a test passes a clock it moves by hand.
    """

    def __init__(self, limits: LimitSettings, backend: StateBackend, *, day_starts_utc_hour: int = 0,
                 priorities: PriorityTable | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._limits = limits
        self.backend = backend
        self._day_hour = day_starts_utc_hour
        self._fixed: dict[tuple[str, str], list[Bucket]] = {}
        self._priorities = priorities or PriorityTable()
        self._clock = clock
        self._sleep = sleep
        self._queues: dict[str, BucketQueue] = {}

    def buckets(self, ctx: AttemptContext) -> list[Bucket]:
        """The buckets one attempt draws from; the token bucket's amount is its worst case."""
        lim = self._limits
        fixed = self._fixed.get((ctx.key_name, ctx.model.id))
        if fixed is None:
            fixed = [Bucket(f"rpm:key:{ctx.key_name}", lim.key_rpm, lim.key_rpm / 60, 1)]
            model_rpm = lim.model_rpm.get(ctx.model.id)
            if model_rpm:
                fixed.append(Bucket(f"rpm:model:{ctx.model.id}", model_rpm, model_rpm / 60, 1))
            self._fixed[(ctx.key_name, ctx.model.id)] = fixed
        tokens = min(float(ctx.prompt_tokens + ctx.max_tokens), lim.key_tpm)
        found = [*fixed, Bucket(f"tpm:key:{ctx.key_name}", lim.key_tpm, lim.key_tpm / 60, tokens)]
        if ctx.model.is_free:
            # Free-variant limits are per account, shared by every key.
            day = budget_day(time.time(), self._day_hour)
            found.append(Bucket("rpm:free", lim.free_rpm, lim.free_rpm / 60, 1))
            found.append(Bucket(f"rpd:free:{day}", lim.free_rpd, 0.0, 1))
        return found

    def waiting(self, bucket: str) -> int:
        """How many calls of this process wait for `bucket` now."""
        queue = self._queues.get(bucket)
        return len(queue) if queue is not None else 0

    async def acquire(self, ctx: AttemptContext, deadline: float) -> None:
        """Take a token from each bucket, or none at all: when a later bucket refuses (or the wait is
        cancelled), the tokens already taken from earlier ones are given back."""
        rank = self._priorities.rank(ctx.request)
        share = 0.0 if rank <= _HEADROOM_FREE else self._limits.priority_headroom_share
        backend, queues = self.backend, self._queues
        taken: list[Bucket] = []
        try:
            for bucket in self.buckets(ctx):
                # The tokens this call must leave for higher priorities (never so many it cannot fit).
                floor = min(bucket.capacity * share, bucket.capacity - bucket.amount) if share else 0.0
                if not queues.get(bucket.name):
                    # Nobody of this process waits: take at once, as the backend allows (inlined: the
                    # common case, a few microseconds).
                    level = await backend.take_level(bucket.name, bucket.capacity, bucket.refill_per_s,
                                                     bucket.amount)
                    if level.wait == 0 and level.tokens >= floor:
                        taken.append(bucket)
                        continue
                    await self._missed(bucket, ctx, deadline, rank, floor, level)
                else:
                    await self._wait_turn(bucket, ctx, deadline, rank, floor)
                taken.append(bucket)
        except BaseException:
            for bucket in reversed(taken):
                await self._give_back(bucket.name, bucket.capacity, bucket.refill_per_s, bucket.amount)
            raise

    async def _try(self, name: str, capacity: float, refill_per_s: float, amount: float,
                   floor: float) -> tuple[float, float]:
        """One take that leaves `floor` tokens: (0.0, tokens left) or (wait, tokens in the bucket)."""
        level = await self.backend.take_level(name, capacity, refill_per_s, amount)
        return await self._settle_take(name, capacity, refill_per_s, amount, floor, level)

    async def _settle_take(self, name: str, capacity: float, refill_per_s: float, amount: float,
                           floor: float, level: BucketLevel) -> tuple[float, float]:
        """What a take's `level` means for a call that must leave `floor` tokens: (0.0, tokens left)
        or (wait, tokens in the bucket), giving back a token taken from the headroom."""
        if level.wait > 0:
            extra = 0.0 if floor <= 0 else (math.inf if refill_per_s <= 0 else floor / refill_per_s)
            return level.wait + extra, level.tokens
        if level.tokens >= floor:
            return 0.0, level.tokens
        # Taken, but into the headroom higher priorities keep: give it back and wait for more.
        await self._give_back(name, capacity, refill_per_s, amount)
        left = level.tokens + amount
        return (math.inf if refill_per_s <= 0 else (amount + floor - left) / refill_per_s), left

    async def _give_back(self, name: str, capacity: float, refill_per_s: float, amount: float) -> None:
        await self.backend.take(name, capacity, refill_per_s, -amount)

    async def _give_back_quietly(self, queue: BucketQueue, amount: float) -> None:
        """Give a token back from the pump: a backend failure loses it (the bucket under-counts until it
        refills, the safe side) rather than stopping every waiter's pump."""
        try:
            await self._give_back(queue.name, queue.capacity, queue.refill_per_s, amount)
        except Exception as exc:
            log.warning("rate limit %s: a token could not be given back (%s)", queue.name, type(exc).__name__)

    async def _missed(self, bucket: Bucket, ctx: AttemptContext, deadline: float, rank: int, floor: float,
                      level: BucketLevel) -> None:
        """The first take found the bucket short: refuse when even the next token is too late, else queue."""
        wait, tokens = await self._settle_take(bucket.name, bucket.capacity, bucket.refill_per_s,
                                               bucket.amount, floor, level)
        if wait == 0:
            return
        if self._clock() + wait > deadline:
            raise RateLimited(f"rate limit {bucket.name} for {ctx.model.id}: next token in {wait:.1f}s, "
                              "after the request deadline", retry_after=wait)
        queue = self._queue(bucket)  # another call may have queued meanwhile
        if not queue:
            queue.note(tokens, self._clock())
        await self._wait_turn(bucket, ctx, deadline, rank, floor)

    def _queue(self, bucket: Bucket) -> BucketQueue:
        """The bucket's queue on the running event loop; one left by a loop that has gone is dropped
        (its waiters and pump went with that loop)."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(bucket.name)
        if queue is None or queue.loop is not loop:
            queue = self._queues[bucket.name] = BucketQueue(bucket.name, bucket.capacity, bucket.refill_per_s,
                                                            loop)
        return queue

    async def _wait_turn(self, bucket: Bucket, ctx: AttemptContext, deadline: float, rank: int,
                         floor: float) -> None:
        """Join the bucket's queue (refused at once when its turn would come too late) and wait for it."""
        queue = self._queue(bucket)
        self._refuse_if_late(queue, bucket, ctx, deadline, rank, floor)
        waiter = Waiter(rank, bucket.amount, floor, deadline, ctx.model.id,
                        queue.loop.create_future())
        queue.push(waiter)
        if queue.pump is None:
            queue.pump = asyncio.create_task(self._pump(queue), name=f"lyra-limit-{bucket.name}")
        elif queue.head() is waiter and queue.kick is not None and not queue.kick.done():
            queue.kick.set_result(None)  # the pump sleeps for a lower-priority head: look again now
        try:
            await waiter.future
        except asyncio.CancelledError:
            done = waiter.future
            # The token may have been taken for this call just as it was cancelled: give it back.
            if done.done() and not done.cancelled() and done.exception() is None:
                await self._give_back(bucket.name, bucket.capacity, bucket.refill_per_s, bucket.amount)
            raise
        finally:
            queue.remove(waiter)

    def _refuse_if_late(self, queue: BucketQueue, bucket: Bucket, ctx: AttemptContext, deadline: float,
                        rank: int, floor: float) -> None:
        """Refuse a newcomer at once when the tokens queued ahead of it cannot refill before its deadline."""
        now = self._clock()
        count, ahead = queue.ahead(rank)
        wait = queue.wait_for(ahead + bucket.amount + floor, queue.level(now))
        if now + wait > deadline:
            raise RateLimited(_late(bucket.name, ctx.model.id, rank, count, wait), retry_after=wait)

    async def _pump(self, queue: BucketQueue) -> None:
        """Serve the queue's waiters in order until it is empty: one take per refill, never a poll."""
        known = False  # the last take told the level: no need to ask again before the next refill
        try:
            while (head := queue.head()) is not None:
                if head.future.done():  # cancelled: its task has not left the line yet
                    queue.remove(head)
                    continue
                now = self._clock()
                if not known or queue.level(now) >= head.amount + head.floor:
                    try:
                        wait, tokens = await self._try(queue.name, queue.capacity, queue.refill_per_s,
                                                       head.amount, head.floor)
                    except Exception as exc:  # the backend failed: this waiter hears it, the next tries
                        queue.remove(head)
                        if not head.future.done():
                            head.future.set_exception(exc)
                        continue
                    now = self._clock()
                    queue.note(tokens, now)
                    if wait == 0:
                        queue.remove(head)
                        if head.future.done():  # cancelled while the take was in flight
                            await self._give_back_quietly(queue, head.amount)
                        else:
                            head.future.set_result(None)
                        known = True
                        continue
                if not known or queue.reordered:
                    # The bucket held less than projected (a take failed: another process, a clock
                    # step) or turns moved back: see whose deadline is out of reach. Otherwise the
                    # head was served exactly as every estimate assumed.
                    queue.reordered = False
                    self._expire(queue, now)
                known = False
                if (head := queue.head()) is None:
                    break
                await self._nap(queue, queue.wait_for(head.amount + head.floor, queue.level(now)))
        except BaseException as exc:
            for waiter in list(queue):
                queue.remove(waiter)
                if not waiter.future.done() and not queue.loop.is_closed():
                    waiter.future.set_exception(
                        RateLimited(f"rate limit {queue.name}: the limiter stopped ({type(exc).__name__})"))
            raise
        finally:
            queue.pump = None
            if not queue and self._queues.get(queue.name) is queue:
                del self._queues[queue.name]  # per-day buckets come and go

    def _expire(self, queue: BucketQueue, now: float) -> None:
        """Refuse every waiter whose turn, behind the tokens queued ahead of it, comes after its deadline.

        Runs when a take came up short or a newcomer moved turns back, so a waiter pushed back by
        higher-priority arrivals (or starved by other processes) hears it as soon as its deadline is
        out of reach, not at the deadline.
        """
        ahead, position, tokens = 0.0, 0, queue.level(now)
        for waiter in list(queue):
            wait = queue.wait_for(ahead + waiter.amount + waiter.floor, tokens)
            if now + wait > waiter.deadline:
                queue.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_exception(RateLimited(
                        _late(queue.name, waiter.model, waiter.rank, position, wait), retry_after=wait))
                continue
            ahead += waiter.amount
            position += 1

    async def _nap(self, queue: BucketQueue, seconds: float) -> None:
        """Sleep until the bucket refills for the head, or until a higher-priority head arrives."""
        kick = queue.kick = asyncio.get_running_loop().create_future()
        # A bucket that never refills (a day's quota) is only worth looking at again for a new head.
        forever = not math.isfinite(seconds)
        nap = asyncio.ensure_future(asyncio.Event().wait() if forever else self._sleep(seconds))
        try:
            await asyncio.wait((nap, kick), return_when=asyncio.FIRST_COMPLETED)
        finally:
            queue.kick = None
            if not queue.loop.is_closed():  # else the loop went with its tasks: nothing to cancel
                nap.cancel()
                kick.cancel()

    async def release(self, ticket: None, ctx: AttemptContext, usage: AttemptUsage | None) -> None:
        return None


def _late(bucket: str, model: str, rank: int, ahead: int, wait: float) -> str:
    level = PRIORITIES[rank]
    queued = f"{ahead} call(s) of priority {level} or higher queued ahead; " if ahead else ""
    return (f"rate limit {bucket} for {model}: {queued}its turn comes in {wait:.1f}s, "
            "after the request deadline")
