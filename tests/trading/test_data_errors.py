"""Bad market data gets one line naming the file, the row (header = row 1), the time and the column."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from lyra.errors import LyraError
from lyra.trading import DataError, as_utc, load_bars

WriteFile = Callable[..., Path]  # the write_csv fixture of conftest.py

HEADER = "Date,Open,High,Low,Close,Volume"
GOOD = [
    "2020-01-02,10,11,9,10.5,100",
    "2020-01-03,10.5,11.5,10,11,100",
    "2020-01-06,11,12,10.5,11.5,100",
    "2020-01-07,11.5,12,11,11.8,100",
]


def _csv(write_csv: WriteFile, replace: dict[int, str], header: str = HEADER) -> Path:
    """The good file with data rows replaced (keys are file rows: the first bar is row 2)."""
    lines = [header, *GOOD]
    for row, text in replace.items():
        lines[row - 1] = text
    return write_csv("\n".join(lines) + "\n")


def _message(path: Path) -> str:
    with pytest.raises(DataError) as caught:
        load_bars(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message.removeprefix(f"{path}: ").removeprefix(f"{path} ")


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (
            {4: "2020-01-03,11,12,10.5,11.5,100"},
            "row 4 (2020-01-03T00:00:00+00:00), column 'Date': duplicate time, same as row 3 "
            "(2020-01-03T00:00:00+00:00)",
        ),
        (
            {4: "2020-01-01,11,12,10.5,11.5,100"},
            "row 4 (2020-01-01T00:00:00+00:00), column 'Date': time goes backwards from row 3 "
            "(2020-01-03T00:00:00+00:00); bars must be in ascending time order",
        ),
        (
            {3: "2020-01-03,10.5,11.5,0,11,100"},
            "row 3 (2020-01-03T00:00:00+00:00), column 'Low': low must be positive, got 0",
        ),
        (
            {5: "2020-01-07,-11.5,12,11,11.8,100"},
            "row 5 (2020-01-07T00:00:00+00:00), column 'Open': open must be positive, got -11.5",
        ),
        (
            {4: "2020-01-06,11,10,10.5,10.6,100"},
            "row 4 (2020-01-06T00:00:00+00:00), column 'High': high 10 is below low 10.5 (column 'Low')",
        ),
        (
            {2: "2020-01-02,12,11,9,10.5,100"},
            "row 2 (2020-01-02T00:00:00+00:00), column 'Open': open 12 is outside the bar's range "
            "[low 9, high 11]",
        ),
        (
            {3: "2020-01-03,10.5,11.5,10,9.99,100"},
            "row 3 (2020-01-03T00:00:00+00:00), column 'Close': close 9.99 is outside the bar's range "
            "[low 10, high 11.5]",
        ),
        (
            {4: "2020-01-06,11,12,10.5,,100"},
            "row 4 (2020-01-06T00:00:00+00:00), column 'Close': missing value",
        ),
        (
            {4: "2020-01-06,11,n/a,10.5,11,100"},
            "row 4 (2020-01-06T00:00:00+00:00), column 'High': missing value",
        ),
        (
            {5: "2020-01-07,11.5,12,eleven,11.8,100"},
            "row 5 (2020-01-07T00:00:00+00:00), column 'Low': 'eleven' is not a number",
        ),
        (
            {3: "2020-01-03,10.5,inf,10,11,100"},
            "row 3 (2020-01-03T00:00:00+00:00), column 'High': 'inf' is not a finite number",
        ),
        (
            {5: "2020-02-30,11.5,12,11,11.8,100"},
            "row 5, column 'Date': cannot read '2020-02-30' as a date/time",
        ),
        (
            {3: "yesterday,10.5,11.5,10,11,100"},
            "row 3, column 'Date': cannot read 'yesterday' as a date/time",
        ),
        (
            {3: ",10.5,11.5,10,11,100"},
            "row 3, column 'Date': missing date/time",
        ),
        (
            {5: "2020-01-17,11.5,12,11,11.8,100"},
            "row 5 (2020-01-17T00:00:00+00:00), column 'Date': gap of 11 days since the previous bar "
            "(row 4, 2020-01-06T00:00:00+00:00); 1d bars allow at most 7 days (pass max_gap= to allow more)",
        ),
        (
            {2: "2020-01-02,10,11,9,10.5,-100"},
            "row 2 (2020-01-02T00:00:00+00:00), column 'Volume': volume must not be negative, got -100",
        ),
    ],
    ids=[
        "duplicate",
        "unsorted",
        "zero",
        "negative",
        "high-below-low",
        "open-outside",
        "close-outside",
        "missing-close",
        "na-high",
        "not-a-number",
        "infinite",
        "bad-date",
        "words-for-date",
        "missing-date",
        "gap",
        "negative-volume",
    ],
)
def test_bad_rows_are_named_exactly(write_csv: WriteFile, replace: dict[int, str], expected: str) -> None:
    assert _message(_csv(write_csv, replace)) == expected


def test_errors_are_lyra_errors_with_fields(write_csv: WriteFile) -> None:
    path = _csv(write_csv, {4: "2020-01-06,11,12,10.5,,100"})
    with pytest.raises(LyraError) as caught:
        load_bars(path)
    error = caught.value
    assert isinstance(error, DataError)
    assert (error.source, error.row, error.column) == (str(path), 4, "Close")


def test_a_weekend_and_a_holiday_are_not_gaps(write_csv: WriteFile) -> None:
    # Thursday 2020-12-24 -> Monday 2020-12-28 (Christmas) and a seven-day closure are allowed.
    path = write_csv(
        f"{HEADER}\n2020-12-24,1,2,0.5,1.5,1\n2020-12-28,1,2,0.5,1.5,1\n2021-01-04,1,2,0.5,1.5,1\n"
    )
    assert len(load_bars(path)) == 3


def test_intraday_allows_weekends_but_not_a_missing_week(write_csv: WriteFile) -> None:
    friday_to_monday = "2020-01-03 21:00,1,2,0.5,1.5,1\n2020-01-05 22:00,1,2,0.5,1.5,1\n"
    path = write_csv(
        f"{HEADER}\n2020-01-03 20:00,1,2,0.5,1.5,1\n{friday_to_monday}2020-01-05 23:00,1,2,0.5,1.5,1\n"
        "2020-01-13 00:00,1,2,0.5,1.5,1\n"
    )
    assert _message(path) == (
        "row 6 (2020-01-13T00:00:00+00:00), column 'Date': gap of 7 days 1 h since the previous bar "
        "(row 5, 2020-01-05T23:00:00+00:00); 1h bars allow at most 5 days (pass max_gap= to allow more)"
    )
    assert len(load_bars(path, max_gap=timedelta(days=8))) == 5


def test_missing_columns_name_what_was_found(write_csv: WriteFile) -> None:
    path = write_csv("Date,Open,Close,Volume\n2020-01-02,1,1.5,3\n")
    assert _message(path) == (
        "missing column(s) 'high', 'low'; need open, high, low, close; found 'Date', 'Open', 'Close', 'Volume'"
    )


def test_a_file_without_header_gets_a_hint(write_csv: WriteFile) -> None:
    path = write_csv("2020.01.02,10:00,1.1,1.2,1.0,1.15,100\n2020.01.02,10:15,1.15,1.2,1.1,1.12,90\n")
    assert _message(path).endswith("(the first line looks like data: the file needs a header row)")


def test_no_time_column(write_csv: WriteFile) -> None:
    path = write_csv("Open,High,Low,Close\n1,2,0.5,1.5\n")
    assert _message(path).startswith("no date/time column (looked for Date, Datetime, Timestamp, Time,")


def test_row_counters_are_not_times(write_csv: WriteFile) -> None:
    path = write_csv("n,Open,High,Low,Close\n1,1,2,0.5,1.5\n2,1,2,0.5,1.5\n")
    assert _message(path) == (
        "row 2, column 'n': cannot read '1' as a date/time (numbers are read as epoch seconds or milliseconds, "
        "or YYYYMMDD)"
    )


def test_one_bar_needs_an_interval(write_csv: WriteFile) -> None:
    path = write_csv(f"{HEADER}\n{GOOD[0]}\n")
    assert _message(path) == "cannot infer the bar interval from one bar; pass interval="


def test_bad_interval_and_limit(write_csv: WriteFile) -> None:
    path = _csv(write_csv, {})
    with pytest.raises(DataError, match=r"interval '1x' is not understood; use for example 1m, 5m, 1h"):
        load_bars(path, interval="1x")
    with pytest.raises(DataError, match=r"^limit must be at least 1, got 0$"):
        load_bars(path, limit=0)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=r"nope\.csv: no such file$"):
        load_bars(path)
    with pytest.raises(DataError, match=r": is a folder, not a CSV or Parquet file$"):
        load_bars(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("prices.xlsx", b"PK\x03\x04rest-of-zip", "a spreadsheet, not CSV or Parquet; save it as CSV"),
        ("prices.csv", b"PK\x03\x04rest-of-zip", "a spreadsheet, not CSV or Parquet; save it as CSV"),
        ("prices.bin", b"\x00\x01\x02\x03", "a binary file, not CSV or Parquet"),
        ("prices.csv", b"", "the file is empty"),
        ("prices.parquet", b"PAR1 this is not parquet", "cannot read as Parquet ("),
        ("prices.csv", b'Date,Open\n"2020-01-02,1\n', "cannot read as CSV ("),
        ("prices.csv", b"Date,Open,High,Low,Close\n", "no bars"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert _message(path).startswith(expected)


def test_dataframe_rows_count_from_one() -> None:
    frame = pd.DataFrame(
        {"open": [1.0, 1.0, 1.0], "high": [2.0, 2.0, 0.4], "low": [0.5, 0.5, 0.5], "close": [1.5, 1.5, 0.45]},
        index=pd.date_range("2024-01-01", periods=3, freq="h", name="time"),
    )
    with pytest.raises(DataError) as caught:
        load_bars(frame)
    assert str(caught.value) == (
        "DataFrame row 3 (2024-01-01T02:00:00+00:00), column 'high': high 0.4 is below low 0.5 (column 'low')"
    )


def test_an_epoch_column_with_a_bad_value(write_csv: WriteFile) -> None:
    path = write_csv("timestamp,open,high,low,close\n1704067200000,1,2,0.5,1.5\n17040x,1,2,0.5,1.5\n")
    assert _message(path) == (
        "row 3, column 'timestamp': cannot read '17040x' as a date/time (numbers are read as epoch seconds "
        "or milliseconds, or YYYYMMDD)"
    )


def test_a_bad_time_argument() -> None:
    with pytest.raises(DataError, match=r"^not a time: 'soon' \("):
        as_utc("soon")
