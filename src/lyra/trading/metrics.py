"""Performance measures of an equity curve and of directional signals, the honest way (after costs)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lyra.days import DAY_S, UNIT_SECONDS, YEAR_S

_TRADING_DAYS = 252


@dataclass(frozen=True, slots=True, kw_only=True)
class Scored:
    """One directional call scored over the horizon: the move and whether it paid after costs."""

    time: pd.Timestamp
    direction: int  # +1 long, -1 short
    move: float  # close at horizon / next open - 1
    cost: float  # round-trip fees and slippage as a fraction

    @property
    def right(self) -> bool:
        return self.direction * self.move > 0

    @property
    def profitable(self) -> bool:
        return self.direction * self.move - self.cost > 0


def periods_per_year(interval: str) -> float:
    """Bars per year by the calendar: 252 for daily bars (trading days), calendar time otherwise.

    The fallback when the data is too short to measure (see `annualisation`).
    """
    match = re.fullmatch(r"(\d+)([smhdwM])", interval)
    if match is None:
        return float(_TRADING_DAYS)
    count, unit = int(match.group(1)), match.group(2)
    if unit == "d":
        return _TRADING_DAYS / count
    return YEAR_S / (count * UNIT_SECONDS[unit])


MIN_MEASURED_DAYS = 30  # a shorter span says too little about how many bars a year the data has


@dataclass(frozen=True, slots=True, kw_only=True)
class Annualisation:
    """How many bars make a year: measured from the data, or the interval's calendar figure."""

    bars_per_year: float
    measured: bool
    interval: str

    def describe(self) -> str:
        """One line for a report: the figure and where it came from."""
        if self.measured:
            return f"annualised with {self.bars_per_year:,.0f} bars a year, measured from the data"
        return (f"annualised with {self.bars_per_year:,.0f} bars a year, the calendar figure for "
                f"{self.interval} bars (the data spans under {MIN_MEASURED_DAYS} days, too short to measure)")

    def to_dict(self) -> dict[str, object]:
        return {"bars_per_year": round(self.bars_per_year, 2), "measured": self.measured,
                "interval": self.interval, "text": self.describe()}


def annualisation(index: pd.DatetimeIndex, interval: str) -> Annualisation:
    """Bars per year as the data has them: bar intervals over the span in years.

    Markets that close (equities at night and at weekends, FX at weekends) have far fewer bars
    than calendar time: about 252 daily or 6,200 hourly bars a year, where crypto has 365 and
    8,766. Under MIN_MEASURED_DAYS of data the interval's calendar figure stands in.
    """
    if len(index) >= 2:
        seconds = (index[-1] - index[0]).total_seconds()
        if seconds >= MIN_MEASURED_DAYS * DAY_S:
            return Annualisation(bars_per_year=(len(index) - 1) / (seconds / YEAR_S),
                                 measured=True, interval=interval)
    return Annualisation(bars_per_year=periods_per_year(interval), measured=False, interval=interval)


def max_drawdown(equity: pd.Series) -> float:
    """The largest fall from a running peak, as a positive fraction."""
    if equity.empty:
        return 0.0
    return float((1 - equity / equity.cummax()).max())


def worst_daily_drawdown(equity: pd.Series) -> float:
    """The worst fall of equity over one UTC day (last value of the day against the day before)."""
    daily = equity.groupby(equity.index.floor("D")).last()
    if len(daily) < 2:
        return 0.0
    return float(max(0.0, -(daily.pct_change().min())))


def sharpe(equity: pd.Series, interval: str, *, per_year: float | None = None) -> float:
    """Annualised Sharpe ratio of per-bar returns (risk-free rate 0); 0 when returns do not vary.

    `per_year` is the bars a year to annualise with; by default it is measured from the curve.
    """
    returns = equity.pct_change().dropna()
    std = float(returns.std(ddof=1)) if len(returns) > 1 else 0.0
    if std == 0 or not math.isfinite(std):
        return 0.0
    if per_year is None:
        per_year = annualisation(pd.DatetimeIndex(equity.index), interval).bars_per_year
    return float(returns.mean()) / std * math.sqrt(per_year)


def annualised(total_return: float, start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Compound annual growth over the calendar span (0 for a span under a day)."""
    years = (end - start).total_seconds() / YEAR_S
    if years < 1 / 365 or total_return <= -1:
        return 0.0 if years < 1 / 365 else -1.0
    return float((1 + total_return) ** (1 / years) - 1)


def annualised_per_bar(total_return: float, periods: int, per_year: float) -> float:
    """Compound annual growth of a return earned over `periods` bars, at `per_year` bars a year."""
    if periods < 1 or per_year <= 0:
        return 0.0
    if total_return <= -1:
        return -1.0
    return float((1 + total_return) ** (per_year / periods) - 1)


def signal_stats(scored: list[Scored]) -> dict[str, float | int | None]:
    """Accuracy (direction right) and the share profitable after costs, over the scored calls."""
    n = len(scored)
    return {
        "signals": n,
        "accuracy": sum(s.right for s in scored) / n if n else None,
        "profitable_share": sum(s.profitable for s in scored) / n if n else None,
    }


def curve_stats(equity: pd.Series, exposure: pd.Series, interval: str, *,
                per_year: float | None = None) -> dict[str, float]:
    """Total and annualised return, Sharpe, max and worst daily drawdown and exposure of a curve.

    Annualised return and Sharpe use `per_year` bars a year (by default measured from the curve).
    """
    total = float(equity.iloc[-1] / equity.iloc[0] - 1) if len(equity) else 0.0
    if per_year is None:
        per_year = annualisation(pd.DatetimeIndex(equity.index), interval).bars_per_year
    return {
        "total_return": total,
        "annualised_return": annualised_per_bar(total, len(equity) - 1, per_year),
        "sharpe": sharpe(equity, interval, per_year=per_year),
        "max_drawdown": max_drawdown(equity),
        "worst_daily_drawdown": worst_daily_drawdown(equity),
        "exposure": float(np.mean(exposure.to_numpy() != 0)) if len(exposure) else 0.0,
    }


__all__ = ["MIN_MEASURED_DAYS", "Annualisation", "Scored", "annualisation", "annualised",
           "annualised_per_bar", "curve_stats", "max_drawdown", "periods_per_year", "sharpe", "signal_stats",
           "worst_daily_drawdown"]
