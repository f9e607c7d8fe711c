"""The default state backend: plain dicts in one process, atomic because no call awaits inside."""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from lyra.errors import StateReset
from lyra.state.base import EXPIRED_KEEP_S, BucketLevel, CapUsage, Charge, Refusal, StateBackend


def merge_charges(charges: Sequence[Charge]) -> dict[str, tuple[int, int]]:
    """Map each cap to (limit, amount), adding up charges that name the same cap (tightest limit wins).

    Shared by every backend so that a sequence naming one cap twice behaves the same everywhere.
    """
    merged: dict[str, tuple[int, int]] = {}
    for charge in charges:
        if charge.amount < 0:
            raise ValueError(f"charge on cap {charge.cap!r} is negative: {charge.amount}")
        seen = merged.get(charge.cap)
        if seen is None:
            merged[charge.cap] = (charge.limit, charge.amount)
        else:
            merged[charge.cap] = (min(seen[0], charge.limit), seen[1] + charge.amount)
    return merged


def check_actual(actual: Mapping[str, int]) -> None:
    """Refuse negative spend before anything is changed: committed money only ever grows."""
    for cap, amount in actual.items():
        if amount < 0:
            raise ValueError(f"actual spend on cap {cap!r} is negative: {amount}")


def bucket_refill(
    tokens: float, updated_at: float, now: float, capacity: float, refill_per_s: float
) -> float:
    """Tokens in a bucket at `now`: never above capacity, and never fewer when the clock steps back."""
    return min(capacity, tokens + max(0.0, now - updated_at) * refill_per_s)


def bucket_wait(tokens: float, amount: float, refill_per_s: float) -> float:
    """Seconds until `tokens` grows to `amount`."""
    if refill_per_s <= 0:
        return math.inf
    return (amount - tokens) / refill_per_s


