"""Higher timeframes: only bars closed at the decision reach it, and the future changes nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lyra import Lyra
from lyra.trading.data import Bars, DataError, load_bars, load_sample
from lyra.trading.evaluate import anonymise, pipeline_decider, probe_lookahead
from lyra.trading.pipeline import TradingAIOrchestrator
from lyra.trading.risk import AccountState
from lyra.trading.timeframes import (
    closed_bars,
    parse_timeframes,
    resample,
    timeframe_features,
    timeframes_hook,
)

ACCOUNT = AccountState(equity_at_day_start=100_000.0, equity=100_000.0)


def hourly(n: int = 24 * 40) -> Bars:
    times = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    rng = np.random.default_rng(7)
    close = 100 * np.cumprod(1 + rng.normal(0, 0.004, n))
    frame = pd.DataFrame({"open": close, "high": close * 1.001, "low": close * 0.999, "close": close,
                          "volume": 1.0}, index=pd.DatetimeIndex(times, name="time"))
    return load_bars(frame, symbol="X", interval="1h")


def test_a_4h_bar_that_closes_after_t_is_not_used_at_t() -> None:
    bars = hourly()
    t = pd.Timestamp("2024-01-05 13:00", tz="UTC")  # the 1h bar at 13:00 closes at 14:00
    four = closed_bars(bars, "4h", t)
    assert four.frame.index[-1] == pd.Timestamp("2024-01-05 08:00", tz="UTC")  # closed at 12:00
    # The 12:00-16:00 bar is still forming at 14:00: left out. At 15:00 it has closed (16:00).
    at_close = closed_bars(bars, "4h", pd.Timestamp("2024-01-05 15:00", tz="UTC"))
    assert at_close.frame.index[-1] == pd.Timestamp("2024-01-05 12:00", tz="UTC")
    day = closed_bars(bars, "1d", t)
    assert day.frame.index[-1] == pd.Timestamp("2024-01-04", tz="UTC")
    assert closed_bars(bars, "1d", pd.Timestamp("2024-01-05 23:00", tz="UTC")).end == pd.Timestamp(
        "2024-01-05", tz="UTC")


def test_resampled_bars_are_open_first_high_max_low_min_close_last_volume_sum() -> None:
    bars = hourly(8)
    four = resample(bars, "4h").frame
    f = bars.frame
    assert list(four["open"]) == [f["open"].iloc[0], f["open"].iloc[4]]
    assert list(four["close"]) == [f["close"].iloc[3], f["close"].iloc[7]]
    assert four["high"].iloc[0] == f["high"].iloc[:4].max() and four["low"].iloc[1] == f["low"].iloc[4:].min()
    assert list(four["volume"]) == [4.0, 4.0]


def test_changing_bars_after_t_changes_nothing_at_t() -> None:
    bars = hourly()
    t = bars.frame.index[24 * 30 + 5]
    changed = bars.frame.copy()
    after = changed.index > t
    changed.loc[after, ["open", "high", "low", "close"]] *= 1.5
    other = Bars(frame=changed, symbol="X", interval="1h")
    assert timeframe_features(bars, t, ["4h", "1d"]) == timeframe_features(other, t, ["4h", "1d"])
    assert set(timeframe_features(bars, t, ["4h", "1d"])) == {"4h", "1d"}
    # And a change at t itself does reach it (the probe is not blind).
    changed.loc[changed.index >= t - pd.Timedelta(hours=3), "close"] *= 1.5
    changed["high"] = changed[["high", "close"]].max(axis=1)
    touched = Bars(frame=changed, symbol="X", interval="1h")
    assert timeframe_features(touched, t, ["4h"]) != timeframe_features(bars, t, ["4h"])


def test_timeframes_must_be_whole_multiples_of_the_base_bars() -> None:
    assert parse_timeframes("4h, 1d", "1h") == ("4h", "1d")
    for bad in ("30m", "1h", "90m", "1M"):
        with pytest.raises(DataError):
            parse_timeframes(bad, "1h")


async def test_the_pipeline_sends_every_timeframe_in_one_prompt_and_passes_the_probe(engine: Lyra) -> None:
    bars = load_sample("EURUSD")
    orchestrator = TradingAIOrchestrator(engine, audit=False, feature_filter=anonymise,
                                         extra_features=timeframes_hook(("4h", "1d")))
    t = bars.frame.index[-200]
    decision = await orchestrator.decide("EURUSD", bars.until(t), at=t)
    assert set(decision.features["timeframes"]) == {"4h", "1d"}
    assert "time" not in decision.features["timeframes"]["4h"]
    await probe_lookahead(pipeline_decider(orchestrator, "EURUSD", 5_000), bars, t, ACCOUNT)
