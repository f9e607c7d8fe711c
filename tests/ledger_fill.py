"""A ledger filled the way the router fills it, for the analytics and dashboard tests."""

from __future__ import annotations

from datetime import UTC, datetime

from lyra.ledger import Ledger, LedgerRow

DAY1 = datetime(2025, 1, 30, 12, tzinfo=UTC).timestamp()
DAY2 = datetime(2025, 2, 1, 9, tzinfo=UTC).timestamp()
TIERS = {"fast/a": "fast", "fast/b": "fast", "fast/c": "fast", "premium/x": "premium"}


def request(ledger: Ledger, ts: float, model: str, key: str, *, latency: float, cost: int,
            ok: bool = True) -> None:
    """One request with one attempt, as the router records it."""
    rid = f"r{ts}{model}{latency}{cost}"
    status = "ok" if ok else "error"
    common = {"ts": ts, "request_id": rid, "tier": TIERS[model], "served_model": model, "key_name": key,
              "cost_nanos": cost if ok else 0, "latency_ms": latency, "status": status,
              "prompt_tokens": 100, "completion_tokens": 20}
    ledger.write(LedgerRow(kind="attempt", **common))
    ledger.write(LedgerRow(kind="request", **common))


def fill(ledger: Ledger) -> None:
    for i in range(6):
        request(ledger, DAY1 + i, "fast/a", "xai", latency=100 + i, cost=1_000)
        request(ledger, DAY1 + i, "fast/b", "xai", latency=110 + i, cost=1_200)
        request(ledger, DAY2 + i, "fast/c", "codex", latency=400 + i, cost=5_000, ok=i < 3)
    request(ledger, DAY2, "premium/x", "premium", latency=2000, cost=90_000)
    ledger.flush(5)
