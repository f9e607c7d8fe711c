"""The `lyra` command line: a thin shell that parses, calls the engine and renders."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import orjson
import typer
from rich.markup import escape

from lyra.catalog.models import load_catalog
from lyra.cli.common import ConfigOption, FitTable, data_console, fail, use_config
from lyra.config import load_config
from lyra.errors import ConfigError, LyraError
from lyra.log import CurrentStderrHandler, SecretMaskFilter
from lyra.money import format_usd, json_default, usd_fields_exact

if TYPE_CHECKING:
    from lyra.types import Completion

# rich_markup_mode=None: help texts are printed literally ([clients.NAME] stays visible).
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Lyra: AI model orchestration for trading on OpenRouter.")
sim_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                      help="The built-in OpenRouter simulator.")
app.add_typer(sim_app, name="sim")

# Data is printed literally; width: $COLUMNS, else the terminal's, else 160 for piped output.
console = data_console()
errors = data_console(stderr=True)
T = TypeVar("T")

def _setup_logging(verbose: bool) -> None:
    handler = CurrentStderrHandler()
    handler.addFilter(SecretMaskFilter())
    handler.setFormatter(logging.Formatter("lyra: %(message)s"))
    root = logging.getLogger("lyra")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def run(coro_factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; any LyraError becomes one line on stderr and exit status 2."""
    try:
        return asyncio.run(_wrap(coro_factory))
    except LyraError as exc:
        raise fail(exc) from None


async def _wrap(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


def _fail(exc: LyraError) -> typer.Exit:
    return fail(exc)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log routing detail")] = False,
) -> None:
    _setup_logging(verbose)


@app.command()
def demo(
    config: ConfigOption = None,
    calls: Annotated[int, typer.Option(help="Calls per task")] = 2,
    time_scale: Annotated[float, typer.Option(help="Simulator latency scale (1 = real)")] = 0.05,
) -> None:
    """A few real routed calls per trading task, printed as a table."""
    from lyra.cli.demo import run_demo

    try:
        path = use_config(config).path
        rows = run(lambda: run_demo(path, calls=calls, time_scale=time_scale))
    except LyraError as exc:
        raise _fail(exc) from None
    table = FitTable("Lyra demo: routed calls per task")
    for column, drop in (("task", 0), ("tier", 3), ("model", 0), ("key", 1), ("tokens", 0), ("cost", 0),
                         ("latency", 2), ("tries", 4)):
        table.column(column, justify="right" if column in ("cost", "latency", "tries") else "left",
                     whole=column not in ("task", "model", "key"), drop=drop)
    total = 0
    for c in rows:
        total += c.cost_nanos
        table.row(c.task or "-", c.tier or "-", c.model, c.key_name or "-",
                      f"{c.prompt_tokens}/{c.completion_tokens}",
                      format_usd(c.cost_nanos) + ("*" if c.cost_estimated else ""),
                      f"{c.latency_s * 1000:.0f} ms", "cached" if c.cached else str(len(c.attempts)))
    console.print(table)
    console.print(f"{len(rows)} calls, total cost {format_usd(total)}{demo_legend(rows)}", highlight=False)


def demo_legend(rows: list[Completion]) -> str:
    """What the marks in the demo table mean, each only when a row carries it."""
    notes = []
    if any(c.cached for c in rows):
        notes.append("cached = answered from the response cache: no model call, no cost")
    if any(c.cost_estimated for c in rows):
        notes.append("* = estimated from the catalogue")
    return f" ({'; '.join(notes)})" if notes else ""


@app.command()
def models(
    config: ConfigOption = None,
    check: Annotated[bool, typer.Option("--check", help="Compare configured ids with live /models")] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="Cache the live /models listing, so that any "
                                          "listed model can be named, priced and budgeted")] = False,
) -> None:
    """List the model catalogue, check the configured ids against the live listing, or cache it."""
    if refresh:
        _refresh_listing(config)
        return
    catalog = load_catalog()
    if not check:
        table = FitTable(f"Model catalogue ({len(catalog)} models; USD per 1M tokens)")
        words = ("id", "tier", "status", "successor")
        for column, drop in (("id", 0), ("tier", 0), ("in", 0), ("out", 0), ("status", 0), ("successor", 3),
                             ("context", 2), ("max out", 1)):
            table.column(column, justify="left" if column in words else "right",
                         whole=column not in ("id", "successor"), drop=drop)
        for m in sorted(catalog, key=lambda m: (m.tier, m.id)):
            status = "retired" if m.retired else m.status
            table.row(m.id, m.tier, str(m.prompt_per_m), str(m.completion_per_m), status,
                      f"-> {m.successor}" if m.retired and m.successor else "",
                      f"{m.context:,}", f"{m.max_output:,}")
        console.print(table)
        return
    from lyra.cli.demo import live_listing

    try:
        loaded = load_config(use_config(config))
        loaded.settings.check_models(catalog, loaded.source, allow_retired=True)  # naming them is the job
        if loaded.simulated:
            console.print("no OpenRouter key set: checking against the built-in simulator's catalogue, "
                          "not OpenRouter's live /models", highlight=False)
        listing = run(lambda: live_listing(loaded, catalog))
    except LyraError as exc:
        raise _fail(exc) from None
    result = catalog.check_against(loaded.settings.model_ids(), listing)
    console.print(f"{len(result.live)} models live; {len(loaded.settings.model_ids())} configured")
    for model_id, candidates in result.retired.items():
        console.print(f"[yellow]retired[/yellow] {escape(model_id)}: candidates "
                      f"{escape(', '.join(candidates) or 'none')}")
    for model_id, (old_in, old_out, new_in, new_out) in result.price_changes.items():
        console.print(
            f"[cyan]price changed[/cyan] {escape(model_id)}: {old_in}/{old_out} -> {new_in}/{new_out} per 1M"
        )
    for model_id, expires in result.expiring.items():
        console.print(f"[yellow]expires[/yellow] {escape(model_id)} on {expires}: OpenRouter lists an "
                      "expiration date; name a successor before then")
    if not result.retired:
        console.print("[green]every configured model id is live[/green]")
    else:
        raise typer.Exit(1)


