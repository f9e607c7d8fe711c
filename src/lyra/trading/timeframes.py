"""Higher timeframes resampled from the base bars, using only the higher bars closed at the decision.

A bar is stamped with its start (as every bar here is), so a decision at base bar t knows the
base bars up to t's close at `t + base interval`. A higher bar that starts at s closes at
`s + H`; it is used at t only when `s + H <= t + base interval`. The one still forming at t is
left out: its close is not yet known, and using it would be looking ahead. Bins are aligned to
the UTC epoch (4h bars start at 00:00, 04:00, ...; daily bars at 00:00 UTC), so that the bins do
not move when earlier or later data is added.

Only scale-free features go into prompts (returns, ratios, RSI, band position, volatility): they
need no rebasing to hide the price level, in the anonymised backtest or anywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from lyra.trading.data import Bars, DataError, as_utc
from lyra.trading.features import SIGNIFICANT_DIGITS, compute_features
from lyra.trading.intervals import _check_interval, _interval_delta

SCALE_FREE = ("ret_1", "ret_5", "ret_20", "volatility", "sma_ratio", "rsi", "atr_pct", "bb_pos",
              "volume_change")  # fmt: skip
_OHLCV = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def parse_timeframes(text: str | Sequence[str], base: str) -> tuple[str, ...]:
    """Higher intervals from "4h,1d" (or a list), each a whole multiple of the base interval and longer."""
    names = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    step = _delta(base, "the data")
    for name in names:
        delta = _delta(name, "--timeframes")
        if delta <= step or delta % step != pd.Timedelta(0):
            raise DataError(f"--timeframes: {name} is not a whole multiple of the {base} bars (and longer)")
    return tuple(dict.fromkeys(names))


def _delta(interval: str, where: str) -> pd.Timedelta:
    if interval.endswith("M"):
        raise DataError(
            f"{where}: monthly bars ({interval}) have no fixed length; use 1w or a number of days"
        )
    return _interval_delta(_check_interval(interval, where))


def resample(bars: Bars, interval: str) -> Bars:
    """The bars resampled to `interval` (epoch-aligned bins stamped with their start); empty bins dropped."""
    frame = bars.frame
    rule = _delta(interval, "resample")
    out = frame.resample(rule, origin="epoch", label="left", closed="left").agg(_OHLCV)
    counts = frame["close"].resample(rule, origin="epoch", label="left", closed="left").count()
    out = out[counts > 0]
    # A bin whose volumes are all missing has no volume (sum() would say 0).
    volumes = frame["volume"].resample(rule, origin="epoch", label="left", closed="left").count()
    out.loc[volumes[counts > 0] == 0, "volume"] = float("nan")
    out.index.name = "time"
    return Bars(frame=out.astype(float), symbol=bars.symbol, interval=interval)


def closed_bars(bars: Bars, interval: str, t: Any) -> Bars:
    """The `interval` bars that had closed when the base bar at t closed, from the base bars up to t only."""
    at = as_utc(t)
    known = bars.until(at)
    higher = resample(known, interval)
    closes_by = at + _delta(bars.interval, "the data")
    ends = higher.frame.index + _delta(interval, "resample")
    return Bars(frame=higher.frame[ends <= closes_by], symbol=bars.symbol, interval=interval)


def timeframe_features(bars: Bars, t: Any, intervals: Sequence[str]) -> dict[str, dict[str, float]]:
    """The scale-free features of the last closed bar of each higher interval, known at t.

    An interval with no closed bar yet is absent; features still in their warm-up are left out.
    """
    out: dict[str, dict[str, float]] = {}
    for interval in intervals:
        higher = closed_bars(bars, interval, t)
        if not len(higher):
            continue
        row = compute_features(higher).iloc[-1]
        values = {name: _round(float(row[name])) for name in SCALE_FREE if math.isfinite(float(row[name]))}
        if values:
            out[interval] = values
    return out


def timeframes_hook(intervals: Sequence[str]) -> Callable[[Bars, Any], dict[str, Any]]:
    """What the pipeline adds to a decision's features: {"timeframes": {interval: features}}."""

    def extra(bars: Bars, t: Any) -> dict[str, Any]:
        found = timeframe_features(bars, t, intervals)
        return {"timeframes": found} if found else {}

    return extra


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}") + 0.0


__all__ = [
    "SCALE_FREE",
    "closed_bars",
    "parse_timeframes",
    "resample",
    "timeframe_features",
    "timeframes_hook",
]
