"""`lyra backtest`: walk the decision pipeline forward over a data set, beside two baselines."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress

from lyra.cli.common import ConfigOption, FitTable, data_console, fail, use_config
from lyra.errors import LyraError
from lyra.money import format_usd

# Data is printed literally; width: $COLUMNS, else the terminal's, else 160 for piped output.
console = data_console()
errors = data_console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `backtest` to the CLI."""
    app.command("backtest")(backtest_command)


DataOption = Annotated[str | None, typer.Option(help="CSV/Parquet file or bundled sample (default GOOGL)")]
FromOption = Annotated[str | None, typer.Option("--from", help="First decision time (default: data start)")]
ToOption = Annotated[str | None, typer.Option("--to", help="Last bar of the window (default: data end)")]
EveryOption = Annotated[int | None, typer.Option(help="Decide every N bars (default: ~100 decisions)")]
HorizonOption = Annotated[int | None, typer.Option(help="Bars over which signals are scored (default: N)")]
MaxFailedOption = Annotated[float | None, typer.Option(
    "--max-failed-share", min=0.0, max=1.0,
    help="Exit 1 when more than this share of decisions had a failed stage (default: risk.max_failed_share)")]


def backtest_command(
    config: ConfigOption = None,
    data: DataOption = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol name (default: from the data)")] = None,
    start: FromOption = None,
    end: ToOption = None,
    every: EveryOption = None,
    horizon: HorizonOption = None,
    fee_bps: Annotated[float, typer.Option(help="Fee per trade, basis points of notional")] = 1.0,
    slippage_bps: Annotated[float, typer.Option(help="Slippage against the open, basis points")] = 2.0,
    notional: Annotated[float, typer.Option(help="Proposed trade size in USD")] = 5_000.0,
    anonymise: Annotated[bool, typer.Option(help="Strip dates and symbols from prompts")] = True,
    adaptive: Annotated[bool, typer.Option(help="Also walk with track-record panel weights")] = False,
    record: Annotated[Path | None, typer.Option(help="Store every model answer in this cassette")] = None,
    replay: Annotated[Path | None, typer.Option(help="Answer from this cassette, no upstream call")] = None,
    audit: Annotated[bool, typer.Option(help="Append the decisions to the audit trail (for `lyra export "
                                             "finetune`)")] = False,
    report: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report here")] = None,
    time_scale: Annotated[float, typer.Option(help="Simulator latency scale when no key is set")] = 0.0,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before spending real money")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    max_failed_share: MaxFailedOption = None,
    baselines: Annotated[bool, typer.Option(
        "--baselines", help="Also ask every member of both panels on every decision: calibration, "
        "best single model, self-consistency, calibrated panel and cost-tuned cascade")] = False,
    samples: Annotated[int | None, typer.Option(
        min=0, max=20, help="With --baselines: extra answers of one model per decision "
        "(default: calibration.self_consistency_samples)")] = None,
    timeframes: Annotated[str | None, typer.Option(
        help="Higher timeframes from the bars, e.g. 4h,1d: closed bars only, in every prompt")] = None,
    portfolio: Annotated[str | None, typer.Option(
        help="Rebalance a portfolio of these files or samples, comma-separated (e.g. GOOGL,EURUSD)")] = None,
    symbol_fees: Annotated[str | None, typer.Option(
        help="Per-symbol fees for --portfolio, basis points: GOOGL=1,EURUSD=0.2")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="Walk this [experiments.NAME] instead: one arm per decision, outcomes, the verdict")] = None,
) -> None:
    """Walk forward over bars: decide with only the past, fill at the next open, report against baselines.

    The report is written in full even when too many decisions had a failed stage (budget
    refusals, outages); the exit status is then 1, with one line on stderr saying what failed.
    """
    from lyra.trading.backtest import Costs, Window
    from lyra.trading.evaluate import BacktestOptions

    if record is not None and replay is not None:
        errors.print("[red]error:[/red] --record and --replay exclude each other")
        raise typer.Exit(2)
    if portfolio is not None and data is not None:
        errors.print("[red]error:[/red] --data and --portfolio exclude each other: list every data set "
                     "in --portfolio")
        raise typer.Exit(2)
    if portfolio is not None:
        from lyra.cli.portfolio import PortfolioArgs, portfolio_backtest

        portfolio_backtest(PortfolioArgs(config=config, sources=portfolio, start=start, end=end, every=every,
                                         fee_bps=fee_bps, slippage_bps=slippage_bps, symbol_fees=symbol_fees,
                                         anonymise=anonymise, timeframes=timeframes,
                                         record=record, replay=replay, time_scale=time_scale, yes=yes,
                                         json_output=json_output, max_failed_share=max_failed_share))
        return
    if experiment is not None:
        options = BacktestOptions(window=Window(start=start, end=end, every=every, horizon=horizon),
                                  costs=Costs(fee_bps=fee_bps, slippage_bps=slippage_bps), notional=notional,
                                  anonymise=anonymise, adaptive=adaptive, max_failed_share=max_failed_share)
        _experiment(config, data, symbol, experiment, options, record=record, replay=replay,
                    time_scale=time_scale, yes=yes, json_output=json_output)
        return
    try:
        path = use_config(config).path
        study = _study_options(path, samples) if baselines else None
        options = BacktestOptions(window=Window(start=start, end=end, every=every, horizon=horizon),
                                  costs=Costs(fee_bps=fee_bps, slippage_bps=slippage_bps), notional=notional,
                                  anonymise=anonymise, adaptive=adaptive, max_failed_share=max_failed_share,
                                  audit=audit, study=study,
                                  timeframes=_timeframes(timeframes, data, symbol))
        result = asyncio.run(_backtest(path, data, symbol, options, record=record, replay=replay,
                                       time_scale=time_scale, yes=yes, quiet=json_output))
    except LyraError as exc:
        raise fail(exc) from None
    if result is None:
        raise typer.Exit(1)
    if report is not None:
        from lyra.trading.report import write_report

        write_report(result, report)
    if json_output:
        console.print_json(data=result)
    else:
        _render(result)
        if report is not None:
            console.print(f"report written to {report}", markup=False)
    failures = result["failures"]
    if failures["exceeded"]:
        typer.echo(f"error: {failures['message']}", err=True)
        raise typer.Exit(1)


