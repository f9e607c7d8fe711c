"""Reserve and commit against one cap until it is full: run by the concurrency tests, in or out of process.

As a script: python state_hammer.py KIND TARGET LIMIT WORST TASKS SEED
(KIND sqlite with TARGET a file, or redis with TARGET "url prefix"); prints the number of commits.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid

from lyra.state import Charge, RedisBackend, SqliteBackend, StateBackend

CAP = "global:day"


async def spend(backend: StateBackend, *, limit: int, worst: int, rng: random.Random, deadline: float) -> int:
    """One caller: reserve `worst` and spend all of it; retry while others hold reservations.

    Gives up only when nobody holds anything and `worst` no longer fits, so the cap ends within
    `worst` of full unless reservations leak. Returns the number of commits.
    """
    commits = 0
    while time.monotonic() < deadline:
        reservation = uuid.uuid4().hex
        refusal = await backend.reserve(reservation, [Charge(CAP, limit, worst)], ttl_s=30)
        if refusal is None:
            await asyncio.sleep(0)  # the upstream call: let every other caller run meanwhile
            # Spending the whole worst case keeps the check sharp: one reservation too many shows.
            await backend.commit(reservation, {CAP: worst})
            commits += 1
            continue
        usage = (await backend.usage([CAP]))[CAP]
        if usage.reserved == 0 and usage.committed + worst > limit:
            return commits
        await asyncio.sleep(0.001 * rng.random())
    raise TimeoutError("the cap never filled up: reservations leaked or refusals were wrong")


async def hammer(
    backend: StateBackend, *, limit: int, worst: int, tasks: int, seed: int, timeout_s: float = 30.0
) -> int:
    """Run `tasks` concurrent callers against one cap; return the number of commits."""
    deadline = time.monotonic() + timeout_s
    rngs = [random.Random(seed * 100_003 + i) for i in range(tasks)]
    counts = await asyncio.gather(
        *(spend(backend, limit=limit, worst=worst, rng=rng, deadline=deadline) for rng in rngs)
    )
    return sum(counts)


async def watch(backend: StateBackend, limit: int, stop: asyncio.Event) -> int:
    """Sample the cap until told to stop; committed + reserved must never pass the limit."""
    samples = 0
    while not stop.is_set():
        usage = (await backend.usage([CAP]))[CAP]
        assert usage.committed + usage.reserved <= limit, usage
        samples += 1
        await asyncio.sleep(0.001)
    return samples


def open_target(kind: str, target: str) -> StateBackend:
    """A child process's backend: a sqlite path, or "redis-url prefix"."""
    if kind == "sqlite":
        return SqliteBackend(target)
    url, prefix = target.split(" ")
    return RedisBackend(url, prefix=prefix)


async def _main(argv: list[str]) -> None:
    kind, target, limit, worst, tasks, seed = argv
    backend = open_target(kind, target)
    try:
        commits = await hammer(backend, limit=int(limit), worst=int(worst), tasks=int(tasks), seed=int(seed))
    finally:
        await backend.close()
    sys.stdout.write(f"{commits}\n")


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:]))
