"""A backtest measures exactly the window asked for, annualised with the bars the data has a year."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from lyra import Lyra
from lyra.trading.backtest import Window
from lyra.trading.data import Bars, load_bars, load_sample
from lyra.trading.evaluate import FULLY_INVESTED, BacktestOptions, run_backtest
from lyra.trading.metrics import annualisation, curve_stats, periods_per_year, sharpe
from lyra.trading.report import render
from support import ACTIVE_SIGNALS

ENGINE_EDITS = ACTIVE_SIGNALS
YEAR_S = 365.25 * 86400


def measures(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every strategy's figures except AI spend (the engine's cache answers a repeated question free)."""
    return [{k: v for k, v in s.items() if k not in ("ai_spend_nanos", "return_on_ai_spend")}
            for s in report["strategies"]]


def per_year(bars: Bars) -> float:
    index = bars.frame.index
    return (len(index) - 1) / ((index[-1] - index[0]).total_seconds() / YEAR_S)


@pytest.mark.parametrize(("start", "end"), [("2016-01-04", "2016-09-30"), ("2017-03-01", "2017-11-15")])
async def test_a_window_measures_what_the_data_cut_at_its_end_measures(
        engine: Lyra, bars: Bars, start: str, end: str) -> None:
    window = await run_backtest(engine, bars, BacktestOptions(window=Window(start=start, end=end, every=7)))
    cut = await run_backtest(engine, bars.until(end), BacktestOptions(window=Window(start=start, every=7)))
    assert measures(window) == measures(cut)
    assert window["window"] == cut["window"]
    scored = ("model", "votes", "calls", "correct", "accuracy", "brier")
    assert [[r[k] for k in scored] for r in window["track_record"]] == [
        [r[k] for k in scored] for r in cut["track_record"]]
    assert window["annualisation"] == cut["annualisation"]
    last = bars.until(end).end
    assert window["window"]["end"] == last.isoformat()  # the last bar used, not the data's end
    for curve in window["curves"].values():
        assert pd.Timestamp(curve[-1][0]) == last
    assert all(pd.Timestamp(d["time"]) < last for d in window["decisions"])


async def test_nothing_after_the_window_moves_its_figures(engine: Lyra, bars: Bars) -> None:
    end = "2016-12-30"
    frame = bars.frame.copy()
    later = frame.index > pd.Timestamp(end, tz="UTC")
    frame.loc[later, ["open", "high", "low", "close"]] *= 3.0  # a boom after the window
    boomed = Bars(frame=frame, symbol=bars.symbol, interval=bars.interval)
    options = BacktestOptions(window=Window(start="2016-03-01", end=end, every=10))
    assert measures(await run_backtest(engine, bars, options)) == measures(await run_backtest(engine, boomed,
                                                                                              options))


def test_bars_a_year_are_measured_from_the_data() -> None:
    fx = load_sample("EURUSD")
    fx_year = annualisation(pd.DatetimeIndex(fx.frame.index), fx.interval)
    assert fx_year.measured and fx_year.bars_per_year == pytest.approx(per_year(fx))
    assert 6_000 < fx_year.bars_per_year < 6_400 < periods_per_year("1h")  # FX closes at weekends
    assert f"annualised with {fx_year.bars_per_year:,.0f} bars a year, measured from the data" == fx_year.describe()
    googl = load_sample("GOOGL")
    assert annualisation(pd.DatetimeIndex(googl.frame.index), "1d").bars_per_year == pytest.approx(252, abs=2)
    hourly_crypto = pd.date_range("2021-01-01", periods=24 * 90 + 1, freq="h", tz="UTC")
    assert annualisation(hourly_crypto, "1h").bars_per_year == pytest.approx(8_766)
    daily_crypto = pd.date_range("2021-01-01", periods=200, freq="D", tz="UTC")
    assert annualisation(daily_crypto, "1d").bars_per_year == pytest.approx(365.25)


