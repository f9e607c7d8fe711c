"""Per-model track record, the cost estimate and the `lyra backtest` command end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.etree import ElementTree

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from lyra.simulator import Simulator
from lyra.trading.backtest import Step, Vote
from lyra.trading.data import load_sample
from lyra.trading.evaluate import track_record
from support import decided_trades, engine_env

WINDOW = ["--from", "2018-03-01", "--every", "10"]



def invoke(app: typer.Typer, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_each_member_is_scored_against_the_realised_move() -> None:
    bars = load_sample("GOOGL")
    i = len(bars) - 30
    t = bars.frame.index[i]
    rose = float(bars.frame["close"].iloc[i + 5]) > float(bars.frame["open"].iloc[i + 1])
    right, wrong = ("BUY", "SELL") if rose else ("SELL", "BUY")
    votes = [Vote(model="a", action=right, confidence=0.9, cost_nanos=100),
             Vote(model="b", action=wrong, confidence=0.8, cost_nanos=50),
             Vote(model="c", action="HOLD", confidence=0.7, cost_nanos=10)]
    rows = {r["model"]: r for r in track_record([Step(time=t, action="HOLD", notional_usd=0, votes=votes)],
                                                bars, 5)}
    assert rows["a"]["accuracy"] == 1 and rows["a"]["cost_per_correct_nanos"] == 100
    assert rows["a"]["brier"] == pytest.approx(0.01)
    assert rows["b"]["accuracy"] == 0 and rows["b"]["cost_per_correct_nanos"] is None
    assert rows["b"]["brier"] == pytest.approx(0.64)
    assert rows["c"]["calls"] == 0 and rows["c"]["accuracy"] is None and rows["c"]["brier"] == 0.25


def test_the_last_bars_are_not_scored() -> None:
    bars = load_sample("GOOGL")
    step = Step(time=pd.Timestamp(bars.end), action="BUY", notional_usd=1,
                votes=[Vote(model="a", action="BUY", confidence=1.0, cost_nanos=1)])
    [row] = track_record([step], bars, 5)
    assert row["votes"] == 1 and row["accuracy"] is None and row["brier"] is None


def test_backtest_records_replays_and_reports(cli: typer.Typer, tmp_path: Path) -> None:
    cassette, page = tmp_path / "c.json", tmp_path / "out.html"
    code, out, err = invoke(cli, "backtest", *WINDOW, "--record", str(cassette), "--json")
    assert code == 0, err
    recorded = json.loads(out)
    assert recorded["upstream_calls"] > 0
    names = [s["name"] for s in recorded["strategies"]]
    assert names == ["pipeline", "buy_and_hold", "buy_and_hold_fully_invested", "ma_cross"]
    for key in ("accuracy", "profitable_share", "total_return", "annualised_return", "sharpe", "max_drawdown",
                "worst_daily_drawdown", "exposure", "trades", "ai_spend_nanos", "return_on_ai_spend"):
        assert key in recorded["strategies"][0]
    assert recorded["strategies"][0]["ai_spend_nanos"] > 0
    assert recorded["track_record"] and recorded["warnings"]

    code, out, err = invoke(cli, "backtest", *WINDOW, "--replay", str(cassette), "--json", "--report", str(page))
    assert code == 0, err
    replayed = json.loads(out)
    assert replayed["upstream_calls"] == 0
    assert decided_trades(replayed) == decided_trades(recorded)
    html = page.read_text()
    charts = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(charts) == 4 and "<script" not in html and "ma_cross" in html
    for chart in charts:
        ElementTree.fromstring(chart)  # well-formed inline SVG


def test_backtest_table(cli: typer.Typer) -> None:
    code, out, _ = invoke(cli, "backtest", *WINDOW)
    assert code == 0
    assert "buy_and_hold" in out and "signal accuracy" in out and "Track record" in out


def test_real_keys_show_the_estimate_and_ask_first(cli: typer.Typer, sim: Simulator,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in engine_env(sim).items():
        monkeypatch.setenv(name, value)
    code, _, err = invoke(cli, "backtest", *WINDOW, input="n\n")
    assert code == 1
    assert "decisions on real OpenRouter keys: at most about $" in err
    assert sim.stats.calls == 0


def test_record_and_replay_exclude_each_other(cli: typer.Typer, tmp_path: Path) -> None:
    code, _, err = invoke(cli, "backtest", "--record", str(tmp_path / "a"), "--replay", str(tmp_path / "b"))
    assert code == 2 and "exclude" in err
