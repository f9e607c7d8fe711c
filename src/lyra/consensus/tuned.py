"""A panel with `cascade = "tuned"`: the cheap panel's stop, then members one at a time, the sequential stop.

The decision logic is `lyra.consensus.cascade` (pure, shared with the backtest study); this
module asks the members through the engine's ordinary member call, so every answer is a normal
budgeted, cached, recorded call, and builds the panel's `Consensus` with a `cascade` block saying
which members were asked, in which order, and why it stopped. What the cascade learns lives in
the engine's `ConsensusEngine` per panel, walk-forward over what this engine has decided; it can be
seeded from earlier decision records (`seed`), so that a restarted process goes on from its audit
trail instead of paying for a new record.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from lyra.config import Settings
from lyra.config.calibration import CalibrationSettings
from lyra.consensus.aggregation import RULES, Ballot
from lyra.consensus.cascade import SequentialRecord, Step, Walk, lean_of, learn
from lyra.consensus.decision import ACTIONS, Action
from lyra.money import usd_to_nanos
from lyra.types import Message, SpendTally

if TYPE_CHECKING:
    from lyra.consensus.panel import Consensus, ConsensusEngine, MemberVote


async def decide_tuned(engine: ConsensusEngine, messages: Sequence[Message], *, panel: str,
                       notional: float | None, cache: Literal["use", "bypass", "refresh"],
                       client: str | None, calibration: CalibrationSettings,
                       record: SequentialRecord) -> Consensus:
    """One decision of a tuned panel; `record` is the panel's learnt state and is updated."""
    from lyra.consensus.panel import MemberVote, with_instructions

    target = engine.panel(panel)
    started = time.monotonic()
    first = None
    if target.escalate_from is not None:
        first = await engine.ask(messages, panel=target.escalate_from, notional=notional, cache=cache,
                                 client=client)
    lean = lean_of([v.ballot() for v in first.votes]) if first is not None else None
    run = Walk(target, record, calibration, lean)
    prompt = with_instructions(messages)
    members = {m.model: m for m in target.members}
    asked: dict[str, MemberVote] = {}
    while (model := run.next()) is not None:
        tally = SpendTally()
        vote = await engine.member(members[model], prompt, target, cache, client, tally)
        vote.cost_nanos = max(tally.nanos, vote.cost_nanos)  # as `ask` books a member
        asked[model] = vote
        run.answer(model, vote.ballot(), vote.cost_nanos)
    action = run.finish()
    described = run.describe()
    votes = [asked.get(m.model) or MemberVote(model=m.model, key=m.key, weight=m.weight, status="cancelled",
                                             reason=f"not asked: {described['why'] or 'stopped'}")
             for m in target.members]
    result = _consensus(engine, panel, action, votes, asked, first, described, started, notional)
    result.prompt = prompt  # what every member asked was sent, for the decision record
    return result


def _consensus(engine: ConsensusEngine, panel: str, action: str, votes: list[MemberVote],
               asked: Mapping[str, MemberVote], first: Consensus | None, described: dict[str, Any],
               started: float, notional: float | None) -> Consensus:
    from lyra.consensus.panel import Consensus

    cfg = engine.panel(panel)
    ballots = [v.ballot() for v in asked.values()]
    outcome = RULES[cfg.rule].decide(ballots or [Ballot(1.0)], threshold=cfg.threshold, quorum=cfg.quorum)
    complete = len(asked) == len(cfg.members)
    decided: Action = next(a for a in ACTIONS if a == action)
    # Stopped by risk, the call stands for the panel's (its quorum is the cascade's judgement);
    # asked in full or settled, the panel's own rule decided.
    quorum = outcome.quorum_met if complete else True
    cost = sum(v.cost_nanos for v in votes) + (first.cost_nanos if first is not None else 0)
    return Consensus(
        panel=panel, rule=cfg.rule, action=decided, score=outcome.supports.get(action, 0.0),
        agreement=outcome.agreement, threshold=cfg.threshold, quorum_met=quorum,
        reason=f"tuned cascade: {described['why'] or outcome.reason}", votes=votes, cost_nanos=cost,
        latency_s=time.monotonic() - started, early_exit=not complete, notional=notional,
        escalated_from=first, supports=outcome.supports, cascade=described)