def _study_options(path: Path | None, samples: int | None) -> Any:
    """The panel study of the pipeline's panels: the final panel and the cheap one it escalates from."""
    from lyra.config import load_config
    from lyra.trading.panel_study import StudyOptions, check
    from lyra.trading.stages import FINAL_PANEL, SIGNAL_PANEL

    settings = load_config(path).settings
    full = settings.panels.get(FINAL_PANEL)
    cheap = (full.escalate_from if full is not None else None) or SIGNAL_PANEL
    calibration = settings.calibration
    options = StudyOptions(cheap_panel=cheap, full_panel=FINAL_PANEL,
                           samples=calibration.self_consistency_samples if samples is None else samples,
                           model=calibration.self_consistency_model)
    check(settings, options)
    return options


def _timeframes(text: str | None, data: str | None, symbol: str | None) -> tuple[str, ...]:
    """The --timeframes list, checked against the data's interval (a one-line error when it does not fit)."""
    if not text:
        return ()
    from lyra.trading.timeframes import parse_timeframes

    try:
        return parse_timeframes(text, _load(data, symbol).interval)
    except LyraError as exc:
        raise fail(exc) from None


def _load(data: str | None, symbol: str | None) -> Any:
    from lyra.trading.data import list_samples, load_bars, load_sample

    if data is None or data.upper() in list_samples():
        return load_sample(data or "GOOGL")
    return load_bars(data, symbol=symbol)


def _experiment(config: Path | None, data: str | None, symbol: str | None, name: str, options: Any, *,
                record: Path | None, replay: Path | None, time_scale: float, yes: bool, json_output: bool
                ) -> None:
    from lyra.cli.experiment import render_offline, run_offline

    try:
        path = use_config(config).path
        result = asyncio.run(run_offline(path, data, symbol, name, options, record=record, replay=replay,
                                         time_scale=time_scale, yes=yes))
    except LyraError as exc:
        raise fail(exc) from None
    if result is None:
        raise typer.Exit(1)
    if json_output:  # keys sorted: a replay prints the same bytes
        console.print_json(data=result, sort_keys=True)
    else:
        render_offline(result)


async def _backtest(config: Path | None, data: str | None, symbol: str | None, options: Any, *,
                    record: Path | None, replay: Path | None, time_scale: float, yes: bool, quiet: bool
                    ) -> dict[str, Any] | None:
    from lyra.engine import Lyra
    from lyra.simulator import SimulatorOptions
    from lyra.trading.backtest import decision_times
    from lyra.trading.cassette import Cassette
    from lyra.trading.data import list_samples, load_bars, load_sample
    from lyra.trading.evaluate import estimate_cost_nanos, run_backtest, window_bars

    if data is None or data.upper() in list_samples():
        bars = load_sample(data or "GOOGL")
    else:
        bars = load_bars(data, symbol=symbol)
    lyra = Lyra.from_config(config, simulator_options=SimulatorOptions(time_scale=time_scale,
                                                                        generation_lag_s=0.0))
    cassette = Cassette(replay, "replay") if replay else Cassette(record, "record") if record else None
    decisions = len(decision_times(window_bars(bars, options.window), options.window))
    if not lyra.config.simulated and replay is None:
        estimate = estimate_cost_nanos(lyra, decisions)
        if options.study is not None:
            from lyra.trading.panel_study import estimate_nanos

            estimate += estimate_nanos(lyra, decisions, options.study)
        errors.print(f"{decisions} decisions on real OpenRouter keys: at most about {format_usd(estimate)}")
        if not yes and not typer.confirm("spend it?", err=True):
            return None
    walks = decisions * (2 if options.adaptive else 1)
    # A replay answers every request from the cassette: it starts no simulator and uses no key.
    await (lyra.start_offline() if replay is not None else lyra.start())
    try:
        with Progress(console=errors, transient=True, disable=quiet or not errors.is_terminal) as progress:
            task = progress.add_task(f"backtesting {bars.symbol}", total=walks)
            result = await run_backtest(lyra, bars, options, cassette=cassette,
                                        on_step=lambda _: progress.advance(task))
        if replay is not None:
            result["upstream_calls"] = 0  # offline: the router cannot send anything
        elif lyra.simulator is not None:
            result["upstream_calls"] = lyra.simulator.stats.calls
    finally:
        await lyra.aclose()
    from lyra.trading.compliance_review import block_summary

    if (gate := block_summary(result["decisions"])) is not None:
        result["compliance"] = gate  # the desk's rules were on: how the orders fared
    if cassette is not None:
        cassette.save()
        result["cassette"] = {**cassette.summary(), "path": str(cassette.path), "mode": cassette.mode,
                              "replayed": cassette.replayed, "recorded": cassette.recorded,
                              "counts": cassette.counts()}
    return result


