"""Bar intervals ("5m", "1h", "1d", "1w", "1M"): checking, inferring, and the widest gap allowed."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from lyra.days import DAY_S, UNIT_SECONDS
from lyra.trading.datatable import DataError, _Table

_INTERVAL = re.compile(r"^(\d+)(s|m|h|d|w|M)$")


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
    return pd.Timedelta(seconds=int(match.group(1)) * UNIT_SECONDS[match.group(2)])


def _infer_interval(table: _Table, times: pd.DatetimeIndex) -> str:
    """The most common spacing of the bars (the smallest on a tie), as a label like 5m, 1h or 1d."""
    if len(times) < 2:
        raise DataError(
            f"{table.source}: cannot infer the bar interval from one bar; pass interval=", source=table.source
        )
    steps, counts = np.unique(np.diff(times.asi8), return_counts=True)
    seconds = max(1, round(int(steps[int(np.argmax(counts))]) / 1e9))
    if 28 * DAY_S <= seconds <= 31 * DAY_S:
        return "1M"
    for unit in ("w", "d", "h", "m"):
        if seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def _max_gap(step: pd.Timedelta) -> pd.Timedelta:
    """The widest spacing allowed between bars of this interval (the gap rule: see lyra.trading.data)."""
    if step < pd.Timedelta(days=1):
        return pd.Timedelta(days=5)
    return max(pd.Timedelta(days=7), step * 1.5)
