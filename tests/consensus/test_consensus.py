"""Consensus over loopback: votes, abstentions, early exit, deadlines, the cascade and budgets."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from lyra import Lyra
from lyra.consensus.panel import ConsensusEngine
from lyra.simulator import Fault, Simulator
from lyra.types import Completion, CompletionRequest
from support import engine_env

BULLISH = [{"role": "user", "content": 'BTC 4h.\n```json\n{"rsi": 35, "macd_hist": 0.8, "ret_5": 0.02, '
                                       '"sma_ratio": 0.01, "bb_pos": 0.4}\n```'}]
OPUS, GPT4O, SONNET, DEEPSEEK, GROK = ("anthropic/claude-opus-4.8", "openai/gpt-4o", "anthropic/claude-sonnet-4.6",
                                       "deepseek/deepseek-chat", "x-ai/grok-4.6")


async def open_engine(sim: Simulator, config_path: Callable[..., Path], **edits: str) -> Lyra:
    engine = Lyra.from_config(config_path(**edits), environ=engine_env(sim))
    await engine.start()
    return engine


async def test_unanimous_bullish_panel_executes(sim: Simulator, config_path: Callable[..., Path]) -> None:
    lyra = await open_engine(sim, config_path)
    try:
        c = await lyra.consensus(messages=BULLISH, panel="trade", notional=15_000)
    finally:
        await lyra.aclose()
    assert c.panel == "trade" and c.escalated_from is None
    assert c.action == "BUY" and c.score >= 0.75 and c.execute
    assert c.agreement == pytest.approx(1.0)
    assert [v.model for v in c.votes] == [OPUS, GPT4O, SONNET, DEEPSEEK, GROK]
    assert c.cost_nanos == sum(v.cost_nanos for v in c.votes) > 0


async def test_failing_members_abstain_and_the_panel_holds(sim: Simulator, config_path: Callable[..., Path]) -> None:
    for model in (SONNET, DEEPSEEK, GROK):
        sim.add_fault(Fault(kind="server_error", model=model))
    lyra = await open_engine(sim, config_path)
    try:
        c = await lyra.consensus(messages=BULLISH, panel="trade", notional=15_000)
    finally:
        await lyra.aclose()
    assert c.action == "HOLD"  # 0.55 of the weight voted BUY: below 0.75 and below quorum
    # The failing members abstain; once the outcome can no longer change the rest are cancelled,
    # so whether a member failed or was cancelled first depends on timing: either is right.
    assert {v.model for v in c.abstentions} >= {SONNET, DEEPSEEK, GROK}
    assert all(v.status in {"error", "cancelled"} and v.action is None for v in c.abstentions)
    assert not any(v.status == "error" for v in c.abstentions if v.model in (OPUS, GPT4O))


async def test_malformed_member_output_is_an_abstention(sim: Simulator, config_path: Callable[..., Path]) -> None:
    lyra = await open_engine(sim, config_path)

    async def garble_opus(request: CompletionRequest) -> Completion:
        answer = await lyra.run(request)
        if request.model == OPUS:
            return dataclasses.replace(answer, text="I think BUY, confidence high!")
        return answer

    try:
        c = await ConsensusEngine(lyra.settings, garble_opus).ask(BULLISH, panel="trade")
    finally:
        await lyra.aclose()
    opus = c.votes[0]
    assert opus.status == "abstain" and opus.action is None and "no JSON" in opus.reason
    assert c.action == "HOLD" and c.score == pytest.approx(0.70)  # the abstention counted for nothing


async def test_early_exit_cancels_the_rest_and_books_them_at_their_worst_case(
    sim: Simulator, config_path: Callable[..., Path]
) -> None:
    sim.add_fault(Fault(kind="timeout", model=GROK, hang_s=20))
    lyra = await open_engine(sim, config_path)
    try:
        c = await lyra.consensus(messages=BULLISH, panel="trade", notional=15_000)
        assert lyra.budget is not None
        reserved = sum(line.reserved for line in await lyra.budget.snapshot())
        assert lyra.ledger is not None
        lyra.ledger.flush()
        booked = [r for r in lyra.ledger.rows(kind="attempt") if r.requested_model == GROK]
    finally:
        await lyra.aclose()
    assert c.early_exit and c.action == "BUY"
    grok = c.votes[4]
    # The request had reached OpenRouter, which may bill it in full: booked at its worst case,
    # in the ledger and in the decision's cost alike, and no hold is left behind.
    assert grok.status == "cancelled" and grok.cost_nanos > 0
    assert [(r.error_kind, r.cost_nanos, r.cost_estimated) for r in booked] == [("cancelled", grok.cost_nanos, True)]
    assert c.cost_nanos == sum(v.cost_nanos for v in c.votes)
    assert reserved == 0


async def test_member_past_the_deadline_is_dropped_and_quorum_decides(
    sim: Simulator, config_path: Callable[..., Path]
) -> None:
    sim.add_fault(Fault(kind="timeout", model=OPUS, hang_s=20))
    lyra = await open_engine(sim, config_path, **{"deadline_s = 12": "deadline_s = 1"})
    try:
        c = await lyra.consensus(messages=BULLISH, panel="trade", notional=15_000)
    finally:
        await lyra.aclose()
    opus = c.votes[0]
    assert opus.status == "dropped" and "deadline" in opus.reason
    assert c.quorum_met  # 0.70 of the weight answered, quorum is 0.6
    assert c.action == "HOLD" and c.score == pytest.approx(0.70)


async def test_cascade_stays_cheap_when_the_quick_panel_agrees(
    sim: Simulator, config_path: Callable[..., Path]
) -> None:
    lyra = await open_engine(sim, config_path)
    try:
        small = await lyra.consensus(messages=BULLISH, panel="trade", notional=500)
        large = await lyra.consensus(messages=BULLISH, panel="trade", notional=15_000)
    finally:
        await lyra.aclose()
    assert small.panel == "quick" and small.escalated_from is None and small.action == "BUY"
    assert large.panel == "trade" and large.escalated_from is None


async def test_cascade_escalates_when_the_quick_panel_is_unsure(
    sim: Simulator, config_path: Callable[..., Path]
) -> None:
    sim.add_fault(Fault(kind="server_error", model="openai/gpt-4o-mini"))
    sim.add_fault(Fault(kind="server_error", model="anthropic/claude-3-haiku"))
    lyra = await open_engine(sim, config_path)
    try:
        c = await lyra.consensus(messages=BULLISH, panel="trade", notional=500)
    finally:
        await lyra.aclose()
    assert c.panel == "trade" and c.escalated_from is not None
    assert c.escalated_from.panel == "quick" and not c.escalated_from.quorum_met
    assert c.cost_nanos == sum(v.cost_nanos for v in c.votes) + c.escalated_from.cost_nanos


async def test_budgets_apply_to_each_member(sim: Simulator, config_path: Callable[..., Path]) -> None:
    # The premium tier's share is almost nothing: the members on premium-tier models are refused.
    lyra = await open_engine(sim, config_path, **{"budget_share = 0.40": "budget_share = 0.0000001"})
    try:
        c = await lyra.consensus(messages=BULLISH, panel="trade", notional=15_000)
    finally:
        await lyra.aclose()
    refused = {v.model for v in c.votes if v.status == "error" and "BudgetExceeded" in v.reason}
    assert refused == {OPUS, GPT4O}
    # With 0.55 of the weight refused no action can reach 0.75: the rest is cancelled. The refused
    # never reached upstream and cost nothing; a cancelled member is booked at its worst case.
    assert c.action == "HOLD" and c.early_exit
    assert all(v.cost_nanos == 0 for v in c.votes if v.model in refused)
    assert c.cost_nanos == sum(v.cost_nanos for v in c.votes)


def test_a_consensus_of_one_is_its_vote() -> None:
    from lyra.consensus.panel import Consensus, MemberVote

    vote = MemberVote(model="x-ai/grok-4.6", key="", weight=1.0, status="vote", action="BUY", confidence=0.7,
                      rationale="trend", cost_nanos=1_234, latency_s=0.5)
    one = Consensus.of_one(vote, panel="task:signal_generation")
    assert (one.action, one.score, one.agreement, one.reason, one.cost_nanos) == ("BUY", 0.7, 1.0, "trend", 1_234)
    assert one.rule == "single" and one.votes == [vote] and one.quorum_met
    with pytest.raises(ValueError, match="needs a vote"):
        Consensus.of_one(dataclasses.replace(vote, status="abstain", action=None), panel="p")
