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
        if not start >= 0:  # also a span so long that it is infinite
            raise WindowError(f"since: {_shown(text)} reaches back before 1970")
        return Window(start, now, f"last {text.strip()}")
    try:
        moment = datetime.fromisoformat(text)
        start = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        raise WindowError(f"since: {_shown(text)} is neither a span like 7d, 24h, 30m "
                          "nor an ISO date") from None
    if start < 0:
        raise WindowError(f"since: {_shown(text)} reaches back before 1970")
    if start > now and not allow_future:  # a report of nothing is a mistake; a usage query may be empty
        raise WindowError(f"since: {_shown(text)} is in the future")
    return Window(start, now, f"since {text}")


def day(text: str) -> Window:
    """The UTC calendar day YYYY-MM-DD."""
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        raise WindowError(f"day: {_shown(text)} is not a date like 2025-01-31") from None
    start = datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
    if parsed == date.max or start.timestamp() < 0:  # the day after date.max cannot be represented
        raise WindowError(f"day: {_shown(text)} is outside the days a ledger can hold "
                          "(1970-01-01 to 9999-12-30)")
    return Window(start.timestamp(), (start + timedelta(days=1)).timestamp(), parsed.isoformat())


def _shown(text: str) -> str:
    """A value as an error quotes it: a client's 10 kB of junk is cut to its start."""
    return repr(text) if len(text) <= 64 else repr(text[:64]) + "..."
