"""Reading the price and volume columns of a raw table as floats."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lyra.trading.datatable import FloatArray, _row_error, _Table


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
