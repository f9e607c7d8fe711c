"""Budget caps over loopback: never exceeded under concurrency, and the step-downs of the origin document."""

from __future__ import annotations

import asyncio
import collections
import random
from pathlib import Path

import pytest

from lyra import BudgetExceeded, Lyra, LyraError
from lyra.simulator import Simulator
from support import budget_config_text, engine_env

PREMIUM = ["anthropic/claude-opus-4.8", "openai/gpt-4o", "google/gemini-2.5-pro"]
ALL_PREMIUM = {"premium": 1.0, "advanced": 0.0, "specialized": 0.0, "fast": 0.0}


def engine(sim: Simulator, tmp_path: Path, text: str, **env: str) -> Lyra:
    path = tmp_path / "lyra.toml"
    path.write_text(text)
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"} | env
    return Lyra.from_config(path, environ=environ)


def varied_messages(rng: random.Random) -> list[dict[str, str]]:
    return [{"role": "user", "content": "Assess BTC risk. " + "data " * rng.randint(5, 400)}]


async def fire(lyra: Lyra, n: int, seed: int) -> tuple[int, int]:
    """n concurrent calls of varying model, prompt and max_tokens; returns (served, refused)."""
    rng = random.Random(seed)

    async def one() -> str:
        try:
            await lyra.complete(model=rng.choice(PREMIUM), messages=varied_messages(rng),
                                max_tokens=rng.randint(50, 400))
            return "served"
        except LyraError as exc:
            return type(exc).__name__

    outcomes = collections.Counter(await asyncio.gather(*(one() for _ in range(n))))
    assert set(outcomes) <= {"served", "BudgetExceeded"}, outcomes
    return outcomes["served"], outcomes["BudgetExceeded"]


async def test_thousand_concurrent_requests_never_exceed_a_one_dollar_cap(
    sim: Simulator, tmp_path: Path
) -> None:
    lyra = engine(sim, tmp_path, budget_config_text(daily=1.0, shares=ALL_PREMIUM))
    async with lyra:
        ok, refused = await fire(lyra, 1000, seed=1)
        assert lyra.ledger is not None
        lyra.ledger.flush()
        ledger_spend = lyra.ledger.spend_between(0, 2**40).total_nanos
        lines = {line.name: line for line in await lyra.budget.snapshot()}  # type: ignore[union-attr]
    cap = 1_000_000_000
    print(f"\n1000 concurrent: {ok} served, {refused} refused, upstream spend "
          f"{sim.stats.total_cost_nanos} nano-USD, ledger {ledger_spend}, cap {cap}")
    assert refused > 0, "the cap must bind in this test"
    assert sim.stats.total_cost_nanos <= cap
    assert lines["global"].committed == ledger_spend <= cap
    assert lines["global"].reserved == 0
    assert ledger_spend >= 0.95 * cap


async def test_refusal_names_the_cap_before_any_upstream_call(sim: Simulator, tmp_path: Path) -> None:
    async with engine(sim, tmp_path, budget_config_text(daily=0.001, shares=ALL_PREMIUM)) as lyra:
        with pytest.raises(BudgetExceeded) as info:
            await lyra.complete(model="anthropic/claude-opus-4.8",
                                messages=[{"role": "user", "content": "x"}], max_tokens=1000)
    assert info.value.cap == "global"
    assert "budget cap global reached" in str(info.value)
    assert sim.stats.calls == 0


async def test_key_cap_moves_to_the_next_key_then_refuses(sim: Simulator, tmp_path: Path) -> None:
    text = budget_config_text(daily=100, shares=ALL_PREMIUM).replace(
        "daily_usd = 50\n", "daily_usd = 0.002\n").replace(
        'env = "LYRA_KEY_UNIVERSAL"\ndaily_usd = 20', 'env = "LYRA_KEY_UNIVERSAL"\ndaily_usd = 0.002')
    async with engine(sim, tmp_path, text) as lyra:
        msg = [{"role": "user", "content": "hello"}]
        first = await lyra.complete(model="openai/gpt-4o", messages=msg, max_tokens=100)
        assert first.key_name == "premium"
        keys_used = [first.key_name]
        with pytest.raises(BudgetExceeded) as info:
            for _ in range(10):
                keys_used.append((await lyra.complete(model="openai/gpt-4o", messages=msg,
                                                      max_tokens=100)).key_name)
    assert "universal" in keys_used  # the premium key's cap moved the call to the next key
    assert info.value.cap.startswith("key:")


async def test_tier_cap_applies_per_tier(sim: Simulator, tmp_path: Path) -> None:
    shares = {"premium": 0.0001, "advanced": 0.35, "specialized": 0.15, "fast": 0.10}
    async with engine(sim, tmp_path, budget_config_text(daily=100, shares=shares)) as lyra:
        msg = [{"role": "user", "content": "hello"}]
        with pytest.raises(BudgetExceeded) as info:
            await lyra.complete(model="openai/gpt-4o", messages=msg, max_tokens=1000)
        assert info.value.cap == "tier:premium"
        fast = await lyra.complete(tier="fast", messages=msg)
        assert fast.tier == "fast"


