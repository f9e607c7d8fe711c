"""This process's waiters on one token bucket, in admission order: highest priority, then first come."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from lyra.config.priority import PRIORITIES


@dataclass(eq=False, slots=True)
class Waiter:
    """One call waiting for `amount` tokens; `floor` is the headroom its priority must leave."""

    rank: int
    amount: float
    floor: float
    deadline: float
    model: str
    future: asyncio.Future[None]


@dataclass(slots=True)
class BucketQueue:
    """The waiters of one bucket, one FIFO line per priority, and what the bucket last held.

    Only the queue's pump takes tokens for its waiters, one at a time and always for the head, so
    a higher-priority waiter takes the next token before any lower one; the lines are deques so
    that joining and being served cost O(1).
    """

    name: str
    capacity: float
    refill_per_s: float
    loop: asyncio.AbstractEventLoop
    lines: tuple[deque[Waiter], ...] = field(default_factory=lambda: tuple(deque() for _ in PRIORITIES))
    count: int = 0
    amounts: list[float] = field(default_factory=lambda: [0.0] * len(PRIORITIES))  # tokens per line
    # Set when a newcomer lands ahead of waiters already queued (a higher priority): their turns
    # moved back, so the pump looks again at whose deadline is now out of reach.
    reordered: bool = False
    tokens: float = 0.0  # the level the backend last reported,
    tokens_at: float = -math.inf  # and when (the limiter's clock)
    pump: asyncio.Task[None] | None = None
    kick: asyncio.Future[None] | None = None  # set while the pump sleeps: wakes it for a new head

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Waiter]:
        for line in self.lines:
            yield from line

    def head(self) -> Waiter | None:
        for line in self.lines:
            if line:
                return line[0]
        return None

    def push(self, waiter: Waiter) -> None:
        self.lines[waiter.rank].append(waiter)
        self.amounts[waiter.rank] += waiter.amount
        self.count += 1
        if any(self.lines[waiter.rank + 1:]):
            self.reordered = True

    def remove(self, waiter: Waiter) -> None:
        """Take `waiter` out of its line; nothing when it is gone already (served, failed)."""
        line = self.lines[waiter.rank]
        if line and line[0] is waiter:
            line.popleft()  # the common case: the head is served
        else:
            try:
                line.remove(waiter)
            except ValueError:
                return
        self.count -= 1
        # Kept exact rather than drifting: an empty line holds nothing.
        self.amounts[waiter.rank] = self.amounts[waiter.rank] - waiter.amount if line else 0.0

    def note(self, tokens: float, now: float) -> None:
        self.tokens, self.tokens_at = tokens, now

    def level(self, now: float) -> float:
        """The tokens the bucket holds now, projected from the last report (at most its capacity).

        Another process sharing the bucket may have taken some since: the projection is an upper
        bound, so a wait worked out from it is a lower bound.
        """
        if self.tokens_at == -math.inf:
            return 0.0
        return min(self.capacity, self.tokens + max(0.0, now - self.tokens_at) * self.refill_per_s)

    def ahead(self, rank: int) -> tuple[int, float]:
        """How many waiters, and how many tokens, a newcomer of `rank` would wait behind."""
        return sum(len(line) for line in self.lines[: rank + 1]), sum(self.amounts[: rank + 1])

    def wait_for(self, needed: float, tokens: float) -> float:
        """Seconds until the bucket grows from `tokens` to `needed`, at its refill rate."""
        if needed <= tokens:
            return 0.0
        if self.refill_per_s <= 0:
            return math.inf
        return (needed - tokens) / self.refill_per_s
