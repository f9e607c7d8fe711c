"""Hedged requests against a heavy-tailed upstream: the latency tail with and without, and what it costs.

One simulator with the `heavy_tail` latency profile (3 % of calls several to a hundred times slower
than their tier's range; lyra.simulator.profiles) serves three engines in this process, alike but for
`[tiers.fast.hedge]`: the baseline has `enabled = false`, "race-only" runs every attempt through
the race but never hedges (`min_samples` out of reach: what the machinery alone costs), "hedged"
has the defaults (a hedge after the model's measured p95, at most 5 % of the tier's attempts).
They send the same fast-tier requests, in alternating blocks (each engine first in turn) so that
all see the same machine; each first warms up (its latency tracker needs `min_samples` calls
before it hedges), and the warm-up is not counted. Reported per engine: p50, p99 and p99.9 of the
time to each answer, the upstream attempts, the hedges sent and won, the dollars booked (the losers
at their worst case, as until reconciliation) and billed (the simulator's own account of what it
charged), and the process CPU per request (the in-process simulator's included).

    python bench/hedge.py [--requests 2500] [--concurrency 16] [--time-scale 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from lyra import Lyra
from lyra.config import example_config_text
from lyra.money import nanos_to_usd, usd_to_nanos
from lyra.routing.hedge import LOST
from lyra.simulator import Simulator, SimulatorOptions
from lyra.types import Attempt

MESSAGES = [{"role": "user", "content": "BTC 1m: last 64,120, bid 64,118, ask 64,121. Quick read?"}]
# The baseline; the race without hedges (every attempt in a task of its own, raced against no one:
# what the machinery alone costs); and the defaults.
ARMS = (("baseline", "enabled = false"), ("race-only", "min_samples = 100000\nsamples = 100000"),
        ("hedged", "min_delay_s = 0"))  # the latencies are scaled by 0.1: so is the floor (default 0.1 s)
KEYS = ("xai", "grok4", "codex", "deepseek1", "deepseek2", "premium", "microsoft", "universal")
BLOCK = 250  # requests per engine per turn
WARMUP = 300


def bench_config(hedge: str) -> str:
    """The example config with caps no run can reach, no ledger, state in memory, a patient fast tier,
    and `hedge` as the fast tier's hedging."""
    text = example_config_text()
    text = re.sub(r"daily_usd = [0-9_.]+", "daily_usd = 1000000", text)
    text = re.sub(r"daily_tokens = [0-9_]+", "daily_tokens = 1_000_000_000_000", text)
    text = re.sub(r"(\[tiers\.fast\]\n(?:.*\n)*?timeout_s = )[0-9.]+", r"\g<1>120", text, count=1)
    text = re.sub(r"deadline_s = 30\b", "deadline_s = 300", text, count=1)
    text = re.sub(r"\[ledger\]\n[^\[]*", "", text, count=1)
    # Budget state in memory: this process only, and nothing written to the user's data folder.
    text = re.sub(r"\[state\]\n[^\[]*", "[state]\nbackend = \"memory\"\n\n", text, count=1)
    text = re.sub(r"(\[reconcile\][^\n]*\n)enabled = true", r"\g<1>enabled = false", text, count=1)
    return text + ("\n[ledger]\nenabled = false\n\n"
                   "[limits]\nkey_rpm = 1_000_000_000\nkey_tpm = 1_000_000_000_000\n\n"
                   f"[tiers.fast.hedge]\n{hedge}\n")


@dataclass
class Arm:
    """One engine's measured requests."""

    name: str
    lyra: Lyra
    latencies: list[float] = field(default_factory=list)
    alone: list[float] = field(default_factory=list)  # latencies of requests served by one attempt
    tried: list[Attempt] = field(default_factory=list)  # every attempt (not the answers: a small heap)
    booked: int = 0  # nano-dollars booked over all attempts
    billed_nanos: int = 0
    cpu_s: float = 0.0  # process CPU over this engine's blocks (the in-process simulator's included)

    def quantile(self, q: float, *, alone: bool = False) -> float:
        ordered = sorted(self.alone if alone else self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]

    def attempts(self, kind: str | None = None) -> int:
        return sum(1 for a in self.tried if a.outcome != "skipped" and (kind is None or a.kind == kind))

    def won(self) -> int:
        return sum(1 for a in self.tried if a.kind == "hedge" and a.outcome == "ok")

    def lost_nanos(self) -> int:
        return sum(a.cost_nanos for a in self.tried if a.error_kind == LOST)

    def lost_in_full_nanos(self) -> int:
        """What the losers would cost had each been served to the end: its model's mean served cost.

        The simulator bills nothing for a non-streamed call its client hung up on; OpenRouter may
        bill it in full (a provider that does not support cancellation): this is that bill.
        """
        served: dict[str, list[int]] = {}
        for a in self.tried:
            if a.outcome == "ok":
                served.setdefault(a.model, []).append(a.cost_nanos)
        return sum(sum(served[a.model]) // len(served[a.model]) for a in self.tried
                   if a.error_kind == LOST and served.get(a.model))


