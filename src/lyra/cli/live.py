"""`lyra plan`, `lyra live` and `lyra doctor`: the daily cost plan, the schedule runner, log analysis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from lyra.catalog.models import load_catalog
from lyra.cli.common import (
    ConfigOption,
    FitTable,
    data_console,
    database_errors,
    fail,
    first_line,
    use_config,
)
from lyra.config import load_config
from lyra.config.upstreams import priced_catalog
from lyra.engine import Lyra
from lyra.errors import ConfigError, LyraError
from lyra.ledger import Ledger, default_url
from lyra.money import format_usd, json_default
from lyra.ops.live import (
    CcxtMarket,
    Clock,
    LiveRunner,
    ReplayClock,
    SimulatedClock,
    account_report,
    install_signal_handlers,
    run_replay_day,
    summary,
)
from lyra.ops.live_view import status_panel
from lyra.ops.plan import Plan, build_plan
from lyra.ops.schedule import session_length_s

JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]
CLOCKS = ("paced", "simulated")


def register(app: typer.Typer) -> None:
    """Add `plan`, `live` and `doctor` to the `lyra` command."""
    app.command("plan")(plan_command)
    app.command("live")(live_command)
    app.command("doctor")(doctor_command)


def _fail(message: str) -> typer.Exit:
    return fail(message)


def plan_command(
    config: ConfigOption = None,
    as_json: JsonOption = False,
    history: Annotated[bool, typer.Option(help="measure tokens per call from the ledger")] = True,
    strict: Annotated[bool, typer.Option(help="exit with status 1 when the plan breaks a cap")] = False,
) -> None:
    """Print the daily cost plan: calls and dollars per function, tier and key, beside every cap."""
    try:
        catalog = load_catalog()
        loaded = load_config(use_config(config), catalog=catalog)
        try:
            ledger = _open_ledger(loaded.ledger_url, simulated=loaded.simulated) if history else None
        except database_errors() as exc:
            origin = loaded.ledger_url_origin.rpartition(": ")[2] or "the default ledger file"
            raise _fail(f"the ledger database ({origin}) cannot be read for --history: {first_line(exc)}; "
                        f"start it, fix {origin} or pass --no-history") from None
        try:
            settings = loaded.settings
            priced = priced_catalog(catalog, settings.upstreams, settings.every_model_id())
            plan = build_plan(settings, priced, ledger)
        finally:
            if ledger is not None:
                ledger.close()
    except LyraError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(orjson.dumps(plan.to_dict(), option=orjson.OPT_INDENT_2, default=json_default).decode())
    else:
        render_plan(plan, data_console())
    if strict and plan.warnings:
        raise typer.Exit(1)


def _open_ledger(url: str | None, *, simulated: bool) -> Ledger | None:
    """The ledger, if its file exists (a plan never creates one)."""
    url = url or default_url(simulated=simulated)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    ledger = Ledger(url, simulated=simulated)
    ledger.start()
    return ledger


def render_plan(plan: Plan, console: Console) -> None:
    """The plan as tables: functions, then caps, then warnings."""
    table = FitTable(f"daily plan (session {plan.session_s / 3600:g} h)")
    for column, drop in (("function", 0), ("every", 3), ("tier", 4), ("model", 0), ("key", 2),
                         ("calls/day", 0), ("share", 5), ("tokens/call", 1), ("$/day", 0)):
        table.column(column, justify="right" if column in ("calls/day", "share", "$/day") else "left",
                     whole=column in ("every", "calls/day", "share", "$/day"), drop=drop)
    for line in plan.lines:
        table.row(
            line.function,
            line.every,
            line.tier,
            line.model,
            line.key_label,
            f"{line.calls:,}",
            f"{plan.share(line):.0%}",
            f"{line.tokens.prompt}+{line.tokens.completion} ({line.tokens.source})",
            format_usd(line.cost_nanos),
        )
    table.row("total", "", "", "", "", f"{plan.total_calls:,}", "100%", "", format_usd(plan.total_nanos))
    console.print(table)
    caps = FitTable("caps")
    for column in ("cap", "planned", "limit", "use"):
        caps.column(column, justify="left" if column == "cap" else "right", whole=column != "cap")
    for cap in plan.caps:
        if cap.planned == 0:
            continue
        show = format_usd if cap.unit == "usd" else (lambda v: f"{v:,}")
        style = "red" if cap.broken else ""
        caps.row(
            cap.cap, show(cap.planned), show(cap.limit), f"{cap.planned / cap.limit:.0%}", style=style
        )
    console.print(caps)
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(str(warning))}", highlight=False)


def live_command(
    config: ConfigOption = None,
    replay: Annotated[
        str | None, typer.Option(help="a bars file or a bundled sample (GOOGL, EURUSD)")
    ] = None,
    ccxt: Annotated[
        str | None, typer.Option(help="live bars from an exchange via ccxt, e.g. binance")
    ] = None,
    speed: Annotated[float, typer.Option(help="simulated seconds per real second (replay)")] = 60.0,
    days: Annotated[float, typer.Option(help="stop after this many simulated sessions")] = 1.0,
    panel: Annotated[bool, typer.Option(help="show the status panel")] = True,
    clock: Annotated[str, typer.Option(
        help="paced: --speed session seconds per real second; simulated (replay only): session time "
             "moves as soon as every tick in flight is done, the same way on any machine")] = "paced",
    portfolio: Annotated[str | None, typer.Option(
        help="rebalance a portfolio of these files or samples, comma-separated ('config': "
             "portfolio.symbols), at portfolio.every instead of the task schedule")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="with --portfolio: print the end report as JSON")
                           ] = False,
) -> None:
    """Run the task schedule for the configured symbols on replayed or live market data, trading a
    paper account per symbol."""
    if portfolio is not None:
        from lyra.cli.portfolio import portfolio_live

        portfolio_live(config=config, sources=portfolio, speed=speed, days=days, clock=clock,
                       json_output=json_output)
        return
    try:
        path = use_config(config).path
        code = asyncio.run(
            run_live_command(config=path, replay=replay, ccxt=ccxt, speed=speed, days=days, panel=panel,
                             clock=clock)
        )
    except LyraError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(code)


def doctor_command(
    config: ConfigOption = None,
    hours: Annotated[float, typer.Option(help="look back this many hours")] = 24.0,
    log_file: Annotated[Path | None, typer.Option("--log-file", help="also read this log file")] = None,
    ask: Annotated[bool, typer.Option(help="ask a fast model for a summary")] = True,
) -> None:
    """Analyse Lyra's recent warnings and errors: findings computed in code, then a fast model's summary."""
    from lyra.ops.monitoring import run_doctor

    try:
        path = use_config(config).path
        text = asyncio.run(run_doctor(config=path, hours=hours, log_file=log_file, ask=ask))
    except LyraError as exc:
        raise _fail(str(exc)) from None
    typer.echo(text)


async def run_live_command(
    *, config: Path | None, replay: str | None, ccxt: str | None, speed: float, days: float, panel: bool,
    clock: str = "paced",
) -> int:
    """`lyra live`: run the schedule until the session ends or SIGINT/SIGTERM; flush the ledger."""
    if (replay is None) == (ccxt is None):
        raise ConfigError("lyra live: give exactly one of --replay FILE|SAMPLE or --ccxt EXCHANGE")
    if clock not in CLOCKS:
        raise ConfigError(f"--clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    if clock == "simulated" and ccxt is not None:
        raise ConfigError("--clock simulated needs --replay: an exchange's bars arrive in real time")
    if speed <= 0:
        raise ConfigError(f"--speed must be above 0, got {speed:g}")
    stop = asyncio.Event()
    install_signal_handlers(stop)
    async with Lyra.from_config(config) as lyra:
        session = session_length_s(lyra.settings) * days
        if ccxt is not None:
            symbols = sorted({s for t in lyra.settings.tasks.values() for s in t.symbols})
            runner = LiveRunner(lyra, CcxtMarket(ccxt), ReplayClock(1.0), session_s=session)
            runner.stop = stop
            with status_panel(runner, enabled=panel):
                typer.echo(f"live: started on {ccxt} for {', '.join(symbols)}")
                status = await runner.run()
        else:
            assert replay is not None
            session_clock: Clock = SimulatedClock() if clock == "simulated" else ReplayClock(speed)
            pace = "on the simulated clock" if clock == "simulated" else f"at speed {speed:g}"
            typer.echo(f"live: started replay of {replay} {pace}")
            status = await run_replay_day(
                lyra,
                replay,
                clock=session_clock,
                session_s=session,
                stop=stop,
                panel=lambda r: status_panel(r, enabled=panel),
            )
        ledger = lyra.ledger
        if ledger is not None:
            ledger.flush(timeout=10)
    report = {"interrupted": stop.is_set(), "tasks": summary(status), "accounts": account_report(status)}
    if status.shadow:
        report["shadow"] = status.shadow
    typer.echo("live: stopped " + orjson.dumps(report, default=json_default).decode())
    return 0


def main() -> None:
    """Run these commands alone (`python -m lyra.cli.live live ...`)."""
    app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
    register(app)
    app()


if __name__ == "__main__":
    main()
