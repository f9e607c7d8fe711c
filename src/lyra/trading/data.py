"""Market data: OHLCV bars from CSV, Parquet, DataFrames, the bundled samples or an exchange, validated.

`load_bars` accepts files as traders really have them and returns `Bars`: a UTC-indexed frame of
float open/high/low/close/volume, the symbol and the bar interval. Anything wrong with the data
raises `DataError` with one line naming the source, the row, the time and the column.

Row numbers in messages are the ones a person would look up: in a CSV file, the line number with
the header as row 1 (the first bar is row 2); in Parquet files and DataFrames, the 1-based
position of the bar (the first bar is row 1).

Gap rule: bars shorter than a day may be up to 5 calendar days apart (weekends, Easter and
Christmas closures, FX week-ends); daily bars up to 7 calendar days apart (weekends, holidays and
multi-day market closures such as Hurricane Sandy in 2012 or September 2001); longer bars up to
1.5 intervals apart (7 days at least). Pass `max_gap=` for markets with longer holidays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from lyra.trading.ccxt_source import _ccxt_table
from lyra.trading.checks import _check_gaps, _check_order, _check_prices, _check_volume
from lyra.trading.datatable import BAR_COLUMNS as BAR_COLUMNS
from lyra.trading.datatable import PRICE_COLUMNS, DataError, _one_line, _Table
from lyra.trading.datatable import FloatArray as FloatArray
from lyra.trading.intervals import _check_interval, _infer_interval, _interval_delta, _max_gap
from lyra.trading.marketfiles import _find_fields, _find_time, _read_file, _symbol_column, _table_from_frame
from lyra.trading.numparse import _parse_numbers
from lyra.trading.timeparse import _parse_times

__all__ = [
    "DEFAULT_SAMPLE",
    "Bars",
    "DataError",
    "as_utc",
    "list_samples",
    "load_bars",
    "load_sample",
    "sample_path",
]

_SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


@dataclass(frozen=True)
class _Sample:
    file: str
    symbol: str
    interval: str


_SAMPLES = {
    "GOOGL": _Sample("STOCKS_GOOGL.csv", "GOOGL", "1d"),
    "EURUSD": _Sample("FOREX_EURUSD_1H_ASK.csv", "EURUSD", "1h"),
}
DEFAULT_SAMPLE = "GOOGL"


@dataclass(frozen=True, eq=False)
class Bars:
    """Validated OHLCV bars of one symbol.

    `frame` has a UTC DatetimeIndex named "time" (strictly increasing) and float columns open,
    high, low, close and volume (volume may be NaN). Treat it as read-only.
    """

    frame: pd.DataFrame
    symbol: str
    interval: str

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        span = f"{self.start.isoformat()} .. {self.end.isoformat()}" if len(self) else "empty"
        return f"Bars(symbol={self.symbol!r}, interval={self.interval!r}, {len(self)} bars, {span})"

    @property
    def start(self) -> pd.Timestamp:
        """The time of the first bar."""
        return self.frame.index[0]

    @property
    def end(self) -> pd.Timestamp:
        """The time of the last bar."""
        return self.frame.index[-1]

    def until(self, t: datetime | str) -> Bars:
        """The bars at or before `t` (naive times are UTC): what was known at time t."""
        return self._with(self.frame.loc[: as_utc(t)])

    def tail(self, n: int) -> Bars:
        """The last `n` bars."""
        return self._with(self.frame.iloc[-n:] if n > 0 else self.frame.iloc[:0])

    def _with(self, frame: pd.DataFrame) -> Bars:
        return Bars(frame=frame, symbol=self.symbol, interval=self.interval)


def as_utc(t: datetime | str) -> pd.Timestamp:
    """A time as a UTC pandas Timestamp; naive times and strings without an offset are taken as UTC."""
    try:
        stamp = pd.Timestamp(t)
    except (ValueError, TypeError) as exc:
        raise DataError(f"not a time: {t!r} ({_one_line(exc)})") from exc
    if stamp is pd.NaT:
        raise DataError(f"not a time: {t!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def load_bars(
    source: str | Path | pd.DataFrame,
    *,
    symbol: str | None = None,
    interval: str | None = None,
    limit: int | None = None,
    max_gap: timedelta | None = None,
) -> Bars:
    """Load and validate OHLCV bars from a CSV/Parquet file, a DataFrame or `ccxt:EXCHANGE:SYMBOL:TF`.

    `symbol` defaults to a one-valued Symbol/Ticker column, else the file name; `interval` (such as
    "5m", "1h", "1d", "1w", "1M") defaults to the most common spacing of the bars; `limit` keeps the
    most recent bars (for ccxt, how many to fetch, default 500); `max_gap` overrides the gap rule.
    """
    if limit is not None and limit < 1:
        raise DataError(f"limit must be at least 1, got {limit}")
    if isinstance(source, str) and source.startswith("ccxt:"):
        return _load_ccxt(source, symbol=symbol, interval=interval, limit=limit or 500)
    if isinstance(source, pd.DataFrame):
        table = _table_from_frame(source, "DataFrame")
        default_symbol = "unknown"
    else:
        path = Path(source).expanduser()
        table = _read_file(path)
        default_symbol = path.name.split(".")[0]
    bars = _bars_from_table(
        table, symbol=symbol, default_symbol=default_symbol, interval=interval, max_gap=max_gap
    )
    return bars.tail(limit) if limit is not None else bars


def list_samples() -> list[str]:
    """Names of the bundled real-price samples (see samples/README.md for source and licence)."""
    return sorted(_SAMPLES)


def sample_path(name: str = DEFAULT_SAMPLE) -> Path:
    """The file of a bundled sample, by name ("GOOGL", "EURUSD", any case) or file name."""
    return _SAMPLES_DIR / _sample(name).file


def load_sample(name: str = DEFAULT_SAMPLE, *, limit: int | None = None) -> Bars:
    """Load a bundled sample as validated bars."""
    sample = _sample(name)
    return load_bars(_SAMPLES_DIR / sample.file, symbol=sample.symbol, interval=sample.interval, limit=limit)


def _sample(name: str) -> _Sample:
    for key, sample in _SAMPLES.items():
        if name.upper() in (key, sample.file.upper(), sample.file.upper().removesuffix(".CSV")):
            return sample
    raise DataError(f"unknown sample {name!r}; available: {', '.join(list_samples())}")


# ----------------------------------------------------------------------------------------------
# Raw table -> validated bars


def _bars_from_table(
    table: _Table,
    *,
    symbol: str | None,
    default_symbol: str,
    interval: str | None,
    max_gap: timedelta | None,
) -> Bars:
    if table.frame.empty:
        raise DataError(f"{table.source}: no bars", source=table.source)
    fields = _find_fields(table)
    time_columns = _find_time(table, fields)
    times = _parse_times(table, time_columns)
    time_label = " + ".join(time_columns)
    prices = {name: _parse_numbers(table, fields[name], times, required=True) for name in PRICE_COLUMNS}
    if "volume" in fields:
        volume = _parse_numbers(table, fields["volume"], times, required=False)
    else:
        volume = np.full(len(times), np.nan)
    _check_order(table, times, time_label)
    _check_prices(table, times, prices, fields)
    _check_volume(table, times, volume, fields.get("volume", "volume"))
    interval = _check_interval(interval, table.source) if interval else _infer_interval(table, times)
    allowed = pd.Timedelta(max_gap) if max_gap is not None else _max_gap(_interval_delta(interval))
    _check_gaps(table, times, time_label, interval, allowed)
    frame = pd.DataFrame({**prices, "volume": volume}, index=times)
    return Bars(
        frame=frame,
        symbol=symbol or table.symbol or _symbol_column(table) or default_symbol,
        interval=interval,
    )


def _load_ccxt(spec: str, *, symbol: str | None, interval: str | None, limit: int) -> Bars:
    table, market, timeframe = _ccxt_table(spec, interval=interval, limit=limit)
    bars = _bars_from_table(table, symbol=symbol, default_symbol=market, interval=timeframe, max_gap=None)
    return bars.tail(limit)
