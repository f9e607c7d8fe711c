"""Spend forecast: the day's burn rate per tier, and the early step-down signal it gives the budget."""

from __future__ import annotations

from datetime import UTC, datetime

from lyra.budget.forecast import SpendForecast, forecast_day
from lyra.ledger.records import SpendTotals

NOON = datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2026, 3, 2, tzinfo=UTC).timestamp()


def test_half_a_day_at_a_steady_rate_doubles() -> None:
    [premium, fast] = forecast_day({"premium": 30_000_000, "fast": 1_000_000},
                                   {"premium": 50_000_000, "fast": 20_000_000}, day_start=MIDNIGHT, now=NOON)
    assert premium.forecast_nanos == 60_000_000 and premium.over
    assert fast.forecast_nanos == 2_000_000 and not fast.over


def test_the_first_minutes_do_not_extrapolate_one_call_to_a_fortune() -> None:
    [early] = forecast_day({"premium": 100_000}, {"premium": 50_000_000}, day_start=MIDNIGHT, now=MIDNIGHT + 5)
    assert not early.over  # $0.10 in 5 s would be $1,728 a day; with the 15-minute floor it is $9.60


class Ledger:
    def __init__(self, by_tier: dict[str, int]) -> None:
        self.by_tier = by_tier
        self.asked: list[tuple[float, float]] = []

    def spend_between(self, start_ts: float, end_ts: float) -> SpendTotals:
        self.asked.append((start_ts, end_ts))
        return SpendTotals(sum(self.by_tier.values()), dict(self.by_tier), {}, {}, {})


def test_the_hook_reads_the_ledger_since_the_day_start_and_says_when_to_step_down() -> None:
    ledger = Ledger({"premium": 30_000_000})
    now = [NOON]
    forecast = SpendForecast(ledger, {"premium": 50_000_000, "advanced": 40_000_000}, clock=lambda: now[0])
    assert forecast.over_pace("premium") and not forecast.over_pace("advanced")
    assert ledger.asked == [(MIDNIGHT, NOON)]
    now[0] += 10
    forecast.over_pace("premium")
    assert len(ledger.asked) == 1  # cached within refresh_s
    ledger.by_tier["premium"] = 10_000_000
    now[0] += 60
    assert not forecast.over_pace("premium")
