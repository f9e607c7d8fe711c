"""Analytics: windows, KPIs built from a real ledger and audit trail, routing advice, renderers."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd
import pytest
from rich.console import Console

from ledger_fill import DAY1, DAY2, TIERS, fill
from lyra import analytics
from lyra.analytics import AdviceRules, ModelStats, WindowError, build_report, routing_advice
from lyra.budget.governor import CapLine
from lyra.ledger import Ledger
from lyra.money import json_default


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.start()
    yield ledger
    ledger.close()


def decision(ledger: Ledger, action: str, votes: list[tuple[str, str]], agreement: float, cost: int) -> None:
    panel = {"panel": "trade", "action": action, "agreement": agreement,
             "votes": [{"model": m, "served_model": m, "status": "vote", "action": a, "confidence": 0.8,
                        "weight": 0.5} for m, a in votes]}
    ledger.audit.append({"signal": panel, "final": None}, symbol="GOOGL", action=action, cost_nanos=cost)


def test_a_window_is_a_span_back_from_now_or_one_utc_day() -> None:
    w = analytics.since("7d", 1_000_000.0)
    assert (w.start_ts, w.end_ts, w.label) == (1_000_000.0 - 7 * 86400, 1_000_000.0, "last 7d")
    d = analytics.day("2025-01-31")
    assert d.end_ts - d.start_ts == 86400 and datetime.fromtimestamp(d.start_ts, UTC).day == 31
    assert analytics.since("2025-01-31", DAY2).start_ts == datetime(2025, 1, 31, tzinfo=UTC).timestamp()
    for bad in ("7 days", "yesterday"):
        with pytest.raises(WindowError, match="since"):
            analytics.since(bad, DAY2)
    with pytest.raises(WindowError, match="day"):
        analytics.day("31/01/2025")


def test_the_report_counts_what_the_ledger_recorded(ledger: Ledger) -> None:
    fill(ledger)
    window = analytics.Window(DAY1 - 86400, DAY2 + 86400, "test")
    report = build_report(ledger, window, tier_of=TIERS.__getitem__, now=DAY2 + 100)
    assert report.requests == 19 and report.errors == 3
    assert report.cost_nanos == 6 * 1_000 + 6 * 1_200 + 3 * 5_000 + 90_000
    by_model = {m.model: m for m in report.models}
    assert by_model["fast/c"].error_rate == pytest.approx(0.5)
    assert by_model["fast/a"].p50_latency_ms == pytest.approx(102.5)
    assert by_model["fast/a"].avg_latency_ms == pytest.approx(102.5)
    assert by_model["fast/a"].cost_per_request_nanos == 1_000
    assert by_model["premium/x"].tier == "premium"
    keys = {k.key: k for k in report.keys}
    assert keys["codex"].attempts == 6 and keys["codex"].error_rate == pytest.approx(0.5)
    assert [d.period for d in report.days] == ["2025-01-30", "2025-02-01"]
    assert [(m.period, m.cost_nanos) for m in report.months] == [("2025-01", 13_200), ("2025-02", 105_000)]


def test_one_day_holds_only_that_days_rows(ledger: Ledger) -> None:
    fill(ledger)
    report = build_report(ledger, analytics.day("2025-01-30"), tier_of=TIERS.__getitem__)
    assert report.requests == 12 and {m.model for m in report.models} == {"fast/a", "fast/b"}


def test_cost_per_signal_and_agreement_come_from_the_audit_trail(ledger: Ledger) -> None:
    fill(ledger)
    decision(ledger, "BUY", [("fast/a", "BUY"), ("fast/b", "BUY")], 1.0, 20_000)
    decision(ledger, "SELL", [("fast/a", "SELL"), ("fast/b", "BUY")], 0.5, 30_000)
    decision(ledger, "HOLD", [("fast/a", "HOLD"), ("fast/b", "BUY")], 0.5, 10_000)
    now = datetime.now(UTC).timestamp()
    report = build_report(ledger, analytics.Window(DAY1 - 1, now + 1, "all"), tier_of=TIERS.__getitem__)
    s = report.signals
    assert (s.decisions, s.signals, s.decision_cost_nanos) == (3, 2, 50_000)
    assert s.spend_per_signal_nanos == report.cost_nanos // 2
    assert report.agreement.mean_agreement == pytest.approx(2 / 3, abs=1e-4)
    assert report.agreement.by_model == {"fast/a": 1.0, "fast/b": pytest.approx(1 / 3, abs=1e-4)}
    assert report.decisions[0].action == "HOLD" and len(report.decisions[0].votes) == 2


def test_key_utilisation_is_todays_spend_against_its_cap(ledger: Ledger) -> None:
    fill(ledger)
    caps = [CapLine("key:xai", 20_000_000, 5_000_000, 0), CapLine("key_tokens:xai", 300_000, 1_500, 0, "tokens"),
            CapLine("tier:fast", 10_000_000, 0, 0)]
    report = build_report(ledger, analytics.Window(0, DAY2 + 86400, "all"), tier_of=TIERS.__getitem__, caps=caps)
    xai = next(k for k in report.keys if k.key == "xai")
    assert xai.utilisation == pytest.approx(0.25) and xai.cap_tokens == 300_000
    assert {c["name"] for c in report.to_dict()["budget"]} == {"key:xai", "key_tokens:xai", "tier:fast"}


def stats(model: str, *, p50: float = 100, cost: int = 1_000, errors: int = 0, tier: str = "fast") -> ModelStats:
    return ModelStats(model=model, tier=tier, requests=100, errors=errors, attempts=100, attempt_errors=errors,
                      cached=0, cost_nanos=cost * 100, tokens=0, avg_latency_ms=p50, p50_latency_ms=p50,
                      p95_latency_ms=p50)


def test_advice_names_models_worse_than_their_tier_median_and_says_why() -> None:
    models = [stats("a"), stats("b", p50=110), stats("c", p50=400, cost=5_000, errors=20),
              stats("lonely", tier="premium", p50=9_000)]
    advice = routing_advice(models)
    assert [a.model for a in advice] == ["c"]
    reasons = " ".join(advice[0].reasons)
    assert "slower" in reasons and "costlier" in reasons and "failing more" in reasons and "fast median" in reasons


def test_advice_ignores_small_samples_and_near_ties() -> None:
    assert routing_advice([stats("a"), stats("b", p50=140, cost=1_400, errors=1)]) == []
    few = ModelStats(model="c", tier="fast", requests=2, errors=2, attempts=2, attempt_errors=2, cached=0,
                     cost_nanos=0, tokens=0, avg_latency_ms=None, p50_latency_ms=None, p95_latency_ms=None)
    assert routing_advice([stats("a"), stats("b"), few], AdviceRules(min_requests=5)) == []


def test_json_html_and_tables_render_the_same_report(ledger: Ledger) -> None:
    fill(ledger)
    decision(ledger, "BUY", [("fast/a", "BUY"), ("fast/b", "</script><script>alert(1)</script>")], 0.5, 1)
    report = build_report(ledger, analytics.Window(0, DAY2 + 10**9, "all"), tier_of=TIERS.__getitem__)
    payload = orjson.loads(orjson.dumps(report.to_dict(), default=json_default))
    assert payload["totals"]["requests"] == 19 and payload["totals"]["cost_usd"] == 0.0001182  # exact: 118,200 nano-dollars
    page = analytics.render_html(report)
    assert "Chart.js v4" in page and "LyraCharts" in page and "http://" not in page.split("<body>")[1]
    assert "</script><script>alert" not in page  # untrusted text cannot end the data's script element
    data = re.search(r'id="report-data">(.*?)</script>', page, re.S)
    assert data is not None and orjson.loads(data[1].replace("<\\/", "</")) == payload
    out = io.StringIO()
    analytics.print_report(report, Console(file=out, width=200))
    text = out.getvalue()
    assert "fast/c" in text and "Routing advice" in text and "2025-02" in text


def _paper_account(closes: list[float], *, spend_nanos: int) -> dict[str, object]:
    """A paper account that bought at the second bar's open and is marked at the last close."""
    from lyra.trading.account import PaperAccount, bar_prices

    times = pd.date_range("2025-01-01", periods=len(closes), freq="D", tz="UTC")
    frame = pd.DataFrame({"open": closes, "high": [c + 1 for c in closes], "low": [c - 1 for c in closes],
                          "close": closes}, index=times)
    account = PaperAccount(equity=10_000)
    account.bar(bar_prices(frame, 0))
    account.order("BUY", 5_000)
    account.record_decision(spend_nanos)
    for i in range(1, len(frame)):
        account.bar(bar_prices(frame, i))
    return account.to_dict()


