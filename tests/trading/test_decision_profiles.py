"""Each decision records the profile behind every stage: the exact model, the provider preferences
and service tier sent, a fingerprint; the audit trail, `lyra audit show` and a replay carry it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from lyra import Lyra
from lyra.cli.commands import app
from lyra.simulator import Simulator
from lyra.trading.cassette import Cassette
from lyra.trading.data import Bars
from lyra.trading.pipeline import TradeDecision, TradingAIOrchestrator
from support import ACTIVE_SIGNALS

ENGINE_EDITS = {**ACTIVE_SIGNALS, "budget_share = 0.40\ntimeout_s = 0.5\n":
                "budget_share = 0.40\ntimeout_s = 0.5\nservice_tier = \"priority\"\n"}
PRIVATE = {"zdr": True, "data_collection": "deny"}
SINGLE = ("market_data", "technical_analysis", "risk_assessment")


async def decide_until_trade(orchestrator: TradingAIOrchestrator, bars: Bars) -> TradeDecision:
    for t in bars.frame.index[-120:]:
        decision = await orchestrator.decide("GOOGL", bars, at=t)
        if decision.signal is not None and decision.signal.action != "HOLD":
            return decision
    raise AssertionError("no bar produced a trade signal")


def by_stage(payload: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {s["stage"]: s["profiles"] for s in payload["stages"]}


async def test_a_decision_records_the_profile_of_every_stage(engine: Lyra, bars: Bars, sim: Simulator) -> None:
    decision = await decide_until_trade(TradingAIOrchestrator(engine), bars)
    stages = {s.stage: s for s in decision.stages}
    risk = stages["risk_assessment"]
    assert risk.status == "ok" and len(risk.profiles) == 1
    profile = risk.profiles[0]
    assert profile["tier"] == "premium" and profile["model"] == risk.model == "anthropic/claude-opus-4.8"
    assert profile["provider"] == {**PRIVATE, "require_parameters": True,  # the risk schema
                                   "max_price": {"prompt": "5", "completion": "25"}}
    assert profile["service_tier"] == "priority"
    sent = next(b for b in sim.received if b["model"] == "anthropic/claude-opus-4.8")
    assert sent["service_tier"] == "priority" and sent["provider"]["require_parameters"] is True
    summary = stages["market_data"].profiles[0]
    assert summary["tier"] == "fast" and summary["service_tier"] is None
    assert summary["provider"] == {**PRIVATE, "max_price": {"prompt": "0.25", "completion": "1.25"}}
    signal = stages["signal_generation"]
    assert signal.profiles and {p["tier"] for p in signal.profiles} == {"advanced"}
    assert {p["model"] for p in signal.profiles} <= {"google/gemini-2.5-flash-lite", "openai/gpt-4o-mini",
                                                     "anthropic/claude-3-haiku"}
    assert all(p["provider"]["require_parameters"] is True for p in signal.profiles)  # the vote schema
    # The same preferences sent for the same model give the same fingerprint; another tier, another one.
    again = await TradingAIOrchestrator(engine).assess_trade_risk(
        decision.features, action="BUY", notional_usd=1_000)
    assert again[0].profiles[0]["fingerprint"] == profile["fingerprint"]
    assert summary["fingerprint"] != profile["fingerprint"]

    assert engine.ledger is not None and decision.audit_seq is not None
    record = engine.ledger.audit.get(str(decision.audit_seq))
    assert record is not None
    assert by_stage(record.payload)["risk_assessment"] == [profile]
    voted = [v for v in record.payload["signal"]["votes"] if v["status"] == "vote"]
    assert voted and all(v["profile"]["tier"] == "advanced" and v["profile"]["model"] == v["model"]
                         for v in voted)


async def test_a_replayed_decision_carries_the_recorded_profiles(engine: Lyra, bars: Bars, sim: Simulator,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "profiles.cassette.json"
    recorder = Cassette(path, "record")
    engine.set_interceptor(recorder.intercept)
    when = bars.frame.index[-3]
    recorded = await TradingAIOrchestrator(engine, audit=False).decide("GOOGL", bars, at=when)
    recorder.save()
    calls = sim.stats.calls
    player = Cassette(path, "replay")
    engine.set_interceptor(player.intercept)
    replayed = await TradingAIOrchestrator(engine, audit=False).decide("GOOGL", bars, at=when)
    assert sim.stats.calls == calls and player.replayed > 0
    before, after = by_stage(recorded.to_dict()), by_stage(replayed.to_dict())
    for name in SINGLE[:2]:
        assert before[name] and after[name] == before[name], name


def test_lyra_audit_show_prints_the_profiles() -> None:
    runner = CliRunner()
    ran = runner.invoke(app, ["run", "--bars", "2", "--time-scale", "0", "--json"])
    assert ran.exit_code == 0, ran.output
    shown = runner.invoke(app, ["audit", "show", "1"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout[shown.stdout.index("{"):])
    profiles = by_stage(record["decision"])
    assert profiles["technical_analysis"][0]["tier"] == "advanced"
    assert profiles["technical_analysis"][0]["provider"]["zdr"] is True
    assert profiles["technical_analysis"][0]["provider"]["data_collection"] == "deny"
    assert len(profiles["market_data"][0]["fingerprint"]) == 12
