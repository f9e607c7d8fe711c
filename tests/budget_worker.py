"""Load through a full Lyra engine in a child process (run by test_budget_processes.py, not collected).

    budget_worker.py burst CONFIG N SEED
        open the engine, print "ready", wait for a line on stdin, fire N concurrent requests of
        varying model, prompt size and max_tokens, close the engine, print the outcome counts as JSON
    budget_worker.py steady CONFIG WORKERS SEED PROGRESS_FILE
        run WORKERS request loops without end, keeping PROGRESS_FILE at the nano-dollars served
        so far; it is meant to be killed

The environment carries the keys, the simulator's base URL, LYRA_LEDGER_URL and LYRA_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import sys
from pathlib import Path

from lyra import Lyra, LyraError

PREMIUM = ("anthropic/claude-opus-4.8", "openai/gpt-4o", "google/gemini-2.5-pro")
# Premium models only: the tier's share is the whole day, so the global cap is the one that binds.
ALL_PREMIUM = {"premium": 1.0, "advanced": 0.0, "specialized": 0.0, "fast": 0.0}
_STEADY_PAUSE_S = 0.02  # paces the steady load so that a kill lands well before the cap is full


async def one(lyra: Lyra, rng: random.Random) -> tuple[str, int]:
    """One request of random model, prompt size and max_tokens: (outcome, cost in nano-dollars)."""
    messages = [{"role": "user", "content": "Assess BTC risk. " + "data " * rng.randint(5, 400)}]
    try:
        done = await lyra.complete(model=rng.choice(PREMIUM), messages=messages,
                                   max_tokens=rng.randint(50, 400))
    except LyraError as exc:
        return type(exc).__name__, 0
    return "served", done.cost_nanos


async def burst(lyra: Lyra, n: int, seed: int) -> collections.Counter[str]:
    """Fire n requests at once; count the outcomes by name ("served" or an error class)."""
    rng = random.Random(seed)
    results = await asyncio.gather(*(one(lyra, rng) for _ in range(n)))
    return collections.Counter(outcome for outcome, _ in results)


async def run_burst(config: str, n: int, seed: int) -> None:
    async with Lyra.from_config(config) as lyra:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        # Every process is up before any fires, so that their loads overlap.
        await asyncio.to_thread(sys.stdin.readline)
        outcomes = await burst(lyra, n, seed)
    sys.stdout.write(json.dumps(dict(outcomes)) + "\n")


def _publish(progress: Path, spent: int) -> None:
    tmp = progress.with_suffix(".tmp")
    tmp.write_text(str(spent))
    os.replace(tmp, progress)  # atomic, so the parent never reads a torn number


async def run_steady(config: str, workers: int, seed: int, progress: Path) -> None:
    spent = 0

    async def loop(rng: random.Random) -> None:
        nonlocal spent
        while True:
            _, cost = await one(lyra, rng)
            spent += cost
            await asyncio.sleep(_STEADY_PAUSE_S)

    async with Lyra.from_config(config) as lyra:
        tasks = [asyncio.create_task(loop(random.Random(seed * 1000 + i))) for i in range(workers)]
        while True:
            _publish(progress, spent)
            await asyncio.sleep(0.01)
            for task in tasks:
                if task.done():
                    task.result()  # a crashed loop fails the worker loudly


def main(argv: list[str]) -> None:
    mode, config = argv[1], argv[2]
    if mode == "burst":
        asyncio.run(run_burst(config, int(argv[3]), int(argv[4])))
    elif mode == "steady":
        asyncio.run(run_steady(config, int(argv[3]), int(argv[4]), Path(argv[5])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv)
