"""Read and write what OpenRouter billed for each attempt: the rows still to reconcile, the drift.

An attempt row is booked with `cost_nanos` (the response's `usage.cost`, or a worst case when the
call was cut off); `lyra.reconcile` later asks `/generation` and stores the billed amount beside
it in `reconciled_cost_nanos`, with `reconciled_at` and `drift_nanos` (billed - booked). The booked
cost is never overwritten: both numbers stay, so drift can be reported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, func, literal, select, update

from lyra.ledger.schema import UtcDay, usage

DRIFT_DIMENSIONS = ("all", "model", "key")


@dataclass(frozen=True, slots=True)
class PendingAttempt:
    """An attempt row with a generation id and no billed cost yet."""

    generation_id: str
    key_name: str | None
    model: str | None
    cost_nanos: int
    ts: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftLine:
    """Booked against billed spend of one group's attempts (nano-dollars).

    `attempts` counts attempt rows with a generation id (the ones that can be reconciled);
    `booked_nanos` is their booked cost; `reconciled_*` cover the rows reconciled so far only, so
    `drift_nanos` (billed - booked over those rows) compares like with like.
    """

    group: str | None
    attempts: int = 0
    reconciled: int = 0
    booked_nanos: int = 0
    reconciled_booked_nanos: int = 0
    billed_nanos: int = 0

    @property
    def drift_nanos(self) -> int:
        return self.billed_nanos - self.reconciled_booked_nanos

    @property
    def reconciled_share(self) -> float | None:
        return None if self.attempts == 0 else self.reconciled / self.attempts

    @property
    def drift_share(self) -> float | None:
        """Drift as a share of the booked spend it compares with; None when that is zero."""
        if self.reconciled_booked_nanos == 0:
            return None
        return self.drift_nanos / self.reconciled_booked_nanos

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "attempts": self.attempts, "reconciled": self.reconciled,
                "reconciled_share": self.reconciled_share, "booked_nanos": self.booked_nanos,
                "reconciled_booked_nanos": self.reconciled_booked_nanos,
                "billed_nanos": self.billed_nanos, "drift_nanos": self.drift_nanos,
                "drift_share": self.drift_share}


def pending(conn: Connection, *, simulated: bool, since_ts: float = 0.0,
            limit: int | None = None) -> list[PendingAttempt]:
    """Attempt rows with a generation id and no reconciled cost, oldest first."""
    c = usage.c
    query = (select(c.generation_id, c.key_name, func.coalesce(c.served_model, c.requested_model),
                    c.cost_nanos, c.ts)
             .where(c.kind == "attempt", c.generation_id.is_not(None), c.reconciled_cost_nanos.is_(None),
                    c.simulated.is_(simulated), c.ts >= since_ts)
             .order_by(c.ts, c.id))
    if limit is not None:
        query = query.limit(limit)
    return [PendingAttempt(str(gen), key, model, int(cost or 0), float(ts))
            for gen, key, model, cost, ts in conn.execute(query)]


def record(conn: Connection, generation_id: str, billed_nanos: int, at: float, *, simulated: bool) -> int:
    """Store the billed cost of the attempt rows of one generation; the number of rows updated.

    Rows reconciled before are left as they are, so that a second reconciler racing the first
    changes nothing.
    """
    c = usage.c
    statement = (update(usage)
                 .where(c.kind == "attempt", c.generation_id == generation_id,
                        c.reconciled_cost_nanos.is_(None), c.simulated.is_(simulated))
                 .values(reconciled_cost_nanos=billed_nanos, reconciled_at=at,
                         drift_nanos=billed_nanos - c.cost_nanos))
    return int(conn.execute(statement).rowcount or 0)


def drift(conn: Connection, *, since_ts: float, until_ts: float | None, by: str,
          simulated: bool) -> list[DriftLine]:
    """Per group ("all", "model" or "key"): attempts that can be reconciled, booked and billed spend."""
    c = usage.c
    if by not in DRIFT_DIMENSIONS:
        raise ValueError(f"by: expected one of {', '.join(DRIFT_DIMENSIONS)}, got {by!r}")
    group: Any = (literal("all") if by == "all" else
                  func.coalesce(c.served_model, c.requested_model) if by == "model" else c.key_name)
    done = c.reconciled_cost_nanos.is_not(None)
    window = [c.kind == "attempt", c.generation_id.is_not(None), c.ts >= since_ts, c.simulated.is_(simulated)]
    if until_ts is not None:
        window.append(c.ts < until_ts)
    query = (select(group.label("grp"), func.count(), func.sum(case((done, 1), else_=0)),
                    func.sum(c.cost_nanos), func.sum(case((done, c.cost_nanos), else_=0)),
                    func.sum(case((done, c.reconciled_cost_nanos), else_=0)))
             .where(*window))
    if by != "all":
        query = query.group_by(group)
    # Postgres sums BIGINT into NUMERIC (a Decimal); "all" has no GROUP BY, so it is always one line.
    lines = [DriftLine(group=None if grp is None else str(grp), attempts=int(n or 0), reconciled=int(r or 0),
                       booked_nanos=int(b or 0), reconciled_booked_nanos=int(rb or 0),
                       billed_nanos=int(bl or 0))
             for grp, n, r, b, rb, bl in conn.execute(query)]
    return sorted(lines, key=lambda line: (-abs(line.drift_nanos), -line.booked_nanos, str(line.group)))


def spend_by_key_day(conn: Connection, *, since_ts: float, until_ts: float | None,
                     simulated: bool) -> dict[tuple[str, str], int]:
    """Booked spend of attempt rows per (key name, UTC day 'YYYY-MM-DD')."""
    c = usage.c
    day = UtcDay(c.ts)
    window = [c.kind == "attempt", c.key_name.is_not(None), c.ts >= since_ts, c.simulated.is_(simulated)]
    if until_ts is not None:
        window.append(c.ts < until_ts)
    query = select(c.key_name, day, func.sum(c.cost_nanos)).where(*window).group_by(c.key_name, day)
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for key, on, cost in conn.execute(query):
        totals[(str(key), str(on))] += int(cost or 0)
    return dict(totals)


__all__ = ["DRIFT_DIMENSIONS", "DriftLine", "PendingAttempt", "drift", "pending", "record",
           "spend_by_key_day"]
