"""Consensus wall time against its slowest member, early exit, and the cost of a cache hit.

A 5-member panel (the origin document's weights) asks a simulator in a child process whose
latencies are the origin document's ranges scaled by 0.05 (premium 100-250 ms). For each run:
T = the slowest member's own latency; the panel's wall time should be within 5 ms of T, far
below the sum a sequential loop would take. Then one member is made to hang for 1 s while the
others agree: early exit should finish long before it. Last, the time of a cache hit.

    python bench/consensus.py [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from _upstream import zero_latency_upstream
from lyra import Lyra

BULLISH = [{"role": "user", "content": 'BTC 4h.\n```json\n{"rsi": 35, "macd_hist": 0.8, "ret_5": 0.02, '
                                       '"sma_ratio": 0.01, "bb_pos": 0.4}\n```'}]
SLOW_MEMBER = "x-ai/grok-4.6"


async def panel_overhead(lyra: Lyra, runs: int) -> None:
    overheads, slowest, sums = [], [], []
    for _ in range(runs):
        c = await lyra.consensus(messages=BULLISH, panel="trade", notional=15_000, cache="bypass")
        member_latencies = [v.latency_s for v in c.votes if v.status == "vote"]
        slowest.append(max(member_latencies))
        sums.append(sum(member_latencies))
        overheads.append(c.latency_s - max(member_latencies))
    print(f"panel of 5, {runs} runs: slowest member T median {statistics.median(slowest) * 1000:.1f} ms; "
          f"panel wall - T: median {statistics.median(overheads) * 1000:.2f} ms, "
          f"max {max(overheads) * 1000:.2f} ms; a sequential loop would take "
          f"{statistics.median(sums) * 1000:.1f} ms (median)")


async def early_exit(lyra: Lyra, root_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        await http.post(f"{root_url}/_sim/faults", json={"kind": "timeout", "model": SLOW_MEMBER,
                                                         "hang_s": 1.0})
        try:
            c = await lyra.consensus(messages=BULLISH, panel="trade", notional=15_000, cache="bypass")
        finally:
            await http.delete(f"{root_url}/_sim/faults")
    status = {v.model: v.status for v in c.votes}
    print(f"early exit: {SLOW_MEMBER} hangs for T = 1000 ms; panel decided {c.action} in "
          f"{c.latency_s * 1000:.1f} ms (early_exit={c.early_exit}, that member: {status[SLOW_MEMBER]})")


async def cache_hit(lyra: Lyra, n: int = 20_000) -> None:
    messages = [{"role": "user", "content": "Sentiment of: 'ETF inflows hit a record'"}]
    await lyra.complete(task="news_sentiment", messages=messages)
    started = time.perf_counter()
    for _ in range(n):
        await lyra.complete(task="news_sentiment", messages=messages)
    per_hit = (time.perf_counter() - started) / n * 1e6
    print(f"cache hit: {per_hit:.1f} us per call over {n} calls (target < 50 us), ledger row included")


async def run(runs: int) -> None:
    with zero_latency_upstream(time_scale=0.05) as base_url, tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_DATA_HOME"] = tmp  # this run's state and spool files, not the user's
        env = {"OPENROUTER_API_KEY": "sk-or-v1-bench-" + "0" * 40, "LYRA_OPENROUTER_BASE_URL": base_url,
               "LYRA_LEDGER_URL": f"sqlite:///{tmp}/ledger.db"}
        async with Lyra.from_config(environ=env) as lyra:
            await panel_overhead(lyra, runs)
            await early_exit(lyra, base_url.removesuffix("/api/v1"))
            await cache_hit(lyra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(run(parser.parse_args().runs))


if __name__ == "__main__":
    main()
