"""The one small interface every state backend implements: caps with reservations, and buckets."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Charge:
    """Hold `amount` against cap `cap`, whose limit is `limit` (micro-dollars or tokens)."""

    cap: str
    limit: int
    amount: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation did not fit: the cap, its limit, and what was already used and held."""

    cap: str
    limit: int
    used: int
    amount: int


@dataclass(frozen=True, slots=True)
class CapUsage:
    """Committed spend and outstanding reservations on one cap."""

    committed: int = 0
    reserved: int = 0


class StateBackend(ABC):
    """Atomic budget and rate-limit state, shared by everything that uses one backend.

    Every method is atomic with respect to every other caller of the same backend: in one
    process (memory), across processes on one host (sqlite) or across hosts (redis).
    """

    name: str = "abstract"

    @abstractmethod
    async def reserve(self, reservation_id: str, charges: Sequence[Charge], ttl_s: float) -> Refusal | None:
        """All or nothing: hold every charge, or none and say which cap refused.

        First drops reservations on these caps whose ttl has passed (their holder died).
        A charge fits when committed + reserved + amount <= limit.
        """

    @abstractmethod
    async def commit(self, reservation_id: str, actual: Mapping[str, int]) -> None:
        """Replace the reservation by what was really spent: actual[cap] joins committed.

        Caps of the reservation that are missing from `actual` get 0. Caps in `actual` are
        committed even if the reservation already expired: money spent is never dropped.
        """

    @abstractmethod
    async def release(self, reservation_id: str) -> None:
        """Drop a reservation without spending anything (the attempt failed)."""

    @abstractmethod
    async def usage(self, caps: Sequence[str]) -> dict[str, CapUsage]:
        """Committed and reserved amounts of each cap (live reservations only)."""

    @abstractmethod
    async def seed_committed(self, values: Mapping[str, int]) -> None:
        """Raise each cap's committed amount to at least the given value (rebuild from the ledger)."""

    @abstractmethod
    async def take(self, bucket: str, capacity: float, refill_per_s: float, amount: float) -> float:
        """Token bucket: take `amount` and return 0.0, or take nothing and return the wait in seconds.

        A new bucket starts full. `amount` larger than `capacity` can never fit: return inf.
        """

    async def close(self) -> None:  # noqa: B027 - most backends have nothing to close
        """Release connections."""
