"""The budget governor's added CPU per request with the memory, sqlite and redis backends.

Four engines run in this process against one zero-latency simulator in a child process: the bare
engine (the budget guard and planner removed from its router) and the same engine with the budget
on each state backend. Rate-limit buckets stay on an in-process memory backend in all four and
the ledger is off, so the only difference between them is the budget. Rounds interleave the
engines, and the added CPU is the median over rounds of (engine - bare) in the same round.
For redis it also counts round trips per request on the client (every packed send on a
connection is one) and the budget operations behind them, checked against the server's
INFO commandstats (which counts every client of that server).

    python bench/budget.py [--requests 2000] [--rounds 5] [--concurrency 1 50] [--route model|tier]

Redis comes from LYRA_REDIS_URL (else LYRA_TEST_REDIS_URL, else redis://127.0.0.1:6379/0); its
keys go under a fresh prefix and are deleted at the end. Without Redis the redis row is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.asyncio.connection import AbstractConnection

sys.path.insert(0, str(Path(__file__).parent))
from _upstream import measure, zero_latency_upstream
from lyra import Lyra
from lyra.budget.governor import BudgetGovernor
from lyra.config import example_config_text
from lyra.routing.limits import RateLimiter
from lyra.state import MemoryBackend, StateBackend

MESSAGES = [{"role": "user", "content": "BTC 4h: RSI 71, MACD crossed up. Signal?"}]
MODEL = "deepseek/deepseek-chat"
BUDGET_OPS = ("reserve", "commit", "release", "usage", "seed_committed")
WARMUP = 50


def bench_config(state: str) -> str:
    """The example config with caps no bench run can reach, no ledger, and the given [state]."""
    text = example_config_text()
    text = re.sub(r"daily_usd = [0-9_.]+", "daily_usd = 1000000", text)
    text = re.sub(r"daily_tokens = [0-9_]+", "daily_tokens = 1_000_000_000_000", text)
    text = re.sub(r"\[state\]\n[^\[]*", lambda _: f"[state]\n{state}\n\n", text, count=1)
    text = re.sub(r"\[ledger\]\n[^\[]*", "", text, count=1)
    return text + ("\n[ledger]\nenabled = false\n\n"
                   "[limits]\nkey_rpm = 1_000_000_000\nkey_tpm = 1_000_000_000_000\n")


def redis_url() -> str | None:
    """The Redis to use, or None when it does not answer."""
    url = os.environ.get("LYRA_REDIS_URL") or os.environ.get("LYRA_TEST_REDIS_URL") or \
        "redis://127.0.0.1:6379/0"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return None
    return url


@dataclass
class Variant:
    """One engine under test and its CPU per request in each round."""

    name: str
    lyra: Lyra
    cpu_us: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)


def strip_budget(lyra: Lyra) -> None:
    """Remove the budget guard and planner from the engine's router: the bare engine."""
    router = lyra.router
    router.guards = [g for g in router.guards if not isinstance(g, BudgetGovernor)]
    router.planners = [p for p in router.planners if not isinstance(p, BudgetGovernor)]


def limits_in_memory(lyra: Lyra) -> None:
    """Keep every engine's rate-limit buckets in process, so that only the budget's backend differs."""
    for guard in lyra.router.guards:
        if isinstance(guard, RateLimiter):
            guard.backend = MemoryBackend()


@contextlib.asynccontextmanager
async def engines(base_url: str, folder: Path, url: str | None, prefix: str) -> AsyncIterator[list[Variant]]:
    """The bare engine and one engine per backend, started; closed on exit."""
    env = {"OPENROUTER_API_KEY": "sk-or-v1-bench-" + "0" * 40, "LYRA_OPENROUTER_BASE_URL": base_url}
    if url:
        env["LYRA_REDIS_URL"] = url
    states = {"bare (no budget)": 'backend = "memory"', "memory": 'backend = "memory"',
              "sqlite": f'backend = "sqlite"\npath = "{folder / "state.db"}"'}
    if url:
        states["redis"] = f'backend = "redis"\nprefix = "{prefix}"'
    async with contextlib.AsyncExitStack() as stack:
        variants = []
        for name, state in states.items():
            path = folder / f"{name.split()[0]}.toml"
            path.write_text(bench_config(state))
            lyra = await stack.enter_async_context(Lyra.from_config(path, environ=env))
            limits_in_memory(lyra)
            if name.startswith("bare"):
                strip_budget(lyra)
            variants.append(Variant(name, lyra))
        yield variants


def caller(lyra: Lyra, route: str) -> Callable[[], Awaitable[object]]:
    """One routed request: by explicit model (no step-down read) or by tier (with it)."""
    tier = "advanced" if route == "tier" else None

    async def call() -> object:
        return await lyra.complete(model=MODEL, tier=tier, messages=MESSAGES, max_tokens=400)

    return call


