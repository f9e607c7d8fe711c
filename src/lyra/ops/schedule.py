"""Task cadences and the trading session: which task runs when, on a clock in seconds."""

from __future__ import annotations

from dataclasses import dataclass

from lyra.config import Settings
from lyra.days import cadence_seconds, parse_session


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
    """Seconds in the configured trading session (an overnight one included)."""
    return parse_session(settings.schedule.session_utc).length_s


__all__ = ["Job", "periodic_jobs", "session_length_s", "ticks_in"]
