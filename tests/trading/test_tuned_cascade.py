"""`cascade = "tuned"` in the engine: the pipeline's final panel decides through it, walk-forward, replayable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from lyra import Lyra
from lyra.consensus.cascade import SequentialRecord
from lyra.consensus.tuned import seed
from lyra.money import usd_to_nanos
from lyra.simulator import Simulator
from lyra.trading.backtest import Window
from lyra.trading.cassette import Cassette
from lyra.trading.data import Bars
from lyra.trading.evaluate import BacktestOptions, run_backtest
from lyra.trading.pipeline import TradingAIOrchestrator
from support import ACTIVE_SIGNALS, engine_env

TUNED = {"escalate_below_agreement = 0.5": 'escalate_below_agreement = 0.5\ncascade = "tuned"',
         # A short walk: a small record before the cascade may stop, loose bounds so that it does.
         "[risk]": "[calibration]\nmin_record = 4\nmin_sets = 4\nmin_matches = 3\naudit_every = 3\n"
                   "min_stop_probability = 0.7\ntarget_agreement = 0.8\n\n[risk]",
         "daily_tokens = 200_000": "daily_tokens = 50_000_000",
         "daily_tokens = 1_000_000": "daily_tokens = 50_000_000"}
ENGINE_EDITS = ACTIVE_SIGNALS | TUNED
OPTIONS = BacktestOptions(window=Window(start="2017-06-01", every=4))
MEMBERS = 5


def state_stops(engine: Lyra) -> int:
    return engine.running.consensus.tuned["trade"].stops


def finals(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [d["final"] for d in report["decisions"] if d.get("final")]


async def test_the_final_panel_decides_through_the_tuned_cascade(engine: Lyra, bars: Bars) -> None:
    report = await run_backtest(engine, bars, OPTIONS)
    blocks = finals(report)
    assert len(blocks) >= 8, len(blocks)
    early = 0
    for i, block in enumerate(blocks):
        info = block["cascade"]
        assert info["kind"] == "tuned" and info["decisions_seen"] == i + 1
        asked = info["asked"]
        votes = {v["model"]: v for v in block["votes"]}
        assert len(votes) == MEMBERS and set(asked) <= set(votes)
        for model, vote in votes.items():
            # A member not asked cost nothing and says why; every one asked is a real call's answer.
            if model in asked:
                assert vote["status"] != "cancelled"
            else:
                assert vote["status"] == "cancelled" and vote["reason"].startswith("not asked")
                assert usd_to_nanos(vote["cost_usd"]) == 0
        cheap = block["escalated_from"]
        assert cheap is not None and cheap["panel"] == "quick"
        total = sum(usd_to_nanos(v["cost_usd"]) for v in block["votes"]) + usd_to_nanos(cheap["cost_usd"])
        assert usd_to_nanos(block["cost_usd"]) == total  # exact money: the panel's cost is its calls'
        if i < 4:
            assert len(asked) == MEMBERS  # building the record: every member
        early += len(asked) < MEMBERS
        assert info["why"] and block["reason"].startswith("tuned cascade")
    assert early > 0  # it did stop before the last member on some decisions
    kinds = [b["cascade"]["stop_kind"] for b in blocks]
    assert "sequential" in kinds and "cheap" in kinds
    audits = [b for b in blocks if b["cascade"]["audit"]]
    assert audits and len(audits) == state_stops(engine) // 3
    for block in audits:  # an audited stop asks on: every member, or (a cheap stop) until settled
        assert block["cascade"]["outcome"] is not None
    # Walk-forward: the state is this walk's own; what the engine holds is what its decisions filed.
    state = engine.running.consensus.tuned["trade"]
    assert state.decisions == len(blocks)


async def test_a_recorded_run_with_the_tuned_cascade_replays_byte_for_byte_with_zero_upstream_calls(
        engine: Lyra, sim: Simulator, bars: Bars, tmp_path: Path) -> None:
    path = tmp_path / "tuned.cassette.json"
    recorder = Cassette(path, "record")
    recorded = await run_backtest(engine, bars, OPTIONS, cassette=recorder)
    recorder.save()
    calls = sim.stats.calls
    assert any(len(b["cascade"]["asked"]) < MEMBERS for b in finals(recorded))
    player = Cassette(path, "replay")
    replayed = await run_backtest(engine, bars, OPTIONS, cassette=player)
    assert sim.stats.calls == calls  # not one upstream call
    assert player.replayed > 0
    dump = orjson.OPT_SORT_KEYS
    assert orjson.dumps(replayed["decisions"], option=dump) == orjson.dumps(recorded["decisions"], option=dump)


async def test_the_decision_records_rebuild_the_learnt_state(engine: Lyra, bars: Bars) -> None:
    report = await run_backtest(engine, bars, OPTIONS)
    live = engine.running.consensus.tuned["trade"]
    rebuilt = SequentialRecord()
    assert seed(rebuilt, finals(report), "trade") == len(finals(report))
    assert rebuilt.sets == live.sets and rebuilt.costs == live.costs and rebuilt.leans == live.leans
    assert (rebuilt.decisions, rebuilt.stops, rebuilt.audits) == (live.decisions, live.stops, live.audits)
    assert rebuilt.expected_misses == live.expected_misses
    assert seed(SequentialRecord(), finals(report), "other") == 0


async def test_a_restarted_engine_goes_on_from_the_audit_trail(
        engine: Lyra, sim: Simulator, bars: Bars, tmp_path: Path) -> None:
    # As `lyra run` does: the pipeline decides with the audit trail on, bar after bar.
    orchestrator = TradingAIOrchestrator(engine)
    times = list(bars.frame.index[-80::4])
    for t in times:
        await orchestrator.decide("GOOGL", bars, at=t)
    before = engine.running.consensus.tuned["trade"]
    assert before.decisions >= 5
    env = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    async with Lyra.from_config(tmp_path / "lyra.toml", environ=env) as restarted:
        after = restarted.running.consensus.tuned["trade"]
        assert (after.sets, after.costs, after.leans) == (before.sets, before.costs, before.leans)
        assert (after.decisions, after.stops, after.audits) == (before.decisions, before.stops, before.audits)
        assert after.expected_misses == before.expected_misses


def test_a_bad_cascade_value_is_one_line_naming_the_field() -> None:
    import pytest

    from lyra.config import parse_settings
    from lyra.config.loading import example_config_text

    text = example_config_text().replace("escalate_below_agreement = 0.5",
                                         'escalate_below_agreement = 0.5\ncascade = "fast"')
    with pytest.raises(Exception, match=r"panels\.trade\.cascade") as caught:
        parse_settings(text, "lyra.toml")
    assert "\n" not in str(caught.value)
