"""No look-ahead: a feature at time t never changes when the bars after t change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lyra.trading import Bars, compute_features, features_at, load_bars, load_sample


def _garbage_after(bars: Bars, i: int, rng: np.random.Generator) -> Bars:
    """The same bars up to position i; after it, a random but valid OHLCV path at the same times."""
    frame = bars.frame.copy()
    n = len(frame) - i - 1
    if n <= 0:
        return bars
    close = frame["close"].iloc[i] * np.exp(np.cumsum(rng.normal(0, 0.05, n)))
    open_ = close * np.exp(rng.normal(0, 0.02, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.03, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.03, n))
    volume = rng.uniform(0, 1e7, n)
    volume[rng.uniform(size=n) < 0.1] = np.nan
    for column, values in zip(
        ("open", "high", "low", "close", "volume"), (open_, high, low, close, volume), strict=True
    ):
        frame.iloc[i + 1 :, frame.columns.get_loc(column)] = values
    return load_bars(frame, symbol=bars.symbol, interval=bars.interval)  # validated: still real OHLC


@pytest.mark.parametrize("name", ["GOOGL", "EURUSD"])
def test_features_at_t_ignore_every_later_bar(name: str) -> None:
    bars = load_sample(name)
    full = compute_features(bars)
    rng = np.random.default_rng(20240501)
    n = len(bars)
    for i in [0, 1, 9, 13, 14, 19, 20, 25, 29, 33, 34, 120, n // 2, n - 2]:
        t = bars.frame.index[i]
        truncated = compute_features(bars.until(t))
        scrambled_bars = _garbage_after(bars, i, rng)
        scrambled = compute_features(scrambled_bars)
        # Identical, bit for bit, up to and including t ...
        pd.testing.assert_frame_equal(truncated, full.iloc[: i + 1], check_exact=True)
        pd.testing.assert_frame_equal(scrambled.iloc[: i + 1], full.iloc[: i + 1], check_exact=True)
        assert features_at(bars, t) == features_at(scrambled_bars, t) == features_at(bars.until(t), t)
        # ... while the scrambled future really is different (the test can fail).
        later = full.iloc[i + 1 :].dropna(how="all")
        assert not scrambled.iloc[i + 1 :].loc[later.index].equals(later)


def test_every_feature_has_values_once_warmed_up() -> None:
    features = compute_features(load_sample("GOOGL"))
    warm = features.iloc[40:]
    assert not warm.isna().any().any()
    assert features.iloc[0].drop("bb_pos").isna().all()  # nothing is back-filled into the first bar