_COLUMNS = (
    ("signals", "signals scored", "int"), ("accuracy", "signal accuracy", "pct"),
    ("profitable_share", "profitable signals", "pct"), ("total_return", "total return", "pct"),
    ("annualised_return", "annualised return", "pct"), ("sharpe", "Sharpe", "num"),
    ("max_drawdown", "max drawdown", "pct"), ("worst_daily_drawdown", "worst daily drawdown", "pct"),
    ("exposure", "exposure", "pct"), ("trades", "trades", "int"),
    ("already_held", "signals already held (no trade)", "int"),
    ("failed_decisions", "decisions with a failed stage", "int"), ("pnl_usd", "P&L (USD)", "num"),
    ("ai_spend_nanos", "AI spend", "usd"),
    ("return_on_ai_spend", "return on AI spend (P&L $ per $1 of AI spend)", "num"),
)  # fmt: skip


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    return {"pct": f"{value:.2%}", "num": f"{value:.2f}", "int": str(value),
            "usd": format_usd(int(value))}[kind] if kind in ("pct", "num", "int", "usd") else str(value)


def _render(result: dict[str, Any]) -> None:
    from lyra.trading.evaluate import describe_failures

    w = result["window"]
    title = (f"Backtest {result['symbol']} {w['start'][:10]} .. {w['end'][:10]}: {w['decisions']} decisions "
             f"every {w['every']} bars, horizon {w['horizon']}")
    table = FitTable(title + (" (simulator)" if result["simulated"] else ""))
    table.column("measure")
    for row in result["strategies"]:
        table.column(row.get("label", row["name"]), justify="right", whole=True)
    for key, label, kind in _COLUMNS:
        table.row(label, *(_cell(row.get(key), kind) for row in result["strategies"]))
    console.print(table)
    for row in result["strategies"]:
        console.print(f"{row['name']}: {row['sizing']}" + (f"; {row['note']}" if row.get("note") else ""),
                      markup=False)
    console.print(f"Sharpe and annualised return: {result['annualisation']['text']}", markup=False)
    console.print(f"return on AI spend: {_roas_definition(result)}", markup=False)
    console.print(describe_failures(result["failures"]), markup=False)
    models = FitTable("Track record per panel member")
    for column, drop in (("model", 0), ("votes", 2), ("calls", 3), ("accuracy", 0), ("Brier", 1), ("cost", 0),
                         ("cost/correct", 4)):
        models.column(column, justify="left" if column == "model" else "right", whole=column != "model",
                      drop=drop)
    for row in result["track_record"]:
        per = row["cost_per_correct_nanos"]
        models.row(row["model"], str(row["votes"]), str(row["calls"]), _cell(row["accuracy"], "pct"),
                       _cell(row["brier"], "num"), format_usd(row["cost_nanos"]),
                       format_usd(per) if per is not None else "-")
    console.print(models)
    if result.get("panel_study"):
        from lyra.cli.backtest_study import render_study

        render_study(console, result["panel_study"])
    if gate := result.get("compliance"):
        blocked = ", ".join(f"{n} by {k}" for k, n in gate["blocked"].items()) or "none blocked"
        console.print(f"compliance: {gate['orders_seen']} orders reached the gate, {gate['passed']} passed; "
                      f"{blocked}", markup=False)
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {escape(str(warning))}")
    cassette = result.get("cassette")
    if cassette:
        from lyra.trading.cassette import describe_counts

        console.print(f"cassette {cassette['path']} ({cassette['mode']}): "
                      f"{describe_counts(cassette['counts'], cassette['mode'])}",
                      markup=False, soft_wrap=True)
    if "upstream_calls" in result:
        console.print(f"upstream calls: {result['upstream_calls']} (HTTP requests the simulator answered, "
                      "retries included; cache hits and replayed answers make none)",
                      highlight=False, soft_wrap=True)


def _roas_definition(result: dict[str, Any]) -> str:
    from lyra.trading.evaluate import return_on_ai_spend_example

    values = [s["return_on_ai_spend"] for s in result["strategies"] if s["return_on_ai_spend"] is not None]
    value = values[0] if values else None
    example = f" ({return_on_ai_spend_example(value)})" if value is not None else ""
    return f"{result['return_on_ai_spend_definition']}{example}"
