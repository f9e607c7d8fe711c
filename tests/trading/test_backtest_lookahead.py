"""Look-ahead guards: only the past reaches a strategy, prompts carry no dates, peeking is caught."""

from __future__ import annotations

import re
from collections.abc import Callable

import pandas as pd
import pytest

from lyra import Lyra
from lyra.trading.backtest import Costs, LookAheadError, Step, Window, decision_times, walk
from lyra.trading.data import Bars
from lyra.trading.evaluate import (
    BacktestOptions,
    anonymise,
    cutoff_warnings,
    pipeline_decider,
    probe_lookahead,
    run_backtest,
)
from lyra.trading.pipeline import TradingAIOrchestrator
from lyra.trading.risk import AccountState
from lyra.types import Completion, CompletionRequest

ACCOUNT = AccountState(equity_at_day_start=100_000, equity=100_000)
DATE = re.compile(r"(19|20)\d\d-\d\d-\d\d")


def peeking(full: Bars) -> Callable:
    """A test double that cheats: it reads tomorrow's close from a series it kept."""

    async def decide(known: Bars, t: pd.Timestamp, account: AccountState) -> Step:
        frame = full.frame if len(full) > len(known) else known.frame
        later = frame.loc[frame.index > t, "close"]
        up = not later.empty and float(later.iloc[0]) > float(frame.at[t, "close"])
        return Step(time=t, action="BUY" if up else "SELL", notional_usd=1_000, record={"up": up})

    return decide


async def test_the_walk_hands_a_strategy_only_the_bars_up_to_its_decision(bars: Bars) -> None:
    seen: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    async def spy(known: Bars, t: pd.Timestamp, account: AccountState) -> Step:
        seen.append((t, known.end))
        return Step(time=t, action="HOLD", notional_usd=0)

    times = decision_times(bars, Window(start="2018-01-02", every=7))
    await walk("spy", spy, bars, times, equity=100_000, costs=Costs())
    assert seen and all(last == t for t, last in seen)


async def test_a_strategy_that_peeks_at_the_future_is_caught(bars: Bars) -> None:
    t = bars.frame.index[-50]
    with pytest.raises(LookAheadError, match="changed when only bars after it changed"):
        await probe_lookahead(peeking(bars), bars, t, ACCOUNT)


async def test_within_the_walk_the_peeking_double_learns_nothing(bars: Bars) -> None:
    truncated = peeking(Bars(frame=bars.frame.iloc[:0], symbol="GOOGL", interval="1d"))
    times = decision_times(bars, Window(start="2018-01-02", every=3))
    run = await walk("peek", truncated, bars, times, equity=100_000, costs=Costs())
    assert {s.record["up"] for s in run.steps} == {False}  # no future bar to read


async def test_a_decision_stamped_with_another_time_is_rejected(bars: Bars) -> None:
    async def late(known: Bars, t: pd.Timestamp, account: AccountState) -> Step:
        return Step(time=t + pd.Timedelta(days=1), action="HOLD", notional_usd=0)

    with pytest.raises(LookAheadError, match="answered for"):
        await walk("late", late, bars, decision_times(bars, Window(start="2018-06-01")), equity=1, costs=Costs())


async def test_the_pipeline_passes_the_probe(engine: Lyra, bars: Bars) -> None:
    orchestrator = TradingAIOrchestrator(engine, audit=False, feature_filter=anonymise)
    await probe_lookahead(pipeline_decider(orchestrator, "GOOGL", 5_000), bars, bars.frame.index[-60], ACCOUNT)


async def test_anonymised_prompts_carry_no_dates_or_symbol(engine: Lyra, bars: Bars) -> None:
    prompts: list[str] = []

    async def spy(request: CompletionRequest, call: Callable) -> Completion:
        prompts.extend(str(m.get("content", "")) for m in request.messages)
        result: Completion = await call(request)
        return result

    engine.set_interceptor(spy)
    options = BacktestOptions(window=Window(start="2018-05-01", every=10))
    report = await run_backtest(engine, bars, options)
    engine.set_interceptor(None)
    assert prompts and not any(DATE.search(p) or "GOOGL" in p for p in prompts)
    closes = {f'"close":{float(c):.6g}' for c in bars.frame["close"].iloc[-200:]}
    assert not any(c in p for c in closes for p in prompts)  # price levels rebased, not the real ones
    assert any('"close":100.0' in p for p in prompts)
    assert report["decisions"][0]["time"].startswith("2018-05-01")  # the backtest itself keeps the time

    prompts.clear()
    engine.set_interceptor(spy)
    await run_backtest(engine, bars, BacktestOptions(window=options.window, anonymise=False))
    engine.set_interceptor(None)
    assert any(DATE.search(p) for p in prompts)


def test_anonymise_keeps_ratios_and_rebases_levels() -> None:
    features = {"time": "2018-01-02T00:00:00+00:00", "symbol": "GOOGL", "close": 1000.0, "sma_fast": 990.0,
                "atr": 20.0, "rsi": 61.5, "sma_ratio": 0.01, "ret_5": -0.02}
    assert anonymise(features) == {"close": 100.0, "sma_fast": 99.0, "atr": 2.0, "rsi": 61.5, "sma_ratio": 0.01,
                                   "ret_5": -0.02}


def test_models_trained_after_the_window_start_are_named(engine: Lyra) -> None:
    early = cutoff_warnings(engine, pd.Timestamp("2012-01-03", tz="UTC"))
    assert any(w.startswith("openai/gpt-4o-mini: knowledge cutoff 2023-10-31") for w in early)
    assert cutoff_warnings(engine, pd.Timestamp("2030-01-01", tz="UTC")) == []
