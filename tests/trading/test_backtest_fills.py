"""The walk-forward book: next-bar fills, fees and slippage, one position, and the measures."""

from __future__ import annotations

import pandas as pd
import pytest

from lyra.trading.account import PaperAccount, bar_prices
from lyra.trading.backtest import (
    Costs,
    Step,
    Window,
    buy_and_hold,
    decision_times,
    moving_average_cross,
    score,
    summarise,
    walk,
)
from lyra.trading.data import Bars, load_bars
from lyra.trading.metrics import annualised, max_drawdown, periods_per_year, sharpe, worst_daily_drawdown
from lyra.trading.risk import AccountState, FinalAction


def make_bars(opens: list[float], closes: list[float]) -> Bars:
    times = pd.date_range("2020-01-01", periods=len(opens), freq="D", tz="UTC")
    frame = pd.DataFrame({"open": opens, "high": [max(o, c) + 1 for o, c in zip(opens, closes, strict=True)],
                          "low": [min(o, c) - 1 for o, c in zip(opens, closes, strict=True)],
                          "close": closes, "volume": 1000.0}, index=times)
    return load_bars(frame.rename_axis("time"), symbol="TEST", interval="1d")


def rising(n: int = 60) -> Bars:
    closes = [100.0 + i for i in range(n)]
    return make_bars([c - 0.5 for c in closes], closes)


def scripted(actions: dict[int, FinalAction], bars: Bars, notional: float = 1_000.0):
    index = {t: i for i, t in enumerate(bars.frame.index)}

    async def decide(known: Bars, t: pd.Timestamp, account: AccountState) -> Step:
        return Step(time=t, action=actions.get(index[t], "HOLD"), notional_usd=notional)

    return decide


async def test_an_order_fills_at_the_next_bars_open_with_slippage_and_fee() -> None:
    bars = rising()
    times = list(bars.frame.index[40:50])
    costs = Costs(fee_bps=10, slippage_bps=20)
    run = await walk("s", scripted({40: "BUY"}, bars), bars, times, equity=10_000, costs=costs)
    fill = run.fills[0]
    assert fill.time == bars.frame.index[41]
    open_41 = float(bars.frame["open"].iloc[41])
    assert fill.price == pytest.approx(open_41 * 1.002)
    assert fill.units == pytest.approx(1_000 / open_41)
    assert fill.fee == pytest.approx(1_000 * 0.001)
    # the decision bar itself is marked flat: nothing happened before the next open
    assert run.units[bars.frame.index[40]] == 0


async def test_fees_and_slippage_lower_returns() -> None:
    bars = rising()
    times = list(bars.frame.index[40:58])
    actions: dict[int, FinalAction] = {40: "BUY", 44: "SELL", 48: "BUY", 52: "CLOSE"}
    free = await walk("s", scripted(actions, bars), bars, times, equity=10_000, costs=Costs(fee_bps=0,
                                                                                             slippage_bps=0))
    paid = await walk("s", scripted(actions, bars), bars, times, equity=10_000, costs=Costs(fee_bps=10,
                                                                                             slippage_bps=5))
    assert len(free.fills) == len(paid.fills) == 4
    assert paid.equity.iloc[-1] < free.equity.iloc[-1]
    gross = summarise(free, bars, 2, Costs(fee_bps=0, slippage_bps=0))
    net = summarise(paid, bars, 2, Costs(fee_bps=10, slippage_bps=5))
    assert net["total_return"] < gross["total_return"]
    assert net["fees_usd"] > 0 == gross["fees_usd"]


async def test_one_position_at_a_time() -> None:
    bars = rising()
    times = list(bars.frame.index[40:50])
    run = await walk("s", scripted({40: "BUY", 41: "BUY", 42: "BUY", 45: "SELL"}, bars), bars, times,
                     equity=10_000, costs=Costs())
    assert len(run.fills) == 2  # repeated BUYs do not pyramid; SELL reverses long to short
    assert run.units.iloc[-1] < 0
    assert run.units.max() == pytest.approx(1_000 / float(bars.frame["open"].iloc[41]))


def test_the_decision_bar_needs_a_next_bar_and_a_warm_up() -> None:
    bars = rising(60)
    times = decision_times(bars, Window(every=1))
    assert times[0] == bars.frame.index[35]
    assert times[-1] == bars.frame.index[-2]
    assert len(decision_times(bars, Window())) <= 100


async def test_baselines_on_the_same_bars() -> None:
    bars = rising()
    times = list(bars.frame.index[40:59])
    hold = await walk("hold", buy_and_hold(1_000), bars, times, equity=10_000, costs=Costs())
    cross = await walk("cross", moving_average_cross(bars, 1_000), bars, times, equity=10_000, costs=Costs())
    assert len(hold.fills) == 1 and hold.equity.iloc[-1] > 10_000
    assert all(s.action == "BUY" for s in cross.steps)  # a steady rise: fast SMA above slow


def test_signals_are_scored_from_the_next_open_over_the_horizon() -> None:
    bars = rising()
    t = bars.frame.index[40]
    [scored] = score([Step(time=t, action="SELL", notional_usd=1)], bars, 3, Costs())
    assert scored.move == pytest.approx(float(bars.frame["close"].iloc[43]) / float(bars.frame["open"].iloc[41]) - 1)
    assert not scored.right and not scored.profitable


def test_curve_measures() -> None:
    times = pd.date_range("2021-01-01", periods=5, freq="D", tz="UTC")
    equity = pd.Series([100.0, 110.0, 99.0, 104.5, 120.0], index=times)
    assert max_drawdown(equity) == pytest.approx(0.1)
    assert worst_daily_drawdown(equity) == pytest.approx(0.1)
    assert sharpe(pd.Series([5.0] * 5, index=times), "1d") == 0
    assert annualised(0.21, pd.Timestamp("2020-01-01"), pd.Timestamp("2022-01-01")) == pytest.approx(0.1, abs=1e-3)
    assert periods_per_year("1d") == 252 and periods_per_year("1h") == pytest.approx(8766)


def test_the_paper_account_reports_itself_to_the_risk_rules() -> None:
    bars = rising()
    book = PaperAccount(equity=10_000, costs=Costs(fee_bps=0, slippage_bps=0))
    book.bar(bar_prices(bars.frame, 40))
    book.order("BUY", 1_000)
    book.bar(bar_prices(bars.frame, 41))
    account = book.state()
    assert account.position.units > 0 and account.position.entry_price == float(bars.frame["open"].iloc[41])
    assert account.equity == pytest.approx(10_000 + account.position.units * (float(bars.frame["close"].iloc[41])
                                                                              - account.position.entry_price))
