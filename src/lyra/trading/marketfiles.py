"""Reading CSV/Parquet files and DataFrames into a raw table, and finding its columns."""

from __future__ import annotations

import gzip
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lyra.trading.datatable import PRICE_COLUMNS, DataError, _one_line, _Table

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
_CLOCK = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$|^\d{4,6}$")


# --- reading ------------------------------------------------------------------------------------


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


# --- columns ------------------------------------------------------------------------------------


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
