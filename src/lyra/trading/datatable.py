"""The raw table as read from a source, the `DataError` raised about it and its one-line messages.

Shared by the market-data modules (see `lyra.trading.data` for the public API).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from lyra.errors import LyraError

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = (*PRICE_COLUMNS, "volume")

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
class _Table:
    """A table as read, before validation: the columns as found and each row's number for messages."""

    frame: pd.DataFrame
    source: str
    rows: npt.NDArray[np.int64]
    decimal_comma: bool = False
    time_column: str | None = None  # a DataFrame's time index, moved into a column
    symbol: str | None = None


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
