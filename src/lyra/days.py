"""Time units and day boundaries: cadences, the trading session, and the budget day.

The one place that knows how long a day is and where it starts: a budget day rolls at a
configured UTC hour; a trading session is "HH:MM-HH:MM" in UTC and may run overnight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR_S = 3_600
DAY_S = 86_400
WEEK_S = 7 * DAY_S
YEAR_S = 31_557_600  # a Julian year, 365.25 days: what annual rates are measured against
MONTH_S = YEAR_S // 12  # an average month, 30.4375 days
# Seconds per unit of a cadence ("5m") or a bar interval ("1M" is a month, "m" a minute).
UNIT_SECONDS = {"s": 1, "m": 60, "h": HOUR_S, "d": DAY_S, "w": WEEK_S, "M": MONTH_S}
_CADENCE_UNITS = ("s", "m", "h")


def cadence_seconds(every: str) -> int | None:
    """Seconds between runs for "30s", "5m" or "1h"; None for events such as "before_trade"."""
    if len(every) < 2 or every[-1] not in _CADENCE_UNITS or not every[:-1].isdigit():
        return None
    return int(every[:-1]) * UNIT_SECONDS[every[-1]]


def format_every(seconds: int) -> str:
    """The shortest cadence string for a number of seconds ("2m", "90s", "1h")."""
    for unit, size in (("h", HOUR_S), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_SESSION = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


@dataclass(frozen=True, slots=True)
class Session:
    """A daily trading session in seconds after 00:00 UTC; `end_s` < `start_s` runs overnight."""

    start_s: int
    end_s: int

    @property
    def overnight(self) -> bool:
        """True when the session ends on the next UTC day ("22:00-06:00")."""
        return self.end_s < self.start_s

    @property
    def length_s(self) -> int:
        return (self.end_s - self.start_s) % DAY_S or DAY_S


def parse_session(session_utc: str) -> Session:
    """Parse "HH:MM-HH:MM" (UTC); ValueError with one line saying what is wrong.

    "00:00-24:00" is the whole day; an end before the start ("22:00-06:00") runs overnight into
    the next UTC day.
    """
    found = _SESSION.match(session_utc)
    if found is None:
        raise ValueError(f'{session_utc!r} is not a session; use "HH:MM-HH:MM" in UTC, e.g. "13:30-20:00"')
    start_h, start_m, end_h, end_m = (int(part) for part in found.groups())
    start, end = _clock_seconds(start_h, start_m), _clock_seconds(end_h, end_m)
    if start == DAY_S:
        raise ValueError("24:00 can only end a session; start it at 00:00")
    if start == end:
        raise ValueError(f"{session_utc!r} is empty (it ends when it starts); use \"00:00-24:00\" for the "
                         "whole day")
    return Session(start, end)


def _clock_seconds(hours: int, minutes: int) -> int:
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ValueError(f"{hours:02d}:{minutes:02d} is not a time of day; use 00:00 to 24:00")
    return hours * HOUR_S + minutes * 60


def session_seconds(session_utc: str) -> tuple[int, int]:
    """The trading session as (start, end) seconds after 00:00 UTC; end < start runs overnight."""
    session = parse_session(session_utc)
    return session.start_s, session.end_s


def budget_day(now: float, start_hour: int = 0) -> str:
    """The budget day an instant belongs to, as YYYYMMDD (days roll at start_hour UTC)."""
    moment = datetime.fromtimestamp(now, UTC) - timedelta(hours=start_hour)
    return moment.strftime("%Y%m%d")


def day_bounds(day: str, start_hour: int = 0) -> tuple[float, float]:
    """Epoch seconds of the start and end of a budget day."""
    start = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC) + timedelta(hours=start_hour)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


__all__ = [
    "DAY_S",
    "HOUR_S",
    "MONTH_S",
    "UNIT_SECONDS",
    "WEEK_S",
    "YEAR_S",
    "Session",
    "budget_day",
    "cadence_seconds",
    "day_bounds",
    "format_every",
    "parse_session",
    "session_seconds",
]
