"""Validation of parsed bars: time order, price sanity, volume and gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lyra.trading.datatable import PRICE_COLUMNS, FloatArray, _iso, _num, _row_error, _span, _Table


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
