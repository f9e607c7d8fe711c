"""The one small interface every state backend implements: caps with reservations, and buckets."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# How long the record of an expired reservation (its id and held amounts) is kept, so that a late
# commit or release can correct the provisional charge its expiry made. After that, a commit of
# the id counts its `actual` in full (over-counting, never under-counting) and a release does nothing.
EXPIRED_KEEP_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Charge:
    """Hold `amount` against cap `cap`, whose limit is `limit` (nano-dollars or tokens)."""

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
class BucketLevel:
    """What one take from a token bucket left: the wait (0.0 when taken) and the tokens in the bucket.

    `tokens` is the level after the take, or the level that was too low when nothing was taken; a
    gateway reports it as a client's remaining requests without asking the backend a second time.
    """

    wait: float
    tokens: float


@dataclass(frozen=True, slots=True)
class CapUsage:
    """Committed spend and outstanding reservations on one cap.

    `committed` includes the held amounts of expired reservations (provisionally spent at their
    worst case); `reserved` counts live reservations only.
    """

    committed: int = 0
    reserved: int = 0


class StateBackend(ABC):
    """Atomic budget and rate-limit state, shared by everything that uses one backend.

    Every method is atomic with respect to every other caller of the same backend: in one
    process (memory), across processes on one host (sqlite) or across hosts (redis).

    A reservation whose ttl passes before its holder commits or releases it EXPIRES: the holder
    may have died after the upstream call was served and billed, so its held amount on each cap
    moves into committed (spent at the worst case) rather than being freed. A cap is never
    exceeded by spending that money again. Its record (id -> held amounts) is kept for
    EXPIRED_KEEP_S, so that a late settle corrects the provisional charge: a late commit moves
    committed by actual - held on each cap, a late release takes held back out.
    """

    name: str = "abstract"
    # Set by the budget governor once it has rebuilt (or joined) the state of this epoch: from then
    # on `reserve` raises StateReset instead of admitting anything when the stored marker differs.
    expected_epoch: str | None = None

    @abstractmethod
    async def epoch(self) -> str | None:
        """The marker of the state's current life, or None when it is missing (new, reset, flushed)."""

    @abstractmethod
    async def install_epoch(self, epoch: str, committed: Mapping[str, int]) -> str:
        """Atomically: when no marker is stored, add `committed` to the caps and store `epoch`.

        Returns the marker now stored: `epoch`, or the one another process installed first (and
        then nothing is added). Adding rather than raising to a floor means that commits made
        between the loss and the rebuild may count twice: spend is over-counted, never under.
        """

    @abstractmethod
    async def reserve(self, reservation_id: str, charges: Sequence[Charge], ttl_s: float) -> Refusal | None:
        """All or nothing: hold every charge, or none and say which cap refused.

        First expires reservations on these caps whose ttl has passed (their holder died or
        hangs): their holds move from reserved to committed. A charge fits when
        committed + reserved + amount <= limit. An id that is live, or expired and still
        recorded, cannot be reserved again (ValueError). When `expected_epoch` is set and the
        stored marker differs, nothing is held and StateReset is raised.
        """

    @abstractmethod
    async def commit(self, reservation_id: str, actual: Mapping[str, int]) -> None:
        """Replace the reservation by what was really spent: actual[cap] joins committed.

        Caps of the reservation that are missing from `actual` get 0. If the reservation already
        expired into committed, committed moves by actual - held on each of its caps, so that it
        ends at the actual and nothing is counted twice. If the id is unknown (never held, already
        settled, or expired and its record forgotten), `actual` is added in full: money spent is
        never dropped.
        """

    @abstractmethod
    async def release(self, reservation_id: str) -> None:
        """Drop a reservation without spending anything (the attempt failed).

        A live reservation frees its holds. One that already expired into committed takes its held
        amounts back out of committed (they were not spent after all). An unknown id is ignored.
        """

    @abstractmethod
    async def usage(self, caps: Sequence[str]) -> dict[str, CapUsage]:
        """Committed (with expired holds) and reserved (live holds only) amounts of each cap.

        Expires reservations on these caps whose ttl has passed first, as reserve does.
        """

    @abstractmethod
    async def seed_committed(self, values: Mapping[str, int]) -> None:
        """Raise each cap's committed amount to at least the given value (rebuild from the ledger)."""

    async def take(self, bucket: str, capacity: float, refill_per_s: float, amount: float) -> float:
        """Token bucket: take `amount` and return 0.0, or take nothing and return the wait in seconds.

        A new bucket starts full. `amount` larger than `capacity` can never fit: return inf. A
        negative `amount` gives tokens back (a rate limiter undoing a partial take), never filling
        the bucket above `capacity`.
        """
        return (await self.take_level(bucket, capacity, refill_per_s, amount)).wait

    @abstractmethod
    async def take_level(self, bucket: str, capacity: float, refill_per_s: float,
                         amount: float) -> BucketLevel:
        """`take`, in the same atomic step also saying how many tokens the bucket holds afterwards."""

    async def close(self) -> None:  # noqa: B027 - most backends have nothing to close
        """Release connections."""
