"""The engine's own CPU per routed request, beside a bare aiohttp POST to the same upstream.

Both run in this process against a zero-latency simulator in a child process, at concurrency 1
and 50. The engine path is a cache miss with budget reservations, rate limits, the key pool and
the SQLite ledger all on. Prints CPU microseconds per request, requests/s and the ratio.

    python bench/overhead.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _upstream import measure, zero_latency_upstream
from lyra import Lyra

MESSAGES = [{"role": "user", "content": "BTC 4h: RSI 71, MACD crossed up. Signal?"}]
MODEL = "deepseek/deepseek-chat"


async def run(requests: int) -> None:
    with zero_latency_upstream() as base_url, tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_DATA_HOME"] = tmp  # this run's state and spool files, not the user's
        env = {"OPENROUTER_API_KEY": "sk-or-v1-bench-" + "0" * 40, "LYRA_OPENROUTER_BASE_URL": base_url,
               "LYRA_LEDGER_URL": f"sqlite:///{tmp}/ledger.db"}
        body = orjson.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 400})
        headers = {"Authorization": f"Bearer {env['OPENROUTER_API_KEY']}",
                   "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session, Lyra.from_config(environ=env) as lyra:

            async def bare() -> object:
                async with session.post(f"{base_url}/chat/completions", data=body, headers=headers) as r:
                    return orjson.loads(await r.read())

            async def engine() -> object:
                return await lyra.complete(model=MODEL, messages=MESSAGES, max_tokens=400)

            print(f"{requests} requests per run; upstream: zero-latency simulator in a child process")
            print(f"{'concurrency':>11} {'path':<8} {'CPU us/req':>11} {'req/s':>8}")
            for concurrency in (1, 50):
                bare_cpu, bare_rps = await measure(bare, requests, concurrency, warmup=50)
                eng_cpu, eng_rps = await measure(engine, requests, concurrency, warmup=50)
                print(f"{concurrency:>11} {'aiohttp':<8} {bare_cpu:>11.0f} {bare_rps:>8.0f}")
                print(f"{concurrency:>11} {'lyra':<8} {eng_cpu:>11.0f} {eng_rps:>8.0f}")
                print(f"{'':>11} ratio    {eng_cpu / bare_cpu:>11.2f}x CPU, "
                      f"{bare_rps / eng_rps:.2f}x time per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    os.environ.pop("OPENROUTER_API_KEY", None)
    asyncio.run(run(args.requests))


if __name__ == "__main__":
    main()
