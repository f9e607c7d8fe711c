"""`lyra budget` and `lyra usage`: today's spend against every cap, and summaries of the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.text import Text

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
from lyra.errors import LedgerUnavailable, LyraError
from lyra.money import format_usd, json_default, usd_json

if TYPE_CHECKING:
    from lyra.budget.governor import CapLine
    from lyra.ledger import SummaryLine

console = data_console()
errors = data_console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
SinceOption = Annotated[
    str, typer.Option("--since", help="How far back: 30m, 12h, 7d, or an ISO date (UTC) such as 2025-01-31")
]
ByOption = Annotated[str, typer.Option("--by",
                                       help="Group by model, key, task, tier, client, day, user or tag")]

_BAR_WIDTH = 10
_HEADINGS = {"tier": "tiers", "key": "keys", "key_tokens": "key tokens", "client": "clients",
             "upstream": "upstreams"}


def register(app: typer.Typer) -> None:
    """Add the `budget` and `usage` commands to a Typer app (the `lyra` command line)."""
    app.command("budget")(budget)
    app.command("usage")(usage)


# --- shared plumbing -------------------------------------------------------------------------


def _fail(message: str) -> typer.Exit:
    """Print one error line on stderr; the caller raises the returned Exit (status 2)."""
    return fail(message)


@contextmanager
def _reported(what: str) -> Iterator[None]:
    """Turn a LyraError or a database failure inside into one line and exit status 2."""
    try:
        yield
    except LyraError as exc:
        raise _fail(str(exc)) from None
    except database_errors() as exc:
        raise _fail(f"cannot read {what}: {first_line(exc)}") from None


def _print_json(payload: object) -> None:
    """Money as exact JSON numbers of USD (orjson Fragments, Decimals), as the gateway writes it."""
    text = orjson.dumps(payload, option=orjson.OPT_INDENT_2, default=_json_value).decode()
    console.out(text, highlight=False)


def _json_value(value: object) -> object:
    return json_default(value) if isinstance(value, Decimal) else str(value)


# --- lyra budget -------------------------------------------------------------------------------


# Which money a view shows: a simulator run's (no key set) or real spend, never both.
MONEY_REAL = "real"
MONEY_SIMULATED = "simulated"

@dataclass(frozen=True, slots=True)
class BudgetView:
    """Today's caps as the engine sees them, with the slice kept for risk and emergencies."""

    day: str  # YYYY-MM-DD
    lines: list[CapLine]
    reserve_slice: int  # nano-dollars of the global cap that only privileged calls may use
    forecasts: dict[str, int] = field(default_factory=dict)  # tier -> end-of-day spend at today's pace
    simulated: bool = False  # the simulator's money (no key set), apart from real money

    @property
    def money(self) -> str:
        return MONEY_SIMULATED if self.simulated else MONEY_REAL


async def read_budget(config: Path | None) -> BudgetView:
    """Open the configured state backend and the ledger (no simulator, no router) and read every cap."""
    from lyra.budget.forecast import SpendForecast
    from lyra.engine import Lyra

    lyra = Lyra.from_config(config)
    await lyra.open_stores()  # reading caps calls no model: with no key set the simulator stays off
    try:
        governor = lyra.budget
        if governor is None:
            raise RuntimeError("the engine started without a budget governor")
        day = governor.day()
        pace = governor.forecast
        forecasts = ({t: f.forecast_nanos for t, f in pace.forecasts().items()}
                     if isinstance(pace, SpendForecast) else {})
        return BudgetView(f"{day[:4]}-{day[4:6]}-{day[6:]}", await governor.snapshot(),
                          governor.reserve_slice, forecasts, lyra.config.simulated)
    finally:
        await lyra.aclose()