def test_a_span_too_short_to_measure_falls_back_to_the_calendar_and_says_so() -> None:
    short = pd.date_range("2021-01-01", periods=24 * 20, freq="h", tz="UTC")
    year = annualisation(short, "1h")
    assert not year.measured and year.bars_per_year == periods_per_year("1h")
    assert "calendar figure" in year.describe() and "too short to measure" in year.describe()


def test_sharpe_and_annual_return_use_the_bars_given() -> None:
    times = pd.date_range("2021-01-01", periods=5, freq="D", tz="UTC")
    equity = pd.Series([100.0, 101.0, 100.5, 102.0, 103.0], index=times)
    returns = equity.pct_change().dropna()
    expected = returns.mean() / returns.std(ddof=1) * math.sqrt(6_200)
    assert sharpe(equity, "1h", per_year=6_200) == pytest.approx(expected)
    stats = curve_stats(equity, pd.Series(1.0, index=times), "1h", per_year=6_200)
    assert stats["sharpe"] == pytest.approx(expected)
    assert stats["annualised_return"] == pytest.approx(1.03 ** (6_200 / 4) - 1)


async def test_hourly_fx_is_annualised_with_its_own_bars_a_year(engine: Lyra) -> None:
    fx = load_sample("EURUSD")
    options = BacktestOptions(window=Window(start="2017-09-01", end="2017-11-30", every=48))
    report = await run_backtest(engine, fx, options)
    used = fx.until("2017-11-30")
    expected = per_year(used)
    assert report["annualisation"]["bars_per_year"] == pytest.approx(expected, abs=0.01)
    assert report["annualisation"]["measured"] is True
    assert report["annualisation"]["text"] in render(report)
    [full] = [s for s in report["strategies"] if s["name"] == FULLY_INVESTED]
    curve = pd.Series([v for _, v in report["curves"][FULLY_INVESTED]],
                      index=pd.DatetimeIndex([t for t, _ in report["curves"][FULLY_INVESTED]]))
    returns = curve.pct_change().dropna()
    assert full["sharpe"] == pytest.approx(returns.mean() / returns.std(ddof=1) * math.sqrt(expected), rel=1e-3)
    periods = len(curve) - 1
    assert full["annualised_return"] == pytest.approx((1 + full["total_return"]) ** (expected / periods) - 1)
    calendar = returns.mean() / returns.std(ddof=1) * math.sqrt(periods_per_year("1h"))
    assert abs(full["sharpe"]) < abs(calendar)  # no longer overstated by calendar hours



def test_the_cli_reports_the_window_it_measured(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["backtest", "--from", "2016-01-04", "--to", "2016-06-30", "--every", "10",
                                      "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    last = load_sample("GOOGL").until("2016-06-30").end
    assert report["window"]["end"] == last.isoformat()
    assert max(pd.Timestamp(t) for curve in report["curves"].values() for t, _ in curve) == last


def test_a_window_before_the_data_is_one_clear_line(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["backtest", "--to", "1999-01-01"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "no bar at or before 1999-01-01" in line


def test_random_walk_windows_agree_with_their_cut(write_csv: Any) -> None:
    """The cut is exact on any data: the walk's decision times over a window equal the cut's."""
    from lyra.trading.backtest import decision_times
    from lyra.trading.evaluate import window_bars

    rng = np.random.default_rng(7)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    times = pd.date_range("2020-01-01", periods=300, freq="D", tz="UTC")
    frame = pd.DataFrame({"open": closes, "high": closes * 1.01, "low": closes * 0.99, "close": closes,
                          "volume": 1.0}, index=times).rename_axis("time")
    bars = load_bars(frame, symbol="RW", interval="1d")
    for end in ("2020-05-01", "2020-08-15", "2020-10-26"):
        window = Window(start="2020-02-20", end=end, every=3)
        cut = window_bars(bars, window)
        assert cut.end == bars.until(end).end
        assert decision_times(cut, window) == decision_times(bars.until(end), Window(start="2020-02-20", every=3))
