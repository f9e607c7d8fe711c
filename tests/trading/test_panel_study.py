"""The panel study: walk-forward baselines, exact money, the cascade's spend, replay with zero upstream calls."""

from __future__ import annotations

import json
import random
from pathlib import Path

import orjson
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from lyra import Lyra
from lyra.config import Settings, load_config
from lyra.simulator import Simulator
from lyra.trading.backtest import Window, decision_times
from lyra.trading.cassette import Cassette
from lyra.trading.data import Bars, load_bars
from lyra.trading.evaluate import BacktestOptions, run_backtest
from lyra.trading.panel_baselines import STRATEGIES, cheapest_first_cost, evaluate
from lyra.trading.panel_study import StudyOptions, StudyPoint, StudyVote
from lyra.trading.report import render
from support import ACTIVE_SIGNALS

# The study asks every member of both panels on every decision: the keys' daily token caps of the
# example would refuse part of it, and a refusal is not what these tests are about.
ENGINE_EDITS = ACTIVE_SIGNALS | {"daily_tokens = 200_000": "daily_tokens = 50_000_000",
                                 "daily_tokens = 1_000_000": "daily_tokens = 50_000_000"}
STUDY = StudyOptions(cheap_panel="quick", full_panel="trade", samples=2)
OPTIONS = BacktestOptions(window=Window(start="2017-09-01", every=6), study=STUDY)
HORIZON = 3


def settings() -> Settings:
    return load_config(None).settings


def synthetic_points(bars: Bars, seed: int = 5) -> list[StudyPoint]:
    """Votes of every member of both panels on every 3rd bar, skilled or not by a seeded draw."""
    rng = random.Random(seed)
    s = settings()
    frame = bars.frame
    points = []
    for bar in range(40, len(frame) - HORIZON - 1, 3):
        up = frame["close"].iloc[bar + HORIZON] > frame["open"].iloc[bar + 1]

        def vote(model: str, weight: float, skill: float, up: bool = bool(up)) -> StudyVote:
            right = rng.random() < skill
            action = rng.choice(["BUY", "SELL", "HOLD"]) if rng.random() < 0.3 else (
                ("BUY" if up else "SELL") if right else ("SELL" if up else "BUY"))
            return StudyVote(model, weight, action, round(rng.uniform(0.5, 0.95), 2), rng.randint(10, 5000) * 1000)

        points.append(StudyPoint(
            time=frame.index[bar], bar=bar,
            cheap=[vote(m.model, m.weight, 0.55) for m in s.panels["quick"].members],
            full=[vote(m.model, m.weight, 0.6 + 0.05 * k) for k, m in enumerate(s.panels["trade"].members)],
            samples=[vote("anthropic/claude-opus-4.8", 1.0, 0.7) for _ in range(3)]))
    return points


def random_bars(seed: int, n: int = 400) -> Bars:
    rng = random.Random(seed)
    closes = [100.0]
    for _ in range(n - 1):
        closes.append(closes[-1] * (1 + rng.gauss(0, 0.02)))
    times = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC")
    frame = pd.DataFrame({"open": closes, "high": [c * 1.01 for c in closes], "low": [c * 0.99 for c in closes],
                          "close": closes, "volume": 1.0}, index=times).rename_axis("time")
    return load_bars(frame, symbol="RW", interval="1d")


def run(points: list[StudyPoint], bars: Bars):  # type: ignore[no-untyped-def]
    return evaluate(points, bars, HORIZON, settings(), cheap_panel="quick", full_panel="trade", band=0.0006,
                    sampled_model="anthropic/claude-opus-4.8")


@pytest.mark.parametrize("cut", [30, 60, 90])
def test_changing_outcomes_after_t_changes_nothing_decided_at_t(cut: int) -> None:
    bars = random_bars(11)
    points = synthetic_points(bars)
    before = run(points, bars)
    t = points[cut].bar
    frame = bars.frame.copy()
    later = frame.index > frame.index[t]
    frame.loc[later, ["open", "high", "low", "close"]] = frame.loc[later, ["open", "high", "low", "close"]
                                                                   ].to_numpy()[::-1]
    changed = Bars(frame=frame, symbol=bars.symbol, interval=bars.interval)
    after = run(points, changed)
    for name in STRATEGIES:
        assert after.choices[name].actions[:cut + 1] == before.choices[name].actions[:cut + 1], name
        assert after.choices[name].costs[:cut + 1] == before.choices[name].costs[:cut + 1], name
    assert after.thresholds[:cut + 1] == before.thresholds[:cut + 1]
    # The future did change: what is learnt from it (calibration over the whole record) differs.
    assert after.calibration != before.calibration


