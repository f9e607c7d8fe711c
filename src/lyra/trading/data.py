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

import gzip
import math
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from lyra.errors import LyraError

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

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = (*PRICE_COLUMNS, "volume")

# Column names are compared after lower-casing and dropping everything but letters and digits,
# so "Adj Close", "adj_close" and "<CLOSE>" all match. Earlier aliases win.
_TIME_ALIASES = (
    "datetime", "timestamp", "date", "time", "gmttime", "utctime", "timeutc", "datetimeutc",
    "dateutc", "localtime", "opentime", "timeopen", "ts", "t", "unixtime", "unix", "epoch",
    "datum", "index", "unnamed0",
)  # fmt: skip
_FIELD_ALIASES = {
    "open": ("open", "o", "openprice", "opening"),
    "high": ("high", "h", "highprice", "max"),
    "low": ("low", "l", "lowprice", "min"),
    "close": ("close", "c", "closeprice", "closelast", "last", "price"),
    "adjclose": ("adjclose", "adjustedclose", "adjcloseprice", "closeadj"),
    "volume": ("volume", "vol", "v", "realvolume", "basevolume", "tickvolume", "tickvol"),
}
_SYMBOL_ALIASES = ("symbol", "ticker")

# Tried in order on a column of text; the first that reads every value wins.
_TEXT_FORMATS = (
    "ISO8601",
    "%d.%m.%Y %H:%M:%S.%f", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y",
    "%d.%m.%Y %H:%M:%S.%f GMT%z", "%d.%m.%Y %H:%M:%S GMT%z",
    "%Y.%m.%d %H:%M:%S", "%Y.%m.%d %H:%M", "%Y.%m.%d",
    "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d",
    "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p",
    "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y",
    "%Y%m%d %H%M%S", "%Y%m%d %H:%M:%S", "%Y%m%d %H:%M",
    "%d-%b-%Y", "%d %b %Y", "%b %d, %Y", "%d-%b-%y",
    "mixed",
)  # fmt: skip
# When a month-first format reads everything, its day-first twin may too (all days <= 12).
_DAY_FIRST_TWIN = {
    "%m/%d/%Y %H:%M:%S": "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M": "%d/%m/%Y %H:%M",
    "%m/%d/%Y": "%d/%m/%Y",
}
_NUMBER = re.compile(r"^[-+]?\d+(\.\d*)?([eE][-+]?\d+)?$")
_CLOCK = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$|^\d{4,6}$")
_INTERVAL = re.compile(r"^(\d+)(s|m|h|d|w|M)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 30 * 86400}
_FORMAT_SAMPLE = 200
_EPOCH_HINT = " (numbers are read as epoch seconds or milliseconds, or YYYYMMDD)"
_EPOCH_MIN_SECONDS = 1e8  # 1973-03-03: smaller numbers are row counters, not times

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

FloatArray = npt.NDArray[np.float64]


class DataError(LyraError):
    """Market data is missing, unreadable or invalid; the one-line message names source, row and column."""

    def __init__(
        self, message: str, *, source: str = "", row: int | None = None, column: str | None = None
    ) -> None:
        super().__init__(message)
        self.source = source
        self.row = row
        self.column = column


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
# Reading sources into a raw table


@dataclass(frozen=True, eq=False)
class _Table:
    """A table as read, before validation: the columns as found and each row's number for messages."""

    frame: pd.DataFrame
    source: str
    rows: npt.NDArray[np.int64]
    decimal_comma: bool = False
    time_column: str | None = None  # a DataFrame's time index, moved into a column
    symbol: str | None = None


def _read_file(path: Path) -> _Table:
    if not path.exists():
        raise DataError(f"{path}: no such file", source=str(path))
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a CSV or Parquet file", source=str(path))
    head = _head(path)
    suffix = path.suffix.lower()
    if head.startswith(b"PAR1") or suffix in (".parquet", ".pq", ".parq"):
        return _read_parquet(path)
    if suffix in (".xlsx", ".xls", ".xlsm", ".ods") or (head.startswith(b"PK\x03\x04") and suffix != ".zip"):
        raise DataError(f"{path}: a spreadsheet, not CSV or Parquet; save it as CSV", source=str(path))
    if b"\x00" in head and suffix != ".zip":
        raise DataError(f"{path}: a binary file, not CSV or Parquet", source=str(path))
    return _read_csv(path, head)


def _head(path: Path) -> bytes:
    """The first 64 KiB of the file, decompressed when it is gzip."""
    try:
        with path.open("rb") as raw:
            head = raw.read(65536)
        if head.startswith(b"\x1f\x8b"):
            with gzip.open(path, "rb") as unzipped:
                head = unzipped.read(65536)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the file ({_one_line(exc)})", source=str(path)) from exc
    return head


def _read_csv(path: Path, head: bytes) -> _Table:
    sep = _sniff_separator(head.decode("utf-8-sig", errors="replace"))
    try:
        frame = _read_csv_text(path, sep, "utf-8-sig")
    except UnicodeDecodeError:
        frame = _read_csv_text(path, sep, "latin-1")  # decodes any bytes: old European exports
    frame.columns = [str(c).strip() for c in frame.columns]
    keep = ~frame.isna().all(axis=1).to_numpy()  # blank lines, kept above to count rows right
    rows = np.arange(2, len(frame) + 2, dtype=np.int64)[keep]
    frame = frame.loc[keep].reset_index(drop=True)
    return _Table(frame=frame, source=str(path), rows=rows, decimal_comma=sep != ",")


def _read_csv_text(path: Path, sep: str, encoding: str) -> pd.DataFrame:
    """Every cell as text (NaN when empty); blank lines kept as empty rows so row numbers stay right."""
    try:
        with warnings.catch_warnings():
            # pandas warns, then drops data, when the first row has more fields than the header.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                path,
                sep=sep,
                dtype=str,
                index_col=False,
                skip_blank_lines=False,
                na_values=["-", "--"],
                skipinitialspace=True,
                encoding=encoding,
            )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty", source=str(path)) from exc
    except pd.errors.ParserWarning as exc:
        raise DataError(
            f"{path} row 2: more fields than the header (row 1) names", source=str(path), row=2
        ) from exc
    except UnicodeDecodeError:
        raise
    except (pd.errors.ParserError, ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read as CSV ({_one_line(exc)})", source=str(path)) from exc


def _sniff_separator(text: str) -> str:
    """The delimiter of the header line: the most frequent of , ; tab |."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _read_parquet(path: Path) -> _Table:
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"{path}: cannot read as Parquet ({_one_line(exc)})", source=str(path)) from exc
    return _table_from_frame(frame, str(path))


def _table_from_frame(frame: pd.DataFrame, source: str) -> _Table:
    """A DataFrame as a raw table: a time index becomes the time column; rows count from 1."""
    frame, symbol = _flatten_columns(frame, source)
    time_column = None
    if _is_time_index(frame.index):
        time_column = _free_name(frame, str(frame.index.name) if frame.index.name is not None else "index")
        frame = frame.rename_axis(time_column).reset_index()
    else:
        frame = frame.reset_index(drop=True)
    rows = np.arange(1, len(frame) + 1, dtype=np.int64)
    return _Table(frame=frame, source=source, rows=rows, time_column=time_column, symbol=symbol)


def _is_time_index(index: pd.Index) -> bool:
    if isinstance(index, pd.DatetimeIndex):
        return True
    return index.nlevels == 1 and index.name is not None and _norm(str(index.name)) in _TIME_ALIASES


def _free_name(frame: pd.DataFrame, name: str) -> str:
    while name in frame.columns:
        name = f"{name}_"
    return name


def _flatten_columns(frame: pd.DataFrame, source: str) -> tuple[pd.DataFrame, str | None]:
    """Flatten yfinance-style (field, ticker) columns of a single ticker; names become strings."""
    if not isinstance(frame.columns, pd.MultiIndex):
        return frame.set_axis([str(c) for c in frame.columns], axis=1), None
    tickers = frame.columns.get_level_values(-1).unique()
    if frame.columns.nlevels != 2 or len(tickers) != 1:
        raise DataError(
            f"{source}: columns have several levels {list(frame.columns)[:4]}...; select one symbol first",
            source=source,
        )
    flat = frame.set_axis([str(c) for c in frame.columns.get_level_values(0)], axis=1)
    return flat, str(tickers[0])


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


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _columns_by_norm(frame: pd.DataFrame) -> dict[str, str]:
    """Normalised name -> first column of that name."""
    found: dict[str, str] = {}
    for column in frame.columns:
        found.setdefault(_norm(column), column)
    return found


def _find_fields(table: _Table) -> dict[str, str]:
    """Canonical field (open, high, low, close, volume) -> the table's column for it."""
    by_norm = _columns_by_norm(table.frame)
    fields: dict[str, str] = {}
    for field, aliases in _FIELD_ALIASES.items():
        match = next((by_norm[a] for a in aliases if a in by_norm and by_norm[a] != table.time_column), None)
        if match is not None:
            fields[field] = match
    adj_close = fields.pop("adjclose", None)
    if "close" not in fields and adj_close is not None:
        fields["close"] = adj_close
    missing = [name for name in PRICE_COLUMNS if name not in fields]
    if missing:
        raise DataError(_missing_columns_message(table, missing), source=table.source)
    return fields


def _missing_columns_message(table: _Table, missing: Sequence[str]) -> str:
    found = ", ".join(repr(c) for c in table.frame.columns)
    hint = ""
    if any(re.fullmatch(r"[-+\d.:/ ]+", c) for c in table.frame.columns):
        hint = " (the first line looks like data: the file needs a header row)"
    wanted = ", ".join(repr(name) for name in missing)
    return f"{table.source}: missing column(s) {wanted}; need open, high, low, close; found {found}{hint}"


def _find_time(table: _Table, fields: dict[str, str]) -> tuple[str, ...]:
    """The time column, or a date column and a time-of-day column."""
    if table.time_column is not None:
        return (table.time_column,)
    by_norm = _columns_by_norm(table.frame)
    used = set(fields.values())
    for alias in _TIME_ALIASES:
        column = by_norm.get(alias)
        if column is None or column in used:
            continue
        clock = by_norm.get("time")
        if alias == "date" and clock is not None and _looks_like_clock(table.frame[clock]):
            return (column, clock)
        return (column,)
    first = str(table.frame.columns[0])
    if first not in used:
        return (first,)
    found = ", ".join(repr(c) for c in table.frame.columns)
    raise DataError(
        f"{table.source}: no date/time column (looked for Date, Datetime, Timestamp, Time, "
        f"Gmt time, Local time, an unnamed first column or a time index); found {found}",
        source=table.source,
    )


def _looks_like_clock(column: pd.Series) -> bool:
    values = column.dropna()
    return bool(len(values)) and bool(_CLOCK.match(str(values.iloc[0]).strip()))


def _symbol_column(table: _Table) -> str | None:
    by_norm = _columns_by_norm(table.frame)
    for alias in _SYMBOL_ALIASES:
        if alias in by_norm:
            values = table.frame[by_norm[alias]].dropna().unique()
            if len(values) == 1:
                return str(values[0]).strip()
    return None


# --- times --------------------------------------------------------------------------------------


def _parse_times(table: _Table, columns: tuple[str, ...]) -> pd.DatetimeIndex:
    raw = table.frame[columns[0]]
    if len(columns) == 2:
        clock = table.frame[columns[1]]
        raw = raw.astype(str).str.strip() + " " + clock.astype(str).str.strip()
        raw = raw.where(table.frame[columns[0]].notna() & clock.notna())
    label = " + ".join(columns)
    missing = np.flatnonzero(raw.isna().to_numpy())
    if len(missing):
        raise _row_error(table, int(missing[0]), label, "missing date/time")
    numbers = _as_numbers(raw)
    parsed = _coerce_times(raw, numbers)
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        hint = _EPOCH_HINT if numbers is not None else ""
        value = raw.iloc[int(bad[0])]
        raise _row_error(table, int(bad[0]), label, f"cannot read {value!r} as a date/time{hint}")
    return pd.DatetimeIndex(parsed, name="time")


def _as_numbers(raw: pd.Series) -> pd.Series | None:
    """A time column of numbers (judged by its first value) as floats, NaN where not a number; else None."""
    if pd.api.types.is_bool_dtype(raw) or pd.api.types.is_datetime64_any_dtype(raw):
        return None
    if pd.api.types.is_numeric_dtype(raw):
        return raw.astype(float)
    if not _NUMBER.match(str(raw.iloc[0]).strip()):
        return None
    return pd.to_numeric(raw.astype(str).str.strip(), errors="coerce").astype(float)


def _coerce_times(raw: pd.Series, numbers: pd.Series | None) -> pd.Series:
    """Times as datetime64[ns, UTC]; NaT where a value cannot be read."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        return _series_as_utc(raw)
    if numbers is not None:
        return _times_from_numbers(numbers)
    if isinstance(raw.iloc[0], datetime) and raw.map(lambda v: isinstance(v, datetime)).all():
        return _series_as_utc(pd.to_datetime(raw, utc=True))
    return _times_from_text(raw.astype(str).str.strip())


def _series_as_utc(times: pd.Series) -> pd.Series:
    utc = times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")
    return utc.dt.as_unit("ns")


def _times_from_numbers(values: pd.Series) -> pd.Series:
    """Epoch seconds/milliseconds/microseconds/nanoseconds by magnitude, or YYYYMMDD integers."""
    v = values.to_numpy(dtype=float)
    if not np.isfinite(v).any():
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if np.all((v == np.floor(v)) & (v >= 19000101) & (v <= 21001231)):
        dates = pd.to_datetime(values.astype("int64").astype(str), format="%Y%m%d", errors="coerce", utc=True)
        if dates.notna().all():
            return _series_as_utc(dates)
    magnitude = float(np.nanmedian(np.abs(v)))
    if magnitude < _EPOCH_MIN_SECONDS:
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
    return _series_as_utc(pd.to_datetime(values, unit=unit, utc=True, errors="coerce"))


def _times_from_text(text: pd.Series) -> pd.Series:
    """Read text times with the first format that reads them all; else the one that reads most."""
    sample = (
        text
        if len(text) <= 2 * _FORMAT_SAMPLE
        else pd.concat([text.iloc[:_FORMAT_SAMPLE], text.iloc[-_FORMAT_SAMPLE:]])
    )
    scored = [(int(_to_datetime(sample, fmt).isna().sum()), fmt) for fmt in _TEXT_FORMATS]
    fitting = [fmt for misses, fmt in scored if misses == 0]
    best: tuple[int, pd.Series] | None = None
    for fmt in fitting or [min(scored)[1]]:
        parsed = _to_datetime(text, fmt)
        misses = int(parsed.isna().sum())
        if misses == 0:
            return _prefer_day_first(text, fmt, parsed)
        if best is None or misses < best[0]:
            best = (misses, parsed)
    assert best is not None
    return best[1]


def _prefer_day_first(text: pd.Series, fmt: str, parsed: pd.Series) -> pd.Series:
    """Settle d/m/Y against m/d/Y when both read every value (all days <= 12).

    The right reading is in time order and, read the wrong way, daily bars jump by months: take
    day-first when only it is in order, or when both are and its typical step is smaller.
    """
    twin = _DAY_FIRST_TWIN.get(fmt)
    if twin is None:
        return parsed
    other = _to_datetime(text, twin)
    if other.isna().any() or not other.is_monotonic_increasing:
        return parsed
    if not parsed.is_monotonic_increasing:
        return other
    return other if _typical_step(other) < _typical_step(parsed) else parsed


def _typical_step(times: pd.Series) -> float:
    steps = np.diff(times.to_numpy(dtype="datetime64[ns]").astype(np.int64))
    return float(np.median(steps)) if len(steps) else 0.0


def _to_datetime(text: pd.Series, fmt: str) -> pd.Series:
    try:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
    except (ValueError, TypeError, OverflowError):
        return pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    return _series_as_utc(parsed)


# --- numbers ------------------------------------------------------------------------------------


def _parse_numbers(table: _Table, column: str, times: pd.DatetimeIndex, *, required: bool) -> FloatArray:
    """A column as finite floats; a missing value is an error when `required`, else NaN."""
    raw = table.frame[column]
    values = _coerce_numbers(raw, decimal_comma=table.decimal_comma)
    present = raw.notna().to_numpy()
    problems = (present & ~np.isfinite(values)) | (~present if required else np.zeros(len(raw), bool))
    bad = np.flatnonzero(problems)
    if len(bad):
        i = int(bad[0])
        value = raw.iloc[i]
        if not present[i]:
            problem = "missing value"
        elif math.isnan(values[i]):
            problem = f"{value!r} is not a number"
        else:
            problem = f"{value!r} is not a finite number"
        raise _row_error(table, i, column, problem, times)
    return values


def _coerce_numbers(raw: pd.Series, *, decimal_comma: bool) -> FloatArray:
    """Numbers as floats (NaN where unreadable), forgiving currency signs, thousands and K/M/B."""
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return np.asarray(raw.to_numpy(dtype=float, na_value=np.nan), dtype=np.float64)
    values = pd.to_numeric(raw, errors="coerce").astype(float)  # the fast path: plain numbers
    failed = raw.notna() & values.isna()
    if not failed.any():
        return np.asarray(values.to_numpy(dtype=float, na_value=np.nan), dtype=np.float64)
    if decimal_comma and raw[failed].astype(str).str.contains(",", regex=False).any():
        # One decimal comma means any '.' in the column separates thousands: read it all again.
        failed = raw.notna()
    values.loc[failed] = _clean_numbers(raw[failed].astype(str), decimal_comma=decimal_comma)
    return np.asarray(values.to_numpy(dtype=float, na_value=np.nan), dtype=np.float64)


def _clean_numbers(text: pd.Series, *, decimal_comma: bool) -> pd.Series:
    """Numbers written for people: "$1,234.50", "1.234,5" (with decimal_comma), "1.41M"."""
    text = text.str.strip().str.lstrip("$€£¥ ").str.replace(" ", "", regex=False)
    if decimal_comma:
        text = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    else:
        text = text.str.replace(",", "", regex=False)
    values = pd.to_numeric(text, errors="coerce").astype(float)
    scaled = text.str.extract(r"^([-+]?\d*\.?\d+)([KMBkmb])$")
    has_suffix = scaled[0].notna() & values.isna()
    if has_suffix.any():
        factor = scaled.loc[has_suffix, 1].str.upper().map({"K": 1e3, "M": 1e6, "B": 1e9})
        values.loc[has_suffix] = scaled.loc[has_suffix, 0].astype(float) * factor
    return values


# --- checks -------------------------------------------------------------------------------------


def _check_order(table: _Table, times: pd.DatetimeIndex, label: str) -> None:
    stamps = times.asi8
    bad = np.flatnonzero(np.diff(stamps) <= 0)
    if not len(bad):
        return
    i = int(bad[0]) + 1
    previous = f"row {table.rows[i - 1]} ({_iso(times[i - 1])})"
    if stamps[i] == stamps[i - 1]:
        problem = f"duplicate time, same as {previous}"
    else:
        problem = f"time goes backwards from {previous}; bars must be in ascending time order"
    raise _row_error(table, i, label, problem, times)


def _check_prices(
    table: _Table, times: pd.DatetimeIndex, prices: dict[str, FloatArray], fields: dict[str, str]
) -> None:
    for name in PRICE_COLUMNS:
        bad = np.flatnonzero(prices[name] <= 0)
        if len(bad):
            i = int(bad[0])
            raise _row_error(
                table, i, fields[name], f"{name} must be positive, got {_num(prices[name][i])}", times
            )
    high, low = prices["high"], prices["low"]
    bad = np.flatnonzero(high < low)
    if len(bad):
        i = int(bad[0])
        problem = f"high {_num(high[i])} is below low {_num(low[i])} (column '{fields['low']}')"
        raise _row_error(table, i, fields["high"], problem, times)
    slack = 1e-9  # relative: vendors round open/close and high/low separately
    for name in ("open", "close"):
        value = prices[name]
        bad = np.flatnonzero((value < low * (1 - slack)) | (value > high * (1 + slack)))
        if len(bad):
            i = int(bad[0])
            bounds = f"[low {_num(low[i])}, high {_num(high[i])}]"
            problem = f"{name} {_num(value[i])} is outside the bar's range {bounds}"
            raise _row_error(table, i, fields[name], problem, times)


def _check_volume(table: _Table, times: pd.DatetimeIndex, volume: FloatArray, column: str) -> None:
    bad = np.flatnonzero(volume < 0)
    if len(bad):
        i = int(bad[0])
        raise _row_error(table, i, column, f"volume must not be negative, got {_num(volume[i])}", times)


def _check_gaps(
    table: _Table, times: pd.DatetimeIndex, label: str, interval: str, allowed: pd.Timedelta
) -> None:
    bad = np.flatnonzero(np.diff(times.asi8) > allowed.value)
    if not len(bad):
        return
    i = int(bad[0]) + 1
    gap = times[i] - times[i - 1]
    problem = (
        f"gap of {_span(gap)} since the previous bar (row {table.rows[i - 1]}, {_iso(times[i - 1])}); "
        f"{interval} bars allow at most {_span(allowed)} (pass max_gap= to allow more)"
    )
    raise _row_error(table, i, label, problem, times)


# --- intervals ----------------------------------------------------------------------------------


def _check_interval(interval: str, source: str) -> str:
    if not _INTERVAL.match(interval) or int(interval[:-1]) == 0:
        raise DataError(
            f"{source}: interval {interval!r} is not understood; use for example 1m, 5m, 1h, 4h, "
            "1d, 1w or 1M",
            source=source,
        )
    return interval


def _interval_delta(interval: str) -> pd.Timedelta:
    match = _INTERVAL.match(interval)
    assert match is not None
    return pd.Timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _infer_interval(table: _Table, times: pd.DatetimeIndex) -> str:
    """The most common spacing of the bars (the smallest on a tie), as a label like 5m, 1h or 1d."""
    if len(times) < 2:
        raise DataError(
            f"{table.source}: cannot infer the bar interval from one bar; pass interval=", source=table.source
        )
    steps, counts = np.unique(np.diff(times.asi8), return_counts=True)
    seconds = max(1, round(int(steps[int(np.argmax(counts))]) / 1e9))
    if 28 * 86400 <= seconds <= 31 * 86400:
        return "1M"
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def _max_gap(step: pd.Timedelta) -> pd.Timedelta:
    """The widest spacing allowed between bars of this interval (see the module docstring)."""
    if step < pd.Timedelta(days=1):
        return pd.Timedelta(days=5)
    return max(pd.Timedelta(days=7), step * 1.5)


# --- messages -----------------------------------------------------------------------------------


def _row_error(
    table: _Table, i: int, column: str, problem: str, times: pd.DatetimeIndex | None = None
) -> DataError:
    row = int(table.rows[i])
    when = f" ({_iso(times[i])})" if times is not None else ""
    return DataError(
        f"{table.source} row {row}{when}, column '{column}': {problem}",
        source=table.source,
        row=row,
        column=column,
    )


def _iso(t: pd.Timestamp) -> str:
    return str(t.isoformat())


def _num(value: float) -> str:
    return f"{value:.10g}"


def _span(delta: pd.Timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    parts = [
        f"{days} day{'s' if days != 1 else ''}" if days else "",
        f"{hours} h" if hours else "",
        f"{rest // 60} min" if rest >= 60 else "",
    ]
    return " ".join(p for p in parts if p) or f"{seconds} s"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# ----------------------------------------------------------------------------------------------
# ccxt: live OHLCV from an exchange (optional extra)


def _parse_ccxt_spec(spec: str, interval: str | None) -> tuple[str, str, str]:
    """`ccxt:EXCHANGE:SYMBOL[:TIMEFRAME]` -> (exchange, symbol, timeframe); symbols may hold ':'."""
    parts = spec.split(":")
    if len(parts) >= 4 and _INTERVAL.match(parts[-1]):
        exchange, market, timeframe = parts[1], ":".join(parts[2:-1]), parts[-1]
    elif len(parts) >= 3:
        exchange, market, timeframe = parts[1], ":".join(parts[2:]), interval or "1h"
    else:
        exchange = market = timeframe = ""
    if not exchange or not market:
        raise DataError(
            f"{spec}: expected ccxt:EXCHANGE:SYMBOL:TIMEFRAME, e.g. ccxt:binance:BTC/USDT:1h", source=spec
        )
    return exchange, market, _check_interval(interval or timeframe, spec)


def _load_ccxt(spec: str, *, symbol: str | None, interval: str | None, limit: int) -> Bars:
    exchange_id, market, timeframe = _parse_ccxt_spec(spec, interval)
    rows = _fetch_ccxt(spec, exchange_id, market, timeframe, limit + 1)
    step_ms = _interval_delta(timeframe).value // 1_000_000
    now_ms = time.time() * 1000
    closed = [row for row in rows if row[0] + step_ms <= now_ms]  # the last candle is still forming
    frame = pd.DataFrame([row[:6] for row in closed], columns=["time", *BAR_COLUMNS])
    if frame.empty:
        raise DataError(f"{spec}: the exchange returned no closed bars", source=spec)
    frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    table = _table_from_frame(frame.set_index("time"), spec)
    bars = _bars_from_table(table, symbol=symbol, default_symbol=market, interval=timeframe, max_gap=None)
    return bars.tail(limit)


def _fetch_ccxt(spec: str, exchange_id: str, market: str, timeframe: str, limit: int) -> list[list[float]]:
    try:
        import ccxt
    except ImportError as exc:
        raise DataError(
            f"{spec}: the ccxt extra is not installed; install it with pip install 'lyra-orchestrator[ccxt]'",
            source=spec,
        ) from exc
    exchange_class = getattr(ccxt, exchange_id, None)
    if not isinstance(exchange_class, type):
        raise DataError(f"{spec}: ccxt knows no exchange {exchange_id!r}", source=spec)
    exchange = exchange_class({"enableRateLimit": True})
    try:
        rows: Any = exchange.fetch_ohlcv(market, timeframe=timeframe, limit=limit)
    except ccxt.NetworkError as exc:
        raise DataError(f"{spec}: cannot reach {exchange_id} ({_one_line(exc)})", source=spec) from exc
    except ccxt.BaseError as exc:
        raise DataError(f"{spec}: {exchange_id} refused the request ({_one_line(exc)})", source=spec) from exc
    return list(rows)
