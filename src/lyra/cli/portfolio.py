"""`lyra backtest --portfolio A,B,...`: rebalance a paper portfolio with the model, beside the baselines."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from lyra.cli.common import FitTable, data_console, fail, use_config
from lyra.errors import LyraError
from lyra.money import format_usd

console = data_console()
errors = data_console(stderr=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioArgs:
    """The `lyra backtest` options a portfolio backtest reads."""

    config: Path | None
    sources: str
    start: str | None
    end: str | None
    every: int | None
    fee_bps: float
    slippage_bps: float
    symbol_fees: str | None
    anonymise: bool
    timeframes: str | None
    record: Path | None
    replay: Path | None
    time_scale: float
    yes: bool
    json_output: bool
    max_failed_share: float | None


def load_sources(text: str) -> list[Any]:
    """Comma-separated bundled samples (GOOGL, EURUSD) or CSV/Parquet files, loaded and validated."""
    from lyra.trading.data import list_samples, load_bars, load_sample

    parts = [p.strip() for p in text.split(",") if p.strip()]
    return [load_sample(p) if p.upper() in list_samples() else load_bars(p) for p in parts]


def portfolio_backtest(args: PortfolioArgs) -> None:
    """Run it, print the table (or JSON), exit 1 when too many rebalances had a failed stage."""
    try:
        path = use_config(args.config).path
        result = asyncio.run(_run(path, args))
    except LyraError as exc:
        raise fail(exc) from None
    if result is None:
        raise typer.Exit(1)
    if args.json_output:
        console.print_json(data=result)
    else:
        _render(result)
    failures = result["failures"]
    if failures["exceeded"]:
        typer.echo(f"error: {failures['message']}", err=True)
        raise typer.Exit(1)


def _costs(args: PortfolioArgs) -> Any:
    from lyra.trading.data import DataError
    from lyra.trading.portfolio import PortfolioCosts
    from lyra.trading.portfolio_backtest import parse_symbol_fees

    fee, slip = Decimal(repr(args.fee_bps)), Decimal(repr(args.slippage_bps))
    for name, value in (("--fee-bps", fee), ("--slippage-bps", slip)):
        if not value.is_finite() or value < 0:
            raise DataError(f"{name} must be a number of basis points >= 0, got {value}")
    return PortfolioCosts(fee_bps=fee, slippage_bps=slip, symbol_fee_bps=parse_symbol_fees(args.symbol_fees))


async def _run(config: Path | None, args: PortfolioArgs) -> dict[str, Any] | None:
    from lyra.engine import Lyra
    from lyra.simulator import SimulatorOptions
    from lyra.trading.backtest import Window
    from lyra.trading.cassette import Cassette
    from lyra.trading.portfolio import align
    from lyra.trading.portfolio_backtest import PortfolioOptions, rebalance_times, run_portfolio_backtest
    from lyra.trading.timeframes import parse_timeframes

    series = load_sources(args.sources)
    aligned = align(series)
    # Higher timeframes are resampled from each symbol's own bars, at the portfolio's interval or above.
    timeframes = parse_timeframes(args.timeframes, aligned.interval) if args.timeframes else ()
    window = Window(start=args.start, end=args.end, every=args.every)
    options = PortfolioOptions(
        window=window,
        costs=_costs(args),
        anonymise=args.anonymise,
        timeframes=timeframes,
        max_failed_share=args.max_failed_share,
    )
    lyra = Lyra.from_config(
        config, simulator_options=SimulatorOptions(time_scale=args.time_scale, generation_lag_s=0.0)
    )
    cassette = (
        Cassette(args.replay, "replay")
        if args.replay
        else Cassette(args.record, "record")
        if args.record
        else None
    )
    if not lyra.config.simulated and args.replay is None:
        rebalances = len(rebalance_times(aligned, window))
        errors.print(
            f"{rebalances} rebalances on real OpenRouter keys: one premium call each, and the full "
            "panel for the large ones"
        )
        if not args.yes and not typer.confirm("spend it?", err=True):
            return None
    await (lyra.start_offline() if args.replay is not None else lyra.start())
    try:
        result = await run_portfolio_backtest(lyra, aligned, options, cassette=cassette)
        if args.replay is not None:
            result["upstream_calls"] = 0  # offline: the router cannot send anything
        elif lyra.simulator is not None:
            result["upstream_calls"] = lyra.simulator.stats.calls
    finally:
        await lyra.aclose()
    if cassette is not None:
        cassette.save()
        result["cassette"] = {
            **cassette.summary(),
            "path": str(cassette.path),
            "mode": cassette.mode,
            "counts": cassette.counts(),
        }
    return result


_ROWS = (
    ("total_return", "total return", "pct"), ("annualised_return", "annualised return", "pct"),
    ("sharpe", "Sharpe", "num"), ("max_drawdown", "max drawdown", "pct"),
    ("average_gross_exposure", "average gross exposure", "pct"),
    ("average_net_exposure", "average net exposure", "pct"), ("rebalances", "rebalances", "int"),
    ("trades", "fills", "int"), ("traded_usd", "traded (USD)", "usd"), ("fees_usd", "fees (USD)", "usd"),
    ("pnl_usd", "P&L (USD)", "usd"), ("ai_spend_nanos", "AI spend", "nanos"),
)  # fmt: skip


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{value:.2%}"
    if kind == "num":
        return f"{value:.2f}"
    if kind == "usd":
        return f"{Decimal(value):,.2f}"
    if kind == "nanos":
        return format_usd(int(value))
    return str(value)


def _render(result: dict[str, Any]) -> None:
    w = result["window"]
    title = (
        f"Portfolio backtest {' + '.join(result['symbols'])} ({result['interval']}) {w['start'][:10]} .. "
        f"{w['end'][:10]}: {w['rebalances']} rebalances every {w['every']} bars"
        + (" (simulator)" if result["simulated"] else "")
    )
    table = FitTable(title)
    table.column("measure")
    for row in result["strategies"]:
        table.column(row["name"], justify="right", whole=True)
    for key, label, kind in _ROWS:
        table.row(label, *(_cell(row.get(key), kind) for row in result["strategies"]))
    console.print(table)
    routes, limits = result["routes"], result["limits"]
    console.print(
        f"routes: {routes['premium']} rebalances decided on the premium tier, {routes['panel']} at or "
        f"above ${result['premium_notional_usd']:,.0f} sent to the full panel ({routes['panel_approved']} "
        "approved; the others cut to the premium notional)",
        markup=False,
    )
    console.print(
        "limits (code shrinks the model's weights to them): "
        + ", ".join(f"{k} {v}" for k, v in limits.items()),
        markup=False,
    )
    for symbol, interval in result["resampled"].items():
        console.print(f"{symbol}: {interval} bars resampled to {result['interval']}", markup=False)
    failures = result["failures"]
    console.print(
        f"{failures['failed_decisions']} of {failures['decisions']} rebalances had a failed stage",
        markup=False,
    )
    cassette = result.get("cassette")
    if cassette:
        from lyra.trading.cassette import describe_counts

        console.print(
            f"cassette {cassette['path']} ({cassette['mode']}): "
            f"{describe_counts(cassette['counts'], cassette['mode'])}",
            markup=False,
            soft_wrap=True,
        )
    if "upstream_calls" in result:
        console.print(f"upstream calls: {result['upstream_calls']}", markup=False)


def portfolio_live(
    *, config: Path | None, sources: str, speed: float, days: float, clock: str, json_output: bool
) -> None:
    """`lyra live --portfolio`: play the aligned tape, rebalancing at portfolio.every; report at the end."""
    import orjson

    try:
        path = use_config(config).path
        status = asyncio.run(_live(path, sources, speed=speed, days=days, clock=clock))
    except LyraError as exc:
        raise fail(exc) from None
    from lyra.ops.portfolio_live import describe

    if json_output:
        typer.echo(orjson.dumps(status.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(describe(status))


async def _live(config: Path | None, sources: str, *, speed: float, days: float, clock: str) -> Any:
    from lyra.errors import ConfigError
    from lyra.ops.clock import Clock, ReplayClock, SimulatedClock
    from lyra.ops.live import install_signal_handlers
    from lyra.ops.portfolio_live import run_portfolio_live
    from lyra.ops.schedule import session_length_s
    from lyra.trading.portfolio import align

    if clock not in ("paced", "simulated"):
        raise ConfigError(f"--clock must be one of paced, simulated, got {clock!r}")
    if speed <= 0:
        raise ConfigError(f"--speed must be above 0, got {speed:g}")
    stop = asyncio.Event()
    install_signal_handlers(stop)
    from lyra.engine import Lyra

    async with Lyra.from_config(config) as lyra:
        names = ",".join(lyra.settings.portfolio.symbols) if sources == "config" else sources
        if not names:
            raise ConfigError(
                "lyra live --portfolio config: portfolio.symbols is empty; list files or samples"
            )
        aligned = align(load_sources(names))
        session_clock: Clock = SimulatedClock() if clock == "simulated" else ReplayClock(speed)
        status = await run_portfolio_live(
            lyra, aligned, clock=session_clock, stop=stop, session_s=session_length_s(lyra.settings) * days
        )
        if lyra.ledger is not None:
            lyra.ledger.flush(timeout=10)
    return status


__all__ = ["PortfolioArgs", "load_sources", "portfolio_backtest", "portfolio_live"]
