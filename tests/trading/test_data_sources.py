"""Parquet, DataFrames, the bundled samples and the optional ccxt source."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lyra.trading import DataError, ccxt_source, list_samples, load_bars, load_sample, sample_path

# --- Parquet ------------------------------------------------------------------------------------


def test_parquet_round_trip(tmp_path: Path) -> None:
    bars = load_sample("EURUSD")
    path = tmp_path / "eurusd.parquet"
    bars.frame.to_parquet(path)
    again = load_bars(path, symbol="EURUSD")
    pd.testing.assert_frame_equal(again.frame, bars.frame)
    assert (again.symbol, again.interval) == ("EURUSD", "1h")


def test_parquet_with_epoch_ms_column_and_no_index(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": [1704067200000, 1704070800000, 1704074400000],
            "Open": [1.0, 1.1, 1.2],
            "High": [1.2, 1.3, 1.4],
            "Low": [0.9, 1.0, 1.1],
            "Close": [1.1, 1.2, 1.3],
            "Volume": [5, 6, 7],
        }
    )
    path = tmp_path / "btc.pq"
    frame.to_parquet(path, index=False)
    bars = load_bars(path)
    assert bars.frame.index[0].isoformat() == "2024-01-01T00:00:00+00:00"
    assert (bars.symbol, bars.interval) == ("btc", "1h")


def test_parquet_without_suffix_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "bars.data"
    load_sample("GOOGL", limit=50).frame.to_parquet(path)
    assert len(load_bars(path)) == 50


def test_parquet_bad_row_is_numbered_from_one(tmp_path: Path) -> None:
    frame = load_sample("GOOGL", limit=5).frame.copy()
    frame.iloc[2, frame.columns.get_loc("close")] = -1.0
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    with pytest.raises(
        DataError, match=r"bad\.parquet row 3 \(2018-08-27T00:00:00\+00:00\), column 'close': "
    ):
        load_bars(path)


# --- DataFrames ---------------------------------------------------------------------------------


def _ohlc(n: int) -> dict[str, list[float]]:
    close = [100.0 + i for i in range(n)]
    return {"Open": close, "High": [c + 1 for c in close], "Low": [c - 1 for c in close], "Close": close}


def test_dataframe_with_an_aware_index_is_converted_to_utc() -> None:
    index = pd.date_range("2024-03-08 09:30", periods=3, freq="5min", tz="America/New_York", name="Datetime")
    frame = pd.DataFrame(_ohlc(3), index=index)
    bars = load_bars(frame, symbol="SPY")
    assert bars.frame.index[0].isoformat() == "2024-03-08T14:30:00+00:00"
    assert (bars.symbol, bars.interval) == ("SPY", "5m")


def test_dataframe_with_a_date_column_and_a_filtered_index() -> None:
    frame = pd.DataFrame({"Date": ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"], **_ohlc(4)})
    filtered = frame[frame["Close"] > 100]  # an integer index that is not 0..n
    bars = load_bars(filtered)
    assert [t.day for t in bars.frame.index] == [3, 4, 5]
    assert bars.symbol == "unknown"


def test_yfinance_style_columns() -> None:
    index = pd.date_range("2024-01-01", periods=3, freq="D", name="Date")
    columns = pd.MultiIndex.from_product(
        [["Close", "High", "Low", "Open", "Volume"], ["MSFT"]], names=["Price", "Ticker"]
    )
    values = np.array([[10, 11, 9, 10, 100], [11, 12, 10, 10.5, 120], [12, 13, 11, 11.5, 90]], dtype=float)
    bars = load_bars(pd.DataFrame(values, index=index, columns=columns))
    assert bars.symbol == "MSFT"
    assert list(bars.frame["open"]) == [10.0, 10.5, 11.5]


def test_dataframe_input_is_not_modified() -> None:
    frame = pd.DataFrame({"time": ["2024-01-02", "2024-01-03"], **_ohlc(2)})
    before = frame.copy()
    load_bars(frame)
    pd.testing.assert_frame_equal(frame, before)


def test_bars_helpers() -> None:
    bars = load_sample("GOOGL")
    assert repr(bars) == (
        "Bars(symbol='GOOGL', interval='1d', 2335 bars, 2009-05-22T00:00:00+00:00 .. 2018-08-29T00:00:00+00:00)"
    )
    assert bars.until("2009-05-27").end.isoformat() == "2009-05-27T00:00:00+00:00"
    assert bars.until("2009-05-25 12:00").end.isoformat() == "2009-05-22T00:00:00+00:00"
    assert len(bars.until("2000-01-01")) == 0
    assert len(bars.tail(3)) == 3 and bars.tail(3).end == bars.end


# --- samples ------------------------------------------------------------------------------------


def test_samples_are_listed_and_load() -> None:
    assert list_samples() == ["EURUSD", "GOOGL"]
    googl = load_sample("googl")
    assert (googl.symbol, googl.interval, len(googl)) == ("GOOGL", "1d", 2335)
    assert googl.start.isoformat() == "2009-05-22T00:00:00+00:00"
    eurusd = load_sample("EURUSD")
    assert (eurusd.symbol, eurusd.interval, len(eurusd)) == ("EURUSD", "1h", 6225)
    assert eurusd.end.isoformat() == "2017-12-29T21:00:00+00:00"
    assert not eurusd.frame[["open", "high", "low", "close", "volume"]].isna().any().any()


@pytest.mark.parametrize("name", ["GOOGL", "EURUSD"])
def test_sample_files_validate_on_their_own(name: str) -> None:
    path = sample_path(name)
    assert path.is_file() and path.suffix == ".csv"
    bars = load_bars(path)  # interval inferred, gap rule applied
    assert bars.interval == {"GOOGL": "1d", "EURUSD": "1h"}[name]
    assert sample_path(path.name) == path


def test_samples_ship_with_licence_and_source() -> None:
    readme = (sample_path("GOOGL").parent / "README.md").read_text()
    for needed in (
        "gym-anytrading",
        "MIT License",
        "Mohammad Amin Haghpanah",
        "STOCKS_GOOGL.csv",
        "FOREX_EURUSD_1H_ASK.csv",
        "gym_anytrading/datasets/data/",
    ):
        assert needed in readme


def test_unknown_sample() -> None:
    with pytest.raises(DataError, match=r"^unknown sample 'BTC'; available: EURUSD, GOOGL$"):
        sample_path("BTC")


# --- ccxt ---------------------------------------------------------------------------------------

SPEC = "ccxt:binance:BTC/USDT:1h"


def test_ccxt_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ccxt", None)  # import ccxt -> ImportError, installed or not
    with pytest.raises(DataError) as caught:
        load_bars(SPEC, limit=10)
    assert str(caught.value) == (
        "ccxt:binance:BTC/USDT:1h: the ccxt extra is not installed; install it with "
        "pip install 'lyra-orchestrator[ccxt]'"
    )
    assert isinstance(caught.value.__cause__, ImportError)


def _fake_ccxt(fetch: Any) -> types.ModuleType:
    module = types.ModuleType("ccxt")

    class BaseError(Exception):
        pass

    class NetworkError(BaseError):
        pass

    class BadSymbol(BaseError):
        pass

    class binance:  # ccxt names exchange classes by their ids
        calls: list[tuple[str, str, int]] = []  # noqa: RUF012

        def __init__(self, config: dict[str, Any]) -> None:
            self.config = config

        def fetch_ohlcv(self, symbol: str, timeframe: str, limit: int) -> list[list[float]]:
            self.calls.append((symbol, timeframe, limit))
            return fetch(module, symbol, timeframe, limit)  # type: ignore[no-any-return]

    module.BaseError = BaseError  # type: ignore[attr-defined]
    module.NetworkError = NetworkError  # type: ignore[attr-defined]
    module.BadSymbol = BadSymbol  # type: ignore[attr-defined]
    module.binance = binance  # type: ignore[attr-defined]
    return module


def test_ccxt_network_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def fetch(ccxt: Any, *_: Any) -> list[list[float]]:
        raise ccxt.NetworkError("binance GET https://api.binance.com/api/v3/exchangeInfo\nConnection refused")

    monkeypatch.setitem(sys.modules, "ccxt", _fake_ccxt(fetch))
    with pytest.raises(DataError) as caught:
        load_bars(SPEC)
    assert str(caught.value) == (
        "ccxt:binance:BTC/USDT:1h: cannot reach binance "
        "(binance GET https://api.binance.com/api/v3/exchangeInfo Connection refused)"
    )


def test_ccxt_exchange_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    def fetch(ccxt: Any, *_: Any) -> list[list[float]]:
        raise ccxt.BadSymbol("binance does not have market symbol BTC/XYZ")

    monkeypatch.setitem(sys.modules, "ccxt", _fake_ccxt(fetch))
    with pytest.raises(DataError, match=r"binance refused the request \(binance does not have market symbol"):
        load_bars("ccxt:binance:BTC/XYZ:1h")


def test_ccxt_bars_drop_the_forming_candle(monkeypatch: pytest.MonkeyPatch) -> None:
    hour_ms = 3_600_000
    now_hour = int(time.time() * 1000) // hour_ms * hour_ms
    # Half past the hour for the loader too: no hour may turn between the test's "now" and its own.
    monkeypatch.setattr(ccxt_source, "time", types.SimpleNamespace(time=lambda: (now_hour + hour_ms / 2) / 1000))

    def fetch(_: Any, symbol: str, timeframe: str, limit: int) -> list[list[float]]:
        opens = [now_hour - hour_ms * k for k in range(limit - 1, -1, -1)]  # the last one is still open
        return [[t, 100.0, 101.0, 99.0, 100.5, 3.0] for t in opens]

    fake = _fake_ccxt(fetch)
    monkeypatch.setitem(sys.modules, "ccxt", fake)
    bars = load_bars(SPEC, limit=24)
    assert fake.binance.calls == [("BTC/USDT", "1h", 25)]
    assert (bars.symbol, bars.interval, len(bars)) == ("BTC/USDT", "1h", 24)
    assert bars.end == pd.Timestamp(now_hour - hour_ms, unit="ms", tz="UTC")


def test_ccxt_bad_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ccxt", _fake_ccxt(lambda *_: []))
    with pytest.raises(DataError, match=r"^ccxt:binance: expected ccxt:EXCHANGE:SYMBOL:TIMEFRAME"):
        load_bars("ccxt:binance")
    with pytest.raises(DataError, match=r"^ccxt:nosuch:BTC/USDT:1h: ccxt knows no exchange 'nosuch'$"):
        load_bars("ccxt:nosuch:BTC/USDT:1h")
    with pytest.raises(DataError, match=r"the exchange returned no closed bars$"):
        load_bars(SPEC)