def test_cheapest_first_stops_once_the_outcome_is_settled() -> None:
    panel = settings().panels["trade"]  # weighted, threshold 0.75
    holds = [StudyVote(m.model, m.weight, "HOLD", 0.6, 1000 * (k + 1)) for k, m in enumerate(panel.members)]
    expected = {v.model: float(v.cost_nanos) for v in holds}  # their mean cost before: the same order
    # Cheapest first here is the heaviest (0.30): once it holds, BUY or SELL can reach 0.70 < 0.75.
    assert cheapest_first_cost(panel, holds, expected) == 1000
    buys = [StudyVote(v.model, v.weight, "BUY", 0.8, v.cost_nanos) for v in holds]
    # 0.30 + 0.25 + 0.20 = 0.75 for BUY: whatever the last two say, BUY stays.
    assert cheapest_first_cost(panel, buys, expected) == 1000 + 2000 + 3000
    split = [StudyVote(v.model, v.weight, a, 0.8, v.cost_nanos)
             for v, a in zip(holds, ["BUY", "BUY", "SELL", "BUY", "BUY"], strict=True)]
    # BUY 0.55 after two, then a SELL: BUY can reach only 0.80 - it still can, so all five are asked.
    assert cheapest_first_cost(panel, split, expected) == sum(v.cost_nanos for v in split)
    # Without history the lightest members go first: 0.10, 0.15, 0.20 hold and BUY can reach only 0.55.
    assert cheapest_first_cost(panel, holds, {}) == 5000 + 4000 + 3000


async def test_the_study_reports_every_baseline_with_exact_money(engine: Lyra, bars: Bars) -> None:
    report = await run_backtest(engine, bars, OPTIONS)
    study = report["panel_study"]
    n = len(decision_times(bars, OPTIONS.window))
    assert study["decisions"] == n and len(study["times"]) == n
    assert study["asked"] == n * (3 + 5 + 2) and study["missing_votes"] == 0
    rows = {r["name"]: r for r in study["baselines"]}
    assert list(rows) == list(STRATEGIES)
    for r in rows.values():
        assert isinstance(r["ai_spend_nanos"], int)
        assert r["ai_spend_nanos"] == sum(r["cost_nanos_by_decision"])
        assert r["cost_per_decision_nanos"] == r["ai_spend_nanos"] // n
        assert len(r["decided"]) == n and sum(r["actions"].values()) == n
    full, cascade = rows["full_panel"], rows["cascade"]
    assert full["same_as_full_panel"] == 1.0 and rows["full_cheapest_first"]["same_as_full_panel"] == 1.0
    assert rows["calibrated_panel"]["ai_spend_nanos"] == full["ai_spend_nanos"]
    assert rows["full_cheapest_first"]["ai_spend_nanos"] < full["ai_spend_nanos"]
    # The cascade pays the cheap panel always and the full panel (cheapest first) when it escalates.
    assert cascade["ai_spend_nanos"] < full["ai_spend_nanos"]
    assert all(c > 0 for c in cascade["cost_nanos_by_decision"])
    assert rows["self_consistency"]["ai_spend_nanos"] > 0 and study["self_consistency"]["samples"] == 2
    models = {r["model"] for r in study["calibration"]}
    assert models == {m.model for p in ("quick", "trade") for m in engine.settings.panels[p].members}
    for r in study["calibration"]:
        assert r["brier_stated"] is not None and 0 <= r["ece_calibrated"] <= 1
        assert sum(b["count"] for b in r["reliability_stated"]) == r["scored"]
        assert r["cost_per_correct_nanos"] is None or r["cost_per_correct_nanos"] == r["cost_nanos"] // r["correct"]
    for panel in study["diversity"].values():
        assert 1.0 <= panel["effective_voters"] <= panel["members"]
    page = render(report)
    assert "id='panel-baselines'" in page and "id='calibration'" in page and page.count("data-model=") == 8


