"""Calibration of stated confidence against outcomes, and what a panel's correlated errors are worth.

Models state confidence that is not a probability: a stated 0.8 may be right half the time.
A `Calibrator` maps a model's stated probability that the price rises to the frequency seen
in its record, by isotonic regression (pool-adjacent-violators) or a Platt fit on the log-odds;
with fewer than `min_samples` outcomes it keeps the stated value. `WalkForward` fits it at
decision bar t only on outcomes whose horizon had closed by t. The panel's calibrated vote adds
the members' calibrated log-odds, weighted, and scales them to the effective number of
independent voters: five models whose errors agree are worth fewer than five.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Method = Literal["isotonic", "platt"]
_EPS = 1e-4  # calibrated probabilities are kept off 0 and 1, so that log-odds stay finite


def clamp(p: float) -> float:
    """A probability kept inside [_EPS, 1 - _EPS]."""
    return min(1.0 - _EPS, max(_EPS, p))


def logit(p: float) -> float:
    p = clamp(p)
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@dataclass(frozen=True, slots=True)
class Isotonic:
    """A non-decreasing step function: block upper edges `xs` and their fitted values `ys`."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    ns: tuple[int, ...] = ()  # how many points each block pooled

    def __call__(self, x: float) -> float:
        """The fitted value of the first block whose upper edge is at or above x (the last past them)."""
        return self.block(x)[0]

    def block(self, x: float) -> tuple[float, int]:
        """The fitted value at x and how many points stand behind it."""
        counts = self.ns or (0,) * len(self.xs)
        for edge, value, n in zip(self.xs, self.ys, counts, strict=True):
            if x <= edge:
                return value, n
        return self.ys[-1], counts[-1]


