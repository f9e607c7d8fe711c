"""Hedged requests over loopback: the race, the share cap, the budget, the loser's booking, metrics.

No test depends on how fast anything runs: the primary is made to hang (a fault), the latency
tracker is seeded so that the hedge goes out after a known delay, and the simulator answers the
hedge at once. Assertions are on counts and money.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from lyra import Lyra, LyraError
from lyra.budget.governor import BudgetGovernor
from lyra.catalog.estimate import measure_prompt, worst_case
from lyra.ledger.queries import HEDGE_LOST
from lyra.money import usd_to_nanos
from lyra.observe.metrics import Metrics
from lyra.routing.hedge import LOST, Hedger
from lyra.simulator import Fault, Simulator, SimulatorOptions
from lyra.types import Attempt, Completion
from support import budget_config_text, engine_env, fast_config_text, reconcile_config_text

MSG = [{"role": "user", "content": "BTC 5m: price 64,120, volume spike. One-line read?"}]
PRIMARY = "google/gemini-2.5-flash-lite"  # the fast tier's first model
SECOND = "openai/gpt-4o-mini"  # its second: where a hedge of the first goes
P95_S = 0.05  # the seeded latency: a primary unanswered this long is hedged
MAX_TOKENS = 300
HEDGE = "\n[tiers.fast.hedge]\nmin_samples = 10\nmin_delay_s = 0.01\n"
RECONCILE = "first_delay_s = 0\nmax_delay_s = 0\nlookups = 6"


def seed(lyra: Lyra, model: str = PRIMARY, *, streamed: bool = False, samples: int = 20) -> Hedger:
    """The router's hedger with `samples` latencies of P95_S for `model`: its p95 is known."""
    hedger = lyra.running.router.hedger
    assert hedger is not None
    for _ in range(samples):
        hedger.tracker.observe(model, None, streamed, P95_S)
    return hedger


def worst_nanos(lyra: Lyra, model: str) -> int:
    return worst_case(lyra.catalog.get(model), measure_prompt(MSG), max_tokens=MAX_TOKENS).cost_nanos