async def test_a_recorded_study_replays_byte_for_byte_with_zero_upstream_calls(
        engine: Lyra, sim: Simulator, bars: Bars, tmp_path: Path) -> None:
    path = tmp_path / "study.cassette.json"
    recorder = Cassette(path, "record")
    recorded = await run_backtest(engine, bars, OPTIONS, cassette=recorder)
    recorder.save()
    calls = sim.stats.calls
    replayed = await run_backtest(engine, bars, OPTIONS, cassette=Cassette(path, "replay"))
    assert sim.stats.calls == calls  # not one upstream call
    dump = orjson.OPT_SORT_KEYS
    assert orjson.dumps(replayed["panel_study"], option=dump) == orjson.dumps(recorded["panel_study"], option=dump)
    assert orjson.dumps(replayed["decisions"], option=dump) == orjson.dumps(recorded["decisions"], option=dump)


def test_the_calibration_settings_refuse_bad_values_naming_the_field() -> None:
    from lyra.config import parse_settings
    from lyra.config.loading import example_config_text

    text = example_config_text() + "\n[calibration]\nmargin = 0.7\n"
    with pytest.raises(Exception, match=r"calibration\.margin"):
        parse_settings(text, "lyra.toml")


def test_the_command_prints_the_baselines_and_writes_them_as_json(cli: typer.Typer, tmp_path: Path) -> None:
    args = ["backtest", "--from", "2018-03-01", "--every", "10", "--baselines", "--samples", "1"]
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0, table.stderr
    for text in ("Baselines on the same", "cost-tuned cascade (calibrated)", "Calibration per model",
                 "independent voters", "sampled 1 times"):
        assert text in table.stdout
    report = json.loads(CliRunner().invoke(cli, [*args, "--json"]).stdout)
    assert [r["name"] for r in report["panel_study"]["baselines"]] == list(STRATEGIES)
    assert report["panel_study"]["self_consistency"]["samples"] == 1
    plain = json.loads(CliRunner().invoke(cli, ["backtest", "--from", "2018-03-01", "--every", "10", "--json"]
                                          ).stdout)
    assert plain["panel_study"] is None  # asked for only


async def test_the_spend_estimate_of_the_study_bounds_what_it_spent(engine: Lyra, bars: Bars) -> None:
    from lyra.trading.panel_study import estimate_nanos

    report = await run_backtest(engine, bars, OPTIONS)
    study = report["panel_study"]
    rows = {r["name"]: r for r in study["baselines"]}
    cheap = sum(rows["cascade"]["cost_nanos_by_decision"])
    spent = rows["full_panel"]["ai_spend_nanos"] + rows["self_consistency"]["ai_spend_nanos"]
    bound = estimate_nanos(engine, study["decisions"], STUDY)
    assert spent < bound and cheap < bound


def test_the_tuned_cascade_stops_inside_the_escalation_when_the_members_agree() -> None:
    """Full-panel members that always answer alike: the sequential stop asks fewer than until settled."""
    rng = random.Random(11)
    s = settings()
    bars = random_bars(3)
    cost = {"anthropic/claude-opus-4.8": 2_800_000, "openai/gpt-4o": 1_200_000,
            "anthropic/claude-sonnet-4.6": 1_700_000, "deepseek/deepseek-chat": 130_000, "x-ai/grok-4.6": 860_000}
    points = []
    for bar in range(40, 380, 3):
        action = rng.choice(["BUY", "SELL", "HOLD"])
        points.append(StudyPoint(
            time=bars.frame.index[bar], bar=bar,
            cheap=[StudyVote(m.model, m.weight, rng.choice(["BUY", "SELL", "HOLD"]), 0.7, 50_000)
                   for m in s.panels["quick"].members],
            full=[StudyVote(m.model, m.weight, action, 0.8, cost[m.model]) for m in s.panels["trade"].members],
            samples=[]))
    result = run(points, bars)
    tuned, settled = result.choices["cascade"], result.choices["full_cheapest_first"]
    full = result.choices["full_panel"]
    same = sum(a == b for a, b in zip(tuned.actions, full.actions, strict=True)) / len(points)
    assert same >= 0.95
    assert sum(tuned.costs) < sum(settled.costs) < sum(full.costs)
    assert tuned.audited > 0 and tuned.escalated == len(points)  # the cheap panel's noise never stops it
