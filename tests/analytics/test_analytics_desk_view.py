"""The report's desk view: budget refusals kept apart from model failures, caps in their own unit,
per-client spend against its cap, and decision rows with bar time, price, notional and audit id."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from ledger_fill import DAY1, DAY2, TIERS, fill, request
from lyra import analytics
from lyra.analytics import build_report, routing_advice
from lyra.budget.governor import CapLine
from lyra.ledger import Ledger, LedgerRow
from lyra.money import json_default

ALL = analytics.Window(0, DAY2 + 86400, "all")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.start()
    yield ledger
    ledger.close()


def refusal(ledger: Ledger, ts: float, model: str, *, client: str | None = None,
            kind: str = "BudgetExceeded") -> None:
    """A request a budget cap refused before any upstream call, as lyra.observe.recording writes it."""
    ledger.write(LedgerRow(ts=ts, request_id=f"refused{ts}{model}", kind="request", tier=TIERS[model],
                           requested_model=model, client=client, status="error", error_kind=kind))


def test_budget_refusals_are_failed_requests_but_no_models_failure(ledger: Ledger) -> None:
    fill(ledger)  # fast/a and fast/b: 6 ok each; fast/c: 3 ok and 3 failed upstream
    for i in range(40):
        refusal(ledger, DAY1 + 10 + i, "fast/b", kind="CostUnbounded" if i % 2 else "BudgetExceeded")
    ledger.flush(5)
    report = build_report(ledger, ALL, tier_of=TIERS.__getitem__)
    by_model = {m.model: m for m in report.models}
    b = by_model["fast/b"]
    assert (b.requests, b.errors, b.refused, b.failures) == (46, 40, 40, 0)
    assert b.error_rate == 0.0 and b.success_rate == 1.0 and b.cost_per_request_nanos == 1_200
    assert by_model["fast/c"].refused == 0 and by_model["fast/c"].error_rate == pytest.approx(0.5)
    # The routing advice names fast/c for its failures, never fast/b for the budget's refusals.
    advice = {a.model: " ".join(a.reasons) for a in routing_advice(report.models)}
    assert "fast/b" not in advice and "failing more" in advice["fast/c"]
    body = orjson.loads(orjson.dumps(report.to_dict(), default=json_default))
    assert body["totals"]["errors"] == 43 and body["totals"]["refused"] == 40
    assert body["totals"]["model_failures"] == 3
    line = next(m for m in body["models"] if m["model"] == "fast/b")
    assert (line["refused"], line["model_failures"], line["error_rate"]) == (40, 0, 0.0)
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(analytics.report_tables(report))
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    row = next(r for r in lines if r.split()[:1] == ["fast/b"])
    assert row.split()[:6] == ["fast/b", "fast", "46", "0", "40", "100.0%"], row  # failed 0, refused 40


def test_a_model_only_refused_makes_no_sample_for_the_advice(ledger: Ledger) -> None:
    fill(ledger)
    for i in range(10):
        refusal(ledger, DAY2 + 50 + i, "premium/x")  # premium/x: one request reached it
    ledger.flush(5)
    report = build_report(ledger, ALL, tier_of=TIERS.__getitem__)
    premium = next(m for m in report.models if m.model == "premium/x")
    assert premium.reached == 1 and premium.error_rate == 0.0
    assert all(a.model != "premium/x" for a in routing_advice(report.models))


def test_a_token_cap_is_read_in_tokens_and_a_dollar_cap_in_dollars(ledger: Ledger) -> None:
    fill(ledger)
    # The key has used all of its token cap and little of its dollar cap.
    caps = [CapLine("key:xai", 20_000_000, 54_000, 0), CapLine("key_tokens:xai", 1_440, 1_440, 0, "tokens")]
    report = build_report(ledger, ALL, tier_of=TIERS.__getitem__, caps=caps)
    xai = next(k for k in report.keys if k.key == "xai")
    assert xai.token_utilisation == 1.0 and xai.utilisation == pytest.approx(0.0027)
    body = orjson.loads(orjson.dumps(report.to_dict(), default=json_default))
    key = next(k for k in body["keys"] if k["key"] == "xai")
    assert (key["token_utilisation"], key["today_tokens"], key["cap_tokens"]) == (1.0, 1_440, 1_440)
    token_cap = next(c for c in body["budget"] if c["name"] == "key_tokens:xai")
    assert (token_cap["unit"], token_cap["limit"], token_cap["used_share"]) == ("tokens", 1_440, 1.0)


def test_clients_spend_against_their_caps_an_operator_sees_all_a_client_itself(ledger: Ledger) -> None:
    for i in range(3):
        ledger.write(LedgerRow(ts=DAY1 + i, request_id=f"q{i}", kind="attempt", served_model="fast/a",
                               client="quant", cost_nanos=2_000, status="ok", prompt_tokens=10))
        ledger.write(LedgerRow(ts=DAY1 + i, request_id=f"q{i}", kind="request", served_model="fast/a",
                               client="quant", cost_nanos=2_000, status="ok", prompt_tokens=10))
    refusal(ledger, DAY1 + 9, "fast/a", client="quant")
    request(ledger, DAY1 + 20, "fast/b", "xai", latency=100, cost=1_000)  # no client: the CLI's own use
    ledger.flush(5)
    caps = [CapLine("client:quant", 10_000, 6_000, 1_000), CapLine("client:idle", 50_000, 0, 0),
            CapLine("global", 1_000_000, 7_000, 1_000)]
    desk = build_report(ledger, ALL, tier_of=TIERS.__getitem__, caps=caps)
    assert [c.client for c in desk.clients] == ["idle", "quant"]
    quant = desk.clients[1]
    assert (quant.requests, quant.errors, quant.refused, quant.cost_nanos) == (4, 1, 1, 6_000)
    assert quant.utilisation == pytest.approx(0.7) and desk.clients[0].requests == 0
    own = build_report(ledger, ALL, tier_of=TIERS.__getitem__, caps=caps[:1], client="quant")
    body = orjson.loads(orjson.dumps(own.to_dict(), default=json_default))
    assert [c["client"] for c in body["clients"]] == ["quant"]
    assert body["clients"][0]["cap_usd"] == pytest.approx(0.00001) and body["clients"][0]["utilisation"] == 0.7


def test_a_decision_row_carries_its_bar_time_price_notional_and_audit_record(ledger: Ledger) -> None:
    panel = {"panel": "trade", "action": "BUY", "agreement": 1.0,
             "votes": [{"model": "fast/a", "status": "vote", "action": "BUY", "confidence": 0.9, "weight": 1}]}
    record = ledger.audit.append({"symbol": "GOOGL", "time": "2025-01-30T15:30:00Z", "price": 187.25,
                                  "notional_usd": 4_900.5, "signal": panel, "final": None},
                                 symbol="GOOGL", action="BUY", cost_nanos=3)
    report = build_report(ledger, analytics.Window(0, 4e9, "all"), tier_of=TIERS.__getitem__)
    row = report.decisions[0]
    assert (row.bar_time, row.price, row.notional_usd) == ("2025-01-30T15:30:00Z", 187.25, 4_900.5)
    assert (row.seq, row.decision_id, row.audit_hash) == (record.seq, record.decision_id, record.hash)


def test_alerts_name_used_up_caps_in_their_unit_open_breakers_failing_models_and_refusals(ledger: Ledger) -> None:
    fill(ledger)
    for i in range(4):
        refusal(ledger, DAY2 + 70 + i, "fast/a")
    for i in range(6):  # fast/c: 3 of 6 failed in fill(), 9 of 12 now
        request(ledger, DAY2 + 80 + i, "fast/c", "codex", latency=400, cost=0, ok=False)
    ledger.flush(5)
    caps = [CapLine("key_tokens:xai", 1_440, 1_440, 0, "tokens"), CapLine("tier:fast", 1_000_000_000, 950_000_000, 0),
            CapLine("global", 50_000_000_000, 1_000, 0)]
    report = build_report(ledger, ALL, tier_of=TIERS.__getitem__, caps=caps,
                          breakers={"fast/c": "open", "fast/a": "closed", "fast/b": "half-open"})
    assert report.alerts == [
        "cap key_tokens:xai is used up: 1,440 tokens of 1,440 tokens",
        "cap tier:fast at 95%: $0.95 of $1.00",
        "circuit half-open for fast/b", "circuit open for fast/c",
        "model fast/c failing: 9 of the 12 requests it was sent (75%)",
        "4 requests refused by budget caps (no model's failure)",
    ]
    assert report.to_dict()["breakers"] == {"fast/c": "open", "fast/a": "closed", "fast/b": "half-open"}


def test_the_intraday_series_is_spend_and_requests_per_utc_hour(ledger: Ledger) -> None:
    fill(ledger)  # DAY1 12:00:00-12:00:05 UTC; DAY2 09:00:00-09:00:05 UTC
    request(ledger, DAY2 + 3_600 + 5, "fast/a", "xai", latency=100, cost=7)
    ledger.flush(5)
    report = build_report(ledger, ALL, tier_of=TIERS.__getitem__)
    assert [(h.period, h.cost_nanos, h.requests) for h in report.hours] == [
        ("2025-01-30T12:00Z", 6 * 1_000 + 6 * 1_200, 12), ("2025-02-01T09:00Z", 3 * 5_000 + 90_000, 7),
        ("2025-02-01T10:00Z", 7, 1)]
    assert report.to_dict()["hours"][-1] == {"period": "2025-02-01T10:00Z", "cost_nanos": 7,
                                             "cost_usd": analytics.report.usd(7), "requests": 1}