def budget(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Today's spend against every cap: global, tiers, keys ($ and tokens), clients and upstreams."""
    with _reported("the budget state"):
        view = asyncio.run(read_budget(use_config(config).path))
    if as_json:
        _print_json(budget_payload(view))
    else:
        console.print(budget_table(view))


def budget_payload(view: BudgetView) -> dict[str, object]:
    """The budget view as JSON values, cap lines as GET /v1/budget writes them; money in exact USD."""
    from lyra.budget.cap_json import cap_amount, cap_line_json

    caps: list[dict[str, object]] = [cap_line_json(line) for line in view.lines]
    for line, cap in zip(view.lines, caps, strict=True):
        if line.cap.scope is CapScope.TIER and line.cap.name in view.forecasts:
            cap["forecast"] = cap_amount(view.forecasts[line.cap.name], line.unit)
    return {"day": view.day, "money": view.money, "reserve_slice_usd": usd_json(view.reserve_slice),
            "caps": caps}


def budget_table(view: BudgetView) -> FitTable:
    """One row per cap with a bar of spent and reserved, under a heading per kind of cap."""
    table = FitTable(f"Budget for {view.day} (UTC), {view.money} money",
                     options={"caption": Text(_budget_caption(view)), "show_edge": True})
    table.column("cap")
    table.column("used", whole=True)
    for column, drop in (("spent", 0), ("reserved", 1), ("remaining", 0), ("limit", 0)):
        table.column(column, justify="right", whole=True, drop=drop)
    kind = None
    for line in view.lines:
        line_kind, _, name = line.name.partition(":")
        if line_kind != kind and line_kind in _HEADINGS:
            table.row(Text(_HEADINGS[line_kind], style="bold"))
        kind = line_kind
        amounts = (_amount(v, line.unit) for v in (line.committed, line.reserved, line.remaining, line.limit))
        label = Text(f"  {name}" if name else line_kind)  # Text: a name is never read as markup
        table.row(label, _bar(line), *amounts)
    return table


def _budget_caption(view: BudgetView) -> str:
    caption = "█ spent  ▒ reserved by calls in flight  · free"
    if view.reserve_slice:
        caption += (f"; {format_usd(view.reserve_slice)} of the global cap is kept for risk "
                    "assessment and emergencies")
    limits = {line.cap.name: line.limit for line in view.lines if line.cap.scope is CapScope.TIER}
    over = [f"{tier} {format_usd(f)} of {format_usd(limits[tier])}" for tier, f in view.forecasts.items()
            if tier in limits and f > limits[tier]]
    if over:
        caption += "; on pace to pass its cap today (stepping down early): " + ", ".join(over)
    return caption


def _amount(value: int, unit: str) -> str:
    return format_usd(value) if unit == "usd" else f"{value:,}"


def _bar(line: CapLine, width: int = _BAR_WIDTH) -> Text:
    """Spent cells coloured by how full the cap is, then reserved cells, then free ones; then the share."""
    if line.limit <= 0:
        return Text("no budget", style="dim")
    spent = min(width, round(line.committed / line.limit * width))
    held = min(width - spent, round(line.reserved / line.limit * width))
    used = (line.committed + line.reserved) / line.limit
    colour = "red" if used >= 0.9 else "yellow" if used >= 0.75 else "green"
    return Text.assemble(("█" * spent, colour), ("▒" * held, "cyan"), ("·" * (width - spent - held), "dim"),
                         f" {used:>4.0%}")


# --- lyra usage --------------------------------------------------------------------------------


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """The instant `--since` names: a duration back from now (30m, 12h, 7d) or an ISO date or time.

    Dates and times without a zone are UTC. Raises ValueError with a one-line message.
    """
    from lyra.analytics import WindowError, since

    try:
        start = since(value, (now or datetime.now(UTC)).timestamp(), allow_future=True).start_ts
    except WindowError as exc:
        raise ValueError(f"--{exc}") from None
    return datetime.fromtimestamp(start, UTC)


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Ledger lines grouped one way since an instant."""

    since: datetime
    by: str
    ledger: str  # the ledger's URL, password masked
    rows: list[SummaryLine]
    simulated: bool = False  # simulator money (no key set), kept apart from real money


def read_usage(config: Path | None, since: datetime, by: str) -> UsageReport:
    """Summarise the configured ledger ($LYRA_LEDGER_URL, [ledger] url, or the default file)."""
    from lyra.config import load_config
    from lyra.ledger import Ledger, default_url
    from lyra.ledger.schema import display_url, parse_url, sqlite_path

    loaded = load_config(config)
    url = loaded.ledger_url or default_url(simulated=loaded.simulated)
    parsed = parse_url(url)
    path = sqlite_path(parsed)
    if path is not None and not path.exists():
        return UsageReport(since, by, display_url(parsed), [], loaded.simulated)  # nothing recorded yet
    ledger = Ledger(url, simulated=loaded.simulated)
    try:
        rows = ledger.summary(since_ts=since.timestamp(), by=by)
    except database_errors() as exc:
        origin = loaded.ledger_url_origin or "the default ledger file"
        raise LedgerUnavailable(f"the ledger database {ledger.url_for_display} ({origin}) cannot be read: "
                                f"{first_line(exc)}; start it or fix {origin.rpartition(': ')[2]}") from None
    finally:
        ledger.close()
    return UsageReport(since, by, ledger.url_for_display, rows, loaded.simulated)


def usage(config: ConfigOption = None, since: SinceOption = "7d", by: ByOption = "model",
          as_json: JsonOption = False) -> None:
    """Summarise the ledger: requests, errors, tokens, cost and latency per group."""
    from lyra.ledger import SUMMARY_DIMENSIONS

    try:
        start = parse_since(since)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if by not in SUMMARY_DIMENSIONS:
        raise _fail(f"--by: expected one of {', '.join(SUMMARY_DIMENSIONS)}; got {by!r}")
    with _reported("the ledger"):
        report = read_usage(use_config(config).path, start, by)
    if as_json:
        _print_json({"since": report.since.isoformat(), "by": report.by, "ledger": report.ledger,
                     "money": MONEY_SIMULATED if report.simulated else MONEY_REAL,
                     "rows": [row.to_json() for row in report.rows]})
    else:
        console.print(usage_table(report))


def usage_table(report: UsageReport) -> FitTable:
    """One row per group and a total row."""
    caption = (f"ledger: {report.ledger}, {MONEY_SIMULATED if report.simulated else MONEY_REAL} money"
               + ("; a request with several tags counts in each" if report.by == "tag" else ""))
    table = FitTable(f"Usage since {report.since:%Y-%m-%d %H:%M} UTC by {report.by}",
                     options={"caption": Text(caption), "show_footer": bool(report.rows), "show_edge": True})
    totals = _totals(report.rows)
    table.column(report.by, footer="total")  # may wrap at spaces; the numbers may not
    for column in ("requests", "errors", "tokens"):
        table.column(column, justify="right", footer=f"{totals[column]:,}", whole=True,
                     drop=2 if column == "errors" else 0)
    table.column("cost", justify="right", footer=format_usd(totals["cost_nanos"]), whole=True)
    table.column("p50 ms", justify="right", whole=True, drop=1)
    table.column("p95 ms", justify="right", whole=True, drop=3)
    for row in report.rows:
        table.row(_group(row.group), f"{row.requests:,}", f"{row.errors:,}", f"{row.tokens:,}",
                  format_usd(row.cost_nanos), _latency(row.p50_latency_ms), _latency(row.p95_latency_ms))
    if not report.rows:
        table.row("(nothing recorded in this window)")
    return table


def _totals(rows: Sequence[SummaryLine]) -> dict[str, int]:
    return {"requests": sum(r.requests for r in rows), "errors": sum(r.errors for r in rows),
            "cost_nanos": sum(r.cost_nanos for r in rows), "tokens": sum(r.tokens for r in rows)}


def _group(value: object) -> Text:
    return Text("-" if value is None else str(value))  # Text: a name is never read as markup


def _latency(value: object) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) else "-"


__all__ = ["BudgetView", "UsageReport", "budget", "parse_since", "read_budget", "read_usage", "register",
           "usage"]
