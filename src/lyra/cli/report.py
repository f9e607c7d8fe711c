"""`lyra report`: the analytics report of a window as tables, JSON or a self-contained HTML file."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from lyra.cli.common import ConfigOption, data_console, database_errors, fail, first_line, use_config
from lyra.errors import LyraError
from lyra.money import json_default

if TYPE_CHECKING:
    from lyra.analytics import Report, Window

console = data_console()
errors = data_console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the `report` command to a Typer app (the `lyra` command line)."""
    app.command("report")(report)


def report(
    since: Annotated[str | None, typer.Option(
        "--since", help="How far back: 30m, 12h, 7d, or an ISO date (UTC); default 1d")] = None,
    day: Annotated[str | None, typer.Option("--day", help="One UTC day, YYYY-MM-DD")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Write a self-contained HTML file with charts")] = None,
    config: ConfigOption = None,
) -> None:
    """KPIs per model and key, spend per day and month, cost per signal, agreement, routing advice and
    the paper accounts' results (P&L, profitable share, day drawdown, return on AI spend, buy-and-hold)."""
    from lyra import analytics

    if since is not None and day is not None:
        raise _fail("give either --since or --day, not both")
    try:
        window = analytics.day(day) if day is not None else analytics.since(since or "1d", time.time())
        built = asyncio.run(read_report(use_config(config).path, window))
    except LyraError as exc:
        raise _fail(str(exc)) from None
    except database_errors() as exc:
        raise _fail(f"cannot read the ledger: {first_line(exc)}") from None
    if html is not None:
        html.write_text(analytics.render_html(built), encoding="utf-8")
        errors.print(f"wrote {html}", markup=False)
    if as_json:
        text = orjson.dumps(built.to_dict(), option=orjson.OPT_INDENT_2, default=json_default).decode()
        console.out(text, highlight=False)
    elif html is None:
        analytics.print_report(built, console)


async def read_report(config: Path | None, window: Window) -> Report:
    """Open the ledger and the budget state only (no simulator, no model call) and build the report."""
    from lyra.analytics import build_report
    from lyra.engine import Lyra
    from lyra.service.access import tier_of_model

    lyra = Lyra.from_config(config)
    try:
        # The stores alone: starting the engine would start the simulator when no key is set, and
        # a report reads what is recorded, it never calls a model.
        await lyra.open_stores()
        if lyra.ledger is None:
            raise LyraError("the report needs the ledger, which is disabled ([ledger] enabled = false)")
        caps = await lyra.budget.snapshot() if lyra.budget is not None else []
        ledger = lyra.ledger
        with contextlib.suppress(TimeoutError):  # a slow database: report what is committed
            ledger.flush(5.0)
        return await asyncio.to_thread(build_report, ledger, window, caps=caps,
                                       tier_of=lambda model: tier_of_model(lyra, model))
    finally:
        await lyra.aclose()


def _fail(message: str) -> typer.Exit:
    return fail(message)
