"""Aggregation rules, with the origin document's panel weights."""

from __future__ import annotations

import pytest

from lyra.consensus.aggregation import RULES, Ballot, agreement, settled

ORIGIN = [0.30, 0.25, 0.20, 0.15, 0.10]  # opus, gpt-4o, sonnet, deepseek-v3, grok-4


def ballots(*actions: str | None, confidence: float = 1.0) -> list[Ballot]:
    return [Ballot(w, a, confidence) for w, a in zip(ORIGIN, actions, strict=True)]  # type: ignore[arg-type]


def decide(rule: str, bs: list[Ballot], threshold: float = 0.75, quorum: float = 0.6) -> tuple[str, float]:
    outcome = RULES[rule].decide(bs, threshold=threshold, quorum=quorum)
    return outcome.action, round(outcome.score, 4)


def test_weighted_vote_executes_at_threshold_and_holds_below() -> None:
    assert decide("weighted", ballots("BUY", "BUY", "BUY", "SELL", "SELL")) == ("BUY", 0.75)
    assert decide("weighted", ballots("BUY", "BUY", "SELL", "BUY", "SELL")) == ("HOLD", 0.70)
    assert decide("weighted", ballots("SELL", "SELL", "SELL", "SELL", "HOLD")) == ("SELL", 0.90)


def test_abstentions_never_count_as_votes_for_an_action() -> None:
    # Opus abstains: BUY has 0.70 of the panel's weight, not 0.70/0.70.
    assert decide("weighted", ballots(None, "BUY", "BUY", "BUY", "BUY")) == ("HOLD", 0.70)


def test_no_quorum_holds() -> None:
    outcome = RULES["weighted"].decide(ballots("BUY", "BUY", None, None, None), threshold=0.5, quorum=0.6)
    assert outcome.action == "HOLD" and not outcome.quorum_met


def test_confidence_rule_scales_by_confidence() -> None:
    assert decide("confidence", ballots("BUY", "BUY", "BUY", "BUY", "BUY", confidence=0.8)) == ("BUY", 0.8)
    assert decide("confidence", ballots("BUY", "BUY", "BUY", "BUY", "BUY", confidence=0.7)) == ("HOLD", 0.7)


def test_supermajority_counts_valid_votes_with_quorum() -> None:
    assert decide("supermajority", ballots("BUY", "BUY", "BUY", None, None), threshold=0.66) == ("BUY", 1.0)
    assert decide("supermajority", ballots("BUY", None, None, None, None), threshold=0.66)[0] == "HOLD"


def test_agreement_is_one_minus_normalised_entropy() -> None:
    assert agreement(ballots("BUY", "BUY", "BUY", "BUY", "BUY")) == pytest.approx(1.0)
    even = [Ballot(1, "BUY"), Ballot(1, "SELL"), Ballot(1, "HOLD")]
    assert agreement(even) == pytest.approx(0.0)


def test_settled_only_when_pending_members_cannot_change_the_outcome() -> None:
    rule = RULES["weighted"]
    done = [Ballot(0.30, "BUY"), Ballot(0.25, "BUY"), Ballot(0.20, "BUY")]
    assert settled(rule, done, [0.15, 0.10], threshold=0.75, quorum=0.6) is not None
    assert settled(rule, done[:2], [0.20, 0.15, 0.10], threshold=0.75, quorum=0.6) is None
