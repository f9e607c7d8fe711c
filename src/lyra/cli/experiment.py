"""`lyra experiment` (arms, outcomes and verdict from the audit trail) and `lyra backtest --experiment`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

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

console = data_console()
errors = data_console(stderr=True)
MAX_RECORDS = 1_000_000  # the audit records read back; an experiment's episodes are among the latest

STATES = {"collecting": "collecting (too few outcomes yet)", "leader": "leader (not yet significant)",
          "winner": "winner (significant)", "no_difference": "no difference"}


def register(app: typer.Typer) -> None:
    """Add `experiment` to the CLI."""
    app.command("experiment")(experiment_command)


def experiment_command(
    name: Annotated[str | None, typer.Argument(help="The [experiments.NAME] to show (default: all)")] = None,
    config: ConfigOption = None,
    ledger: Annotated[str | None, typer.Option(
        help="Ledger URL to read (default: the configuration's), e.g. sqlite:///ledger.db")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Show each experiment's arms, episodes, outcomes and the sequential test's current verdict."""
    from lyra.config import load_config
    from lyra.config.schema import check_ledger_url

    try:
        loaded = load_config(use_config(config))
        chosen = _chosen(loaded.settings.experiments, name)
        if ledger is not None:
            try:
                check_ledger_url(ledger)
            except ValueError as exc:
                raise LyraError(f"--ledger: {exc}") from None
        url = ledger or loaded.ledger_url
        reports = _reports(chosen, url, simulated=loaded.simulated)
    except LyraError as exc:
        raise fail(exc) from None
    if json_output:
        console.print_json(data={"experiments": reports}, sort_keys=True)
        return
    for report in reports:
        render_report(report)


def _chosen(configured: dict[str, Any], name: str | None) -> dict[str, Any]:
    if name is None:
        if not configured:
            raise LyraError("no [experiments.NAME] in the configuration; see README 'Prompt experiments'")
        return dict(configured)
    if name not in configured:
        known = ", ".join(sorted(configured)) or "none configured"
        raise LyraError(f"experiments.{name}: no such experiment in the configuration ({known})")
    return {name: configured[name]}


def _reports(chosen: dict[str, Any], url: str | None, *, simulated: bool) -> list[dict[str, Any]]:
    from lyra.ledger import Ledger, default_url
    from lyra.trading.experiments import from_audit

    url = url or default_url(simulated=simulated)
    payloads: list[tuple[int, dict[str, Any]]] = []
    if not (url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists()):
        store = Ledger(url, simulated=simulated)
        try:
            store.start()
            found = sorted(store.audit.recent(MAX_RECORDS), key=lambda r: r.seq)
            payloads = [(r.seq, r.payload) for r in found]
        except database_errors() as exc:
            where = store.url_for_display
            raise LyraError(f"cannot read the audit trail in {where}: {first_line(exc)}") from None
        finally:
            store.close()
    return [from_audit(name, settings, payloads).report() for name, settings in chosen.items()]


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_report(report: dict[str, Any]) -> None:
    """One experiment: a row per arm, then the verdict in one line."""
    verdict = report["verdict"]
    title = (f"experiment {report['experiment']}: {report['task']}, metric {report['metric']}, "
             f"mode {report['mode']}, delta {report['delta']:g}, "
             f"min {report['min_samples']} outcomes per arm")
    table = FitTable(title)
    for column, drop in (("arm", 0), ("variant", 2), ("models", 3), ("episodes", 0), ("pending", 4),
                         ("outcomes", 0), ("mean", 0), ("lower", 1), ("upper", 1), ("status", 0)):
        table.column(column, justify="left" if column in ("arm", "variant", "models", "status") else "right",
                     whole=column not in ("models",), drop=drop)
    for arm in report["arms"]:
        status = ("winner" if verdict["state"] == "winner" and verdict["leader"] == arm["arm"]
                  else "eliminated" if arm["eliminated"] else "in the test")
        table.row(arm["arm"], arm["variant"], ", ".join(arm["models"]) or "-", str(arm["episodes"]),
                  str(arm["pending"]), str(arm["outcomes"]), _num(arm["mean"]), _num(arm["lower"]),
                  _num(arm["upper"]), status)
    console.print(table)
    console.print(f"verdict: {STATES[verdict['state']]}: {verdict['reason']}", markup=False, soft_wrap=True)


async def run_offline(config: Path | None, data: str | None, symbol: str | None, name: str, options: Any, *,
                      record: Path | None, replay: Path | None, time_scale: float, yes: bool
                      ) -> dict[str, Any] | None:
    """`lyra backtest --experiment NAME`: the experiment walked over the bars (simulator, keys, cassette)."""
    from lyra.engine import Lyra
    from lyra.simulator import SimulatorOptions
    from lyra.trading.backtest import decision_times
    from lyra.trading.cassette import Cassette
    from lyra.trading.data import list_samples, load_bars, load_sample
    from lyra.trading.evaluate import estimate_cost_nanos, window_bars
    from lyra.trading.experiment_run import experiment_named, run_experiment

    bars = load_sample(data or "GOOGL") if data is None or data.upper() in list_samples() else load_bars(
        data, symbol=symbol)
    lyra = Lyra.from_config(config, simulator_options=SimulatorOptions(time_scale=time_scale,
                                                                        generation_lag_s=0.0))
    experiment_named(lyra, name)  # an unknown name fails before anything starts
    cassette = Cassette(replay, "replay") if replay else Cassette(record, "record") if record else None
    decisions = len(decision_times(window_bars(bars, options.window), options.window))
    if not lyra.config.simulated and replay is None:
        estimate = estimate_cost_nanos(lyra, decisions)
        errors.print(f"{decisions} decisions on real OpenRouter keys: at most about {format_usd(estimate)}")
        if not yes and not typer.confirm("spend it?", err=True):
            return None
    await (lyra.start_offline() if replay is not None else lyra.start())
    try:
        result = await run_experiment(lyra, bars, name, options, cassette=cassette)
        if replay is not None:
            result["upstream_calls"] = 0  # offline: the router cannot send anything
        elif lyra.simulator is not None:
            result["upstream_calls"] = lyra.simulator.stats.calls
    finally:
        await lyra.aclose()
    if cassette is not None:
        cassette.save()
        result["cassette"] = {"path": str(cassette.path), "mode": cassette.mode, "counts": cassette.counts()}
    return result


def render_offline(result: dict[str, Any]) -> None:
    """The offline run: its window and spend, the experiment's table and verdict, the cassette."""
    w = result["window"]
    console.print(f"{result['symbol']} {w['start'][:10]} .. {w['end'][:10]}: {w['decisions']} episodes, "
                  f"horizon {w['horizon']} bars{' (simulator)' if result['simulated'] else ''}; AI spend "
                  f"{format_usd(result['ai_spend_nanos'])}", markup=False, soft_wrap=True)
    render_report(result)
    cassette = result.get("cassette")
    if cassette:
        from lyra.trading.cassette import describe_counts

        console.print(f"cassette {cassette['path']} ({cassette['mode']}): "
                      f"{describe_counts(cassette['counts'], cassette['mode'])}",
                      markup=False, soft_wrap=True)
    if "upstream_calls" in result:
        console.print(f"upstream calls: {result['upstream_calls']}", markup=False)


__all__ = ["register", "render_offline", "render_report", "run_offline"]
