"""Routing advice: models slower, costlier or failing more than the median of their tier."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from lyra.analytics.report import Advice, ModelStats, usd


@dataclass(frozen=True, slots=True, kw_only=True)
class AdviceRules:
    """How far past its tier's median a model must be, and how many requests it needs, to be named.

    `factor` applies to p50 latency and cost per request; an error rate must pass both
    `factor` times the median and the median plus `error_margin`.
    """

    factor: float = 1.5
    error_margin: float = 0.02
    min_requests: int = 5


def routing_advice(models: Sequence[ModelStats], rules: AdviceRules | None = None) -> list[Advice]:
    """One Advice per model that does worse than its tier's peers (tiers with two or more models).

    Only requests that reached a model count: a budget cap's refusal is no sign of the model's health,
    so it neither makes a model "fail more" nor makes up a sample.
    """
    rules = rules or AdviceRules()
    tiers: dict[str, list[ModelStats]] = defaultdict(list)
    for m in models:
        if m.reached >= rules.min_requests:
            tiers[m.tier].append(m)
    found: list[Advice] = []
    for tier, peers in sorted(tiers.items()):
        if len(peers) < 2:
            continue
        for m in peers:
            reasons = _reasons(m, peers, rules)
            if reasons:
                found.append(Advice(m.model, tier, tuple(reasons)))
    return found


def _reasons(m: ModelStats, peers: Sequence[ModelStats], rules: AdviceRules) -> list[str]:
    reasons: list[str] = []
    latencies = [p.p50_latency_ms for p in peers if p.p50_latency_ms is not None]
    if m.p50_latency_ms is not None and latencies:
        median = statistics.median(latencies)
        if median > 0 and m.p50_latency_ms > rules.factor * median:
            reasons.append(f"slower: p50 {m.p50_latency_ms:.0f} ms against the {m.tier} median of "
                           f"{median:.0f} ms")
    costs = [p.cost_per_request_nanos for p in peers]
    median_cost = statistics.median(costs)
    if median_cost > 0 and m.cost_per_request_nanos > rules.factor * median_cost:
        reasons.append(f"costlier: ${usd(m.cost_per_request_nanos):.6f} per request against the {m.tier} "
                       f"median of ${usd(int(median_cost)):.6f}")
    median_err = statistics.median(p.error_rate for p in peers)
    if m.error_rate > max(rules.factor * median_err, median_err + rules.error_margin):
        reasons.append(f"failing more: {m.error_rate:.1%} of the requests it was sent failed against the "
                       f"{m.tier} median of {median_err:.1%} (budget refusals not counted)")
    return reasons
