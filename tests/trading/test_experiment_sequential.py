"""The sequential test: anytime-valid bounds, its error control by simulation, and its verdict states."""

from __future__ import annotations

import random

import pytest

from lyra.trading import sequential
from lyra.trading.sequential import StopRule, radius, verdict

RUNS = 400
HORIZON = 1500  # samples per arm each simulated experiment may take


def run_until_verdict(rng: random.Random, means: list[float], rule: StopRule, *, every: int = 1) -> str | None:
    """One simulated experiment: sample the active arms in turn, look every `every` rounds; the winner."""
    samples: dict[str, list[float]] = {f"arm{i}": [] for i in range(len(means))}
    active = list(samples)
    for round_ in range(HORIZON):
        for name in active:
            samples[name].append(float(rng.random() < means[int(name[3:])]))
        if round_ % every:
            continue
        found = verdict(samples, rule)
        if found.state == "winner":
            return found.leader
        if found.state == "no_difference":
            return None
        active = found.active
    return None


def test_with_equal_arms_the_share_of_wrong_winners_is_at_most_delta() -> None:
    rng = random.Random(18)
    rule = StopRule(delta=0.05, min_samples=10, indifference=0.01)
    winners = [run_until_verdict(rng, [0.5, 0.5], rule) for _ in range(RUNS // 4)]
    # Any winner between equal arms is a wrong one; each run looked after every single round.
    assert sum(w is not None for w in winners) / len(winners) <= 0.05


def test_a_naive_bound_that_ignores_peeking_names_wrong_winners_far_more_often(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The simulation has the power to catch a broken test: a fixed-sample 80% bound (right for one
    # look), looked at after every round, names a winner between equal arms far over delta of the time.
    monkeypatch.setattr(sequential, "radius", lambda n, arms, delta: 0.64 / n**0.5 if n else float("inf"))
    rng = random.Random(18)
    rule = StopRule(delta=0.05, min_samples=10, indifference=0.01)
    winners = [run_until_verdict(rng, [0.5, 0.5], rule) for _ in range(30)]
    assert sum(w is not None for w in winners) / len(winners) > 0.25


def test_with_three_arms_and_a_gap_the_best_wins_and_a_wrong_winner_is_rare() -> None:
    rng = random.Random(4)
    rule = StopRule(delta=0.10, min_samples=5, indifference=0.001)
    winners = [run_until_verdict(rng, [0.7, 0.5, 0.5], rule, every=5) for _ in range(20)]
    assert sum(w is not None and w != "arm0" for w in winners) / len(winners) <= 0.10
    assert winners.count("arm0") >= 15


def test_with_a_clear_gap_it_finds_the_winner() -> None:
    rng = random.Random(7)
    rule = StopRule(delta=0.05, min_samples=10)
    winners = [run_until_verdict(rng, [0.35, 0.75], rule) for _ in range(50)]
    assert winners.count("arm1") == 50


def test_the_states_collecting_leader_winner_and_no_difference() -> None:
    rule = StopRule(delta=0.05, min_samples=3, indifference=0.3)
    assert verdict({"a": [1.0, 1.0], "b": [0.0, 0.0, 0.0]}, rule).state == "collecting"
    early = verdict({"a": [1.0, 1.0, 0.0, 1.0], "b": [0.0, 1.0, 0.0, 0.0]}, rule)
    assert early.state == "leader" and early.leader == "a" and early.active == ["a", "b"]
    won = verdict({"a": [1.0] * 60, "b": [0.0] * 60}, rule)
    assert won.state == "winner" and won.leader == "a" and won.active == ["a"]
    flat = verdict({"a": [1.0, 0.0] * 2000, "b": [0.0, 1.0] * 2000}, rule)
    assert flat.state == "no_difference" and flat.leader is None


def test_bounds_widen_with_more_arms_and_shrink_with_samples() -> None:
    assert radius(100, 3, 0.05) > radius(100, 2, 0.05) > radius(400, 2, 0.05)
    assert radius(0, 2, 0.05) == float("inf")
    with pytest.raises(ValueError, match="delta"):
        StopRule(delta=0)
