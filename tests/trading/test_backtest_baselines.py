"""Baselines say how they are sized; fully invested buy-and-hold earns the asset's return less one cost."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from lyra import Lyra
from lyra.trading.backtest import Costs, Window
from lyra.trading.data import Bars, load_bars, load_sample
from lyra.trading.evaluate import FULLY_INVESTED, BacktestOptions, run_backtest
from lyra.trading.report import render
from support import ACTIVE_SIGNALS

ENGINE_EDITS = ACTIVE_SIGNALS


def row(report: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [s for s in report["strategies"] if s["name"] == name]
    return found


def asset_return(bars: Bars, first_decision: str, end: pd.Timestamp) -> float:
    """The asset from the open after the first decision to the last close of the window."""
    frame = bars.frame.loc[:end]
    i = frame.index.get_loc(pd.Timestamp(first_decision))
    return float(frame["close"].iloc[-1] / frame["open"].iloc[i + 1] - 1)


def random_walk(seed: int, n: int = 400) -> Bars:
    rng = np.random.default_rng(seed)
    closes = 50 * np.exp(np.cumsum(rng.normal(0.0005, 0.02, n)))
    opens = np.concatenate([[closes[0]], closes[:-1]]) * np.exp(rng.normal(0, 0.005, n))
    times = pd.date_range("2019-01-01", periods=n, freq="D", tz="UTC")
    frame = pd.DataFrame({"open": opens, "high": np.maximum(opens, closes) * 1.01,
                          "low": np.minimum(opens, closes) * 0.99, "close": closes, "volume": 1.0},
                         index=times).rename_axis("time")
    return load_bars(frame, symbol="RW", interval="1d")


@pytest.mark.parametrize(("data", "window", "costs"), [
    ("GOOGL", Window(start="2016-01-04", end="2017-06-30", every=15), Costs()),
    ("GOOGL", Window(start="2012-03-01", every=40), Costs(fee_bps=10, slippage_bps=25)),
    ("EURUSD", Window(start="2017-05-01", end="2017-10-31", every=96), Costs(fee_bps=0.5, slippage_bps=1)),
    (7, Window(every=25), Costs(fee_bps=4, slippage_bps=6)),
])
async def test_fully_invested_buy_and_hold_earns_the_assets_return_less_one_cost(
        engine: Lyra, data: str | int, window: Window, costs: Costs) -> None:
    bars = load_sample(data) if isinstance(data, str) else random_walk(data)
    report = await run_backtest(engine, bars, BacktestOptions(window=window, costs=costs))
    full = row(report, FULLY_INVESTED)
    end = pd.Timestamp(report["window"]["end"])
    expected = asset_return(bars, report["window"]["start"], end) - (costs.fee_bps + costs.slippage_bps) / 10_000
    assert full["total_return"] == pytest.approx(expected, abs=1e-9)
    assert full["trades"] == 1 and "fully invested" in full["sizing"]
    hold = row(report, "buy_and_hold")
    assert hold["trades"] == 1 and "$5,000 position" in hold["sizing"] and "$100,000 account" in hold["sizing"]
    # a $5,000 position in a $100,000 account earns a twentieth of the asset's move, not the move
    assert hold["pnl_usd"] == pytest.approx(full["pnl_usd"] / 20, rel=0.02, abs=1.0)


async def test_every_strategy_says_how_it_is_sized_in_the_json_the_table_and_the_page(engine: Lyra,
                                                                                       bars: Bars) -> None:
    report = await run_backtest(engine, bars, BacktestOptions(window=Window(start="2018-01-02", every=10),
                                                              notional=7_500))
    assert all(s["sizing"] and s["label"] for s in report["strategies"])
    assert row(report, "buy_and_hold")["label"] == "buy_and_hold ($7,500 position)"
    assert row(report, FULLY_INVESTED)["label"] == "buy_and_hold (fully invested)"
    assert "$7,500" in row(report, "ma_cross")["sizing"] and "$7,500" in row(report, "pipeline")["sizing"]
    page = render(report)
    for s in report["strategies"]:
        assert s["label"] in page and s["sizing"].replace("'", "&#x27;") in page



def test_the_table_labels_each_strategy_with_its_sizing(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["backtest", "--from", "2018-03-01", "--every", "10"])
    assert result.exit_code == 0, result.stderr
    for label in ("buy_and_hold ($5,000 position)", "buy_and_hold (fully invested)", "ma_cross ($5,000 position)",
                  "signals already held", "return on AI spend (P&L $ per $1 of AI spend)",
                  "P&L in USD divided by AI spend in USD", "bars a year, measured from the data"):
        assert label in result.stdout


def held_by_replay(records: list[dict[str, Any]], stops: Sequence[str] = ()) -> list[bool]:
    """Recompute, from the actions (and the emergency stops that closed a position between them),
    which BUY or SELL found the position already that way."""
    position, out, stopped = 0, [], sorted(stops)
    for record in records:
        if stopped and stopped[0] <= record["time"]:
            position = 0  # an emergency stop closed it before this decision
            stopped = [t for t in stopped if t > record["time"]]
        action = record["action"]
        want = {"BUY": 1, "SELL": -1}.get(action)
        out.append(want is not None and position == want)
        position = want if want is not None else (0 if action == "CLOSE" else position)
    return out


async def test_signals_on_a_position_already_held_are_counted_and_flagged(engine: Lyra, bars: Bars) -> None:
    report = await run_backtest(engine, bars, BacktestOptions(window=Window(start="2015-01-02", every=5)))
    records = report["decisions"]
    flags = [d["already_held"] for d in records]
    stops = [e["time"] for e in report["events"] if e["kind"] == "emergency_stop"]
    assert flags == held_by_replay(records, stops)
    assert any(flags), "the window should hold some signal twice in a row"
    assert row(report, "pipeline")["already_held"] == sum(flags)
    decisions = report["window"]["decisions"]
    assert row(report, "buy_and_hold")["already_held"] == decisions - 1
    assert row(report, FULLY_INVESTED)["already_held"] == decisions - 1
    assert "already held" in render(report)


def test_return_on_ai_spend_has_its_unit_and_definition(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["backtest", "--from", "2018-03-01", "--every", "10", "--json"])
    report = json.loads(result.stdout)
    assert report["return_on_ai_spend_unit"] == "USD of P&L per USD of AI spend"
    assert "divided by AI spend in USD" in report["return_on_ai_spend_definition"]
    pipeline = row(report, "pipeline")
    assert pipeline["return_on_ai_spend"] == pytest.approx(pipeline["pnl_usd"] / (pipeline["ai_spend_nanos"] / 1e9))
    page = render(report)
    value = pipeline["return_on_ai_spend"]
    assert "return on AI spend (P&amp;L $ per $1 of AI spend)" in page
    verb = "lost" if value < 0 else "made"
    assert (f"{value:,.2f} means the strategy {verb} ${abs(value):,.2f} for each dollar spent on models"
            in page)
