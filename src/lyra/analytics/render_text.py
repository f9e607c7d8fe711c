"""A report as terminal tables (rich)."""

from __future__ import annotations

from datetime import UTC, datetime

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table

from lyra.analytics.report import Report, usd


def _usd(nanos: int | None) -> str:
    value = usd(nanos)
    return "–" if value is None else f"${value:,.4f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", title_style="bold")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    return table


def report_tables(report: Report) -> RenderableType:
    """Totals, models, keys, spend by day and month, signals and agreement, and routing advice."""
    money = "simulated" if report.simulated else "real"
    totals = _table(f"Lyra report: {report.window.label} (UTC), {money} money", "requests", "failed",
                    "success", "spend", "signals", "spend/signal", "agreement")
    s = report.signals
    totals.add_row(str(report.requests), str(report.errors), _pct(report.success_rate),
                   _usd(report.cost_nanos), f"{s.signals} of {s.decisions}", _usd(s.spend_per_signal_nanos),
                   _pct(report.agreement.mean_agreement))
    models = _table("Models", "model", "tier", "requests", "failed", "success", "avg ms", "p50 ms", "p95 ms",
                    "cost", "$/request")
    for m in report.models:
        models.add_row(m.model, m.tier, str(m.requests), str(m.errors), _pct(m.success_rate),
                       _ms(m.avg_latency_ms), _ms(m.p50_latency_ms), _ms(m.p95_latency_ms),
                       _usd(m.cost_nanos), _usd(m.cost_per_request_nanos))
    keys = _table("Keys", "key", "attempts", "failed", "error rate", "cost", "today", "cap", "used")
    for k in report.keys:
        keys.add_row(k.key, str(k.attempts), str(k.attempt_errors), _pct(k.error_rate), _usd(k.cost_nanos),
                     _usd(k.today_spent_nanos), _usd(k.cap_nanos), _pct(k.utilisation))
    spend = _table("Spend", "period", "requests", "cost")
    for line in [*report.days, *report.months]:
        spend.add_row(line.period, str(line.requests), _usd(line.cost_nanos))
    parts: list[RenderableType] = [totals, models, keys, spend]
    if report.agreement.by_model:
        agree = _table("Agreement with the panel's outcome", "model", "votes", "agreed")
        for model, share in report.agreement.by_model.items():
            agree.add_row(model, str(report.agreement.votes_by_model[model]), _pct(share))
        parts.append(agree)
    advice = _table("Routing advice", "model", "tier", "why")
    for a in report.advice:
        advice.add_row(a.model, a.tier, "; ".join(a.reasons))
    if not report.advice:
        advice.add_row("–", "–", "no model does markedly worse than its tier's peers")
    parts.append(advice)
    return Group(*parts)


def print_report(report: Report, console: Console) -> None:
    console.print(report_tables(report))
    generated = datetime.fromtimestamp(report.generated_ts, UTC).isoformat(timespec="seconds")
    console.print(f"[dim]generated {generated}[/dim]")
