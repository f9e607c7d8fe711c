"""A risk call behind queued signal calls at a saturated rate limit: the priority queue against the old race.

Each round empties a key bucket of `--rpm` tokens a minute, queues `--queued` signal_generation calls
on it, then issues one risk_assessment call, and times how long the risk call waits for its token
and how many signal calls are admitted before it. The baseline is the limiter before the queue:
every waiter sleeps until the next token and races the others for it. Also counts the state
backend's takes per admitted call (the polling). Real clock, real sleeps; memory and SQLite state.

    python bench/priority.py [--rounds 20] [--queued 300] [--rpm 60000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lyra.catalog.models import load_catalog
from lyra.config import LimitSettings
from lyra.config.priority import PriorityTable
from lyra.errors import RateLimited
from lyra.routing.limits import Bucket, RateLimiter
from lyra.state.base import BucketLevel
from lyra.state.memory import MemoryBackend
from lyra.state.sqlite import SqliteBackend
from lyra.types import CompletionRequest

MODEL = load_catalog().find("openai/gpt-4o-mini")


class Racing(RateLimiter):
    """The limiter as it was: every waiter polls the backend after sleeping for the wait it was told."""

    async def acquire(self, ctx: Any, deadline: float) -> None:
        taken: list[Bucket] = []
        try:
            for bucket in self.buckets(ctx):
                await self._race(bucket, deadline)
                taken.append(bucket)
        except BaseException:
            for bucket in reversed(taken):
                await self.backend.take(bucket.name, bucket.capacity, bucket.refill_per_s, -bucket.amount)
            raise

    async def _race(self, bucket: Bucket, deadline: float) -> None:
        while (wait := await self.backend.take(bucket.name, bucket.capacity, bucket.refill_per_s,
                                               bucket.amount)) > 0:
            if time.monotonic() + wait > deadline:
                raise RateLimited(f"rate limit {bucket.name}: next token in {wait:.1f}s")
            await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))


class Counting:
    """Counts the takes a state backend is asked for (mixed into the real backends below)."""

    takes = 0

    async def take_level(self, bucket: str, capacity: float, refill_per_s: float,
                         amount: float) -> BucketLevel:
        self.takes += 1
        return await super().take_level(bucket, capacity, refill_per_s, amount)  # type: ignore[misc]


class CountingMemory(Counting, MemoryBackend):
    pass


class CountingSqlite(Counting, SqliteBackend):
    pass


def attempt(task: str) -> Any:
    return SimpleNamespace(key_name="bench", model=MODEL, prompt_tokens=10, max_tokens=10,
                           request=CompletionRequest(messages=[], task=task))


async def one_round(limiter: RateLimiter, backend: Counting, queued: int) -> tuple[float, int, int]:
    """(seconds the risk call waited, signal calls admitted after it arrived and before it, takes)."""
    while True:  # empty the bucket
        try:
            await limiter.acquire(attempt("signal_generation"), time.monotonic())
        except RateLimited:
            break
    order: list[str] = []
    takes = backend.takes

    async def call(label: str, task: str) -> None:
        await limiter.acquire(attempt(task), math.inf)
        order.append(label)

    signals = [asyncio.create_task(call("signal", "signal_generation")) for _ in range(queued)]
    await asyncio.sleep(0)
    arrived = len(order)
    started = time.monotonic()
    await call("risk", "risk_assessment")
    waited = time.monotonic() - started
    before = order.index("risk") - arrived
    await asyncio.gather(*signals)
    return waited, before, backend.takes - takes


async def uncontended(kind: type[RateLimiter], calls: int) -> list[float]:
    """Microseconds per acquire when the buckets have tokens to spare (the common case)."""
    limits = LimitSettings(key_rpm=10**9, key_tpm=10**12)  # default headroom: normal calls check it
    limiter = kind(limits, MemoryBackend(), priorities=PriorityTable())
    ctx = attempt("signal_generation")
    samples: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        await limiter.acquire(ctx, math.inf)
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(rounds: int, queued: int, rpm: int) -> None:
    limits = LimitSettings(key_rpm=rpm, key_tpm=10**12, priority_headroom_share=0)
    print(f"{rounds} rounds; {queued} signal calls queued ahead of one risk call; key bucket {rpm}/min "
          f"({rpm / 60:.0f} tokens/s)")
    print(f"{'state':<7} {'limiter':<16} {'risk wait p50':>13} {'p99':>9} {'signals before it p50':>22} "
          f"{'max':>5} {'takes/admitted':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        for state in ("memory", "sqlite"):
            for name, kind in (("race (baseline)", Racing), ("priority queue", RateLimiter)):
                backend: CountingMemory | CountingSqlite = (
                    CountingMemory() if state == "memory" else CountingSqlite(Path(tmp) / f"{name[:4]}.db"))
                limiter = kind(limits, backend, priorities=PriorityTable())
                waits: list[float] = []
                befores: list[float] = []
                takes = admitted = 0
                for _ in range(rounds):
                    waited, before, took = await one_round(limiter, backend, queued)
                    waits.append(waited)
                    befores.append(before)
                    takes += took
                    admitted += queued + 1
                p50, p99 = pct(waits, 0.5) * 1e3, pct(waits, 0.99) * 1e3
                print(f"{state:<7} {name:<16} {p50:>10.2f} ms {p99:>6.2f} ms "
                      f"{statistics.median(befores):>22.0f} {max(befores):>5.0f} {takes / admitted:>15.1f}")
                await backend.close()
    print(f"\nuncontended acquire (memory state, {20_000} calls each, interleaved runs)")
    results: dict[str, list[float]] = {"race (baseline)": [], "priority queue": []}
    for _ in range(5):
        for name, kind in (("race (baseline)", Racing), ("priority queue", RateLimiter)):
            results[name] += await uncontended(kind, 4_000)
    for name, samples in results.items():
        print(f"{name:<16} p50 {pct(samples, 0.5):.1f} us, p99 {pct(samples, 0.99):.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--queued", type=int, default=300)
    parser.add_argument("--rpm", type=int, default=60_000)
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.queued, args.rpm))


if __name__ == "__main__":
    main()
