"""load_bars reads CSV files in the shapes that brokers, vendors and pandas really write."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lyra.trading import Bars, load_bars

WriteFile = Callable[..., Path]  # the write_csv fixture of conftest.py


def _times(bars: Bars) -> list[str]:
    return [t.isoformat() for t in bars.frame.index]


def _assert_frame_shape(bars: Bars) -> None:
    frame = bars.frame
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index.name == "time"
    assert str(frame.index.tz) == "UTC"
    assert all(dtype == np.float64 for dtype in frame.dtypes)


def test_yahoo_daily_keeps_close_and_ignores_adj_close(write_csv: WriteFile) -> None:
    path = write_csv(
        """
        Date,Open,High,Low,Close,Adj Close,Volume
        2020-01-02,100.0,102.0,99.0,101.0,50.5,1000
        2020-01-03,101.0,103.0,100.0,102.0,51.0,1100
        2020-01-06,102.0,104.0,101.0,103.0,51.5,1200
    """,
        "AAPL.csv",
    )
    bars = load_bars(path)
    _assert_frame_shape(bars)
    assert bars.symbol == "AAPL"
    assert bars.interval == "1d"
    assert list(bars.frame["close"]) == [101.0, 102.0, 103.0]
    assert _times(bars)[0] == "2020-01-02T00:00:00+00:00"
    assert list(bars.frame["volume"]) == [1000.0, 1100.0, 1200.0]


def test_adj_close_is_used_only_when_close_is_missing(write_csv: WriteFile) -> None:
    path = write_csv("""
        Date,Open,High,Low,Adj Close
        2020-01-02,100,102,99,101
        2020-01-03,101,103,100,102
    """)
    assert list(load_bars(path).frame["close"]) == [101.0, 102.0]


def test_unnamed_index_column_as_pandas_writes_it(write_csv: WriteFile) -> None:
    path = write_csv("""
        ,open,high,low,close,volume
        2020-01-02,1,2,0.5,1.5,10
        2020-01-03,1.5,2,1,1.8,11
    """)
    bars = load_bars(path)
    assert _times(bars) == ["2020-01-02T00:00:00+00:00", "2020-01-03T00:00:00+00:00"]


def test_first_column_without_a_known_name_is_the_time(write_csv: WriteFile) -> None:
    path = write_csv("""
        When,Open,High,Low,Close
        2020-01-02,1,2,0.5,1.5
        2020-01-03,1.5,2,1,1.8
    """)
    assert len(load_bars(path)) == 2


@pytest.mark.parametrize(
    "header",
    [
        "date,open,high,low,close,volume",
        "DATE,OPEN,HIGH,LOW,CLOSE,VOLUME",
        "Datetime,Open,High,Low,Close,Volume",
        "timestamp,o,h,l,c,v",
        " Date , Open , High , Low , Close , Volume ",
        "<DATE>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>",
        "Time,Open,High,Low,Close,Volume",
    ],
)
def test_any_letter_case_and_common_names(write_csv: WriteFile, header: str) -> None:
    path = write_csv(f"{header}\n2020-01-02,1,2,0.5,1.5,10\n2020-01-03,1.5,2,1,1.8,11\n")
    bars = load_bars(path)
    assert list(bars.frame["close"]) == [1.5, 1.8]
    assert list(bars.frame["volume"]) == [10.0, 11.0]


def test_without_volume_column_volume_is_nan(write_csv: WriteFile) -> None:
    path = write_csv("""
        Date,Open,High,Low,Close
        2020-01-02,1,2,0.5,1.5
        2020-01-03,1.5,2,1,1.8
    """)
    assert load_bars(path).frame["volume"].isna().all()


def test_missing_volume_values_are_allowed(write_csv: WriteFile) -> None:
    path = write_csv("""
        Date,Open,High,Low,Close,Volume
        2020-01-02,1,2,0.5,1.5,
        2020-01-03,1.5,2,1,1.8,-
        2020-01-06,1.5,2,1,1.8,7
    """)
    volume = load_bars(path).frame["volume"]
    assert volume.isna().tolist() == [True, True, False]


def test_offsets_are_converted_to_utc_across_a_dst_change(write_csv: WriteFile) -> None:
    path = write_csv("""
        Datetime,Open,High,Low,Close,Volume
        2024-03-08 15:55:00-05:00,1,2,0.5,1.5,10
        2024-03-11 09:30:00-04:00,1.5,2,1,1.8,11
        2024-03-11 09:35:00-04:00,1.5,2,1,1.8,11
        2024-03-11 09:40:00-04:00,1.5,2,1,1.8,11
    """)
    bars = load_bars(path)
    assert _times(bars) == [
        "2024-03-08T20:55:00+00:00",
        "2024-03-11T13:30:00+00:00",
        "2024-03-11T13:35:00+00:00",
        "2024-03-11T13:40:00+00:00",
    ]
    assert bars.interval == "5m"


def test_iso_z_times(write_csv: WriteFile) -> None:
    path = write_csv("""
        time,open,high,low,close
        2024-01-01T00:00:00Z,1,2,0.5,1.5
        2024-01-01T01:00:00Z,1.5,2,1,1.8
    """)
    bars = load_bars(path)
    assert _times(bars)[1] == "2024-01-01T01:00:00+00:00"
    assert bars.interval == "1h"


def test_naive_intraday_times_are_utc(write_csv: WriteFile) -> None:
    path = write_csv("""
        Date,Open,High,Low,Close,Volume
        2020-01-02 09:30:00,1,2,0.5,1.5,10
        2020-01-02 09:31:00,1.5,2,1,1.8,11
        2020-01-02 09:32:00,1.5,2,1,1.8,11
    """)
    bars = load_bars(path)
    assert _times(bars)[0] == "2020-01-02T09:30:00+00:00"
    assert bars.interval == "1m"


@pytest.mark.parametrize(
    ("stamps", "expected"),
    [
        (("1704067200000", "1704070800000"), "1h"),  # epoch milliseconds (Binance, ccxt)
        (("1704067200", "1704070800"), "1h"),  # epoch seconds
        (("1704067200.0", "1704070800.0"), "1h"),  # epoch seconds as floats
    ],
)
def test_epoch_times(write_csv: WriteFile, stamps: tuple[str, str], expected: str) -> None:
    path = write_csv(
        f"timestamp,open,high,low,close,volume\n{stamps[0]},1,2,0.5,1.5,3\n{stamps[1]},1,2,0.5,1.5,3\n"
    )
    bars = load_bars(path)
    assert _times(bars) == ["2024-01-01T00:00:00+00:00", "2024-01-01T01:00:00+00:00"]
    assert bars.interval == expected


def test_yyyymmdd_integers(write_csv: WriteFile) -> None:
    path = write_csv("""
        date,open,high,low,close
        20200102,1,2,0.5,1.5
        20200103,1.5,2,1,1.8
    """)
    assert _times(load_bars(path)) == ["2020-01-02T00:00:00+00:00", "2020-01-03T00:00:00+00:00"]


def test_semicolons_and_decimal_commas(write_csv: WriteFile) -> None:
    path = write_csv("""
        Datum;Open;High;Low;Close;Volume
        02.01.2020;1,1200;1,1250;1,1150;1,1210;1.234,5
        03.01.2020;1,1210;1,1300;1,1200;1,1290;987
    """)
    bars = load_bars(path)
    assert _times(bars) == ["2020-01-02T00:00:00+00:00", "2020-01-03T00:00:00+00:00"]
    assert list(bars.frame["open"]) == [1.12, 1.121]
    assert list(bars.frame["volume"]) == [1234.5, 987.0]


def test_tab_separated(write_csv: WriteFile) -> None:
    path = write_csv("Date\tOpen\tHigh\tLow\tClose\n2020-01-02\t1\t2\t0.5\t1.5\n2020-01-03\t1\t2\t0.5\t1.5\n")
    assert len(load_bars(path)) == 2


def test_dukascopy_gmt_time(write_csv: WriteFile) -> None:
    path = write_csv("""
        Gmt time,Open,High,Low,Close,Volume
        01.01.2017 22:00:00.000,1.05236,1.05253,1.05221,1.05227,143539993.3
        01.01.2017 23:00:00.000,1.05227,1.05426,1.05226,1.05282,253139999.4
    """)
    bars = load_bars(path)
    assert _times(bars) == ["2017-01-01T22:00:00+00:00", "2017-01-01T23:00:00+00:00"]
    assert bars.interval == "1h"


def test_dukascopy_local_time_with_offsets(write_csv: WriteFile) -> None:
    path = write_csv("""
        Local time,Open,High,Low,Close,Volume
        02.01.2017 00:00:00.000 GMT+0100,1.05236,1.05253,1.05221,1.05227,1
        02.01.2017 01:00:00.000 GMT+0100,1.05227,1.05426,1.05226,1.05282,2
    """)
    assert _times(load_bars(path)) == ["2017-01-01T23:00:00+00:00", "2017-01-02T00:00:00+00:00"]


def test_metatrader_date_and_time_columns(write_csv: WriteFile) -> None:
    path = write_csv("""
        Date,Time,Open,High,Low,Close,Volume
        2020.01.02,10:00,1.1,1.2,1.0,1.15,100
        2020.01.02,10:15,1.15,1.2,1.1,1.12,90
    """)
    bars = load_bars(path)
    assert _times(bars) == ["2020-01-02T10:00:00+00:00", "2020-01-02T10:15:00+00:00"]
    assert bars.interval == "15m"


def test_finam_export(write_csv: WriteFile) -> None:
    path = write_csv("""
        <TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>
        SBER,60,20200102,100000,255.99,258.19,255.7,257.55,3713870
        SBER,60,20200102,110000,257.55,258.01,257.2,257.5,1651170
    """)
    bars = load_bars(path)
    assert bars.symbol == "SBER"
    assert _times(bars) == ["2020-01-02T10:00:00+00:00", "2020-01-02T11:00:00+00:00"]


def test_us_month_first_dates(write_csv: WriteFile) -> None:
    path = write_csv("""
        Date,Open,High,Low,Close
        12/30/2019,1,2,0.5,1.5
        12/31/2019,1,2,0.5,1.5
        01/02/2020,1,2,0.5,1.5
    """)
    assert _times(load_bars(path))[-1] == "2020-01-02T00:00:00+00:00"


def test_day_first_slashes(write_csv: WriteFile) -> None:
    path = write_csv("""
        Date,Open,High,Low,Close
        30/01/2020,1,2,0.5,1.5
        31/01/2020,1,2,0.5,1.5
        03/02/2020,1,2,0.5,1.5
    """)
    assert _times(load_bars(path))[-1] == "2020-02-03T00:00:00+00:00"


def test_ambiguous_slashes_are_read_the_way_that_gives_daily_steps(write_csv: WriteFile) -> None:
    # Month-first would read 1 Feb, 1 Mar, 1 Jun, 1 Jul, 1 Aug: in order too, but monthly.
    path = write_csv("""
        Date,Open,High,Low,Close
        02/01/2020,1,2,0.5,1.5
        03/01/2020,1,2,0.5,1.5
        06/01/2020,1,2,0.5,1.5
        07/01/2020,1,2,0.5,1.5
        08/01/2020,1,2,0.5,1.5
    """)
    bars = load_bars(path)
    assert _times(bars)[:2] == ["2020-01-02T00:00:00+00:00", "2020-01-03T00:00:00+00:00"]
    assert bars.interval == "1d"


def test_ambiguous_slashes_only_in_order_day_first(write_csv: WriteFile) -> None:
    path = write_csv("""
        Date,Open,High,Low,Close
        10/01/2020,1,2,0.5,1.5
        11/01/2020,1,2,0.5,1.5
        02/02/2020,1,2,0.5,1.5
    """)
    bars = load_bars(path, max_gap=timedelta(days=30))
    assert _times(bars)[-1] == "2020-02-02T00:00:00+00:00"


def test_nasdaq_export_with_dollar_signs(write_csv: WriteFile) -> None:
    path = write_csv("""
        Date,Close/Last,Volume,Open,High,Low
        01/03/2020,$297.43,36633880,$297.15,$300.58,$296.5
        01/02/2020,$300.35,33911860,$296.24,$300.6,$295.19
    """)
    # Nasdaq lists the newest day first: that is an order error, named precisely.
    with pytest.raises(
        Exception, match=r"row 3 \(2020-01-02T00:00:00\+00:00\), column 'Date': time goes backwards"
    ):
        load_bars(path)


def test_thousands_separators_and_volume_suffixes(write_csv: WriteFile) -> None:
    path = write_csv("""
        Date,Price,Open,High,Low,Vol.
        "Jan 02, 2020","1,367.37","1,341.55","1,368.14","1,341.55",1.41M
        "Jan 03, 2020","1,360.66","1,347.86","1,372.50","1,347.32",1.19K
    """)
    bars = load_bars(path)
    assert list(bars.frame["close"]) == [1367.37, 1360.66]
    assert list(bars.frame["volume"]) == [1_410_000.0, 1_190.0]


def test_blank_lines_do_not_shift_row_numbers(write_csv: WriteFile) -> None:
    path = write_csv("Date,Open,High,Low,Close\n2020-01-02,1,2,0.5,1.5\n\n2020-01-03,1,2,0.5,-1\n")
    with pytest.raises(Exception, match=r"prices\.csv row 4 "):
        load_bars(path)


def test_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffDate,Open,High,Low,Close\r\n2020-01-02,1,2,0.5,1.5\r\n2020-01-03,1,2,0.5,1.5\r\n".encode()
    )
    assert len(load_bars(path)) == 2


def test_gzip_csv(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv.gz"
    with gzip.open(path, "wt") as out:
        out.write("Date;Open;High;Low;Close\n2020-01-02;1;2;0,5;1,5\n2020-01-03;1;2;0,5;1,5\n")
    bars = load_bars(path)
    assert bars.symbol == "prices"
    assert list(bars.frame["low"]) == [0.5, 0.5]


def test_crypto_daily_and_weekly_intervals(write_csv: WriteFile) -> None:
    daily = "".join(f"2024-01-{d:02d},1,2,0.5,1.5\n" for d in range(1, 15))
    assert load_bars(write_csv("date,open,high,low,close\n" + daily)).interval == "1d"
    weekly = "".join(f"2024-{m:02d}-01,1,2,0.5,1.5\n" for m in range(1, 7))
    assert load_bars(write_csv("date,open,high,low,close\n" + weekly)).interval == "1M"
    weeks = pd.date_range("2024-01-01", periods=6, freq="7D")
    text = "".join(f"{t.date()},1,2,0.5,1.5\n" for t in weeks)
    assert load_bars(write_csv("date,open,high,low,close\n" + text)).interval == "1w"


def test_given_symbol_interval_and_limit(write_csv: WriteFile) -> None:
    rows = "".join(f"2024-01-{d:02d},1,2,0.5,{d}\n" for d in range(1, 11))
    bars = load_bars(
        write_csv("date,open,high,low,close\n" + rows.replace(",2,", ",20,")),
        symbol="BTC/USDT",
        interval="1d",
        limit=3,
    )
    assert (bars.symbol, bars.interval, len(bars)) == ("BTC/USDT", "1d", 3)
    assert list(bars.frame["close"]) == [8.0, 9.0, 10.0]


def test_a_single_bar_with_a_given_interval(write_csv: WriteFile) -> None:
    bars = load_bars(write_csv("date,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n"), interval="1d")
    assert len(bars) == 1