def test_the_report_lists_paper_accounts_scoped_by_client(ledger: Ledger) -> None:
    window = analytics.Window(0, DAY2 + 10**9, "all")
    empty = build_report(ledger, window, tier_of=TIERS.__getitem__)
    assert empty.to_dict()["paper_accounts"]["note"] == "no paper account yet"
    out = io.StringIO()
    analytics.print_report(empty, Console(file=out, width=200))
    assert "no paper account yet" in out.getvalue()
    ledger.accounts.save("gateway:quant:GOOGL", _paper_account([100, 100, 110], spend_nanos=2_000_000_000))
    ledger.accounts.save("gateway:quant%3Ax:GOOGL", _paper_account([100, 100, 90], spend_nanos=1))
    ledger.accounts.save("live:BTC", _paper_account([100, 100, 90], spend_nanos=1))
    mine = build_report(ledger, window, tier_of=TIERS.__getitem__, client="quant").to_dict()["paper_accounts"]
    assert [a["name"] for a in mine["accounts"]] == ["gateway:quant:GOOGL"]
    line = mine["accounts"][0]
    assert line["buy_and_hold_return"] == pytest.approx(0.1) and line["pnl_usd"] > 0
    assert line["return_on_ai_spend"] == pytest.approx(line["pnl_usd"] / 2)  # $2 of AI spend
    assert line["pnl_vs_buy_and_hold_usd"] == pytest.approx(line["pnl_usd"] - line["buy_and_hold_pnl_usd"])
    assert mine["return_on_ai_spend_unit"] == "USD of P&L per USD of AI spend"
    other = build_report(ledger, window, tier_of=TIERS.__getitem__, client="quant:x").to_dict()
    assert [a["name"] for a in other["paper_accounts"]["accounts"]] == ["gateway:quant%3Ax:GOOGL"]
    everyone = build_report(ledger, window, tier_of=TIERS.__getitem__)
    assert [a.name for a in everyone.accounts] == ["gateway:quant%3Ax:GOOGL", "gateway:quant:GOOGL", "live:BTC"]
    out = io.StringIO()
    analytics.print_report(everyone, Console(file=out, width=240))
    text = out.getvalue()
    assert "Paper accounts" in text and "live:BTC" in text and "USD of P&L per USD of AI spend" in text
    page = analytics.render_html(everyone)
    assert 'id="table-accounts"' in page and "live:BTC" in page


def test_lyra_report_shows_the_paper_accounts_without_starting_the_simulator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from lyra.cli.commands import app
    from lyra.simulator import Simulator
    from support import fast_config_text

    async def refuse(self: Simulator) -> None:
        raise AssertionError("lyra report started the simulator")

    monkeypatch.setattr(Simulator, "start", refuse)
    for name in [n for n in __import__("os").environ if n.startswith(("LYRA_", "OPENROUTER_"))]:
        monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("LYRA_LEDGER_URL", url)
    config = tmp_path / "lyra.toml"
    config.write_text(fast_config_text())
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "no paper account yet" in result.output
    stored = Ledger(url)
    stored.start()
    stored.accounts.save("live:GOOGL", _paper_account([100, 100, 110], spend_nanos=1_000_000_000))
    stored.close()
    result = runner.invoke(app, ["report", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    section = orjson.loads(result.stdout)["paper_accounts"]
    assert [a["name"] for a in section["accounts"]] == ["live:GOOGL"]
    assert section["accounts"][0]["return_on_ai_spend"] is not None and section["note"] is None
    result = runner.invoke(app, ["report", "--config", str(config), "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert "live:GOOGL" in (tmp_path / "r.html").read_text()
