"""A report as terminal tables (rich)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType

from lyra.analytics.accounts import NO_ACCOUNT, AccountLine
from lyra.analytics.drift import CostDrift
from lyra.analytics.report import Report, usd
from lyra.terminal import FitTable
from lyra.trading.paper import ROAS_DEFINITION, ROAS_UNIT


def _usd(nanos: int | None) -> str:
    value = usd(nanos)
    return "–" if value is None else f"${value:,.4f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


# Columns whose values are prose: they wrap at spaces; the others (amounts, shares) are kept whole.
_PROSE = frozenset({"why", "period (UTC)"})
# The columns left out first when a table does not fit the width (higher rank first); 0: always shown.
_DROP = {"Models": {"$/request": 3, "avg ms": 1, "p50 ms": 2, "failed": 4, "tier": 5},
         "Keys": {"cap": 1, "today": 2, "failed": 3},
         "Paper accounts (measured live)": {"period (UTC)": 7, "equity": 6, "buy & hold": 5,
                                            "day drawdown": 4, "AI spend": 3, "profitable": 2, "state": 1},
         "Routing advice": {"tier": 1}}


def _table(title: str, *columns: str) -> FitTable:
    """A table that fits the console's width: no word cut, the least useful columns left out first."""
    table = FitTable(title, options={"box": box.SIMPLE_HEAD, "title_justify": "left", "title_style": "bold"})
    drop = _DROP.get(title, {"spend/signal": 1, "failed": 2, "drift %": 1, "reconciled": 2})
    for i, name in enumerate(columns):
        table.column(name, justify="left" if i == 0 else "right", whole=i > 0 and name not in _PROSE,
                     drop=drop.get(name, 0))
    return table


def _count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def report_tables(report: Report) -> RenderableType:
    """Totals, models, keys, spend by day and month, signals and agreement, and routing advice."""
    money = "simulated" if report.simulated else "real"
    totals = _table(f"Lyra report: {report.window.label} (UTC), {money} money", "requests", "failed",
                    "success", "spend", "signals", "spend/signal", "agreement")
    s = report.signals
    totals.add_row(str(report.requests), str(report.errors), _pct(report.success_rate),
                   _usd(report.cost_nanos), f"{s.signals} of {s.decisions}", _usd(s.spend_per_signal_nanos),
                   _pct(report.agreement.mean_agreement))
    models = _table("Models", "model", "tier", "requests", "failed", "refused", "success", "avg ms", "p50 ms",
                    "p95 ms", "cost", "$/request")
    for m in report.models:  # failed: the model's own failures; refused: by a budget cap, before any call
        models.add_row(m.model, m.tier, str(m.requests), str(m.failures), str(m.refused),
                       _pct(m.success_rate), _ms(m.avg_latency_ms), _ms(m.p50_latency_ms),
                       _ms(m.p95_latency_ms), _usd(m.cost_nanos), _usd(m.cost_per_request_nanos))
    keys = _table("Keys", "key", "attempts", "failed", "error rate", "cost", "today", "cap", "used",
                  "tokens today", "token cap", "tokens used")
    for k in report.keys:  # each cap in its own unit: dollars of the $ cap, tokens of the token cap
        keys.add_row(k.key, str(k.attempts), str(k.attempt_errors), _pct(k.error_rate), _usd(k.cost_nanos),
                     _usd(k.today_spent_nanos), _usd(k.cap_nanos), _pct(k.utilisation),
                     _count(k.today_tokens), _count(k.cap_tokens), _pct(k.token_utilisation))
    spend = _table("Spend", "period", "requests", "cost")
    for line in [*report.days, *report.months]:
        spend.add_row(line.period, str(line.requests), _usd(line.cost_nanos))
    parts: list[RenderableType] = [totals, models, keys, spend]
    if report.cost_drift is not None:
        parts.append(drift_table(report.cost_drift))
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
    parts.append(accounts_table(report.accounts))
    return Group(*parts)


def drift_table(drift: CostDrift) -> RenderableType:
    """Booked against billed (GET /generation) spend: in all, per model and per key."""
    table = _table("Cost drift (billed = GET /generation; over reconciled attempts)", "scope", "reconciled",
                   "booked", "billed", "drift", "drift %")
    for scope, line in [("all", drift.total), *((f"model {m.group}", m) for m in drift.by_model),
                        *((f"key {k.group}", k) for k in drift.by_key)]:
        table.add_row(scope, f"{line.reconciled} of {line.attempts} ({_pct(line.reconciled_share)})",
                      _usd(line.reconciled_booked_nanos), _usd(line.billed_nanos), _usd(line.drift_nanos),
                      _pct(line.drift_share))
    return table


def _money(x: float | None) -> str:
    return "–" if x is None else f"-${-x:,.2f}" if x < 0 else f"${x:,.2f}"


def _roas(x: float | None) -> str:
    return "–" if x is None else f"{x:,.2f}"


def _period(r: dict[str, Any]) -> str:
    since, until = r.get("since"), r.get("until")
    return "–" if since is None else f"{str(since)[:16]} .. {str(until)[:16]}"


def accounts_table(lines: list[AccountLine]) -> RenderableType:
    """Each paper account's results beside buy-and-hold over its own period, and what ROAS means."""
    title = "Paper accounts (measured live)"
    if not lines:
        empty = _table(title, "account")
        empty.add_row(NO_ACCOUNT)
        return empty
    table = _table(title, "account", "period (UTC)", "equity", "P&L", "buy & hold", "vs hold", "profitable",
                   "day drawdown", "AI spend", "ROAS", "state")
    for line in lines:
        r = line.results
        if r is None:
            table.add_row(line.name, line.error or "–", *["–"] * 9)
            continue
        hold = r["buy_and_hold_pnl_usd"]
        state = "halted" if r["halted"] else "long" if r["position_units"] > 0 else (
            "short" if r["position_units"] < 0 else "flat")
        closed = r["closed_trades"]
        trades = f"{_pct(r['profitable_share'])} of {closed}" if closed else "none closed"
        table.add_row(line.name, _period(r), _money(r["equity_usd"]), _money(r["pnl_usd"]),
                      f"{_money(hold)} ({_pct(r['buy_and_hold_return'])})",
                      _money(line.to_dict()["pnl_vs_buy_and_hold_usd"]), trades, _pct(r["day_drawdown"]),
                      _usd(r["ai_spend_nanos"]), _roas(r["return_on_ai_spend"]), state)
    table.caption = f"ROAS in {ROAS_UNIT}: {ROAS_DEFINITION}"
    table.options["caption_justify"] = "left"
    return table


def print_report(report: Report, console: Console) -> None:
    console.print(report_tables(report))
    generated = datetime.fromtimestamp(report.generated_ts, UTC).isoformat(timespec="seconds")
    console.print(f"[dim]generated {generated}[/dim]")