def _refresh_listing(config: ConfigOption) -> None:
    from lyra.catalog.models import load_listing_cache, save_listing_cache
    from lyra.cli.demo import live_listing
    from lyra.paths import listing_cache_path
    from lyra.redact import mask_url

    catalog = load_catalog(listing=False)
    try:
        loaded = load_config(use_config(config), catalog=catalog)
        if loaded.simulated:
            raise _fail(ConfigError("--refresh caches OpenRouter's live /models listing and needs a key; "
                                    "none is set, so the built-in catalogue is what the simulator serves"))
        listing = run(lambda: live_listing(loaded, catalog))
    except LyraError as exc:
        raise _fail(exc) from None
    source = mask_url(loaded.settings.openrouter.base_url) + "/models"
    path = listing_cache_path()
    save_listing_cache(listing, path, source=source)
    priced = load_listing_cache(path)
    beyond = [m for m in priced if catalog.find(m.id) is None]
    console.print(f"cached {len(priced)} priced models of {len(listing)} listed by {escape(source)} in "
                  f"{escape(str(path))}; "
                  f"{len(beyond)} beyond the curated catalogue can now be named by id", highlight=False)


@app.command()
def consensus(
    prompt: Annotated[str, typer.Argument(help="What to decide, e.g. 'BTC 4h: RSI 71, MACD crossed up'")],
    config: ConfigOption = None,
    panel: Annotated[str, typer.Option(help="Panel from lyra.toml")] = "trade",
    notional: Annotated[float | None, typer.Option(help="Trade size in USD (drives escalation)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Ask a consensus panel for a trading decision and show every vote."""
    from lyra.cli.demo import run_consensus

    try:
        path = use_config(config).path
        result = run(lambda: run_consensus(path, prompt, panel=panel, notional=notional))
    except LyraError as exc:
        raise _fail(exc) from None
    if json_output:
        payload = usd_fields_exact(result.to_dict())  # money as exact JSON numbers, as /v1/consensus answers
        console.out(orjson.dumps(payload, option=orjson.OPT_INDENT_2, default=json_default).decode(),
                    highlight=False)
        return
    for stage in ([result.escalated_from] if result.escalated_from else []) + [result]:
        table = FitTable(f"panel {stage.panel} ({stage.rule}, threshold {stage.threshold:g})")
        for column, drop in (("model", 0), ("key", 2), ("weight", 3), ("vote", 0), ("confidence", 0),
                             ("cost", 0), ("latency", 4), ("note", 1)):
            numeric = column in ("weight", "confidence", "cost", "latency")
            table.column(column, justify="right" if numeric else "left",
                         whole=column not in ("model", "key", "note"), drop=drop)
        for v in stage.votes:
            table.row(v.model, v.key, f"{v.weight:g}", v.action or v.status, f"{v.confidence:.2f}",
                          format_usd(v.cost_nanos), f"{v.latency_s * 1000:.0f} ms",
                          (v.rationale or v.reason)[:60])
        console.print(table)
        console.print(f"-> {stage.action} (score {stage.score:.2f}, agreement {stage.agreement:.2f}"
                      f"{', early exit' if stage.early_exit else ''}): {escape(stage.reason)}")
    console.print(f"total cost {format_usd(result.cost_nanos)}, {result.latency_s * 1000:.0f} ms")


@sim_app.command("serve")
def sim_serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 8099,
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    time_scale: Annotated[float, typer.Option(help="Latency scale: 1 = the origin document's ranges")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed for latencies, faults and answers")] = 7,
    latency: Annotated[str, typer.Option(help="Latency profile: uniform or heavy_tail")] = "uniform",
) -> None:
    """Serve the OpenRouter simulator until interrupted."""
    from lyra.simulator import SimulatorOptions, run_simulator
    from lyra.simulator.options import LATENCY_PROFILES

    if latency not in LATENCY_PROFILES:
        raise fail(f"--latency: {latency!r}; use one of {', '.join(LATENCY_PROFILES)}")

    errors.print(f"OpenRouter simulator on http://{escape(host)}:{port}/api/v1 (Ctrl-C stops it)")
    options = SimulatorOptions(seed=seed, time_scale=time_scale, latency=latency)
    run_simulator(host=host, port=port, options=options)


def _register_commands() -> None:
    from lyra.cli import (
        arbitrage,
        backtest,
        budget,
        experiment,
        export,
        live,
        reconcile,
        report,
        serve,
        tokens,
        trading,
    )

    for commands in (trading, backtest, live, budget, report, reconcile, serve, tokens, export, experiment,
                     arbitrage):
        commands.register(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    app()