def seed(record: SequentialRecord, consensus_records: Iterable[Mapping[str, Any]], panel: str) -> int:
    """Rebuild a tuned panel's record from earlier decisions' `final` blocks (oldest first); how many.

    Only blocks of this panel decided by the tuned cascade count. A block's answered members give
    their costs; a complete one (every member voted or failed) its answer set; its `cascade` block
    the stop's risk and, for an audited stop, what the audit found; its cheap panel's lean with the
    outcome when that outcome was the panel's own.
    """
    seen = 0
    for block in consensus_records:
        try:
            filed = _parse(block, panel)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            filed = None  # a record this version cannot read teaches nothing, and stops nothing
        if filed is None:
            continue
        answers, costs, stop, complete, lean, outcome = filed
        learn(record, answers, costs, stop, complete=complete, lean=lean,
              decided=outcome or str(stop.action), exact_outcome=outcome is not None)
        seen += 1
    return seen


def _parse(block: Mapping[str, Any], panel: str) -> tuple[dict[str, Ballot], dict[str, int], Step, bool,
                                                          float | None, str | None] | None:
    """One panel block read back: answers and costs of the members asked, the stop, the lean, the outcome."""
    info = block.get("cascade") if isinstance(block, Mapping) else None
    if block.get("panel") != panel or not isinstance(info, Mapping) or info.get("kind") != "tuned":
        return None
    asked_models = set(info.get("asked", ()))
    answers: dict[str, Ballot] = {}
    costs: dict[str, int] = {}
    for v in block.get("votes", ()):
        if v.get("model") not in asked_models:
            continue
        answers[v["model"]] = _ballot(v)
        costs[v["model"]] = usd_to_nanos(str(v.get("cost_usd", "0")))
    cheap = block.get("escalated_from")
    lean = lean_of([_ballot(v) for v in cheap.get("votes", ())]) if isinstance(cheap, Mapping) else None
    stop = Step(action=str(block["action"]), risk=float(info.get("risk", 0.0)), audit=bool(info.get("audit")),
                kind=str(info.get("stop_kind", "")))
    outcome = info.get("outcome")
    complete = len(answers) == int(info["members"])
    return answers, costs, stop, complete, lean, None if outcome is None else str(outcome)


def _ballot(vote: Mapping[str, Any]) -> Ballot:
    action = vote.get("action") if vote.get("status") == "vote" else None
    if action is not None and action not in ACTIONS:
        raise ValueError(f"not an action: {action!r}")
    return Ballot(float(vote["weight"]), action, float(vote.get("confidence", 0.0)))


# Decision records read back on start: enough for a record of complete sets and the audits,
# bounded so that a long audit trail does not slow every start.
SEED_RECORDS = 5000


def seed_engine(engine: ConsensusEngine, settings: Settings, payloads: Iterable[Mapping[str, Any]]
                ) -> dict[str, int]:
    """Seed every tuned panel from decision records (oldest first): their `final` blocks; how many each."""
    tuned = [name for name, cfg in settings.panels.items() if cfg.cascade == "tuned"]
    finals = [p["final"] for p in payloads if isinstance(p.get("final"), Mapping)]
    return {name: seed(engine.tuned.setdefault(name, SequentialRecord()), finals, name) for name in tuned}


def any_tuned(settings: Settings) -> bool:
    return any(cfg.cascade == "tuned" for cfg in settings.panels.values())


__all__ = ["SEED_RECORDS", "any_tuned", "decide_tuned", "seed", "seed_engine"]