@contextlib.contextmanager
def counting_sends() -> Iterator[list[int]]:
    """Count packed sends on every async Redis connection (one per round trip) while inside."""
    counter = [0]
    original = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        counter[0] += 1
        await original(self, *args, **kwargs)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


@contextlib.contextmanager
def counting_ops(backend: StateBackend) -> Iterator[dict[str, int]]:
    """Count calls of the budget's state operations on one backend while inside."""
    counts = dict.fromkeys(BUDGET_OPS, 0)
    originals = {op: getattr(backend, op) for op in BUDGET_OPS}

    def wrap(op: str) -> Callable[..., Awaitable[Any]]:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            counts[op] += 1
            return await originals[op](*args, **kwargs)

        return counted

    for op in BUDGET_OPS:
        setattr(backend, op, wrap(op))
    try:
        yield counts
    finally:
        for op in BUDGET_OPS:
            delattr(backend, op)


def server_script_calls(url: str) -> int:
    """EVAL/EVALSHA calls the server has run so far, from INFO commandstats (all clients)."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


@dataclass(frozen=True)
class RoundTrips:
    per_request: float
    ops_per_request: float
    server_scripts_per_request: float


async def redis_round_trips(variant: Variant, url: str, call: Callable[[], Awaitable[object]],
                            requests: int) -> RoundTrips:
    """Round trips and budget operations per request for the redis engine (an untimed pass)."""
    assert variant.lyra.budget is not None
    before = server_script_calls(url)
    with counting_sends() as sends, counting_ops(variant.lyra.budget.backend) as ops:
        for _ in range(requests):
            await call()
    after = server_script_calls(url)
    return RoundTrips(sends[0] / requests, sum(ops.values()) / requests, (after - before) / requests)


async def run_rounds(variants: list[Variant], route: str, requests: int, rounds: int,
                     concurrency: int) -> None:
    """Measure every engine `rounds` times, rotating which goes first."""
    calls = {v.name: caller(v.lyra, route) for v in variants}
    for v in variants:
        v.cpu_us.clear()
        v.rps.clear()
        for _ in range(WARMUP):
            await calls[v.name]()
    for r in range(rounds):
        for v in variants[r % len(variants):] + variants[:r % len(variants)]:
            cpu, rps = await measure(calls[v.name], requests, concurrency)
            v.cpu_us.append(cpu)
            v.rps.append(rps)


def render(variants: list[Variant], concurrency: int, trips: RoundTrips | None) -> None:
    bare = variants[0]
    for v in variants:
        cpu = statistics.median(v.cpu_us)
        added = "-" if v is bare else \
            f"{statistics.median(a - b for a, b in zip(v.cpu_us, bare.cpu_us, strict=True)):+.0f}"
        rt = "-"
        if v.name == "redis" and trips is not None:
            rt = f"{trips.per_request:.2f} ({trips.ops_per_request:.2f} ops)"
        rps = statistics.median(v.rps)
        print(f"{concurrency:>5}  {v.name:<17} {cpu:>10.0f} {added:>11} {rps:>8.0f}  {rt}")


async def run(requests: int, rounds: int, concurrencies: list[int], route: str) -> None:
    url = redis_url()
    prefix = f"lyra-bench:{uuid.uuid4().hex[:12]}:"
    with zero_latency_upstream() as base_url, tempfile.TemporaryDirectory() as tmp:
        try:
            async with engines(base_url, Path(tmp), url, prefix) as variants:
                print(f"{requests} requests x {rounds} rounds per engine; route by {route}; "
                      "upstream: zero-latency simulator in a child process")
                if url is None:
                    print("redis: not reachable, row skipped (set LYRA_REDIS_URL)")
                print(f"{'conc':>5}  {'engine':<17} {'CPU us/req':>10} {'added us':>11} {'req/s':>8}  "
                      "redis round trips/req")
                for concurrency in concurrencies:
                    await run_rounds(variants, route, requests, rounds, concurrency)
                    trips = None
                    if url is not None:
                        trips = await redis_round_trips(variants[-1], url, caller(variants[-1].lyra, route),
                                                        min(requests, 1000))
                    render(variants, concurrency, trips)
                if url is not None and trips is not None:
                    print(f"redis server EVALSHA/EVAL per request (INFO commandstats, all clients): "
                          f"{trips.server_scripts_per_request:.2f}")
        finally:
            if url is not None:
                drop_prefix(url, prefix)


def drop_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per engine per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--route", choices=("model", "tier"), default="model",
                        help="model: explicit model (reserve + commit); tier: adds the step-down read")
    args = parser.parse_args()
    os.environ.pop("OPENROUTER_API_KEY", None)
    asyncio.run(run(args.requests, args.rounds, args.concurrency, args.route))


if __name__ == "__main__":
    main()
