"""A sequential best-arm test with anytime-valid confidence bounds: P(wrong winner) <= delta.

Each arm's samples are rewards in [0, 1]. Its bound after n samples is Hoeffding's at the
level delta_n = delta / (K * n * (n + 1)): the sum over every n and every one of the K arms is
delta, so with probability at least 1 - delta *every* bound holds at *every* sample count at
once. That is what makes the test safe to look at after each outcome (no peeking penalty), and
what makes successive elimination correct: the best arm's bound is never below another arm's
lower bound, so it is never eliminated, and a declared winner is wrong with probability at most
delta. "No difference" is the same kind of statement: the surviving arms' means lie within
`indifference` of each other (every bound holding), so more samples would not separate them
by a margin worth having.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

VerdictState = Literal["collecting", "leader", "winner", "no_difference"]


@dataclass(frozen=True, slots=True)
class ArmStats:
    """One arm's samples so far: count, mean reward and its anytime-valid bounds."""

    name: str
    n: int
    mean: float | None
    lower: float
    upper: float
    eliminated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"arm": self.name, "n": self.n, "mean": _round(self.mean), "lower": _round(self.lower),
                "upper": _round(self.upper), "eliminated": self.eliminated}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the test says now: its state, the leading (or winning) arm, and every arm's bounds."""

    state: VerdictState
    leader: str | None
    arms: tuple[ArmStats, ...]
    delta: float
    reason: str

    @property
    def active(self) -> list[str]:
        """The arms not eliminated: the ones still worth sampling."""
        return [a.name for a in self.arms if not a.eliminated]

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "leader": self.leader, "delta": self.delta, "reason": self.reason,
                "arms": [a.to_dict() for a in self.arms]}


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRule:
    """The test's parameters: error level, the samples each arm needs first, the indifference margin."""

    delta: float = 0.05
    min_samples: int = 10
    indifference: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {self.min_samples}")


def radius(n: int, arms: int, delta: float) -> float:
    """Hoeffding's half-width for n samples in [0, 1] at level delta / (arms * n * (n + 1)), both sides."""
    if n <= 0:
        return math.inf
    return math.sqrt(math.log(2 * arms * n * (n + 1) / delta) / (2 * n))


def verdict(samples: Mapping[str, Sequence[float]], rule: StopRule) -> Verdict:
    """The test's verdict on the rewards seen so far per arm (order as given; rewards in [0, 1])."""
    names = list(samples)
    k = max(2, len(names))
    stats: list[ArmStats] = []
    for name in names:
        rewards = samples[name]
        n = len(rewards)
        mean = math.fsum(rewards) / n if n else None
        r = radius(n, k, rule.delta)
        low = max(0.0, mean - r) if mean is not None else 0.0
        high = min(1.0, mean + r) if mean is not None else 1.0
        stats.append(ArmStats(name, n, mean, low, high))
    best_lower = max((s.lower for s in stats), default=0.0)
    # An arm whose upper bound is below another's lower bound is worse (every bound holding): out.
    stats = [ArmStats(s.name, s.n, s.mean, s.lower, s.upper,
                      eliminated=s.upper < best_lower)
             for s in stats]
    alive = [s for s in stats if not s.eliminated]
    scored = [s for s in stats if s.mean is not None]
    leader = max(scored, key=lambda s: (s.mean or 0.0, -names.index(s.name))).name if scored else None
    few = [s.name for s in stats if s.n < rule.min_samples]
    if few:
        return Verdict("collecting", leader, tuple(stats), rule.delta,
                       f"{', '.join(few)} below {rule.min_samples} outcomes")
    if len(alive) == 1 and len(stats) > 1:
        won = alive[0]
        return Verdict("winner", won.name, tuple(stats), rule.delta,
                       f"{won.name}'s lower bound {won.lower:.3f} is above every other arm's upper bound; "
                       f"wrong with probability at most {rule.delta:g}")
    spread = max(s.upper for s in alive) - min(s.lower for s in alive)
    if spread <= rule.indifference:
        return Verdict("no_difference", None, tuple(stats), rule.delta,
                       f"the arms left are within {rule.indifference:g} of each other "
                       f"(bounds span {spread:.3f}), with probability at least {1 - rule.delta:g}")
    return Verdict("leader", leader, tuple(stats), rule.delta,
                   f"{leader} leads; {len(alive)} arms still overlap "
                   f"(not significant at delta {rule.delta:g})")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


__all__ = ["ArmStats", "StopRule", "Verdict", "VerdictState", "radius", "verdict"]
