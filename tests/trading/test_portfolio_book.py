"""The paper portfolio: bars aligned in time, next-bar fills with exact per-symbol fees, the baselines."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from lyra.trading.backtest import Window
from lyra.trading.data import Bars, DataError, load_bars
from lyra.trading.portfolio import PaperPortfolio, PortfolioCosts, align
from lyra.trading.portfolio_backtest import (
    buy_and_hold,
    equal_weight,
    inverse_volatility,
    inverse_volatility_weights,
    rebalance_times,
    walk_portfolio,
)
from lyra.trading.rebalance import PortfolioView


def daily(symbol: str, opens: list[float], closes: list[float], start: str = "2024-01-01",
          drop: tuple[int, ...] = ()) -> Bars:
    times = pd.date_range(start, periods=len(opens), freq="D", tz="UTC")
    frame = pd.DataFrame({"open": opens, "high": np.maximum(opens, closes), "low": np.minimum(opens, closes),
                          "close": closes, "volume": 1000.0}, index=pd.DatetimeIndex(times, name="time"))
    frame = frame.drop(frame.index[list(drop)])
    return load_bars(frame, symbol=symbol, interval="1d")


def test_the_clock_is_the_union_of_bar_times_and_a_missing_bar_carries_the_last_close() -> None:
    a = daily("A", [10, 11, 12, 13, 14], [10.5, 11.5, 12.5, 13.5, 14.5])
    b = daily("B", [100, 101, 102, 103, 104], [100.5, 101.5, 102.5, 103.5, 104.5], drop=(2,))
    aligned = align([a, b])
    assert list(aligned.times) == list(a.frame.index)
    day3 = a.frame.index[2]
    assert np.isnan(aligned.opens.at[day3, "B"])  # no bar: B cannot trade on day 3
    assert aligned.closes.at[day3, "B"] == 101.5  # ... and is marked at its last close
    assert aligned.closes.at[day3, "A"] == 12.5


def test_the_clock_runs_only_where_every_symbol_has_data() -> None:
    a = daily("A", [10.0] * 6, [10.0] * 6)
    b = daily("B", [5.0] * 3, [5.0] * 3, start="2024-01-03")
    aligned = align([a, b])
    assert aligned.times[0] == b.start and aligned.times[-1] == b.end < a.end


def test_finer_bars_are_resampled_to_the_coarsest_interval() -> None:
    a = daily("A", [10.0] * 3, [10.0] * 3)
    hours = pd.date_range("2024-01-01", periods=72, freq="h", tz="UTC")
    closes = np.arange(72, dtype=float) + 1
    h = load_bars(pd.DataFrame({"open": closes, "high": closes, "low": closes, "close": closes, "volume": 1.0},
                               index=pd.DatetimeIndex(hours, name="time")), symbol="H", interval="1h")
    aligned = align([a, h])
    assert aligned.resampled == {"H": "1h"}
    assert aligned.bars["H"].interval == "1d"
    assert list(aligned.bars["H"].frame["close"]) == [24.0, 48.0, 72.0]
    assert list(aligned.bars["H"].frame["open"]) == [1.0, 25.0, 49.0]


def test_a_symbol_given_twice_or_alone_is_refused() -> None:
    a = daily("A", [10.0] * 3, [10.0] * 3)
    with pytest.raises(DataError, match="at least two"):
        align([a])
    with pytest.raises(DataError, match="appears twice"):
        align([a, a])


def test_orders_fill_at_each_symbols_next_open_with_its_own_fee_exactly() -> None:
    costs = PortfolioCosts(fee_bps=Decimal(10), slippage_bps=Decimal(5), symbol_fee_bps={"B": Decimal(2)})
    book = PaperPortfolio(["A", "B"], cash=Decimal(10_000), costs=costs)
    book.mark({"A": 20.0, "B": 50.0})
    orders = book.target({"A": 0.5, "B": 0.25})
    assert orders == {"A": Decimal(250), "B": Decimal(50)}
    t = pd.Timestamp("2024-01-02", tz="UTC")
    fills = book.fill_open(t, {"A": 21.0, "B": float("nan")})  # B has no bar: it waits
    assert [f.symbol for f in fills] == ["A"]
    a = fills[0]
    assert a.price == Decimal("21.0") * Decimal("1.0005")  # slippage against a buyer
    assert a.notional == Decimal("5250.00000") * Decimal("1.0005")
    assert a.fee == Decimal("5.25262500")  # 10 bps of 5,252.625
    assert book.cash == Decimal(10_000) - Decimal("5252.625") - Decimal("5.252625")
    (b,) = book.fill_open(t + pd.Timedelta(days=1), {"A": 22.0, "B": 49.0})
    assert b.price == Decimal("49.0") * Decimal("1.0005") and b.fee == Decimal("0.49024500")  # 2 bps
    book.mark({"A": 22.0, "B": 49.0})
    assert book.units == {"A": Decimal(250), "B": Decimal(50)}
    assert book.equity == book.cash + 250 * Decimal(22) + 50 * Decimal(49)


def test_a_sale_receives_the_notional_less_slippage_and_fee() -> None:
    book = PaperPortfolio(["A", "B"], cash=Decimal(0), costs=PortfolioCosts(fee_bps=Decimal(1),
                                                                            slippage_bps=Decimal(0)))
    book.units["A"] = Decimal(10)
    book.mark({"A": 100.0, "B": 1.0})
    book.target({"A": 0.0})
    (fill,) = book.fill_open(pd.Timestamp("2024-01-02", tz="UTC"), {"A": 90.0, "B": 1.0})
    assert fill.units == Decimal(-10) and fill.notional == Decimal(900) and fill.fee == Decimal("0.09")
    assert book.cash == Decimal("899.91")


def view(known: dict[str, Bars], current: dict[str, float]) -> PortfolioView:
    return PortfolioView(time=None, known=known, current=current, equity=Decimal(1), every=1)


async def test_equal_weight_and_buy_and_hold_targets() -> None:
    current = {"A": 0.0, "B": 0.0, "C": 0.0, "D": 0.0}
    assert (await equal_weight()(view({}, current))).weights == dict.fromkeys(current, 0.25)
    hold = buy_and_hold("B")
    assert (await hold(view({}, current))).weights == {"A": 0.0, "B": 1.0, "C": 0.0, "D": 0.0}
    assert (await hold(view({}, current))).weights is None  # then held, never rebalanced


def test_inverse_volatility_weights_are_one_over_volatility_normalised() -> None:
    # A's returns alternate +-1 %, B's +-2 %: B is twice as volatile, so it gets half A's weight.
    n = 30
    a = [100 * (1.01 if i % 2 else 1.0) for i in range(n)]
    b = [100 * (1.02 if i % 2 else 1.0) for i in range(n)]
    known = {"A": daily("A", a, a), "B": daily("B", b, b)}
    w = inverse_volatility_weights(view(known, {"A": 0.0, "B": 0.0}))
    sa = pd.Series(a).pct_change().tail(20).std()
    sb = pd.Series(b).pct_change().tail(20).std()
    assert w["A"] == pytest.approx((1 / sa) / (1 / sa + 1 / sb))
    assert w["A"] + w["B"] == pytest.approx(1.0) and w["A"] > w["B"]


async def test_buy_and_hold_walk_matches_a_hand_computation() -> None:
    n = 45
    opens = [10.0 + i for i in range(n)]
    closes = [10.5 + i for i in range(n)]
    a, b = daily("A", opens, closes), daily("B", [5.0] * n, [5.0] * n)
    aligned = align([a, b])
    times = rebalance_times(aligned, Window(every=5))
    costs = PortfolioCosts(fee_bps=Decimal(10), slippage_bps=Decimal(0))
    run = await walk_portfolio("bh", buy_and_hold("A"), aligned, times, equity=Decimal(10_000), costs=costs,
                               every=5)
    first = aligned.times.get_loc(times[0])
    close_t, open_next, last = closes[first], opens[first + 1], closes[-1]
    units = (Decimal(10_000) / Decimal(repr(close_t))).quantize(Decimal("0.00000001"))
    fee = (units * Decimal(repr(open_next)) * Decimal(10) / 10_000).quantize(Decimal("0.000000001"))
    cash = Decimal(10_000) - units * Decimal(repr(open_next)) - fee
    assert len(run.fills) == 1 and run.fills[0].units == units and run.fills[0].fee == fee
    assert run.final_equity == (cash + units * Decimal(repr(last))).quantize(Decimal("0.000000001"))


async def test_equal_weight_and_inverse_volatility_rebalance_at_every_decision() -> None:
    n = 60
    rng = np.random.default_rng(3)
    a = list(100 * np.cumprod(1 + rng.normal(0, 0.01, n)))
    b = list(50 * np.cumprod(1 + rng.normal(0, 0.03, n)))
    aligned = align([daily("A", a, a), daily("B", b, b)])
    times = rebalance_times(aligned, Window(every=3))
    for strategy in (equal_weight(), inverse_volatility()):
        run = await walk_portfolio("x", strategy, aligned, times, equity=Decimal(1000),
                                   costs=PortfolioCosts(), every=3)
        assert len(run.targets) == len(times) and all(t.weights is not None for t in run.targets)
        assert run.gross.iloc[-1] == pytest.approx(1.0, abs=0.1)
