"""Adaptive panel weights: learnt walk-forward from outcomes known at the time, compared with fixed ones."""

from __future__ import annotations

import pandas as pd
import pytest

from lyra import Lyra
from lyra.trading.adaptive import AdaptiveWeights, reweighted
from lyra.trading.backtest import Vote, Window
from lyra.trading.data import load_sample
from lyra.trading.evaluate import BacktestOptions, run_backtest


def frame(closes: list[float]) -> pd.DataFrame:
    times = pd.date_range("2020-01-01", periods=len(closes), freq="D", tz="UTC")
    return pd.DataFrame({"open": closes, "close": closes}, index=times)


def test_an_outcome_counts_only_once_its_horizon_has_closed() -> None:
    closes = [100.0 + i for i in range(20)]  # always rising: BUY is right
    learner = AdaptiveWeights(horizon=3)
    learner.observe(5, [Vote(model="bull", action="BUY", confidence=0.9, cost_nanos=1),
                        Vote(model="bear", action="SELL", confidence=0.9, cost_nanos=1)])
    assert learner.at(frame(closes[:8])) == {}  # bar 7: the close of bar 8 is not known yet
    weights = learner.at(frame(closes[:9]))  # bar 8 = 5 + 3: now it is
    assert weights == {"bull": pytest.approx(4 / 3), "bear": pytest.approx(2 / 3)}


def test_future_prices_cannot_reach_a_weight() -> None:
    closes = [100.0 + i for i in range(20)]
    crash = closes[:9] + [1.0] * 11
    a, b = AdaptiveWeights(horizon=3), AdaptiveWeights(horizon=3)
    for learner in (a, b):
        learner.observe(5, [Vote(model="m", action="BUY", confidence=0.6, cost_nanos=1)])
    assert a.at(frame(closes)[:9]) == b.at(frame(crash)[:9])


def test_reweighting_scales_members_and_keeps_the_rest(engine: Lyra) -> None:
    panel = engine.settings.panels["quick"]
    first = panel.members[0].model
    changed = reweighted(panel, {first: 0.5})
    assert changed.members[0].weight == pytest.approx(panel.members[0].weight * 0.5)
    assert changed.members[1].weight == panel.members[1].weight and changed.rule == panel.rule


async def test_fixed_and_adaptive_weights_on_the_same_bars(engine: Lyra) -> None:
    before = dict(engine.settings.panels)
    options = BacktestOptions(window=Window(start="2017-09-01", every=4), adaptive=True)
    report = await run_backtest(engine, load_sample("GOOGL"), options)
    names = [s["name"] for s in report["strategies"]]
    assert names == ["pipeline", "pipeline_adaptive", "buy_and_hold", "buy_and_hold_fully_invested", "ma_cross"]
    assert len(report["decisions_adaptive"]) == len(report["decisions"])
    assert engine.settings.panels == before  # the configured weights are back
