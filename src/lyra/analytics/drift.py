"""The report's cost-drift section: what OpenRouter billed (GET /generation) against what was booked."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lyra.ledger import DriftLine, Ledger
from lyra.money import nanos_to_usd


@dataclass(frozen=True, slots=True)
class CostDrift:
    """Booked and billed spend over the window's attempts with a generation id: in all, per model, per key."""

    total: DriftLine
    by_model: list[DriftLine] = field(default_factory=list)
    by_key: list[DriftLine] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"definition": "billed = total_cost of GET /generation; drift = billed - booked, over "
                              "reconciled attempts only",
                **_line(self.total), "models": [_line(m) for m in self.by_model],
                "keys": [_line(k) for k in self.by_key]}


def usd(nanos: int) -> Decimal:
    return nanos_to_usd(nanos)


def _line(line: DriftLine) -> dict[str, Any]:
    share = line.drift_share
    return line.to_dict() | {
        "booked_usd": usd(line.booked_nanos), "reconciled_booked_usd": usd(line.reconciled_booked_nanos),
        "billed_usd": usd(line.billed_nanos), "drift_usd": usd(line.drift_nanos),
        "drift_share": None if share is None else round(share, 6)}


def read_drift(ledger: Ledger, *, since_ts: float, until_ts: float) -> CostDrift:
    """The window's drift from the ledger (blocking)."""
    span = {"since_ts": since_ts, "until_ts": until_ts}
    [total] = ledger.drift(by="all", **span)
    return CostDrift(total=total, by_model=ledger.drift(by="model", **span),
                     by_key=[k for k in ledger.drift(by="key", **span) if k.group is not None])


__all__ = ["CostDrift", "read_drift"]
