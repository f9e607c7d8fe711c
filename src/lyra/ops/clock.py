"""Clocks the live runner waits on: a paced one for people, a simulated one that tests drive."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol

from lyra.errors import ConfigError


class Clock(Protocol):
    """Seconds since the start of the session, a way to wait for a later one, and the work it runs.

    `simulated` is True when the clock's time moves only as the work it watches waits on it (a
    tick then takes no session time, so one in flight at the session's end is let finish).
    """

    simulated: bool

    def now(self) -> float: ...

    async def sleep_until(self, at_s: float, *, stop: asyncio.Event | None = None) -> None:
        """Return once the clock reads `at_s`, or as soon as `stop` is set."""
        ...

    def watch(self, task: asyncio.Task[Any]) -> None:
        """Count `task` as work in progress on this clock until it finishes."""
        ...


class ReplayClock:
    """A paced clock: `speed` simulated seconds pass per real second, whatever the work does."""

    simulated = False

    def __init__(self, speed: float, *, start_s: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if speed <= 0:
            raise ConfigError(f"a paced clock's speed must be above 0, got {speed}")
        self.speed = speed
        self._start = start_s
        self._monotonic = monotonic
        self._real0 = monotonic()

    def now(self) -> float:
        return self._start + (self._monotonic() - self._real0) * self.speed

    async def sleep_until(self, at_s: float, *, stop: asyncio.Event | None = None) -> None:
        delay = max(0.0, (at_s - self.now()) / self.speed)
        if stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)

    def watch(self, task: asyncio.Task[Any]) -> None:
        """Real time does not wait for work."""


class SimulatedClock:
    """Simulated time that moves only when the work it watches is waiting on it.

    Time jumps to the earliest wake-up once every watched task (each tick of a runner) is asleep
    on this clock or finished, so a tick's own work, network calls included, takes no simulated
    time however slow the machine is; a tick overlaps the next one only by sleeping on the clock.
    Work blocked on anything else holds time still. At one instant, watched work wakes before the
    tasks that only wait on the clock (the runner), so these see that work's outcome. A task that
    waits on the clock awaits `sleep_until` itself: through a wrapper task (`asyncio.wait_for`) it
    would be running again only after the clock had already moved on.
    """

    simulated = True

    def __init__(self, *, start_s: float = 0.0) -> None:
        self._now = start_s
        self._sleepers: list[tuple[float, int, asyncio.Task[Any], asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._watched: set[asyncio.Task[Any]] = set()
        self._asleep: set[asyncio.Task[Any]] = set()
        self._waking: set[asyncio.Task[Any]] = set()  # woken, not yet running again
        self._check_due = False

    def now(self) -> float:
        return self._now

    def watch(self, task: asyncio.Task[Any]) -> None:
        if task.done() or task in self._watched:
            return
        self._watched.add(task)
        task.add_done_callback(self._finished)

    async def sleep_until(self, at_s: float, *, stop: asyncio.Event | None = None) -> None:
        task = asyncio.current_task()
        assert task is not None
        if at_s <= self._now or (stop is not None and stop.is_set()):
            await asyncio.sleep(0)
            return
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (at_s, next(self._order), task, wake))
        self._asleep.add(task)
        stopper = None if stop is None else asyncio.ensure_future(self._wake_on(stop, task, wake))
        self._schedule_check()
        try:
            await wake
        finally:
            self._asleep.discard(task)
            self._waking.discard(task)
            if not wake.done():
                wake.cancel()
            if stopper is not None:
                stopper.cancel()
            self._schedule_check()

    async def _wake_on(
        self, stop: asyncio.Event, task: asyncio.Task[Any], wake: asyncio.Future[None]
    ) -> None:
        await stop.wait()
        self._wake(task, wake)

    def _wake(self, task: asyncio.Task[Any], wake: asyncio.Future[None]) -> None:
        if not wake.done():
            self._asleep.discard(task)
            self._waking.add(task)
            wake.set_result(None)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._watched.discard(task)
        self._schedule_check()

    def _schedule_check(self) -> None:
        if not self._check_due:
            self._check_due = True
            asyncio.get_running_loop().call_soon(self._advance)

    def _advance(self) -> None:
        self._check_due = False
        while self._sleepers and self._sleepers[0][3].done():
            heapq.heappop(self._sleepers)  # stopped or cancelled early
        if not self._sleepers or self._waking or not self._watched <= self._asleep:
            return  # nothing to wake, or work still in progress
        at_s = self._sleepers[0][0]
        due: list[tuple[float, int, asyncio.Task[Any], asyncio.Future[None]]] = []
        while self._sleepers and self._sleepers[0][0] <= at_s:
            due.append(heapq.heappop(self._sleepers))
        work = [entry for entry in due if entry[2] in self._watched]
        for entry in due:
            if work and entry[2] not in self._watched:
                heapq.heappush(self._sleepers, entry)  # after the work due at this instant
        self._now = max(self._now, at_s)
        for _, _, task, wake in work or due:
            self._wake(task, wake)


__all__ = ["Clock", "ReplayClock", "SimulatedClock"]
