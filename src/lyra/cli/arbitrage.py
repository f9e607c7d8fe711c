"""`lyra arbitrage`, `lyra derive-venue` and `lyra compliance`: the desk's two-venue filter and its rules."""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer

from lyra.cli.common import ConfigOption, FitTable, data_console, fail, use_config
from lyra.errors import LyraError
from lyra.money import format_usd

console = data_console()
errors = data_console(stderr=True)

BpsOption = Annotated[str | None, typer.Option(help="Override [arbitrage] (basis points, exact decimal)")]


def register(app: typer.Typer) -> None:
    """Add `arbitrage`, `derive-venue` and `compliance` to the CLI."""
    app.command("arbitrage")(arbitrage_command)
    app.command("derive-venue")(derive_command)
    app.command("compliance")(compliance_command)


def _decimal(value: str | None, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not a number", param_hint=name) from None
    if not number.is_finite() or number < 0:
        raise typer.BadParameter(f"{value!r} must be a finite number, 0 or more", param_hint=name)
    return number


def _bars(source: str, symbol: str | None) -> Any:
    from lyra.trading.data import list_samples, load_bars, load_sample

    return load_sample(source) if source.upper() in list_samples() else load_bars(source, symbol=symbol)


def arbitrage_command(
    venue_a: Annotated[
        str, typer.Option("--venue-a", help="Venue A's bars: CSV/Parquet, sample or ccxt:EX:SYM:TF")
    ],
    venue_b: Annotated[str, typer.Option("--venue-b", help="Venue B's bars, the same instrument")],
    config: ConfigOption = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol name (default: from venue A's data)")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First bar of the window")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last bar of the window")] = None,
    quantity: Annotated[str | None, typer.Option(help="Units bought and sold per round")] = None,
    threshold_bps: BpsOption = None,
    fee_bps_a: BpsOption = None,
    fee_bps_b: BpsOption = None,
    slippage_bps: BpsOption = None,
    transfer_usd: Annotated[str | None, typer.Option(help="Fixed transfer cost per round, USD")] = None,
    record: Annotated[Path | None, typer.Option(help="Store every model answer in this cassette")] = None,
    replay: Annotated[Path | None, typer.Option(help="Answer from this cassette, no upstream call")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Net every two-venue spread of fees, slippage and transfer in code; the advanced tier judges those
    that clear the threshold; every candidate and verdict goes into the audit chain."""
    from lyra.trading.arbitrage import Costs
    from lyra.trading.arbitrage_run import ArbitrageOptions

    if record is not None and replay is not None:
        errors.print("[red]error:[/red] --record and --replay exclude each other")
        raise typer.Exit(2)
    overrides = {
        "quantity": _decimal(quantity, "--quantity"),
        "threshold_bps": _decimal(threshold_bps, "--threshold-bps"),
        "fee_bps_a": _decimal(fee_bps_a, "--fee-bps-a"),
        "fee_bps_b": _decimal(fee_bps_b, "--fee-bps-b"),
        "slippage_bps": _decimal(slippage_bps, "--slippage-bps"),
        "transfer_usd": _decimal(transfer_usd, "--transfer-usd"),
    }
    if overrides["quantity"] == 0:
        raise typer.BadParameter("must be more than 0", param_hint="--quantity")
    try:
        path = use_config(config).path
        result = asyncio.run(
            _arbitrage(
                path, venue_a, venue_b, symbol, start, end, overrides, record, replay, Costs, ArbitrageOptions
            )
        )
    except LyraError as exc:
        raise fail(exc) from None
    if json_output:
        console.print_json(data=result)
    else:
        _render(result)


async def _arbitrage(
    config: Path | None,
    venue_a: str,
    venue_b: str,
    symbol: str | None,
    start: str | None,
    end: str | None,
    overrides: dict[str, Decimal | None],
    record: Path | None,
    replay: Path | None,
    costs_type: Any,
    options_type: Any,
) -> dict[str, Any]:
    from lyra.engine import Lyra
    from lyra.simulator import SimulatorOptions
    from lyra.trading.arbitrage_run import run_arbitrage
    from lyra.trading.cassette import Cassette

    a, b = _bars(venue_a, symbol), _bars(venue_b, symbol)
    lyra = Lyra.from_config(config, simulator_options=SimulatorOptions(time_scale=0.0, generation_lag_s=0.0))
    options = options_type(costs=costs_type.of(lyra.settings.arbitrage, **overrides), start=start, end=end)
    cassette = Cassette(replay, "replay") if replay else Cassette(record, "record") if record else None
    await (lyra.start_offline() if replay is not None else lyra.start())
    try:
        result = await run_arbitrage(lyra, a, b, options, cassette=cassette)
        if replay is not None:
            result["upstream_calls"] = 0  # offline: the router cannot send anything
        elif lyra.simulator is not None:
            result["upstream_calls"] = lyra.simulator.stats.calls
        result["simulated"] = lyra.config.simulated
    finally:
        await lyra.aclose()
    if cassette is not None:
        cassette.save()
        result["cassette"] = {"path": str(cassette.path), "mode": cassette.mode, "counts": cassette.counts()}
    return result


def _render(result: dict[str, Any]) -> None:
    w, earned = result["window"], result["earned_usd"]
    table = FitTable(
        f"Arbitrage {result['symbol']} {w['start'][:16]} .. {w['end'][:16]} "
        f"({result['aligned_bars']} bars of venue A)"
    )
    table.column("measure")
    table.column("value", justify="right", whole=True)
    for label, value in (
        ("candidates (quotes differ)", result["candidates"]),
        ("passed the code filter", result["passed_filter"]),
        ("accepted by the model", result["accepted"]),
        ("rejected by the model", result["rejected"]),
        ("earned at the quotes: passed filter (USD)", earned["passed_filter_at_quote"]),
        ("earned at the quotes: accepted (USD)", earned["accepted_at_quote"]),
        ("earned one bar later: passed filter (USD)", earned["passed_filter_next_bar"]),
        ("earned one bar later: accepted (USD)", earned["accepted_next_bar"]),
        ("AI spend", format_usd(result["ai_spend_nanos"])),
    ):
        table.row(label, str(value))
    console.print(table)
    c = result["costs"]
    console.print(
        f"costs: quantity {c['quantity']}, fees {c['fee_bps_a']} + {c['fee_bps_b']} bps, slippage "
        f"{c['slippage_bps']} bps a side, transfer ${c['transfer_usd']} + {c['transfer_bps']} bps; "
        f"threshold {c['threshold_bps']} bps net",
        markup=False,
    )
    audit = result["audit"]
    console.print(
        f"audit chain: {audit['records']} records (seq {audit['first_seq']} .. {audit['last_seq']})",
        markup=False,
    )
    if "upstream_calls" in result:
        console.print(f"upstream calls: {result['upstream_calls']}", markup=False)


def derive_command(
    source: Annotated[str, typer.Option("--from", help="Bars to derive from: a file or a bundled sample")],
    out: Annotated[Path, typer.Option(help="CSV file to write")],
    lag_bars: Annotated[int, typer.Option(help="Quote each bar's prices this many bars late")] = 1,
    offset_bps: Annotated[
        str, typer.Option(help="Move every price by this many bps (may be negative)")
    ] = "0",
    drop_every: Annotated[int, typer.Option(help="Leave out every N-th bar (0: none)")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Write a second venue's bars from one series (late, offset, gappy): a demonstration, not a market."""
    from lyra.trading.arbitrage import derive_venue

    try:
        offset = Decimal(offset_bps)
    except InvalidOperation:
        raise typer.BadParameter(f"{offset_bps!r} is not a number", param_hint="--offset-bps") from None
    try:
        bars = _bars(source, None)
        frame = derive_venue(bars, lag_bars=lag_bars, offset_bps=offset, drop_every=drop_every)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, date_format="%Y-%m-%dT%H:%M:%SZ")
    except LyraError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail(LyraError(f"{out}: cannot write: {exc.strerror}")) from None
    result = {
        "source": source,
        "symbol": bars.symbol,
        "out": str(out),
        "bars": len(frame),
        "lag_bars": lag_bars,
        "offset_bps": str(offset),
        "drop_every": drop_every,
    }
    if json_output:
        console.print_json(data=result)
    else:
        console.print(
            f"wrote {len(frame)} bars to {out} ({bars.symbol}: quoted {lag_bars} bar(s) late, {offset} bps "
            f"apart, " + (f"1 bar in {drop_every} left out)" if drop_every else "no bar left out)"),
            markup=False,
        )


def compliance_command(
    config: ConfigOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Show the desk's compliance rules as configured, in the order they are checked, and the kill switch."""
    from lyra.config import load_config
    from lyra.trading.compliance import RULES, kill_switch_on

    try:
        loaded = load_config(use_config(config).path)
    except LyraError as exc:
        raise fail(exc) from None
    s = loaded.settings.compliance
    limits: dict[str, Any] = {
        "kill_switch": kill_switch_on(s) or "off",
        "restricted_symbols": s.restricted_symbols or "none",
        "trading_hours": s.trading_hours_utc or "any hour",
        "max_trades_per_day": s.max_trades_per_day,
        "min_holding_time": f"{s.min_holding_s:g} s",
        "max_order_notional": s.max_order_notional_usd,
        "max_position_notional": s.max_position_notional_usd,
    }
    route = f"task {s.review_task}" if s.review_task else f"tier {s.review_tier}"
    review = {"enabled": s.review, "route": route, "key_first": s.review_key}
    rules = [{"rule": r, "setting": limits[r]} for r in RULES]
    result = {
        "enabled": s.enabled,
        "rules": rules,
        "review": review,
        "kill_switch_on": kill_switch_on(s) is not None,
        "kill_switch_file": s.kill_switch_file,
    }
    if json_output:
        console.print_json(data=result)
        return
    table = FitTable("Compliance rules, in the order they are checked" + ("" if s.enabled else " (disabled)"))
    table.column("#", justify="right")
    table.column("rule")
    table.column("setting")
    for i, row in enumerate(rules, 1):
        table.row(str(i), row["rule"], "-" if row["setting"] is None else str(row["setting"]))
    console.print(table)
    console.print(
        f"review: {'on' if s.review else 'off'} ({route}"
        + (f", key {s.review_key} first" if s.review_key else "")
        + "); it can only block",
        markup=False,
    )
