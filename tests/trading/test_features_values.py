"""Feature values against hand computations on tiny series."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from lyra.trading import FEATURE_NAMES, Bars, DataError, compute_features, features_at, load_bars


def _bars(close: list[float], *, spread: float = 1.0, volume: list[float] | None = None) -> Bars:
    """Daily bars with the given closes, open = close, high/low = close +/- spread."""
    n = len(close)
    frame = pd.DataFrame(
        {
            "open": close,
            "high": [c + spread for c in close],
            "low": [c - spread for c in close],
            "close": close,
            "volume": volume if volume is not None else [1000.0] * n,
        },
        index=pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="time"),
    )
    return load_bars(frame, symbol="TEST")


def test_columns_and_index() -> None:
    bars = _bars([10.0 + i for i in range(5)])
    features = compute_features(bars)
    assert tuple(features.columns) == FEATURE_NAMES
    assert features.index.equals(bars.frame.index)


def test_returns_and_sma() -> None:
    features = compute_features(_bars([float(i) for i in range(1, 31)], spread=0.5))
    assert math.isnan(features["ret_1"].iloc[0])
    assert features["ret_1"].iloc[1] == pytest.approx(2 / 1 - 1)
    assert features["ret_5"].iloc[5] == pytest.approx(6 / 1 - 1)
    assert math.isnan(features["ret_20"].iloc[19])
    assert features["ret_20"].iloc[20] == pytest.approx(21 / 1 - 1)
    assert math.isnan(features["sma_fast"].iloc[8])
    assert features["sma_fast"].iloc[9] == pytest.approx(5.5)
    assert math.isnan(features["sma_slow"].iloc[28])
    assert features["sma_slow"].iloc[29] == pytest.approx(15.5)
    assert features["sma_ratio"].iloc[29] == pytest.approx(25.5 / 15.5 - 1)


def test_rsi_by_hand() -> None:
    # 14 changes: eight +1 and six -1 -> average gain 8/14, average loss 6/14.
    close = [10.0, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 12, 11]
    rsi = compute_features(_bars(close, spread=2))["rsi"]
    assert rsi.iloc[:14].isna().all()
    assert rsi.iloc[14] == pytest.approx(100 - 100 / (1 + 8 / 6))  # 57.14
    # Wilder's step on a -1 change: gain (8/14 * 13 + 0) / 14, loss (6/14 * 13 + 1) / 14.
    gain, loss = (8 / 14 * 13) / 14, (6 / 14 * 13 + 1) / 14
    assert rsi.iloc[15] == pytest.approx(100 - 100 / (1 + gain / loss))  # 53.06


def test_rsi_edges() -> None:
    assert compute_features(_bars([float(10 + i) for i in range(16)]))["rsi"].iloc[-1] == 100.0
    assert compute_features(_bars([10.0] * 16))["rsi"].iloc[-1] == 50.0


def test_atr_by_hand() -> None:
    close = [10.0] * 15 + [14.0]
    frame = _bars(close).frame.copy()
    frame.iloc[15] = [14.0, 15.0, 13.0, 14.0, 1000.0]  # true range = max(2, |15 - 10|, |13 - 10|) = 5
    features = compute_features(load_bars(frame))
    assert features["atr"].iloc[:14].isna().all()
    assert features["atr"].iloc[14] == pytest.approx(2.0)
    assert features["atr"].iloc[15] == pytest.approx((2.0 * 13 + 5) / 14)
    assert features["atr_pct"].iloc[15] == pytest.approx((2.0 * 13 + 5) / 14 / 14.0)


def _wave(n: int) -> list[float]:
    return [100 + 3 * math.sin(i / 3) + 0.2 * i for i in range(n)]


def _ema(values: list[float], span: int) -> list[float]:
    alpha = 2 / (span + 1)
    out = [values[0]]
    for value in values[1:]:
        out.append(alpha * value + (1 - alpha) * out[-1])
    return out


def test_ema_macd_bollinger_volatility_against_loops() -> None:
    close = _wave(60)
    features = compute_features(_bars(close))
    ema12, ema26 = _ema(close, 12), _ema(close, 26)
    assert math.isnan(features["ema_12"].iloc[10]) and math.isnan(features["ema_26"].iloc[24])
    assert features["ema_12"].iloc[11:].tolist() == pytest.approx(ema12[11:])
    assert features["ema_26"].iloc[25:].tolist() == pytest.approx(ema26[25:])
    macd = [a - b for a, b in zip(ema12[25:], ema26[25:], strict=True)]  # defined from bar 25 on
    signal = _ema(macd, 9)
    assert features["macd"].iloc[25:].tolist() == pytest.approx(macd)
    assert features["macd_signal"].iloc[:33].isna().all()
    assert features["macd_signal"].iloc[33:].tolist() == pytest.approx(signal[8:])
    assert features["macd_hist"].iloc[40] == pytest.approx(macd[15] - signal[15])
    window = close[40:60]
    mean, sd = statistics.fmean(window), statistics.pstdev(window)
    assert features["bb_upper"].iloc[59] == pytest.approx(mean + 2 * sd)
    assert features["bb_lower"].iloc[59] == pytest.approx(mean - 2 * sd)
    assert features["bb_pos"].iloc[59] == pytest.approx((close[59] - (mean - 2 * sd)) / (4 * sd))
    returns = [close[k] / close[k - 1] - 1 for k in range(40, 60)]
    assert features["volatility"].iloc[59] == pytest.approx(statistics.stdev(returns))
    assert math.isnan(features["volatility"].iloc[19]) and not math.isnan(features["volatility"].iloc[20])


def test_flat_prices_put_bb_pos_in_the_middle() -> None:
    assert compute_features(_bars([10.0] * 25))["bb_pos"].iloc[-1] == 0.5


def test_volume_change_is_nan_safe() -> None:
    volume = [100.0, 150.0, 0.0, 50.0, np.nan, 80.0, 40.0]
    change = compute_features(_bars([10.0] * 7, volume=volume))["volume_change"].tolist()
    assert change[1] == pytest.approx(0.5)
    assert change[2] == pytest.approx(-1.0)
    assert all(math.isnan(c) for c in (change[0], change[3], change[4], change[5]))  # after 0 or NaN
    assert change[6] == pytest.approx(-0.5)
    assert not np.isinf(change).any()


def test_features_at_is_json_ready() -> None:
    bars = _bars(_wave(60), volume=[1000.0 + i for i in range(60)])
    row = features_at(bars, "2024-02-29T12:00")  # between bars: the bar of 2024-02-29 00:00
    assert row["time"] == "2024-02-29T00:00:00+00:00"
    assert list(row) == ["time", "close", *FEATURE_NAMES]
    full = compute_features(bars).loc[pd.Timestamp("2024-02-29", tz="UTC")]
    for name in FEATURE_NAMES:
        value = row[name]
        assert isinstance(value, float)
        assert value == pytest.approx(full[name], rel=1e-5)
        assert value == float(f"{value:.6g}")  # 6 significant digits
    early = features_at(bars, bars.frame.index[3])
    assert set(early) == {"time", "close", "ret_1", "volume_change"}  # NaNs are dropped


def test_features_at_before_the_first_bar() -> None:
    with pytest.raises(
        DataError, match=r"^no TEST bar at or before 2023-12-31T00:00:00\+00:00; the first bar"
    ):
        features_at(_bars([10.0, 11.0]), "2023-12-31")
