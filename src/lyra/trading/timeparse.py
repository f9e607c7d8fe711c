"""Reading the time column(s) of a raw table: text in many formats, epoch numbers, datetimes."""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pandas as pd

from lyra.trading.datatable import _row_error, _Table

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
_FORMAT_SAMPLE = 200
_EPOCH_HINT = " (numbers are read as epoch seconds or milliseconds, or YYYYMMDD)"
_EPOCH_MIN_SECONDS = 1e8  # 1973-03-03: smaller numbers are row counters, not times


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
