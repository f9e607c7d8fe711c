"""Rate limits: token buckets per key and per model, and OpenRouter's free-model limits."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from lyra.config import LimitSettings
from lyra.days import budget_day
from lyra.errors import RateLimited
from lyra.routing.router import AttemptContext, AttemptUsage
from lyra.state.base import StateBackend


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    capacity: float
    refill_per_s: float
    amount: float


class RateLimiter:
    """Takes a token from every bucket an attempt touches, waiting up to the request's deadline."""

    def __init__(self, limits: LimitSettings, backend: StateBackend, *, day_starts_utc_hour: int = 0) -> None:
        self._limits = limits
        self.backend = backend
        self._day_hour = day_starts_utc_hour
        self._fixed: dict[tuple[str, str], list[Bucket]] = {}

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

    async def acquire(self, ctx: AttemptContext, deadline: float) -> None:
        """Take a token from each bucket, or none at all: when a later bucket refuses (or the wait is
        cancelled), the tokens already taken from earlier ones are given back."""
        taken: list[Bucket] = []
        try:
            for bucket in self.buckets(ctx):
                await self._take(bucket, ctx, deadline)
                taken.append(bucket)
        except BaseException:
            for bucket in reversed(taken):
                await self.backend.take(bucket.name, bucket.capacity, bucket.refill_per_s, -bucket.amount)
            raise

    async def _take(self, bucket: Bucket, ctx: AttemptContext, deadline: float) -> None:
        while (wait := await self.backend.take(bucket.name, bucket.capacity, bucket.refill_per_s,
                                               bucket.amount)) > 0:
            if time.monotonic() + wait > deadline:
                raise RateLimited(
                    f"rate limit {bucket.name} for {ctx.model.id}: next token in {wait:.1f}s, "
                    "after the request deadline", retry_after=wait)
            await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))

    async def release(self, ticket: None, ctx: AttemptContext, usage: AttemptUsage | None) -> None:
        return None