class MemoryBackend(StateBackend):
    """Caps, reservations and buckets in dicts, for one process.

    Each method runs to completion without awaiting, so on one event loop every call is atomic.
    Expired reservations are found through a heap of expiry times, so a call costs O(charges)
    plus the (amortised) cost of the reservations that actually expired. Their holds move to
    committed, and their records stay `expired_keep_s` for a late settle, forgotten in the order
    they expired.
    """

    name = "memory"

    def __init__(
        self, *, clock: Callable[[], float] = time.time, expired_keep_s: float = EXPIRED_KEEP_S
    ) -> None:
        self._clock = clock
        self._keep = expired_keep_s
        self._committed: dict[str, int] = {}
        self._reserved: dict[str, int] = {}
        self._held: dict[str, tuple[float, dict[str, int]]] = {}
        # Entries of committed or released reservations stay here until their time comes;
        # checking them against _held then is cheaper than removing them from the heap.
        self._expiries: list[tuple[float, str]] = []
        # Expired reservations: id -> (forget at, holds now counted in committed). The deque lists
        # them in expiry order, so forget times only grow along it; settled ones are skipped.
        self._expired: dict[str, tuple[float, dict[str, int]]] = {}
        self._forget: deque[tuple[float, str]] = deque()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._epoch: str | None = None

    async def epoch(self) -> str | None:
        """The marker of this process's state (None until the governor installs one)."""
        return self._epoch

    async def install_epoch(self, epoch: str, committed: Mapping[str, int]) -> str:
        """Add `committed` and store `epoch`, unless a marker is stored already."""
        if self._epoch is None:
            for cap, value in committed.items():
                self._committed[cap] = self._committed.get(cap, 0) + value
            self._epoch = epoch
        return self._epoch

    def _purge(self, now: float) -> None:
        heap, held, reserved, committed = self._expiries, self._held, self._reserved, self._committed
        expired, forget = self._expired, self._forget
        while forget and forget[0][0] <= now:
            forget_at, reservation_id = forget.popleft()
            record = expired.get(reservation_id)
            if record is not None and record[0] == forget_at:
                del expired[reservation_id]
        while heap and heap[0][0] <= now:
            expires_at, reservation_id = heapq.heappop(heap)
            entry = held.get(reservation_id)
            if entry is not None and entry[0] == expires_at:
                # The holder may have been served and billed before it died: count the hold as spent.
                del held[reservation_id]
                for cap, amount in entry[1].items():
                    reserved[cap] -= amount
                    committed[cap] = committed.get(cap, 0) + amount
                forget_at = max(expires_at + self._keep, forget[-1][0] if forget else -math.inf)
                expired[reservation_id] = (forget_at, entry[1])
                forget.append((forget_at, reservation_id))

    def _due(self, now: float) -> bool:
        return bool(self._expiries and self._expiries[0][0] <= now) or bool(
            self._forget and self._forget[0][0] <= now
        )

    async def reserve(self, reservation_id: str, charges: Sequence[Charge], ttl_s: float) -> Refusal | None:
        """All or nothing: hold every charge, or none and say which cap refused."""
        if self.expected_epoch is not None and self._epoch != self.expected_epoch:
            raise StateReset("the budget state was reset; it is being rebuilt from the ledger")
        now = self._clock()
        if self._due(now):
            self._purge(now)
        if reservation_id in self._held or reservation_id in self._expired:
            raise ValueError(f"reservation {reservation_id!r} is already held")
        merged = merge_charges(charges)
        committed, reserved = self._committed, self._reserved
        for cap, (limit, amount) in merged.items():
            used = committed.get(cap, 0) + reserved.get(cap, 0)
            if used + amount > limit:
                return Refusal(cap=cap, limit=limit, used=used, amount=amount)
        held: dict[str, int] = {}
        for cap, (_, amount) in merged.items():
            reserved[cap] = reserved.get(cap, 0) + amount
            held[cap] = amount
        expires_at = now + ttl_s
        self._held[reservation_id] = (expires_at, held)
        heapq.heappush(self._expiries, (expires_at, reservation_id))
        return None

    async def commit(self, reservation_id: str, actual: Mapping[str, int]) -> None:
        """Replace the reservation by what was really spent."""
        check_actual(actual)
        self._drop(reservation_id)
        committed = self._committed
        for cap, amount in actual.items():
            committed[cap] = committed.get(cap, 0) + amount

    async def release(self, reservation_id: str) -> None:
        """Drop a reservation without spending anything."""
        self._drop(reservation_id)

    def _drop(self, reservation_id: str) -> None:
        """Undo a reservation's holds: from reserved if live, from committed if it expired."""
        entry = self._held.pop(reservation_id, None)
        if entry is not None:
            reserved = self._reserved
            for cap, amount in entry[1].items():
                reserved[cap] -= amount
            return
        record = self._expired.pop(reservation_id, None)
        if record is not None:
            committed = self._committed
            for cap, amount in record[1].items():
                committed[cap] -= amount

    async def usage(self, caps: Sequence[str]) -> dict[str, CapUsage]:
        """Committed (with expired holds) and reserved (live holds only) amounts of each cap."""
        self._purge(self._clock())
        return {
            cap: CapUsage(committed=self._committed.get(cap, 0), reserved=self._reserved.get(cap, 0))
            for cap in caps
        }

    async def seed_committed(self, values: Mapping[str, int]) -> None:
        """Raise each cap's committed amount to at least the given value."""
        for cap, value in values.items():
            if value > self._committed.get(cap, 0):
                self._committed[cap] = value

    async def take_level(self, bucket: str, capacity: float, refill_per_s: float,
                         amount: float) -> BucketLevel:
        """Token bucket: take `amount` (wait 0.0) or nothing (the wait in seconds), and the level after."""
        now = self._clock()
        state = self._buckets.get(bucket)
        tokens = capacity if state is None else bucket_refill(state[0], state[1], now, capacity, refill_per_s)
        if amount > capacity:
            return BucketLevel(math.inf, tokens)
        if tokens >= amount:
            left = min(capacity, tokens - amount)
            self._buckets[bucket] = (left, now)
            return BucketLevel(0.0, left)
        self._buckets[bucket] = (tokens, now)
        return BucketLevel(bucket_wait(tokens, amount, refill_per_s), tokens)
