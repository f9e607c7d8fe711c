"""`lyra run` (the main job: the decision pipeline over recent bars) and `lyra audit`."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress

from lyra.caps import CapScope
from lyra.cli.common import (
    ConfigOption,
    FitTable,
    data_console,
    database_errors,
    fail,
    first_line,
    use_config,
)
from lyra.errors import LyraError
from lyra.money import format_usd

if TYPE_CHECKING:
    from lyra.ledger import SummaryLine

# Data is printed literally; width: $COLUMNS, else the terminal's, else 160 for piped output.
console = data_console()
errors = data_console(stderr=True)
audit_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The decision audit trail.")


def _fail(exc: LyraError) -> typer.Exit:
    return fail(exc)


def register(app: typer.Typer) -> None:
    """Add `run` and `audit` to the CLI."""
    app.command("run")(run_command)
    app.add_typer(audit_app, name="audit")


DataOption = Annotated[str | None, typer.Option(help="CSV/Parquet file, bundled sample, or ccxt:EX:SYM:TF")]


def run_command(
    config: ConfigOption = None,
    data: DataOption = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol name (default: from the data)")] = None,
    bars: Annotated[int, typer.Option("--bars", help="Decide on each of the last N bars")] = 30,
    notional: Annotated[float, typer.Option(help="Proposed trade size in USD")] = 5_000.0,
    time_scale: Annotated[float, typer.Option(help="Simulator latency scale when no key is set")] = 0.02,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    max_failed_share: Annotated[float | None, typer.Option(
        "--max-failed-share", min=0.0, max=1.0,
        help="Exit 1 when more than this share of decisions had a failed stage (default: "
             "risk.max_failed_share)")] = None,
    account: Annotated[str | None, typer.Option(
        help="Trade this paper account kept in the ledger (resumed and saved); default: a new one "
             "for this run")] = None,
) -> None:
    """Run the six-stage decision pipeline over the last N bars of a data set.

    The exit status is 1, after the full output, when more than the allowed share of decisions
    had a failed stage (budget refusals, outages), with one line on stderr saying what failed.
    """
    try:
        path = use_config(config).path
        report = asyncio.run(_run(path, data, symbol, bars, notional, time_scale, quiet=json_output,
                                  max_failed_share=max_failed_share, account_name=account))
    except LyraError as exc:
        raise _fail(exc) from None
    if json_output:
        console.print_json(data=report)
    else:
        _render(report)
    if report["failures"]["exceeded"]:
        typer.echo(f"error: {report['failures']['message']}", err=True)
        raise typer.Exit(1)


async def _run(config: Path | None, data: str | None, symbol: str | None, n: int, notional: float,
               time_scale: float, *, quiet: bool, max_failed_share: float | None = None,
               account_name: str | None = None) -> dict[str, Any]:
    from lyra.engine import Lyra
    from lyra.simulator import SimulatorOptions
    from lyra.trading.data import DataError, load_bars, load_sample
    from lyra.trading.evaluate import failure_summary
    from lyra.trading.paper import ROAS_DEFINITION, PaperBook, results
    from lyra.trading.pipeline import TradingAIOrchestrator

    if n <= 0:
        raise DataError(f"--bars must be at least 1, got {n}")
    series = load_sample() if data is None else _load(data, symbol, load_bars, load_sample)
    name = symbol or series.symbol
    times = list(series.frame.index[-n:])
    lyra = Lyra.from_config(config, simulator_options=SimulatorOptions(time_scale=time_scale))
    decisions = []
    started = time.time()
    async with lyra:
        orchestrator = TradingAIOrchestrator(lyra)
        book = PaperBook(lyra.settings, lyra.ledger.accounts if account_name and lyra.ledger else None)
        paper = book.open(account_name or f"run:{name}")
        tape = PaperTape(paper, series.frame)
        with Progress(console=errors, transient=True, disable=quiet or not errors.is_terminal) as progress:
            task = progress.add_task(f"deciding {name}", total=len(times))
            for t in times:
                fresh = tape.advance_to(t)  # every bar up to t, once and in order: fills, stops, halts
                decision = await orchestrator.decide(name, series, proposed_notional=notional, at=t,
                                                     account=paper.state())
                if fresh:
                    paper.order(decision.action, decision.notional_usd)  # fills at the next bar's open
                    paper.record_decision(decision.cost_nanos)
                decisions.append(decision)
                progress.advance(task)
        if account_name:
            book.save(account_name, paper)
        assert lyra.budget is not None and lyra.ledger is not None
        caps = await lyra.budget.snapshot()
        lyra.ledger.flush()
        by_model = lyra.ledger.summary(since_ts=started, by="model")
    report = _report(name, series.interval, decisions, caps, by_model, lyra.config.simulated)
    allowed = lyra.settings.risk.max_failed_share if max_failed_share is None else max_failed_share
    report["failures"] = failure_summary(report["decisions"], allowed_share=allowed)
    report["account"] = {"name": account_name or f"run:{name}", "stored": account_name is not None,
                         **results(paper), "return_on_ai_spend_definition": ROAS_DEFINITION,
                         "events": [{"time": e.time.isoformat(), "kind": e.kind, "detail": e.detail}
                                    for e in paper.events]}
    return report


class PaperTape:
    """Feeds a paper account the bars of a frame up to a time, each once and in order."""

    def __init__(self, account: Any, frame: Any) -> None:
        self.account = account
        self.frame = frame

    def advance_to(self, t: Any) -> bool:
        """Run every unseen bar up to t; True when t itself is new to the account (it may trade)."""
        from lyra.trading.account import bar_prices

        last = self.account.last_time
        for i in range(len(self.frame)):
            when = self.frame.index[i]
            if when > t:
                break
            if last is None and when < t:
                continue  # a new account opens at its first decision's bar
            if last is None or when > last:
                self.account.bar(bar_prices(self.frame, i))
        return bool(self.account.last_time == t and (last is None or t > last))


def _load(data: str, symbol: str | None, load_bars: Any, load_sample: Any) -> Any:
    from lyra.trading.data import list_samples

    if data in list_samples():
        return load_sample(data)
    return load_bars(data, symbol=symbol)


def _report(symbol: str, interval: str, decisions: list[Any], caps: list[Any], by_model: list[SummaryLine],
            simulated: bool) -> dict[str, Any]:
    return {
        "symbol": symbol, "interval": interval, "simulated": simulated,
        "decisions": [d.to_dict() for d in decisions],
        "by_action": dict(collections.Counter(d.action for d in decisions)),
        "cost_nanos": sum(d.cost_nanos for d in decisions),
        "caps": [{"name": c.name, "limit": c.limit, "committed": c.committed, "unit": c.unit}
                 for c in caps if c.committed or c.cap.scope in (CapScope.GLOBAL, CapScope.TIER)],
        "latency_by_model": [{"model": r.group, "requests": r.requests, "avg_ms": r.avg_latency_ms,
                              "p95_ms": r.p95_latency_ms, "errors": r.errors} for r in by_model],
        "errors": [e for d in decisions for e in d.errors],
    }


def _render(report: dict[str, Any]) -> None:
    from lyra.trading.evaluate import describe_failures

    table = FitTable(f"Decisions for {report['symbol']} ({report['interval']} bars)"
                     + (" on the built-in simulator" if report["simulated"] else ""))
    for column, drop in (("time", 0), ("price", 0), ("action", 0), ("conf", 0), ("agree", 2), ("risk", 0),
                         ("notional", 0), ("cost", 0), ("failed stages", 1)):
        table.column(column, justify="left" if column in ("time", "action", "risk") else "right",
                     whole=True, drop=drop)
    for d in report["decisions"]:
        when = d["time"][:10] if report["interval"] == "1d" else d["time"][:16].replace("T", " ")
        table.row(when, f"{d['price']:,.2f}", d["action"],
                      f"{d['confidence']:.2f}", f"{d['agreement']:.2f}", d["risk"]["verdict"],
                      f"${d['notional_usd']:,.0f}", format_usd(d["cost_nanos"]), str(d["failed_stages"]))
    console.print(table)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report["by_action"].items()))
    console.print(f"decisions: {counts}; AI spend {format_usd(report['cost_nanos'])}")
    console.print(describe_failures(report["failures"]), markup=False)
    _render_account(report["account"])
    spend = FitTable("Spend today against caps")
    for column in ("cap", "spent", "limit", "used"):
        spend.column(column, justify="left" if column == "cap" else "right", whole=column != "cap")
    for cap in report["caps"]:
        money = cap["unit"] == "usd"
        used = cap["committed"] / cap["limit"] if cap["limit"] else 0.0
        spend.row(cap["name"], _amount(cap["committed"], money), _amount(cap["limit"], money),
                      f"{used:.2%}")
    console.print(spend)
    models = FitTable("Latency per model")
    for column in ("model", "requests", "avg", "p95", "errors"):
        models.column(column, justify="left" if column == "model" else "right", whole=column != "model")
    for row in report["latency_by_model"]:
        avg, p95 = row["avg_ms"], row["p95_ms"]
        models.row(str(row["model"]), str(row["requests"]), f"{avg:.0f} ms" if avg is not None else "-",
                       f"{p95:.0f} ms" if p95 is not None else "-", str(row["errors"]))
    console.print(models)
    console.print(f"errors: {len(report['errors'])}" + "".join(f"\n  {e}" for e in report["errors"][:10]),
                  markup=False)


def _render_account(account: dict[str, Any]) -> None:
    """The paper account the decisions traded: P&L beside buy-and-hold, against what the models cost."""
    hold = account["buy_and_hold_return"]
    roas = account["return_on_ai_spend"]
    console.print(
        f"paper account {account['name']}{' (kept in the ledger)' if account['stored'] else ''}: "
        f"equity ${account['equity_usd']:,.2f}, P&L ${account['pnl_usd']:,.2f} "
        f"(realised ${account['realised_pnl_usd']:,.2f}, unrealised ${account['unrealised_pnl_usd']:,.2f}), "
        f"{account['fills']} fills, {account['emergency_stops']} emergency stops, "
        f"{account['drawdown_halts']} drawdown halts; buy-and-hold over the same bars "
        f"{'-' if hold is None else f'{hold:+.2%}'}; return on AI spend "
        f"{'-' if roas is None else f'{roas:,.2f}'} ({account['return_on_ai_spend_unit']})", markup=False)


def _amount(value: int, money: bool) -> str:
    return format_usd(value) if money else f"{value:,} tok"


@audit_app.command("verify")
def audit_verify(config: ConfigOption = None) -> None:
    """Check the decision chain; report the first broken record."""
    ledger = _ledger(config)
    try:
        check = ledger.audit.verify()
    except database_errors() as exc:
        raise fail(f"cannot read the audit trail in {ledger.url_for_display}: {first_line(exc)}") from None
    if check.ok:
        console.print(f"[green]chain intact[/green]: {check.checked} decisions verified")
        return
    errors.print(f"[red]chain broken at record {check.first_broken_seq}[/red]: {escape(str(check.reason))} "
                 f"({check.checked} records verified before it)")
    raise typer.Exit(1)


@audit_app.command("show")
def audit_show(
    ref: Annotated[str, typer.Argument(help="Decision id or sequence number")],
    config: ConfigOption = None,
) -> None:
    """Print one recorded decision in full."""
    ledger = _ledger(config)
    try:
        record = ledger.audit.get(ref)
    except database_errors() as exc:
        raise fail(f"cannot read the audit trail in {ledger.url_for_display}: {first_line(exc)}") from None
    if record is None:
        errors.print(f"[red]error:[/red] no decision {escape(repr(ref))} in the audit trail")
        raise typer.Exit(2)
    console.print_json(data={"seq": record.seq, "decision_id": record.decision_id, "ts": record.ts,
                             "hash": record.hash, "prev_hash": record.prev_hash, "decision": record.payload})


def _ledger(config: Path | None) -> Any:
    from lyra.config import load_config
    from lyra.ledger import Ledger, default_url

    try:
        loaded = load_config(use_config(config))
        url = loaded.ledger_url or default_url(simulated=loaded.simulated)
        return Ledger(url, simulated=loaded.simulated)
    except LyraError as exc:
        raise _fail(exc) from None