def pav(xs: Sequence[float], ys: Sequence[float]) -> Isotonic:
    """Pool-adjacent-violators: the least-squares non-decreasing fit of ys ordered by xs.

    Equal xs are pooled first (they must get one value); then adjacent blocks whose means fall
    are merged until the means rise.
    """
    if len(xs) != len(ys) or not xs:
        raise ValueError("pav needs as many outcomes as inputs, at least one")
    pairs = sorted(zip(xs, ys, strict=True))
    blocks: list[list[float]] = []  # [upper x, sum of y, count]
    for x, y in pairs:
        if blocks and blocks[-1][0] == x:
            blocks[-1][1] += y
            blocks[-1][2] += 1
        else:
            blocks.append([x, float(y), 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            top = blocks.pop()
            blocks[-1] = [top[0], blocks[-1][1] + top[1], blocks[-1][2] + top[2]]
    return Isotonic(tuple(b[0] for b in blocks), tuple(b[1] / b[2] for b in blocks),
                    tuple(int(b[2]) for b in blocks))


@dataclass(frozen=True, slots=True)
class Platt:
    """p = sigmoid(a * logit(x) + b), fitted by Newton's method on the log-loss."""

    a: float
    b: float

    def __call__(self, x: float) -> float:
        return sigmoid(self.a * logit(x) + self.b)


def platt(xs: Sequence[float], ys: Sequence[float], *, iterations: int = 50) -> Platt:
    """A Platt fit, with the targets smoothed as Platt did so that separable data stays finite."""
    if len(xs) != len(ys) or not xs:
        raise ValueError("platt needs as many outcomes as inputs, at least one")
    positives = sum(1 for y in ys if y > 0.5)
    hi, lo = (positives + 1) / (positives + 2), 1 / (len(ys) - positives + 2)
    targets = [hi if y > 0.5 else lo for y in ys]
    zs = [logit(x) for x in xs]
    a, b = 1.0, 0.0
    for _ in range(iterations):
        g_a = g_b = h_aa = h_ab = h_bb = 0.0
        for z, t in zip(zs, targets, strict=True):
            p = sigmoid(a * z + b)
            d, w = p - t, max(p * (1 - p), 1e-12)
            g_a, g_b = g_a + d * z, g_b + d
            h_aa, h_ab, h_bb = h_aa + w * z * z + 1e-9, h_ab + w * z, h_bb + w + 1e-9
        det = h_aa * h_bb - h_ab * h_ab
        if abs(det) < 1e-15:
            break
        step_a, step_b = (h_bb * g_a - h_ab * g_b) / det, (h_aa * g_b - h_ab * g_a) / det
        a, b = a - step_a, b - step_b
        if abs(step_a) + abs(step_b) < 1e-10:
            break
    return Platt(a, b)


@dataclass(frozen=True, slots=True)
class Calibrator:
    """Stated probability -> calibrated probability, or the stated one while the record is short."""

    method: Method = "isotonic"
    min_samples: int = 20
    fit: Isotonic | Platt | None = None
    samples: int = 0

    @classmethod
    def learn(cls, xs: Sequence[float], ys: Sequence[float], *, method: Method = "isotonic",
              min_samples: int = 20) -> Calibrator:
        """Fit on (stated, outcome) pairs; with fewer than `min_samples` of them, fit nothing."""
        if len(xs) < max(1, min_samples):
            return cls(method, min_samples, None, len(xs))
        fitted = pav(xs, ys) if method == "isotonic" else platt(xs, ys)
        return cls(method, min_samples, fitted, len(xs))

    @property
    def active(self) -> bool:
        return self.fit is not None

    def __call__(self, stated: float) -> float:
        return clamp(self.fit(stated) if self.fit is not None else stated)


@dataclass(slots=True)
class WalkForward:
    """One model's (stated, outcome) record, each outcome usable only once its horizon has closed.

    `observe(i, stated, up, closes_at)` files a vote cast at bar i whose outcome is known at
    bar `closes_at`; `at(t)` fits on the outcomes with `closes_at <= t` and nothing else.
    """

    method: Method = "isotonic"
    min_samples: int = 20
    record: list[tuple[int, float, float]] = field(default_factory=list)  # (closes_at, stated, up)

    def observe(self, stated: float, up: float, *, closes_at: int) -> None:
        self.record.append((closes_at, stated, up))

    def at(self, t: int) -> Calibrator:
        known = [(x, y) for closes, x, y in self.record if closes <= t]
        return Calibrator.learn([x for x, _ in known], [y for _, y in known], method=self.method,
                                min_samples=self.min_samples)


def wilson_lower(hits: float, n: int, z: float = 1.0) -> float:
    """The lower end of the Wilson interval of a share (z = 1: about one standard error below it)."""
    if n <= 0:
        return 0.0
    share = min(1.0, max(0.0, hits / n))
    centre = share + z * z / (2 * n)
    spread = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def brier(ps: Sequence[float], ys: Sequence[float]) -> float | None:
    """Mean squared error of the probabilities (0 is perfect, 0.25 a coin toss); None when empty."""
    if not ps:
        return None
    return sum((p - y) ** 2 for p, y in zip(ps, ys, strict=True)) / len(ps)


@dataclass(frozen=True, slots=True)
class Bin:
    """One bin of a reliability curve: its range, how many fell in, mean stated, observed rate."""

    lo: float
    hi: float
    count: int
    mean_p: float | None
    observed: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"lo": self.lo, "hi": self.hi, "count": self.count,
                "mean_p": None if self.mean_p is None else round(self.mean_p, 4),
                "observed": None if self.observed is None else round(self.observed, 4)}


def reliability(ps: Sequence[float], ys: Sequence[float], *, bins: int = 10) -> list[Bin]:
    """Equal-width bins over [0, 1] (the last includes 1): mean probability and outcome rate in each."""
    sums = [[0, 0.0, 0.0] for _ in range(bins)]
    for p, y in zip(ps, ys, strict=True):
        k = min(bins - 1, max(0, int(p * bins)))
        sums[k][0] += 1
        sums[k][1] += p
        sums[k][2] += y
    return [Bin(k / bins, (k + 1) / bins, int(n), s / n if n else None, o / n if n else None)
            for k, (n, s, o) in enumerate(sums)]


def ece(ps: Sequence[float], ys: Sequence[float], *, bins: int = 10) -> float | None:
    """Expected calibration error: the count-weighted gap between mean probability and rate per bin."""
    if not ps:
        return None
    total = len(ps)
    return sum(b.count / total * abs((b.mean_p or 0.0) - (b.observed or 0.0))
               for b in reliability(ps, ys, bins=bins) if b.count)


def error_agreement(answers_a: Sequence[str | None], answers_b: Sequence[str | None],
                    truth: Sequence[str]) -> tuple[float | None, int]:
    """Of the decisions both got wrong, the share where they gave the same wrong answer, and how many."""
    both = [(a, b) for a, b, t in zip(answers_a, answers_b, truth, strict=True)
            if a is not None and b is not None and a != t and b != t]
    if not both:
        return None, 0
    return sum(1 for a, b in both if a == b) / len(both), len(both)


def error_correlation(errors_a: Sequence[float], errors_b: Sequence[float]) -> float | None:
    """Pearson correlation of two 0/1 error series; None when either never varies."""
    n = len(errors_a)
    if n < 2 or n != len(errors_b):
        return None
    ma, mb = sum(errors_a) / n, sum(errors_b) / n
    cov = sum((a - ma) * (b - mb) for a, b in zip(errors_a, errors_b, strict=True))
    va = sum((a - ma) ** 2 for a in errors_a)
    vb = sum((b - mb) ** 2 for b in errors_b)
    if va <= 0 or vb <= 0:
        return None
    return cov / math.sqrt(va * vb)


def effective_voters(n: int, rho: float | None) -> float:
    """n / (1 + (n - 1) * rho): n voters' with mean error correlation rho worth in independent voters."""
    if n <= 1 or rho is None:
        return float(n)
    rho = min(1.0, max(0.0, rho))  # negatively correlated errors are not credited beyond n
    return n / (1.0 + (n - 1) * rho)


def calibrated_vote(probabilities: Sequence[float], weights: Sequence[float], *,
                    n_eff: float | None = None) -> float:
    """The panel's probability of a rise: weighted calibrated log-odds, sigmoid.

    Weights are normalised and the sum scaled to `n_eff` (default: the number of voters), so that
    n voters worth n_eff independent ones move the log-odds as far as n_eff independent ones would.
    """
    if len(probabilities) != len(weights):
        raise ValueError("a calibrated vote needs one weight per probability")
    total = sum(weights)
    if not probabilities or total <= 0:
        return 0.5
    scale = (n_eff if n_eff is not None else len(probabilities)) / total
    return sigmoid(scale * sum(w * logit(p) for p, w in zip(probabilities, weights, strict=True)))


def action_of(p_up: float, margin: float) -> Literal["BUY", "SELL", "HOLD"]:
    """BUY when the probability of a rise is at least 0.5 + margin, SELL at most 0.5 - margin, else HOLD."""
    if p_up >= 0.5 + margin - 1e-12:
        return "BUY"
    if p_up <= 0.5 - margin + 1e-12:
        return "SELL"
    return "HOLD"


__all__ = ["Bin", "Calibrator", "Isotonic", "Method", "Platt", "WalkForward", "action_of", "brier",
           "calibrated_vote", "clamp", "ece", "effective_voters", "error_agreement", "error_correlation",
           "logit", "pav", "platt", "reliability", "sigmoid", "wilson_lower"]
