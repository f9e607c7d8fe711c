"""Technical features of OHLCV bars, computed strictly causally.

Every feature at bar t is a function of bars 0..t only: trailing windows, recursive averages
seeded at the start of the series, no centred windows, no back-filling, no shifts into the past.
Warm-up rows (not enough history yet) are NaN.

Conventions: returns are simple returns of the close; `volatility` is the sample standard
deviation (ddof=1) of the last 20 one-bar returns; EMAs are recursive (pandas `adjust=False`)
seeded with the first close and reported once they have `span` bars; RSI and ATR use Wilder's
smoothing seeded with the plain mean of the first 14 values (changes / true ranges from bar 1,
as TA-Lib does), so both start at bar 14; Bollinger bands are the 20-bar mean +/- 2 population
standard deviations (ddof=0); `bb_pos` is 0 at the lower band and 1 at the upper band (below 0
or above 1 when the close is outside the bands, 0.5 when the bands are flat).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd

from lyra.trading.data import Bars, DataError, as_utc

__all__ = ["FEATURE_NAMES", "compute_features", "features_at"]

FEATURE_NAMES = (
    "ret_1", "ret_5", "ret_20", "volatility", "sma_fast", "sma_slow", "sma_ratio", "ema_12", "ema_26",
    "rsi", "macd", "macd_signal", "macd_hist", "atr", "atr_pct", "bb_upper", "bb_lower", "bb_pos",
    "volume_change",
)  # fmt: skip

VOLATILITY_WINDOW = 20
SMA_FAST = 10
SMA_SLOW = 30
EMA_FAST = 12
EMA_SLOW = 26
MACD_SIGNAL = 9
RSI_WINDOW = 14
ATR_WINDOW = 14
BB_WINDOW = 20
BB_STDS = 2.0
SIGNIFICANT_DIGITS = 6


def compute_features(bars: Bars) -> pd.DataFrame:
    """One row of features per bar (columns FEATURE_NAMES, same time index); NaN during warm-up."""
    frame = bars.frame
    close = frame["close"].astype(float)
    out = pd.DataFrame(index=frame.index)
    ret_1 = _returns(close, 1)
    out["ret_1"] = ret_1
    out["ret_5"] = _returns(close, 5)
    out["ret_20"] = _returns(close, 20)
    out["volatility"] = ret_1.rolling(VOLATILITY_WINDOW).std(ddof=1)
    out["sma_fast"] = close.rolling(SMA_FAST).mean()
    out["sma_slow"] = close.rolling(SMA_SLOW).mean()
    out["sma_ratio"] = out["sma_fast"] / out["sma_slow"] - 1
    out["ema_12"] = _ema(close, EMA_FAST)
    out["ema_26"] = _ema(close, EMA_SLOW)
    out["rsi"] = _rsi(close, RSI_WINDOW)
    out["macd"] = out["ema_12"] - out["ema_26"]
    out["macd_signal"] = _ema(out["macd"], MACD_SIGNAL)
    out["macd_hist"] = out["macd"] - out["macd_signal"]
    out["atr"] = _atr(frame["high"].astype(float), frame["low"].astype(float), close, ATR_WINDOW)
    out["atr_pct"] = out["atr"] / close
    _add_bollinger(out, close)
    out["volume_change"] = _volume_change(frame["volume"].astype(float))
    return out[list(FEATURE_NAMES)]


def features_at(bars: Bars, t: datetime | str) -> dict[str, float | str]:
    """The latest feature row at or before `t`, for a prompt's JSON.

    Keys: "time" (ISO 8601, UTC), "close" and those of FEATURE_NAMES that are not NaN, values
    rounded to 6 significant digits. Only bars at or before `t` are read.
    """
    known = bars.until(t)
    if not len(known):
        raise DataError(
            f"no {bars.symbol} bar at or before {as_utc(t).isoformat()}; the first bar is at "
            f"{bars.start.isoformat()}"
        )
    row = compute_features(known).iloc[-1]
    out: dict[str, float | str] = {
        "time": str(known.end.isoformat()),
        "close": _round(known.frame["close"].iloc[-1]),
    }
    for name in FEATURE_NAMES:
        value = float(row[name])
        if math.isfinite(value):
            out[name] = _round(value)
    return out


def _round(value: float) -> float:
    return float(f"{float(value):.{SIGNIFICANT_DIGITS}g}")


def _returns(close: pd.Series, n: int) -> pd.Series:
    return close / close.shift(n) - 1


def _ema(values: pd.Series, span: int) -> pd.Series:
    """Recursive EMA from the first valid value; NaN until `span` values have been seen."""
    return values.ewm(span=span, adjust=False, min_periods=span).mean()


def _wilder(values: pd.Series, n: int, first: int) -> pd.Series:
    """Wilder's smoothing of values[first:]: the mean of the first n, then (prev * (n - 1) + x) / n."""
    out = pd.Series(np.nan, index=values.index, dtype=float)
    start = first + n - 1
    if len(values) <= start:
        return out
    seeded = values.iloc[start:].copy()
    seeded.iloc[0] = values.iloc[first : start + 1].mean()
    out.iloc[start:] = seeded.ewm(alpha=1 / n, adjust=False).mean().to_numpy()
    return out


def _rsi(close: pd.Series, n: int) -> pd.Series:
    """Wilder's RSI: 100 when there were only gains, 50 when prices did not move."""
    change = close.diff()
    gain = _wilder(change.clip(lower=0), n, first=1)
    loss = _wilder((-change).clip(lower=0), n, first=1)
    rsi = 100 - 100 / (1 + gain / loss)
    flat = loss.eq(0)
    return rsi.mask(flat & gain.gt(0), 100.0).mask(flat & gain.eq(0), 50.0)


def _atr(high: pd.Series, low: pd.Series, close: pd.Series, n: int) -> pd.Series:
    """Wilder's average true range over the true ranges from bar 1 on."""
    previous = close.shift(1)
    true_range = pd.concat([high - low, (high - previous).abs(), (low - previous).abs()], axis=1).max(axis=1)
    return _wilder(true_range, n, first=1)


def _add_bollinger(out: pd.DataFrame, close: pd.Series) -> None:
    mid = close.rolling(BB_WINDOW).mean()
    spread = BB_STDS * close.rolling(BB_WINDOW).std(ddof=0)
    out["bb_upper"] = mid + spread
    out["bb_lower"] = mid - spread
    width = out["bb_upper"] - out["bb_lower"]
    out["bb_pos"] = ((close - out["bb_lower"]) / width).mask(width.eq(0), 0.5)


def _volume_change(volume: pd.Series) -> pd.Series:
    """1-bar relative change of volume; NaN when either volume is missing or the previous one is 0."""
    previous = volume.shift(1)
    return (volume / previous - 1).where(previous > 0)
