"""The trading session: "HH:MM-HH:MM" in UTC, overnight sessions included, and one line for a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from lyra.catalog.models import load_catalog
from lyra.config import example_config_text, load_config
from lyra.days import DAY_S, Session, parse_session, session_seconds
from lyra.errors import ConfigError
from lyra.ops.plan import build_plan
from lyra.ops.schedule import session_length_s


@pytest.mark.parametrize(("text", "session", "length_s", "overnight"), [
    ("00:00-24:00", Session(0, DAY_S), DAY_S, False),
    ("13:30-20:00", Session(13 * 3600 + 1800, 20 * 3600), 6 * 3600 + 1800, False),
    ("20:00-24:00", Session(20 * 3600, DAY_S), 4 * 3600, False),
    ("22:00-06:00", Session(22 * 3600, 6 * 3600), 8 * 3600, True),
    ("23:59-00:00", Session(23 * 3600 + 59 * 60, 0), 60, True),
    ("00:01-00:00", Session(60, 0), DAY_S - 60, True),
])
def test_sessions_parse_with_their_length(text: str, session: Session, length_s: int, overnight: bool) -> None:
    parsed = parse_session(text)
    assert parsed == session
    assert (parsed.length_s, parsed.overnight) == (length_s, overnight)
    assert session_seconds(text) == (session.start_s, session.end_s)


@pytest.mark.parametrize(("text", "expected"), [
    ("25:99-26:00", "25:99 is not a time of day"),
    ("10:60-11:00", "10:60 is not a time of day"),
    ("10:00-24:01", "24:01 is not a time of day"),
    ("24:00-06:00", "24:00 can only end a session"),
    ("06:00-06:00", "is empty"),
    ("9:30-16:00", "is not a session"),
    ("09:30–16:00", "is not a session"),  # an en dash
    ("", "is not a session"),
])
def test_bad_sessions_are_one_line(text: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected) as info:
        parse_session(text)
    assert "\n" not in str(info.value)


def test_an_overnight_session_plans_its_hours(tmp_path: Path) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(example_config_text().replace('session_utc = "00:00-24:00"', 'session_utc = "22:00-06:00"'))
    settings = load_config(path, environ={}).settings
    assert session_length_s(settings) == 8 * 3600
    assert build_plan(settings, load_catalog(), None).session_s == 8 * 3600


def test_a_bad_session_is_refused_when_the_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(example_config_text().replace('session_utc = "00:00-24:00"', 'session_utc = "18:00-18:00"'))
    with pytest.raises(ConfigError, match=r"schedule\.session_utc: '18:00-18:00' is empty"):
        load_config(path, environ={})


def test_one_table_of_units_for_cadences_intervals_and_years() -> None:
    from lyra.days import MONTH_S, UNIT_SECONDS, YEAR_S, cadence_seconds
    from lyra.trading.intervals import _interval_delta
    from lyra.trading.metrics import periods_per_year

    assert cadence_seconds("5m") == 5 * UNIT_SECONDS["m"] and cadence_seconds("1d") is None  # cadences: s, m, h
    assert MONTH_S * 12 == YEAR_S and MONTH_S == 30.4375 * 86_400
    assert _interval_delta("1M").total_seconds() == MONTH_S  # a bar interval and an annual rate agree on a month
    assert periods_per_year("1M") == 12 and periods_per_year("1h") == YEAR_S / 3_600