async def test_reserved_slice_is_kept_for_risk_assessment(sim: Simulator, tmp_path: Path) -> None:
    # $0.05 a day with half reserved: ordinary work stops at $0.025, risk checks may go on.
    text = budget_config_text(daily=0.05, reserve=0.5, shares=ALL_PREMIUM)
    async with engine(sim, tmp_path, text) as lyra:
        msg = [{"role": "user", "content": "Assess the risk. " + "x " * 50}]
        with pytest.raises(BudgetExceeded) as info:
            for _ in range(200):
                await lyra.complete(tier="premium", messages=msg, max_tokens=300)
        assert info.value.cap == "global"
        risk = await lyra.complete(task="risk_assessment", messages=msg, max_tokens=300)
        assert risk.task == "risk_assessment"
        emergency = await lyra.complete(tier="premium", messages=msg, max_tokens=300, priority="emergency")
        assert emergency.cost_nanos > 0


async def test_low_tier_budget_steps_down_to_cheaper_models(sim: Simulator, tmp_path: Path) -> None:
    async with engine(sim, tmp_path, budget_config_text(daily=200)) as lyra:
        msg = [{"role": "user", "content": "Summarise the trend."}]
        normal = await lyra.complete(task="market_analysis", messages=msg)
        assert normal.model == "anthropic/claude-sonnet-4.6"
        assert lyra.budget is not None
        # Spend 80% of the advanced tier's $70 share, as earlier traffic would have.
        day = lyra.budget.day()
        await lyra.budget.backend.seed_committed({f"d{day}:tier:advanced": 56_000_000_000})
        cheaper = await lyra.complete(task="market_analysis", messages=msg, cache="bypass")
    assert cheaper.model == "deepseek/deepseek-chat"  # the cheapest candidate of the task now


async def test_exhausted_tier_steps_down_to_the_next_tier(sim: Simulator, tmp_path: Path) -> None:
    async with engine(sim, tmp_path, budget_config_text(daily=200)) as lyra:
        assert lyra.budget is not None
        day = lyra.budget.day()
        await lyra.budget.backend.seed_committed({f"d{day}:tier:advanced": 70_000_000_000})
        c = await lyra.complete(task="market_analysis", messages=[{"role": "user", "content": "trend?"}])
    assert c.model in {"google/gemini-2.5-flash-lite", "openai/gpt-4o-mini", "anthropic/claude-3-haiku"}
    assert any(a.error_kind == "BudgetExceeded" for a in c.attempts)


async def test_under_twenty_dollars_left_uses_the_free_model(sim: Simulator, tmp_path: Path) -> None:
    async with engine(sim, tmp_path, budget_config_text(daily=200, low=20)) as lyra:
        assert lyra.budget is not None
        day = lyra.budget.day()
        await lyra.budget.backend.seed_committed({f"d{day}:global": 185_000_000_000})
        msg = [{"role": "user", "content": "Quick signal?"}]
        c = await lyra.complete(task="signal_generation", messages=msg)
        assert c.model == "openai/gpt-oss-20b:free" and c.cost_nanos == 0
        urgent = await lyra.complete(task="signal_generation", messages=msg, priority="high", cache="bypass")
        assert urgent.model == "x-ai/grok-4.6"  # high-urgency work keeps its tier while the share lasts
        risk = await lyra.complete(task="risk_assessment", messages=msg)
        assert risk.model == "anthropic/claude-opus-4.8"


async def test_unpriced_model_is_refused(sim: Simulator, tmp_path: Path) -> None:
    async with engine(sim, tmp_path, budget_config_text(daily=200)) as lyra:
        with pytest.raises(LyraError, match="cannot be priced"):
            await lyra.complete(model="someone/unlisted-model", messages=[{"role": "user", "content": "x"}])
    assert sim.stats.calls == 0


async def test_day_spend_is_rebuilt_from_the_ledger_on_start(sim: Simulator, tmp_path: Path) -> None:
    text = budget_config_text(daily=200)
    async with engine(sim, tmp_path, text) as lyra:
        for _ in range(5):
            await lyra.complete(tier="fast", messages=[{"role": "user", "content": "ping"}], cache="bypass")
        assert lyra.budget is not None
        before = {line.name: line.committed for line in await lyra.budget.snapshot()}
    async with engine(sim, tmp_path, text) as again:
        assert again.budget is not None
        after = {line.name: line.committed for line in await again.budget.snapshot()}
    assert before["global"] > 0
    assert after == before


async def test_a_tier_on_pace_to_pass_its_cap_steps_down_early(sim: Simulator, tmp_path: Path) -> None:
    class OverPace:
        def over_pace(self, tier: str) -> bool:
            return tier == "advanced"

    async with engine(sim, tmp_path, budget_config_text(daily=200)) as lyra:
        assert lyra.budget is not None and lyra.budget.forecast is not None  # wired from the ledger
        msg = [{"role": "user", "content": "Summarise the trend."}]
        assert (await lyra.complete(task="market_analysis", messages=msg)).model == "anthropic/claude-sonnet-4.6"
        lyra.budget.forecast = OverPace()
        early = await lyra.complete(task="market_analysis", messages=msg, cache="bypass")
    assert early.model == "deepseek/deepseek-chat"  # the tier still has most of its share left
