"""The decision pipeline over loopback: stages on their tiers, risk in code, audit, cost agreement."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from lyra import Lyra
from lyra.simulator import Fault, Simulator
from lyra.trading.data import Bars
from lyra.trading.pipeline import TradingAIOrchestrator
from lyra.trading.risk import AccountState, Position
from lyra.trading.stages import STAGES, single_calls
from support import ACTIVE_SIGNALS

QUICK = ("google/gemini-2.5-flash-lite", "openai/gpt-4o-mini", "anthropic/claude-3-haiku")

ENGINE_EDITS = ACTIVE_SIGNALS


async def decide_until_trade(orchestrator: TradingAIOrchestrator, bars: Bars, notional: float = 5_000):
    for t in bars.frame.index[-120:]:
        decision = await orchestrator.decide("GOOGL", bars, proposed_notional=notional, at=t)
        if decision.signal is not None and decision.signal.action != "HOLD":
            return decision
    raise AssertionError("no bar produced a trade signal")


async def test_six_stages_use_the_configured_tiers(engine: Lyra, bars: Bars) -> None:
    decision = await decide_until_trade(TradingAIOrchestrator(engine), bars)
    stages = {s.stage: s for s in decision.stages}
    assert list(stages) == ["market_data", "technical_analysis", "signal_generation", "risk_assessment",
                            "final_decision", "execution_monitoring"]
    assert stages["market_data"].tier == "fast"
    assert stages["technical_analysis"].tier == "advanced"
    assert stages["signal_generation"].tier == "panel:quick"
    assert stages["risk_assessment"].tier == "premium"
    assert stages["final_decision"].tier in {"panel:quick", "panel:trade"}
    if decision.action != "HOLD":
        assert stages["execution_monitoring"].tier == "fast"
    # The table every reader of the pipeline uses says the same, in the same order.
    assert [s.name for s in STAGES] == list(stages)
    assert {one.name: one.routed_tier(engine.settings) for one in single_calls()} == {
        "market_data": "fast", "technical_analysis": "advanced", "risk_assessment": "premium",
        "execution_monitoring": "fast"}


async def test_large_notional_goes_to_the_full_panel(engine: Lyra, bars: Bars) -> None:
    decision = await decide_until_trade(TradingAIOrchestrator(engine), bars, notional=15_000)
    assert decision.risk.premium_route
    assert decision.final is not None and decision.final.panel == "trade"


async def test_risk_rules_override_the_models(engine: Lyra, bars: Bars) -> None:
    orchestrator = TradingAIOrchestrator(engine)
    orchestrator.account = AccountState(equity_at_day_start=100_000, equity=94_000)  # 6 % down today
    decision = await decide_until_trade(orchestrator, bars)
    assert decision.action == "HOLD" and decision.notional_usd == 0
    assert any("drawdown" in r for r in decision.risk.reasons)


async def test_emergency_stop_closes_exposure(engine: Lyra, bars: Bars) -> None:
    price = float(bars.frame["close"].iloc[-1])
    account = AccountState(equity_at_day_start=100_000, equity=100_000,
                           position=Position(units=10, entry_price=price * 1.05))
    decision = await TradingAIOrchestrator(engine, account=account).decide("GOOGL", bars)
    assert decision.action == "CLOSE" and decision.risk.notional_usd == pytest.approx(10 * price)


async def test_a_model_can_only_shrink_a_position(engine: Lyra, bars: Bars, sim: Simulator) -> None:
    orchestrator = TradingAIOrchestrator(engine)
    big = orchestrator.rules.rule(signal="BUY", proposed_notional_usd=5_000, price=100, atr=1.0,
                                  account=orchestrator.account, model_verdict="approve",
                                  model_max_notional_usd=1_000_000)
    assert big.notional_usd == 5_000
    small = orchestrator.rules.rule(signal="BUY", proposed_notional_usd=5_000, price=100, atr=1.0,
                                    account=orchestrator.account, model_verdict="reduce",
                                    model_max_notional_usd=2_000)
    assert (small.notional_usd, small.verdict) == (2_000, "reduce")
    rejected = orchestrator.rules.rule(signal="BUY", proposed_notional_usd=5_000, price=100, atr=1.0,
                                       account=orchestrator.account, model_verdict="reject")
    assert rejected.action == "HOLD"
    sized = orchestrator.rules.rule(signal="BUY", proposed_notional_usd=50_000, price=100, atr=5.0,
                                    account=orchestrator.account)
    assert sized.notional_usd == pytest.approx(10_000)  # 1 % of 100k at a 2-ATR stop of $10/unit


async def test_a_failed_risk_review_never_trades(engine: Lyra, bars: Bars, sim: Simulator) -> None:
    """Fail closed: a trade the risk model could not review is held, and the audit record says why."""
    for model in engine.settings.tiers["premium"].models:
        sim.add_fault(Fault(kind="server_error", model=model))
    orchestrator = TradingAIOrchestrator(engine)
    decisions = [await orchestrator.decide("GOOGL", bars, at=t) for t in bars.frame.index[-40:]]
    wanted = [d for d in decisions if d.signal is not None and d.signal.action in ("BUY", "SELL")]
    assert wanted, "no bar produced a trade signal"
    for decision in wanted:
        risk = next(s for s in decision.stages if s.stage == "risk_assessment")
        assert risk.status == "error" and decision.errors
        assert decision.action == "HOLD" and decision.notional_usd == 0
    # Where the final panel too wanted the trade, only the missing review stopped it, and says so.
    confirmed = [d for d in wanted if d.final is not None and d.final.action in ("BUY", "SELL")]
    assert confirmed, "no bar's final panel confirmed a trade"
    for decision in confirmed:
        assert any(r.startswith("no risk review (") for r in decision.risk.reasons)
    assert engine.ledger is not None
    audited = {r.seq: r.payload for r in engine.ledger.audit.recent(100)}
    for decision in confirmed:
        assert decision.audit_seq is not None
        assert any("no risk review" in reason for reason in audited[decision.audit_seq]["risk"]["reasons"])


def test_the_rule_holds_a_new_position_without_a_review_but_still_closes_on_a_stop() -> None:
    from lyra.config import RiskSettings
    from lyra.trading.risk import RiskRules

    rules = RiskRules(RiskSettings())
    flat = AccountState(equity_at_day_start=100_000, equity=100_000)
    held = rules.rule(signal="BUY", proposed_notional_usd=5_000, price=100, atr=1.0, account=flat,
                      review_missing="NoModelAvailable: every premium model failed")
    assert (held.action, held.notional_usd, held.verdict) == ("HOLD", 0.0, "reject")
    losing = AccountState(equity_at_day_start=100_000, equity=100_000,
                          position=Position(units=10, entry_price=110))
    stop = rules.rule(signal="BUY", proposed_notional_usd=5_000, price=100, atr=1.0, account=losing,
                      review_missing="timeout")
    assert stop.action == "CLOSE"  # leaving exposure needs no review



async def test_ledger_and_result_agree_to_the_nano_dollar(engine: Lyra, bars: Bars) -> None:
    assert engine.ledger is not None
    engine.ledger.flush()
    before = engine.ledger.spend_between(0, 2**40).total_nanos
    decision = await decide_until_trade(TradingAIOrchestrator(engine), bars, notional=15_000)
    engine.ledger.flush()
    after = engine.ledger.spend_between(0, 2**40).total_nanos
    audited = sum(r.cost_nanos for r in engine.ledger.audit.recent(1000))
    assert audited == after - before
    assert decision.cost_nanos > 0


async def test_audit_chain_detects_edits_and_deletions(engine: Lyra, bars: Bars, tmp_path: Path) -> None:
    orchestrator = TradingAIOrchestrator(engine)
    for t in bars.frame.index[-4:]:
        await orchestrator.decide("GOOGL", bars, at=t)
    assert engine.ledger is not None
    audit = engine.ledger.audit
    check = audit.verify()
    assert check.ok and check.checked == 4
    record = audit.get("2")
    assert record is not None and record.payload["symbol"] == "GOOGL"
    db = sqlite3.connect(tmp_path / "ledger.db")
    db.execute("UPDATE lyra_decisions SET payload = replace(payload, 'GOOGL', 'AAPL') WHERE seq = 3")
    db.commit()
    edited = audit.verify()
    assert not edited.ok and edited.first_broken_seq == 3 and "edited" in edited.reason
    db.execute("UPDATE lyra_decisions SET payload = replace(payload, 'AAPL', 'GOOGL') WHERE seq = 3")
    db.execute("DELETE FROM lyra_decisions WHERE seq = 2")
    db.commit()
    deleted = audit.verify()
    assert not deleted.ok and deleted.first_broken_seq == 2 and "missing" in deleted.reason


async def test_a_panel_that_loses_its_quorum_to_failures_is_a_failed_stage(engine: Lyra, bars: Bars,
                                                                           sim: Simulator) -> None:
    """Its HOLD is what the outage left, not the models' view: it counts as failed, with the kind."""
    for model in QUICK:
        sim.add_fault(Fault(kind="server_error", model=model))
    decision = await TradingAIOrchestrator(engine, audit=False).decide("GOOGL", bars)
    signal = next(s for s in decision.stages if s.stage == "signal_generation")
    assert signal.status == "error" and signal.failed and decision.action == "HOLD"
    assert signal.error_kind == "NoModelAvailable"
    assert re.match(r"[1-3] of 3 panel members failed, no quorum: ", signal.error)
    assert f"signal_generation: {signal.error}" in decision.errors
    skipped = [s for s in decision.stages if s.status == "skipped"]
    assert skipped and not any(s.failed for s in skipped)
    record = decision.to_dict()
    assert record["failed_stages"] == sum(s["status"] == "error" for s in record["stages"]) >= 1


async def test_one_member_down_leaves_the_panel_standing(engine: Lyra, bars: Bars, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="server_error", model=QUICK[0]))
    decision = await TradingAIOrchestrator(engine, audit=False).decide("GOOGL", bars)
    signal = next(s for s in decision.stages if s.stage == "signal_generation")
    assert decision.signal is not None and decision.signal.quorum_met
    assert signal.status == "ok" and decision.to_dict()["failed_stages"] == 0
