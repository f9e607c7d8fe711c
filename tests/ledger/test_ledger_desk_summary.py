"""Summary lines for the desk view, on every database the ledger runs on: per UTC hour, and budget
refusals counted apart (among the failed requests, but as no upstream failure)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from lyra.ledger import Ledger, LedgerRow

H12 = datetime(2025, 1, 2, 12, 0, 5, tzinfo=UTC).timestamp()
H13 = datetime(2025, 1, 2, 13, 59, 59, tzinfo=UTC).timestamp()


def test_summary_by_utc_hour_and_budget_refusals_apart(make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger()
    ledger.start()
    for i, (ts, status, kind) in enumerate([(H12, "ok", None), (H12 + 60, "error", "UpstreamError"),
                                            (H13, "error", "BudgetExceeded"), (H13, "error", "CostUnbounded")]):
        ledger.write(LedgerRow(ts=ts, request_id=f"r{i}", kind="request", requested_model="m", status=status,
                               error_kind=kind))
        if status == "ok":
            ledger.write(LedgerRow(ts=ts, request_id=f"r{i}", kind="attempt", served_model="m", status="ok",
                                   cost_nanos=5))
    ledger.flush()
    hours = [(x.group, x.requests, x.errors, x.refused, x.cost_nanos) for x in ledger.summary(since_ts=0, by="hour")]
    assert hours == [("2025-01-02T12:00Z", 2, 1, 0, 5), ("2025-01-02T13:00Z", 2, 2, 2, 0)]
    (model,) = ledger.summary(since_ts=0, by="model")
    assert (model.requests, model.errors, model.refused) == (4, 3, 2)