async def run_block(arm: Arm, requests: int, concurrency: int, *, record: bool) -> None:
    todo = iter(range(requests))
    cpu = time.process_time()

    async def worker() -> None:
        for _ in todo:
            began = time.perf_counter()
            c = await arm.lyra.complete(tier="fast", messages=MESSAGES, cache="bypass", max_tokens=120)
            if record:
                arm.latencies.append(time.perf_counter() - began)
                arm.tried.extend(c.attempts)
                if len(c.attempts) == 1:
                    arm.alone.append(arm.latencies[-1])
                arm.booked += c.total_cost_nanos

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if record:
        arm.cpu_s += time.process_time() - cpu


async def main(requests: int, concurrency: int, time_scale: float) -> None:
    options = SimulatorOptions(time_scale=time_scale, generation_lag_s=0.0, latency="heavy_tail", seed=17)
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, hedge in ARMS:
            paths[name] = Path(folder) / f"{name}.toml"
            paths[name].write_text(bench_config(hedge))
        async with Simulator(options=options) as sim:
            # Each engine has keys of its own, so that the simulator's accounts tell their bills apart.
            tokens = {name: {k: f"sk-or-v1-bench-{name}-{k}" for k in KEYS} for name in paths}
            arms = [Arm(name, Lyra.from_config(path, environ={
                "LYRA_OPENROUTER_BASE_URL": sim.base_url,
                **{f"LYRA_KEY_{k.upper()}": token for k, token in tokens[name].items()}}))
                for name, path in paths.items()]
            for arm in arms:
                await arm.lyra.start()
            try:
                for arm in arms:
                    await run_block(arm, WARMUP, concurrency, record=False)
                warm = {arm.name: _billed(sim, tokens[arm.name].values()) for arm in arms}
                started = time.perf_counter()
                done = turn = 0
                while done < requests:
                    block = min(BLOCK, requests - done)
                    for arm in arms[turn % len(arms):] + arms[:turn % len(arms)]:  # each goes first in turn
                        await run_block(arm, block, concurrency, record=True)
                    done, turn = done + block, turn + 1
                wall = time.perf_counter() - started
                for arm in arms:
                    arm.billed_nanos = _billed(sim, tokens[arm.name].values()) - warm[arm.name]
            finally:
                for arm in arms:
                    await arm.lyra.aclose()
    report(arms, requests, concurrency, time_scale, wall)


def report(arms: list[Arm], requests: int, concurrency: int, time_scale: float, wall: float) -> None:
    base, hedged = arms[0], arms[-1]
    print(f"{requests} fast-tier requests per engine, concurrency {concurrency}, simulator latency "
          f"heavy_tail x{time_scale} ({wall:.0f} s)")
    print(f"{'engine':<9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'attempts':>9} {'hedges':>7} "
          f"{'won':>5} {'booked $':>10} {'billed $':>10} {'CPU us/req':>10} {'p50 1-attempt':>13}")
    for arm in arms:
        print(f"{arm.name:<9} {arm.quantile(0.5) * 1e3:>8.1f} {arm.quantile(0.99) * 1e3:>8.1f} "
              f"{arm.quantile(0.999) * 1e3:>9.1f} {arm.attempts():>9} {arm.attempts('hedge'):>7} "
              f"{arm.won():>5} "
              f"{_usd(arm.booked):>10} {_usd(arm.billed_nanos):>10} "
              f"{arm.cpu_s / max(1, len(arm.latencies)) * 1e6:>10.0f} "
              f"{arm.quantile(0.5, alone=True) * 1e3:>13.1f}")
    extra = hedged.attempts() - base.attempts()
    print(f"p99.9: {base.quantile(0.999) / hedged.quantile(0.999):.2f}x lower with hedging; "
          f"p99: {base.quantile(0.99) / hedged.quantile(0.99):.2f}x; p50: "
          f"{base.quantile(0.5) / hedged.quantile(0.5):.2f}x")
    print(f"extra requests: {hedged.attempts('hedge')} hedges = "
          f"{100 * hedged.attempts('hedge') / hedged.attempts('primary'):.2f} % of primary attempts "
          f"({extra:+d} upstream attempts against the baseline)")
    print(f"extra dollars: booked {_usd(hedged.booked - base.booked)} "
          f"(losers at their worst case: {_usd(hedged.lost_nanos())}), billed "
          f"{_usd(hedged.billed_nanos - base.billed_nanos)} "
          f"({100 * (hedged.billed_nanos - base.billed_nanos) / max(1, base.billed_nanos):+.2f} %); "
          f"with every loser billed in full: {_usd(hedged.lost_in_full_nanos())} "
          f"({100 * hedged.lost_in_full_nanos() / max(1, base.billed_nanos):+.2f} % of the baseline's bill)")


def _billed(sim: Simulator, tokens: Iterable[str]) -> int:
    """What the simulator charged these keys so far, in nano-dollars."""
    return sum(usd_to_nanos(sim._state.account(token).usage_usd) for token in tokens)


def _usd(nanos: int) -> str:
    return f"{nanos_to_usd(nanos).quantize(Decimal('0.000001'))}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--time-scale", type=float, default=0.1)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency, args.time_scale))
