"""Tearsheet measures of an equity curve: returns by calendar month and the deepest drawdown periods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

Series = Sequence[Sequence[Any]]  # [[iso time, value], ...]


def monthly_returns(curve: Series) -> dict[tuple[int, int], float]:
    """Each calendar month's return: its last equity over the previous month's last, less 1.

    The first month is measured from the curve's first point (the start of the walk).
    """
    out: dict[tuple[int, int], float] = {}
    if not curve:
        return out
    base = float(curve[0][1])
    month_end: dict[tuple[int, int], float] = {}
    for t, v in curve:
        stamp = pd.Timestamp(t)
        month_end[(stamp.year, stamp.month)] = float(v)
    for month, last in month_end.items():
        out[month] = last / base - 1 if base else 0.0
        base = last
    return out


def yearly_returns(monthly: dict[tuple[int, int], float]) -> dict[int, float]:
    """Each year's return, compounded from its months."""
    years: dict[int, float] = {}
    for (year, _), r in monthly.items():
        years[year] = (1 + years.get(year, 0.0)) * (1 + r) - 1
    return years


@dataclass(frozen=True, slots=True)
class DrawdownPeriod:
    """A fall from a peak: when it started (the peak), bottomed, and recovered (None: not yet)."""

    start: str
    trough: str
    recovery: str | None
    depth: float  # trough over peak, less 1 (negative)
    bars: int  # bars from the peak to the recovery, or to the curve's end when not recovered


def drawdown_periods(curve: Series, top: int = 5) -> list[DrawdownPeriod]:
    """The `top` deepest drawdown periods of the curve, deepest first."""
    periods: list[DrawdownPeriod] = []
    peak, peak_at, peak_i = float("-inf"), "", 0
    trough, trough_at = 0.0, ""
    for i, (t, raw) in enumerate(curve):
        v = float(raw)
        if v >= peak:
            if trough_at and peak > 0:
                periods.append(DrawdownPeriod(peak_at, trough_at, str(t), trough / peak - 1, i - peak_i))
            peak, peak_at, peak_i, trough_at = v, str(t), i, ""
        elif not trough_at or v < trough:
            trough, trough_at = v, str(t)
    if trough_at and peak > 0:
        periods.append(DrawdownPeriod(peak_at, trough_at, None, trough / peak - 1, len(curve) - 1 - peak_i))
    return sorted(periods, key=lambda p: p.depth)[:top]


__all__ = ["DrawdownPeriod", "drawdown_periods", "monthly_returns", "yearly_returns"]
