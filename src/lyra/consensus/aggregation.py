"""Aggregation rules for a panel's votes: weighted, confidence-weighted, supermajority."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lyra.consensus.decision import ACTIONS, Action


@dataclass(frozen=True, slots=True)
class Ballot:
    """One member's weight and, if it voted, its action and confidence."""

    weight: float
    action: Action | None = None  # None: abstained, failed or dropped
    confidence: float = 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the votes decide."""

    action: Action
    score: float  # support of the deciding action, 0..1
    agreement: float  # 1 - normalised entropy of the valid votes
    quorum_met: bool
    supports: dict[str, float]
    reason: str


class AggregationRule(Protocol):
    """Turns ballots into an outcome; `pending` ballots have not answered yet."""

    name: str

    def decide(self, ballots: Sequence[Ballot], *, threshold: float, quorum: float) -> Outcome: ...


def agreement(ballots: Sequence[Ballot]) -> float:
    """1 - normalised Shannon entropy of the weighted valid votes (1 = unanimous)."""
    weights = {a: sum(b.weight for b in ballots if b.action == a) for a in ACTIONS}
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    entropy = -sum((w / total) * math.log(w / total) for w in weights.values() if w > 0)
    return 1.0 - entropy / math.log(len(ACTIONS))


def _quorum(ballots: Sequence[Ballot], quorum: float) -> bool:
    total = sum(b.weight for b in ballots)
    voted = sum(b.weight for b in ballots if b.action is not None)
    return total > 0 and voted / total >= quorum - 1e-12


def _finish(supports: dict[str, float], ballots: Sequence[Ballot], threshold: float, quorum: float,
            what: str) -> Outcome:
    met = _quorum(ballots, quorum)
    agree = agreement(ballots)
    leader = max(("BUY", "SELL"), key=lambda a: supports[a])
    if not met:
        return Outcome("HOLD", supports["HOLD"], agree, False, supports, "no quorum: hold")
    if supports[leader] >= threshold - 1e-12 and supports[leader] > supports["HOLD"]:
        return Outcome(leader, supports[leader], agree, True, supports,  # type: ignore[arg-type]
                       f"{what} for {leader} {supports[leader]:.2f} >= {threshold:.2f}")
    return Outcome("HOLD", supports[leader], agree, True, supports,
                   f"{what} for {leader} {supports[leader]:.2f} < {threshold:.2f}: hold")


class WeightedVote:
    """The origin document's rule: weight share of the members asked, execute at >= threshold."""

    name = "weighted"

    def decide(self, ballots: Sequence[Ballot], *, threshold: float, quorum: float) -> Outcome:
        total = sum(b.weight for b in ballots) or 1.0
        supports: dict[str, float] = {
            a: sum(b.weight for b in ballots if b.action == a) / total for a in ACTIONS
        }
        return _finish(supports, ballots, threshold, quorum, "weighted vote")


class ConfidenceVote:
    """Weights scaled by each member's stated confidence."""

    name = "confidence"

    def decide(self, ballots: Sequence[Ballot], *, threshold: float, quorum: float) -> Outcome:
        total = sum(b.weight for b in ballots) or 1.0
        supports: dict[str, float] = {
            a: sum(b.weight * b.confidence for b in ballots if b.action == a) / total for a in ACTIONS
        }
        return _finish(supports, ballots, threshold, quorum, "confidence-weighted vote")


class Supermajority:
    """A share of the valid votes (not of the members asked), with a quorum of members voting."""

    name = "supermajority"

    def decide(self, ballots: Sequence[Ballot], *, threshold: float, quorum: float) -> Outcome:
        voted = sum(b.weight for b in ballots if b.action is not None) or 1.0
        supports: dict[str, float] = {
            a: sum(b.weight for b in ballots if b.action == a) / voted for a in ACTIONS
        }
        return _finish(supports, ballots, threshold, quorum, "supermajority")


RULES: dict[str, AggregationRule] = {r.name: r for r in (WeightedVote(), ConfidenceVote(), Supermajority())}


def settled(rule: AggregationRule, done: Sequence[Ballot], pending: Sequence[float], *,
            threshold: float, quorum: float) -> Outcome | None:
    """The outcome if no answer still pending can change it, else None.

    Supports only grow with added votes of one action, so the extremes (every pending member
    voting the same way at full confidence, or none voting) bound every mix of answers.
    """
    if not pending:
        return rule.decide(done, threshold=threshold, quorum=quorum)
    outcomes = []
    for action in (*ACTIONS, None):
        extra = [Ballot(w, action, 1.0) for w in pending]
        outcomes.append(rule.decide([*done, *extra], threshold=threshold, quorum=quorum))
    first = outcomes[0].action
    if all(o.action == first for o in outcomes):
        return rule.decide([*done, *(Ballot(w) for w in pending)], threshold=threshold, quorum=quorum)
    return None
