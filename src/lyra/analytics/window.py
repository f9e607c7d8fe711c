"""The time window a report covers: a span back from now (`7d`) or one UTC day (`2025-01-31`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from lyra.errors import ConfigError

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class WindowError(ConfigError):
    """A --since or --day value that is not a span, a date or an ISO time."""


@dataclass(frozen=True, slots=True)
class Window:
    """start_ts <= ts < end_ts, in epoch seconds (UTC), and how a person would name it."""

    start_ts: float
    end_ts: float
    label: str


def since(text: str, now: float, *, allow_future: bool = False) -> Window:
    """From `7d`, `24h`, `1.5h`, `2w`, an ISO date or time (UTC when naive) up to now.

    The one reader of `--since` and `?since=` for every command and endpoint.
    """
    if match := _SPAN.match(text.strip().lower()):
        start = now - float(match[1]) * _UNIT_S[match[2]]
        if start < 0:
            raise WindowError(f"since: {text!r} reaches back before 1970")
        return Window(start, now, f"last {text.strip()}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise WindowError(f"since: {text!r} is neither a span like 7d, 24h, 30m nor an ISO date") from None
    start = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if start > now and not allow_future:  # a report of nothing is a mistake; a usage query may be empty
        raise WindowError(f"since: {text!r} is in the future")
    return Window(start, now, f"since {text}")


def day(text: str) -> Window:
    """The UTC calendar day YYYY-MM-DD."""
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        raise WindowError(f"day: {text!r} is not a date like 2025-01-31") from None
    start = datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
    return Window(start.timestamp(), (start + timedelta(days=1)).timestamp(), parsed.isoformat())