def metric(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def hedged_engine(sim: Simulator, tmp_path: Path) -> AsyncIterator[tuple[Lyra, Metrics]]:
    """An open engine on the hedging config over `sim`, with a metrics recorder attached."""
    path = tmp_path / "lyra.toml"
    path.write_text(fast_config_text(timeout_s=5) + HEDGE)
    metrics = Metrics()
    engine = Lyra.from_config(path, environ=engine_env(sim))
    engine.add_recorder(metrics)
    async with engine:
        yield engine, metrics


@pytest.fixture
async def hedged(sim: Simulator, tmp_path: Path) -> AsyncIterator[tuple[Lyra, Metrics]]:
    async with hedged_engine(sim, tmp_path) as pair:
        yield pair


async def test_a_hung_primary_loses_to_its_hedge_and_is_booked_at_its_worst_case(
        hedged: tuple[Lyra, Metrics], sim: Simulator) -> None:
    lyra, metrics = hedged
    hedger = seed(lyra)
    sim.add_fault(Fault(kind="timeout", model=PRIMARY, count=1, hang_s=30))
    c = await lyra.complete(tier="fast", messages=MSG, max_tokens=MAX_TOKENS)
    loser, winner = c.attempts
    assert (loser.model, loser.kind, loser.outcome, loser.error_kind) == (PRIMARY, "primary", "error", LOST)
    assert (winner.model, winner.kind, winner.outcome) == (SECOND, "hedge", "ok")
    assert (loser.number, winner.number) == (1, 2)
    assert c.model == SECOND and c.cost_nanos == winner.cost_nanos and not c.cost_estimated
    # The loser may have been billed in full: booked at its worst case, marked estimated.
    assert loser.cost_estimated and loser.cost_nanos == worst_nanos(lyra, PRIMARY) > 0
    assert loser.completion_tokens == MAX_TOKENS
    assert c.total_cost_nanos == loser.cost_nanos + winner.cost_nanos
    assert hedger.stats["sent"] == hedger.stats["won"] == 1
    # Ledger: one row per attempt, the hedge marked, the request row the winner's; nothing twice.
    ledger = lyra.ledger
    assert ledger is not None
    ledger.flush()
    rows = ledger.rows()
    attempts = [r for r in rows if r.kind == "attempt"]
    assert [(r.status, r.error_kind, r.attempt_kind, r.cost_nanos) for r in attempts] == [
        ("error", LOST, None, loser.cost_nanos), ("ok", None, "hedge", winner.cost_nanos)]
    [request] = [r for r in rows if r.kind == "request"]
    assert (request.served_model, request.cost_nanos, request.status) == (SECOND, winner.cost_nanos, "ok")
    # The loser failed nothing: reports count two attempts, no attempt error, and all the spend.
    [tier_line] = ledger.summary(since_ts=0, by="tier")
    assert (tier_line.attempts, tier_line.attempt_errors) == (2, 0)
    assert tier_line.cost_nanos == loser.cost_nanos + winner.cost_nanos
    assert HEDGE_LOST == LOST
    # The budget holds both, once each: committed equals the two bookings, nothing left reserved.
    governor = lyra.running.router.guards[0]
    assert isinstance(governor, BudgetGovernor)
    tier = {line.name: line for line in await governor.snapshot()}["tier:fast"]
    assert (tier.committed, tier.reserved) == (loser.cost_nanos + winner.cost_nanos, 0)
    assert metric(metrics, "lyra_hedges_total", model=SECOND, tier="fast", outcome="sent") == 1
    assert metric(metrics, "lyra_hedges_total", model=SECOND, tier="fast", outcome="won") == 1
    assert metric(metrics, "lyra_hedge_extra_usd_total", model=PRIMARY, tier="fast") == loser.cost_nanos
    assert b"lyra_hedge_extra_usd_total" in metrics.exposition()


async def test_a_primary_that_answers_first_cancels_its_hedge(tmp_path: Path) -> None:
    # Fast-tier calls take 0.1-0.2 s here, twice the seeded p95 at least; the hedge hangs.
    async with Simulator(options=SimulatorOptions(time_scale=0.2, generation_lag_s=0.0)) as sim, hedged_engine(sim, tmp_path) as (lyra, metrics):
        hedger = seed(lyra)
        sim.add_fault(Fault(kind="timeout", model=SECOND, count=1, hang_s=30))
        c = await lyra.complete(tier="fast", messages=MSG, max_tokens=MAX_TOKENS)
    assert [(a.number, a.model, a.kind, a.outcome, a.error_kind) for a in c.attempts] == [
        (2, SECOND, "hedge", "error", LOST), (1, PRIMARY, "primary", "ok", None)]
    hedge = c.attempts[0]
    assert hedge.cost_nanos == worst_nanos(lyra, SECOND) and c.model == PRIMARY
    assert hedger.stats["sent"] == 1 and hedger.stats["won"] == 0
    assert metric(metrics, "lyra_hedges_total", model=SECOND, tier="fast", outcome="won") == 0
    assert metric(metrics, "lyra_hedge_extra_usd_total", model=SECOND, tier="fast") == hedge.cost_nanos


async def test_a_tier_that_does_not_hedge_never_does(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(fast_config_text(timeout_s=5) + "\n[tiers.fast.hedge]\nenabled = false\n")
    async with Lyra.from_config(path, environ=engine_env(sim)) as lyra:
        hedger = lyra.running.router.hedger
        assert hedger is not None and not hedger.hedges("fast") and not hedger.hedges("advanced")
        for model in (PRIMARY, "x-ai/grok-4.6"):
            hedger.tracker.observe(model, None, False, P95_S)
        sim.add_fault(Fault(kind="stall", model=PRIMARY, count=1, hang_s=0.3))
        sim.add_fault(Fault(kind="stall", model="x-ai/grok-4.6", count=1, hang_s=0.3))
        fast = await lyra.complete(tier="fast", messages=MSG)
        advanced = await lyra.complete(task="signal_generation", messages=MSG)
    for c in (fast, advanced):
        assert all(a.kind == "primary" for a in c.attempts)
        assert [a.error_kind for a in c.attempts] == ["timeout", None]  # the hang ran its course
    assert sum(hedger.stats.values()) == 0


def test_the_fast_tier_hedges_by_default_and_the_others_do_not() -> None:
    from lyra.config import parse_settings

    settings = parse_settings(fast_config_text(), "lyra.toml")
    hedger = Hedger.from_settings(settings.tiers)
    assert hedger.hedges("fast")
    assert not any(hedger.hedges(t) for t in ("premium", "advanced", "specialized"))


@pytest.mark.parametrize(("table", "field"), [
    ("max_share = 0", "max_share"), ("max_share = 1.5", "max_share"), ("quantile = 1", "quantile"),
    ("min_samples = 2", "min_samples"), ("enabled = 1", "enabled"), ("after = 3", "after")])
def test_a_bad_hedge_setting_is_one_line_naming_the_field(table: str, field: str) -> None:
    from lyra.config import parse_settings

    with pytest.raises(LyraError) as caught:
        parse_settings(fast_config_text() + f"\n[tiers.fast.hedge]\n{table}\n", "lyra.toml")
    message = str(caught.value)
    assert "\n" not in message and f"tiers.fast.hedge.{field}" in message


async def test_hedges_never_pass_their_share_of_the_tier(hedged: tuple[Lyra, Metrics], sim: Simulator) -> None:
    lyra, _ = hedged
    hedger = seed(lyra)
    requests = 20
    # Every request's first attempt hangs for a while (0.4 s of real time, then a 408): only a
    # share of them may be hedged; the others wait it out and retry.
    sim.add_fault(Fault(kind="timeout", model=PRIMARY, count=requests, hang_s=0.4))
    done = await asyncio.gather(*(lyra.complete(tier="fast", messages=MSG, cache="bypass")
                                  for _ in range(requests)))
    attempts: list[Attempt] = [a for c in done for a in c.attempts]
    hedges = [a for a in attempts if a.kind == "hedge"]
    primaries = [a for a in attempts if a.kind == "primary" and a.outcome != "skipped"]
    assert 1 <= len(hedges) == hedger.stats["sent"]
    assert len(hedges) <= math.ceil(0.05 * len(primaries))
    assert hedger.stats["refused_share"] >= requests - len(hedges)  # the others were refused, not lost


async def test_a_cap_that_fits_one_worst_case_but_not_two_sends_no_hedge(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "lyra.toml"
    probe = Lyra.from_config(_write(path, budget_config_text(daily=1000)), environ=engine_env(sim))
    primary, second = worst_nanos(probe, PRIMARY), worst_nanos(probe, SECOND)
    cap = primary + second // 2  # the fast tier's cap: the primary fits, the hedge on top does not
    share = 0.5
    daily = Decimal(cap) / Decimal(share) / 10**9
    path.write_text(budget_config_text(daily=daily, shares={"fast": share, "premium": 0.2, "advanced": 0.2,
                                                           "specialized": 0.1}) + HEDGE)
    async with Lyra.from_config(path, environ=engine_env(sim)) as lyra:
        governor = lyra.running.router.guards[0]
        assert isinstance(governor, BudgetGovernor)
        limit = {line.name: line for line in await governor.snapshot()}["tier:fast"].limit
        assert primary <= limit < primary + second
        hedger = seed(lyra)
        sim.add_fault(Fault(kind="timeout", model=PRIMARY, count=1, hang_s=0.4))
        result: Completion | LyraError
        try:
            result = await lyra.complete(tier="fast", messages=MSG, max_tokens=MAX_TOKENS)
        except LyraError as exc:
            result = exc
        lines = {line.name: line for line in await governor.snapshot()}
    assert hedger.stats["sent"] == 0 and hedger.stats["refused_guard"] >= 1
    attempts = result.attempts if isinstance(result, Completion) else getattr(result, "attempts", [])
    assert all(a.kind == "primary" for a in attempts)
    fast = lines["tier:fast"]
    assert fast.committed + fast.reserved <= fast.limit
    assert sim.stats.calls == len([a for a in attempts if a.outcome != "skipped"])


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def test_a_streamed_loser_is_booked_at_worst_case_then_reconciled(
        tmp_path: Path) -> None:
    # Google does not stop generating for a cancelled call: OpenRouter bills the whole answer.
    options = SimulatorOptions(time_scale=0.0, generation_lag_s=2.0, generation_lag_lookups=2)
    async with Simulator(options=options) as sim:
        path = tmp_path / "lyra.toml"
        text = re.sub(r"timeout_s = [0-9.]+", "timeout_s = 5", reconcile_config_text(RECONCILE))
        path.write_text(text + HEDGE)
        async with Lyra.from_config(path, environ=engine_env(sim)) as lyra:
            seed(lyra, streamed=True)
            # The primary's stream opens (its generation id in the headers) and never sends a token.
            sim.add_fault(Fault(kind="stall", model=PRIMARY, count=1, hang_s=30, stall_share=0.0))
            stream = lyra.stream(tier="fast", messages=MSG, max_tokens=MAX_TOKENS)
            pieces = [p async for p in stream]
            c = stream.completion
            assert c is not None
            assert "".join(pieces) == c.text and c.model == SECOND
            loser, winner = c.attempts
            assert (loser.error_kind, loser.kind, winner.kind, winner.outcome) == (LOST, "primary", "hedge", "ok")
            assert loser.generation_id is not None and loser.cost_nanos == worst_nanos(lyra, PRIMARY)
            # The simulator learns of the hang-up when its loop sees the connection close.
            deadline = time.monotonic() + 60  # against a hang only: no assertion depends on it
            while loser.generation_id not in sim._state.generations and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            reconciler = lyra.running.reconciler
            assert reconciler is not None
            await reconciler.drain()
            ledger = lyra.ledger
            assert ledger is not None
            ledger.flush()
            rows = {r.generation_id: r for r in ledger.rows(kind="attempt")}
            found = _reconciled(ledger)
        record = sim._state.generations[loser.generation_id]
    billed = usd_to_nanos(record.cost)
    assert record.cancelled and 0 < billed < loser.cost_nanos
    assert found[loser.generation_id] == (billed, billed - loser.cost_nanos)
    assert rows[loser.generation_id].error_kind == LOST
    assert rows[winner.generation_id].attempt_kind == "hedge"


def _reconciled(ledger: object) -> dict[str | None, tuple[int | None, int | None]]:
    from sqlalchemy import select

    from lyra.ledger.schema import usage

    with ledger._connected().connect() as conn:  # type: ignore[attr-defined]
        found = conn.execute(select(usage.c.generation_id, usage.c.reconciled_cost_nanos, usage.c.drift_nanos)
                             .where(usage.c.kind == "attempt", usage.c.generation_id.is_not(None)))
        return {gen: (cost, drift) for gen, cost, drift in found}


def test_the_share_cap_allows_ceil_share_times_primaries_and_no_more() -> None:
    from fractions import Fraction

    from lyra.routing.hedge import ShareCap

    for primaries in (1, 19, 20, 21, 60, 999):
        cap = ShareCap(Fraction("0.05"), window=1000)
        slots = [cap.primary() for _ in range(primaries)]
        taken = sum(cap.take(slot) for slot in slots)
        assert taken == math.ceil(Fraction("0.05") * primaries)  # 0.05 * 60 is 3 exactly, not 3.0000000000000004
    cap = ShareCap(Fraction("0.05"), window=20)
    first = cap.primary()
    assert cap.take(first) and not cap.take(cap.primary())
    cap.give_back(first)  # refused by a guard after the share allowed it: not sent, not counted
    assert cap.take(cap.primary())
    for _ in range(20):  # the hedged attempts leave the window: room again
        cap.primary()
    assert cap.take(cap.primary())


def test_the_tracker_trusts_a_quantile_only_from_min_samples_and_prefers_the_provider() -> None:
    from lyra.routing.hedge import LatencyTracker

    tracker = LatencyTracker(samples=100)
    for i in range(1, 21):
        tracker.observe("m", "Fast", False, i / 100)
    assert tracker.quantile("m", None, False, 0.95, min_samples=21) is None
    assert tracker.quantile("m", None, False, 0.95, min_samples=20) == pytest.approx(0.19)
    assert tracker.quantile("m", None, True, 0.95, min_samples=20) is None  # streams are kept apart
    for _ in range(20):
        tracker.observe("m", "Slow", False, 2.0)
    assert tracker.quantile("m", "Fast", False, 0.95, min_samples=20) == pytest.approx(0.19)
    assert tracker.quantile("m", "Slow", False, 0.95, min_samples=20) == 2.0
    assert tracker.quantile("m", "Other", False, 0.95, min_samples=20) == 2.0  # unknown: the model's
    for _ in range(100):  # only the newest `samples` are kept
        tracker.observe("m", None, False, 0.01)
    assert tracker.quantile("m", None, False, 0.95, min_samples=20) == 0.01


async def test_a_caller_that_goes_away_mid_race_leaves_both_attempts_booked_and_none_running(
        hedged: tuple[Lyra, Metrics], sim: Simulator) -> None:
    lyra, _ = hedged
    hedger = seed(lyra)
    sim.add_fault(Fault(kind="timeout", model=PRIMARY, count=1, hang_s=30))
    sim.add_fault(Fault(kind="timeout", model=SECOND, count=1, hang_s=30))
    call = asyncio.create_task(lyra.complete(tier="fast", messages=MSG, max_tokens=MAX_TOKENS))
    deadline = time.monotonic() + 30  # against a hang only: no assertion depends on how long it takes
    while hedger.stats["sent"] == 0 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    ledger = lyra.ledger
    assert ledger is not None
    ledger.flush()
    rows = ledger.rows(kind="attempt")
    assert {(r.error_kind, r.attempt_kind, r.cost_nanos) for r in rows} == {
        ("cancelled", None, worst_nanos(lyra, PRIMARY)), ("cancelled", "hedge", worst_nanos(lyra, SECOND))}
    assert len(rows) == 2
    governor = lyra.running.router.guards[0]
    assert isinstance(governor, BudgetGovernor)
    tier = {line.name: line for line in await governor.snapshot()}["tier:fast"]
    assert (tier.committed, tier.reserved) == (sum(r.cost_nanos for r in rows), 0)
    assert not [t for t in asyncio.all_tasks() if "_feed" in repr(t.get_coro())]  # no lane left running
