"""The desk's alerts for a report, computed in code: caps nearly or fully used, models failing,
open circuit breakers, budget refusals and halted paper accounts. Each is one plain sentence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lyra.analytics.accounts import AccountLine
from lyra.analytics.report import Cap, ModelStats
from lyra.money import format_usd


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRules:
    """When a report raises an alert."""

    cap_warning: float = 0.9  # share of a cap spent or held
    error_rate: float = 0.10  # a model's failures over the requests it was sent
    min_requests: int = 10  # fewer requests than this say nothing about an error rate


def _amount(value: int, unit: str) -> str:
    return format_usd(value) if unit == "usd" else f"{value:,} tokens"


def desk_alerts(*, caps: Sequence[Cap], models: Sequence[ModelStats], breakers: Mapping[str, str],
                accounts: Sequence[AccountLine], rules: AlertRules | None = None) -> list[str]:
    """Every alert the report's numbers call for, most pressing first."""
    rules = rules or AlertRules()
    found: list[str] = []
    for cap in caps:
        used = cap.spent + cap.reserved
        of = f"{_amount(used, cap.unit)} of {_amount(cap.limit, cap.unit)}"
        if cap.limit and used >= cap.limit:
            found.append(f"cap {cap.name} is used up: {of}")
        elif cap.limit and used >= rules.cap_warning * cap.limit:
            found.append(f"cap {cap.name} at {used / cap.limit:.0%}: {of}")
    found += [f"circuit {phase} for {model}" for model, phase in sorted(breakers.items())
              if phase != "closed"]
    for m in models:
        if m.reached >= rules.min_requests and m.error_rate > rules.error_rate:
            found.append(f"model {m.model} failing: {m.failures} of the {m.reached} requests it was sent "
                         f"({m.error_rate:.0%})")
    refused = sum(m.refused for m in models)
    if refused:
        plural = "s" if refused != 1 else ""
        found.append(f"{refused} request{plural} refused by budget caps (no model's failure)")
    found += [f"paper account {a.name} halted" for a in accounts if a.results and a.results.get("halted")]
    return found
