"""The `lyra live` status panel: next runs, last decisions, paper accounts, spend against caps, errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from lyra.caps import CapScope
from lyra.ops.live import LiveRunner, account_report
from lyra.trading.paper import ROAS_DEFINITION, ROAS_UNIT


@contextlib.contextmanager
def status_panel(runner: LiveRunner, *, enabled: bool = True) -> Iterator[None]:
    """A rich Live panel refreshed while the runner runs: next runs, decisions, spend, errors."""
    if not enabled:
        yield
        return
    from rich.live import Live

    from lyra.terminal import data_console

    with Live(render_status(runner), console=data_console(), refresh_per_second=4, transient=False) as live:
        caps: list[Any] = []

        async def refresh() -> None:
            while True:
                await asyncio.sleep(0.25)  # display only: the session runs on its own clock
                caps[:] = await runner.lyra.budget.snapshot() if runner.lyra.budget is not None else []
                live.update(render_status(runner, caps))

        task = asyncio.get_running_loop().create_task(refresh())
        try:
            yield
        finally:
            task.cancel()
            live.update(render_status(runner, caps))  # the panel left on screen shows the final state


def render_status(runner: LiveRunner, caps: Sequence[Any] = ()) -> Any:
    """The status panel's content as rich tables."""
    from rich.console import Group
    from rich.text import Text

    from lyra.money import format_usd
    from lyra.terminal import FitTable

    jobs = FitTable(f"lyra live  t={runner.status.now_s / 3600:.2f} h of {runner.session_s / 3600:g} h")
    for column, drop in (("job", 0), ("every", 2), ("next (h)", 0), ("fired", 0), ("skipped", 3),
                         ("errors", 0), ("last error", 1)):
        jobs.column(column, whole=column not in ("job", "last error"), drop=drop)
    for s in runner.status.jobs:
        jobs.add_row(
            s.job.name,
            f"{s.job.every_s}s",
            f"{s.next_at / 3600:.2f}",
            str(s.fired),
            str(s.skipped),
            str(s.errors),
            s.last_error[:60],
        )
    decisions = FitTable("last decision per symbol")
    for column in ("symbol", "bar", "action", "notional", "confidence"):
        decisions.column(column, whole=column != "symbol")
    for symbol, d in sorted(runner.status.decisions.items()):
        decisions.add_row(symbol, d.time, d.action, f"{d.notional_usd:,.0f}", f"{d.confidence:.2f}")
    accounts = account_table(runner)
    spend = FitTable("spend against caps")
    for column in ("cap", "spent", "limit"):
        spend.column(column, whole=column != "cap")
    for cap in caps:
        if cap.unit == "usd" and (cap.committed or cap.cap.scope is CapScope.GLOBAL):
            spend.add_row(cap.name, format_usd(cap.committed), format_usd(cap.limit))
    roas = Text(f"return on AI spend ({ROAS_UNIT}): {ROAS_DEFINITION}")
    notes = [Text(str(note)) for note in [*runner.status.events[-3:], *runner.status.errors[-5:]]]
    return Group(jobs, decisions, accounts, roas, spend, *notes)


def account_table(runner: LiveRunner) -> Any:
    """Each symbol's paper account measured live, beside buy-and-hold over the same bars."""
    from lyra.money import format_usd
    from lyra.terminal import FitTable

    table = FitTable("paper account per symbol (measured live; targets: > 70 % profitable, < 5 % daily "
                     "drawdown, > 10x return on AI spend)")
    drops = {"bars": 6, "equity": 5, "fills": 4, "day drawdown": 3, "AI spend": 2, "buy & hold": 1}
    for column in ("symbol", "bars", "equity", "P&L", "fills", "profitable", "day drawdown", "halted",
                   "AI spend", "return on AI spend (USD/USD)", "buy & hold"):
        table.column(column, whole=column not in ("symbol", "return on AI spend (USD/USD)"),
                     drop=drops.get(column, 0))
    for symbol, r in account_report(runner.status).items():
        share, roas, hold = r["profitable_share"], r["return_on_ai_spend"], r["buy_and_hold_return"]
        table.add_row(
            symbol, str(r["bars_this_run"]), f"{r['equity_usd']:,.2f}", f"{r['pnl_usd']:+,.2f}",
            str(r["fills"]), "-" if share is None else f"{share:.0%} of {r['closed_trades']}",
            f"{r['day_drawdown']:.2%}", "yes" if r["halted"] else "no", format_usd(r["ai_spend_nanos"]),
            "-" if roas is None else f"{roas:,.1f}x", "-" if hold is None else f"{hold:+.2%}",
        )
    return table
