"""A reference model of the state backends' contract (lyra/state/base.py), for the property tests.

It keeps only what the contract promises: live holds by id with their expiry, expired holds that
count as committed until a late settle corrects them, and committed money that is never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lyra.state import CapUsage


@dataclass
class ContractModel:
    """Caps with limits, and the reservations on them, as the contract says they must behave."""

    limits: Mapping[str, int]
    now: float = 0.0
    committed: dict[str, int] = field(default_factory=dict)
    reserved: dict[str, int] = field(default_factory=dict)
    live: dict[str, tuple[float, dict[str, int]]] = field(default_factory=dict)
    expired: dict[str, dict[str, int]] = field(default_factory=dict)

    def expire(self) -> None:
        """Holds whose ttl has passed count as spent at their worst case."""
        for rid, (expires_at, holds) in list(self.live.items()):
            if expires_at <= self.now:
                del self.live[rid]
                self.expired[rid] = holds
                for cap, amount in holds.items():
                    self._move(cap, committed=amount, reserved=-amount)

    def reserve(self, rid: str, holds: Mapping[str, int], ttl_s: float) -> str:
        """'held', 'refused' or 'duplicate' (the backend raises ValueError)."""
        self.expire()
        if rid in self.live or rid in self.expired:
            return "duplicate"
        if any(self.used(cap) + amount > self.limits[cap] for cap, amount in holds.items()):
            return "refused"
        self.live[rid] = (self.now + ttl_s, dict(holds))
        for cap, amount in holds.items():
            self._move(cap, reserved=amount)
        return "held"

    def commit(self, rid: str, actual: Mapping[str, int]) -> None:
        self._undo(rid)
        for cap, amount in actual.items():
            self._move(cap, committed=amount)

    def release(self, rid: str) -> None:
        self._undo(rid)

    def usage(self, cap: str) -> CapUsage:
        self.expire()
        return CapUsage(committed=self.committed.get(cap, 0), reserved=self.reserved.get(cap, 0))

    def used(self, cap: str) -> int:
        return self.committed.get(cap, 0) + self.reserved.get(cap, 0)

    def _undo(self, rid: str) -> None:
        """Take a reservation's holds back out of wherever they are counted; unknown ids do nothing."""
        if rid in self.live:
            for cap, amount in self.live.pop(rid)[1].items():
                self._move(cap, reserved=-amount)
        elif rid in self.expired:
            for cap, amount in self.expired.pop(rid).items():
                self._move(cap, committed=-amount)

    def _move(self, cap: str, *, committed: int = 0, reserved: int = 0) -> None:
        self.committed[cap] = self.committed.get(cap, 0) + committed
        self.reserved[cap] = self.reserved.get(cap, 0) + reserved
