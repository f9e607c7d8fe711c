"""Priority admission at a saturated rate limit: the risk call goes first, FIFO within a priority,
and a call whose turn comes after its deadline is refused at once. Time is a clock moved by hand."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lyra.catalog.models import load_catalog
from lyra.config import LimitSettings, parse_settings
from lyra.config.priority import PriorityTable
from lyra.errors import ConfigError, RateLimited
from lyra.routing.limits import RateLimiter
from lyra.state.base import BucketLevel
from lyra.state.memory import MemoryBackend
from lyra.state.sqlite import SqliteBackend
from lyra.types import CompletionRequest
from support import fast_config_text

BUCKET = "rpm:key:desk"


class ManualClock:
    """A monotonic clock that moves only when the test says; sleepers wake when it passes their time."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), wake))
        await wake

    def sleeping(self) -> int:
        return sum(not wake.done() for _, _, wake in self._sleepers)

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, wake = heapq.heappop(self._sleepers)
            if not wake.done() and wake.get_loop() is asyncio.get_running_loop():
                wake.set_result(None)
        await settle()


async def settle() -> None:
    """Let every task that can run, run (a fixed number of loop turns, not a wall-clock wait)."""
    for _ in range(50):
        await asyncio.sleep(0)


class CountingBackend(MemoryBackend):
    """A memory backend that counts the takes it is asked for: waiting must not poll it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock=clock)
        self.takes = 0

    async def take_level(self, bucket: str, capacity: float, refill_per_s: float,
                         amount: float) -> BucketLevel:
        self.takes += 1
        return await super().take_level(bucket, capacity, refill_per_s, amount)


def attempt(task: str, priority: str = "normal") -> Any:
    info = load_catalog().find("openai/gpt-4o-mini")
    assert info is not None
    request = CompletionRequest(messages=[], task=task, priority=priority)  # type: ignore[arg-type]
    return SimpleNamespace(key_name="desk", model=info, prompt_tokens=100, max_tokens=100, request=request)


def limiter(clock: ManualClock, backend: MemoryBackend | SqliteBackend, *, rpm: int = 60,
            headroom: float = 0.0) -> RateLimiter:
    limits = LimitSettings(key_rpm=rpm, key_tpm=10**12, priority_headroom_share=headroom)
    return RateLimiter(limits, backend, priorities=PriorityTable(), clock=clock, sleep=clock.sleep)


class Admissions:
    """Calls started in the background; `order` lists them as they are admitted."""

    def __init__(self, limits: RateLimiter) -> None:
        self.limits = limits
        self.order: list[str] = []
        self.admitted_at: dict[str, float] = {}
        self.refused: dict[str, RateLimited] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, label: str, task: str, deadline: float, clock: ManualClock) -> None:
        async def run() -> None:
            try:
                await self.limits.acquire(attempt(task), deadline)
            except RateLimited as exc:
                self.refused[label] = exc
                return
            self.order.append(label)
            self.admitted_at[label] = clock()

        self.tasks.append(asyncio.create_task(run()))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def drain(limits: RateLimiter, n: int) -> None:
    for _ in range(n):
        await limits.acquire(attempt("signal_generation"), math.inf)


async def test_a_risk_call_behind_300_queued_signal_calls_is_admitted_first_within_its_deadline() -> None:
    clock = ManualClock()
    backend = CountingBackend(clock)
    limits = limiter(clock, backend)  # 60 a minute: one token a second once the burst is spent
    await drain(limits, 60)
    calls = Admissions(limits)
    for i in range(300):
        calls.start(f"signal-{i}", "signal_generation", clock() + 10_000, clock)
    await settle()
    assert limits.waiting(BUCKET) == 300 and not calls.order

    risk_deadline = clock() + 5  # 300 s of signals queued ahead of it in arrival order
    calls.start("risk", "risk_assessment", risk_deadline, clock)
    await settle()
    assert limits.waiting(BUCKET) == 301
    takes_before = backend.takes
    await clock.advance(1)  # the next token
    assert calls.order == ["risk"]
    assert calls.admitted_at["risk"] <= risk_deadline
    assert not calls.refused

    for _ in range(10):
        await clock.advance(1)
    # FIFO within a priority: the signals follow in the order they came, one per refill.
    assert calls.order == ["risk"] + [f"signal-{i}" for i in range(10)]
    # No polling: one take per refill for the head, one more for the admitted call's token bucket
    # (and one when the risk call's arrival woke the pump).
    assert backend.takes - takes_before <= 2 * len(calls.order) + 1

    # A signal call that would wait behind the 290 still queued (290 s) with a 10 s deadline is
    # refused at once: the clock does not move and it never joins the queue.
    now, waiting = clock(), limits.waiting(BUCKET)
    with pytest.raises(RateLimited, match=rf"rate limit {BUCKET} for openai/gpt-4o-mini: 290 call\(s\) of "
                                          r"priority normal or higher queued ahead; its turn comes in 29\d\.\ds, "
                                          "after the request deadline") as refused:
        await limits.acquire(attempt("signal_generation"), now + 10)
    assert clock() == now and limits.waiting(BUCKET) == waiting
    assert refused.value.retry_after is not None and refused.value.retry_after > 10
    with pytest.raises(RateLimited, match=rf"rate limit {BUCKET} .*290 call\(s\) of priority low or higher"):
        await limits.acquire(attempt("code_generation"), now + 100)
    # A risk call still fits: nothing of its priority is queued ahead of it.
    calls.start("risk-2", "risk_assessment", now + 2, clock)
    await settle()
    assert limits.waiting(BUCKET) == waiting + 1 and "risk-2" not in calls.refused
    await clock.advance(1)
    assert calls.order[-1] == "risk-2"

    await calls.close()
    await settle()
    assert limits.waiting(BUCKET) == 0
    # The cancelled waiters took nothing: the bucket refills from empty, one token a second.
    await clock.advance(3)
    await drain(limits, 3)
    with pytest.raises(RateLimited):
        await limits.acquire(attempt("signal_generation"), clock())


async def test_a_waiter_pushed_past_its_deadline_by_higher_priorities_is_refused_before_it() -> None:
    clock = ManualClock()
    limits = limiter(clock, CountingBackend(clock))
    await drain(limits, 60)
    calls = Admissions(limits)
    for i in range(5):
        calls.start(f"signal-{i}", "signal_generation", clock() + 1_000, clock)
    tight = clock() + 7  # sixth in line: its turn in 6 s fits
    calls.start("tight", "signal_generation", tight, clock)
    calls.start("code", "code_generation", clock() + 1_000, clock)  # low: behind every signal
    await settle()
    assert limits.waiting(BUCKET) == 7 and not calls.refused
    for i in range(3):
        calls.start(f"risk-{i}", "risk_assessment", clock() + 1_000, clock)
    await settle()
    # Three risk calls now go first: the tight signal's turn comes in 9 s, past its deadline. It
    # hears so at the pump's next look (the next refill), not when its deadline passes.
    await clock.advance(1)
    assert "tight" in calls.refused and clock() < tight
    assert "queued ahead" in str(calls.refused["tight"])
    for _ in range(8):
        await clock.advance(1)
    assert calls.order == ["risk-0", "risk-1", "risk-2", *(f"signal-{i}" for i in range(5)), "code"]
    await calls.close()


async def test_a_waiter_pushed_back_while_the_pump_serves_without_asking_the_state_is_refused_too() -> None:
    clock = ManualClock()
    backend = CountingBackend(clock)
    limits = limiter(clock, backend)
    await drain(limits, 60)
    calls = Admissions(limits)
    for i in range(2):
        calls.start(f"risk-{i}", "risk_assessment", clock() + 1_000, clock)
    for i in range(3):
        calls.start(f"signal-{i}", "signal_generation", clock() + 1_000, clock)
    tight = clock() + 6  # sixth in line: its turn in 6 s fits, just
    calls.start("tight", "signal_generation", tight, clock)
    await settle()
    await clock.advance(1)  # risk-0 served; from here the pump knows the level without a take
    assert calls.order == ["risk-0"]
    # Behind risk-1 (so the pump is not woken) and ahead of the signals: tight's turn is now 7 s away.
    calls.start("risk-late", "risk_assessment", clock() + 1_000, clock)
    await settle()
    assert not calls.refused
    await clock.advance(1)  # risk-1 served without a take of the bucket that failed
    assert calls.order == ["risk-0", "risk-1"]
    assert "tight" in calls.refused and clock() < tight
    for _ in range(5):
        await clock.advance(1)
    assert calls.order == ["risk-0", "risk-1", "risk-late", "signal-0", "signal-1", "signal-2"]
    await calls.close()


async def test_an_emergency_request_outranks_a_risk_task() -> None:
    clock = ManualClock()
    limits = limiter(clock, CountingBackend(clock))
    await drain(limits, 60)
    order: list[str] = []

    async def call(label: str, task: str, priority: str = "normal") -> None:
        await limits.acquire(attempt(task, priority), clock() + 100)
        order.append(label)

    tasks = [asyncio.create_task(call("signal", "signal_generation")),
             asyncio.create_task(call("risk", "risk_assessment")),
             asyncio.create_task(call("exit", "signal_generation", "emergency")),
             asyncio.create_task(call("code-urgent", "code_generation", "high"))]
    await settle()
    for _ in range(4):
        await clock.advance(1)
    await asyncio.gather(*tasks)
    # A request's own "high" raises a low task to the risk level, after the risk call that came first.
    assert order == ["exit", "risk", "code-urgent", "signal"]


async def test_lower_priorities_leave_headroom_so_another_process_risk_call_gets_a_token(
    tmp_path: Path,
) -> None:
    # Two limiters on one SQLite state file: two processes sharing the key's bucket.
    clock = ManualClock()
    shared = SqliteBackend(tmp_path / "state.db", clock=clock)
    other = SqliteBackend(tmp_path / "state.db", clock=clock)
    try:
        signals = limiter(clock, shared, headroom=0.1)  # normal and low leave 6 of 60 tokens
        risk_side = limiter(clock, other, headroom=0.1)
        await drain(signals, 54)
        with pytest.raises(RateLimited, match=BUCKET):
            await signals.acquire(attempt("signal_generation"), clock() + 0.5)
        for _ in range(6):
            await risk_side.acquire(attempt("risk_assessment"), clock())  # at once, no wait at all
        with pytest.raises(RateLimited, match=BUCKET):
            await risk_side.acquire(attempt("risk_assessment"), clock() + 0.5)
    finally:
        await shared.close()
        await other.close()


async def test_a_cancelled_waiter_gives_no_token_away_and_leaves_the_line() -> None:
    clock = ManualClock()
    limits = limiter(clock, CountingBackend(clock))
    await drain(limits, 60)
    calls = Admissions(limits)
    calls.start("first", "signal_generation", clock() + 100, clock)
    calls.start("second", "signal_generation", clock() + 100, clock)
    await settle()
    calls.tasks[0].cancel()
    await settle()
    assert limits.waiting(BUCKET) == 1
    await clock.advance(1)
    assert calls.order == ["second"]
    await calls.close()


def test_task_priorities_default_and_a_request_only_raises_its_own() -> None:
    table = PriorityTable.of_settings(parse_settings(fast_config_text(), "lyra.toml"))
    levels = {task: table.level(CompletionRequest(messages=[], task=task))
              for task in ("risk_assessment", "signal_generation", "news_sentiment", "market_analysis",
                           "code_generation")}
    assert levels == {"risk_assessment": "high", "signal_generation": "normal", "news_sentiment": "normal",
                      "market_analysis": "normal", "code_generation": "low"}
    assert table.level(CompletionRequest(messages=[], task="risk_assessment", priority="emergency")) == "emergency"
    assert table.level(CompletionRequest(messages=[], task="risk_assessment", priority="normal")) == "high"
    assert table.level(CompletionRequest(messages=[], tier="fast")) == "normal"


def with_line(section: str, line: str) -> str:
    """The test config with `line` added at the top of `[section]`."""
    text, found = re.subn(rf"(\[{re.escape(section)}\][^\n]*\n)", rf"\g<1>{line}\n", fast_config_text(), count=1)
    assert found, section
    return text


def test_a_configured_priority_is_used_and_a_bad_one_is_one_line_naming_the_field() -> None:
    text = with_line("tasks.news_sentiment", 'priority = "emergency"')
    table = PriorityTable.of_settings(parse_settings(text, "lyra.toml"))
    assert table.level(CompletionRequest(messages=[], task="news_sentiment")) == "emergency"
    for bad in ('"urgent"', "10"):
        with pytest.raises(ConfigError) as info:
            parse_settings(with_line("tasks.news_sentiment", f"priority = {bad}"), "lyra.toml")
        line = str(info.value)
        assert "\n" not in line and "tasks.news_sentiment.priority" in line, line
    with pytest.raises(ConfigError, match=r"limits\.priority_headroom_share"):
        parse_settings(fast_config_text() + "\n[limits]\npriority_headroom_share = 1.5\n", "lyra.toml")


def test_a_limiter_used_again_on_a_new_event_loop_does_not_wait_behind_the_old_loops_waiters() -> None:
    clock = ManualClock()
    limits = limiter(clock, MemoryBackend(clock=clock))
    left: list[asyncio.Task[None]] = []  # kept until the end: the old loop's tasks are never run again

    async def first() -> None:
        await drain(limits, 60)
        left.append(asyncio.create_task(limits.acquire(attempt("signal_generation"), clock() + 100)))
        await settle()
        assert limits.waiting(BUCKET) == 1

    old = asyncio.new_event_loop()
    old.run_until_complete(first())
    for task in asyncio.all_tasks(old):
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # abandoned on purpose
    old.close()  # closed with its waiter and pump still pending, as a killed loop leaves them

    async def second() -> list[str]:
        calls = Admissions(limits)
        calls.start("new", "signal_generation", clock() + 100, clock)
        await settle()
        assert limits.waiting(BUCKET) == 1  # the new loop's one: the old line was dropped
        await clock.advance(1)
        await calls.close()
        return calls.order

    assert asyncio.run(second()) == ["new"]
    left.clear()
