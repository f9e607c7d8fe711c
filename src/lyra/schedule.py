"""Task cadences and the trading session: which task runs when, on a clock in seconds."""

from __future__ import annotations

from dataclasses import dataclass

from lyra.config import Settings

_UNITS = {"s": 1, "m": 60, "h": 3600}
DAY_S = 86_400


def cadence_seconds(every: str) -> int | None:
    """Seconds between runs for "30s", "5m" or "1h"; None for events such as "before_trade"."""
    if len(every) < 2 or every[-1] not in _UNITS or not every[:-1].isdigit():
        return None
    return int(every[:-1]) * _UNITS[every[-1]]


def format_every(seconds: int) -> str:
    """The shortest cadence string for a number of seconds ("2m", "90s", "1h")."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def session_seconds(session_utc: str) -> tuple[int, int]:
    """The trading session "HH:MM-HH:MM" as (start, end) seconds after 00:00 UTC."""
    start, end = session_utc.split("-")
    first, last = _clock_seconds(start), _clock_seconds(end)
    if last <= first:
        raise ValueError(f"schedule.session_utc: {session_utc!r} must end after it starts")
    return first, last


def _clock_seconds(text: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ValueError(f"schedule.session_utc: {text!r} is not a time of day")
    return hours * 3600 + minutes * 60


@dataclass(frozen=True, slots=True)
class Job:
    """One periodic task: what runs, for which symbol (None: once for all), every how many seconds."""

    task: str
    symbol: str | None
    every_s: int

    @property
    def name(self) -> str:
        return f"{self.task}[{self.symbol}]" if self.symbol else self.task


def periodic_jobs(settings: Settings, *, health: bool = True) -> list[Job]:
    """Every periodic (task, symbol) pair of the config, plus the fast-tier health task."""
    jobs: list[Job] = []
    for name, task in settings.tasks.items():
        every = cadence_seconds(task.every)
        if every is None:
            continue
        symbols: list[str | None] = list(task.symbols) or [None]
        jobs += [Job(name, symbol, every) for symbol in symbols]
    if health:
        health_every = cadence_seconds(settings.schedule.health_every)
        assert health_every is not None
        jobs.append(Job("health_monitoring", None, health_every))
    return jobs


def ticks_in(every_s: int, length_s: int) -> int:
    """How many runs a cadence makes in a session of `length_s` seconds (the first at its start)."""
    return -(-length_s // every_s)


def session_length_s(settings: Settings) -> int:
    start, end = session_seconds(settings.schedule.session_utc)
    return end - start


__all__ = [
    "DAY_S",
    "Job",
    "cadence_seconds",
    "format_every",
    "periodic_jobs",
    "session_length_s",
    "session_seconds",
    "ticks_in",
]
