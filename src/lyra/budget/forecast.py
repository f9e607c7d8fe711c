"""End-of-day spend forecast per tier from the day's burn rate, to step down before a cap is hit.

The forecast is linear: what a tier has spent since the budget day started, divided by the time
elapsed (at least `min_elapsed_s`, so that the first minutes of a day do not extrapolate one call
to a fortune), times the length of the day. `SpendForecast.over_pace(tier)` is the hook a budget
calls when it plans a request: True when the tier is on course to pass its cap today.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from lyra.days import DAY_S, budget_day, day_bounds
from lyra.ledger.records import SpendTotals

DAY_SECONDS = float(DAY_S)


@dataclass(frozen=True, slots=True)
class TierForecast:
    """One tier's spend so far, its cap and where the day's burn rate takes it by the day's end."""

    tier: str
    spent_nanos: int
    cap_nanos: int
    forecast_nanos: int

    @property
    def over(self) -> bool:
        """True when the forecast passes the cap."""
        return self.forecast_nanos > self.cap_nanos


def forecast_day(spent_by_tier: Mapping[str, int], caps: Mapping[str, int], *, day_start: float, now: float,
                 day_seconds: float = DAY_SECONDS, min_elapsed_s: float = 900.0) -> list[TierForecast]:
    """Each capped tier's forecast end-of-day spend at the burn rate since `day_start`."""
    elapsed = max(now - day_start, min_elapsed_s)
    remaining = max(0.0, day_start + day_seconds - now)
    out = []
    for tier, cap in caps.items():
        spent = int(spent_by_tier.get(tier, 0))
        forecast = spent + round(spent / elapsed * remaining)
        out.append(TierForecast(tier, spent, int(cap), forecast))
    return out


class SpendSource(Protocol):
    """Where the day's billed spend comes from (the ledger)."""

    def spend_between(self, start_ts: float, end_ts: float) -> SpendTotals: ...


class SpendForecast:
    """Forecasts from the ledger, refreshed at most every `refresh_s`, for a budget to consult."""

    def __init__(self, source: SpendSource, tier_caps: Mapping[str, int], *, day_starts_utc_hour: int = 0,
                 refresh_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self._source = source
        self._caps = dict(tier_caps)
        self._start_hour = day_starts_utc_hour
        self._refresh_s = refresh_s
        self._clock = clock
        self._at = float("-inf")
        self._latest: dict[str, TierForecast] = {}

    def forecasts(self) -> dict[str, TierForecast]:
        """The latest forecast per tier (re-read from the ledger when older than `refresh_s`)."""
        now = self._clock()
        if now - self._at >= self._refresh_s:
            start, _ = day_bounds(budget_day(now, self._start_hour), self._start_hour)
            totals = self._source.spend_between(start, now)
            found = forecast_day(totals.by_tier, self._caps, day_start=start, now=now)
            self._latest = {f.tier: f for f in found}
            self._at = now
        return self._latest

    def over_pace(self, tier: str) -> bool:
        """True when `tier` is on course to pass its cap before the day ends: step down early."""
        found = self.forecasts().get(tier)
        return found is not None and found.over


__all__ = ["SpendForecast", "SpendSource", "TierForecast", "forecast_day"]
