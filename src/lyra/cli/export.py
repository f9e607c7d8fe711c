"""`lyra export finetune`: SFT and DPO training files from the decision audit trail, walk-forward."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:
    import pandas as pd

    from lyra.trading.data import Bars
    from lyra.trading.finetune import FinetuneExport

console = data_console()
export_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Export recorded decisions as files for other tools.")


def register(app: typer.Typer) -> None:
    """Add the `export` group to the CLI."""
    app.add_typer(export_app, name="export")


@dataclass(frozen=True, slots=True)
class Written:
    """One file the export wrote: its format, where, how many lines and a fingerprint of its bytes."""

    kind: str
    path: Path
    lines: int
    sha256_16: str


@export_app.command("finetune")
def finetune(
    config: ConfigOption = None,
    ledger: Annotated[str | None, typer.Option(
        help="Ledger to read: a SQLite file or a database URL (default: the configuration's)")] = None,
    data: Annotated[str | None, typer.Option(
        help="The bars the decisions were made on, to score them: CSV/Parquet file or bundled sample "
             "(default: the GOOGL sample)")] = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol the decisions were recorded under "
                                                    "(default: from the data)")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Use only outcomes known at this time (ISO 8601, UTC; default: now)")] = None,
    task: Annotated[str, typer.Option(help="The panel stage whose answers to export: signal_generation "
                                           "or final_decision")] = "signal_generation",
    fmt: Annotated[str, typer.Option("--format", help="sft, dpo or both")] = "both",
    horizon: Annotated[int, typer.Option(
        help="Bars after a decision over which its outcome is measured")] = 1,
    hold_band_bps: Annotated[float | None, typer.Option(
        "--hold-band-bps", help="A move within this many basis points made HOLD the right call "
                                "(default: a round trip's fees and slippage, 6)")] = None,
    out: Annotated[Path, typer.Option(help="SFT file (with --format both, DPO goes beside it as "
                                           "NAME.dpo.jsonl; with --format dpo, here)")
                   ] = Path("finetune.jsonl"),
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable summary")] = False,
) -> None:
    """Write OpenAI chat-format JSONL from recorded decisions whose outcomes were known at --as-of.

    SFT lines: the prompt as sent and an answer that took the action the outcome showed was right.
    DPO pairs: the same prompt, a right answer preferred over a wrong one from the same decision.
    """
    from lyra.trading.finetune import FinetuneOptions, build_export

    if fmt not in ("sft", "dpo", "both"):
        raise fail(f"--format {fmt!r}: choose sft, dpo or both")
    try:
        choice = use_config(config)
        when = _as_of(as_of)
        band = None if hold_band_bps is None else hold_band_bps / 10_000
        options = (FinetuneOptions(as_of=when, task=task, horizon=horizon) if band is None else
                   FinetuneOptions(as_of=when, task=task, horizon=horizon, hold_band=band))
        bars = _bars(data, symbol)
        result = _export(choice.path, ledger, lambda payloads: build_export(payloads, bars, options))
    except LyraError as exc:
        raise fail(exc) from None
    written = _write(result, fmt, out)
    summary = {**result.summary(), "as_of": when.isoformat(), "task": task, "horizon": horizon,
               "hold_band_bps": round(options.hold_band * 10_000, 6), "symbol": bars.symbol,
               "files": [{"format": w.kind, "path": str(w.path), "lines": w.lines, "sha256_16": w.sha256_16}
                         for w in written]}
    if json_output:
        console.print_json(data=summary)
    else:
        _render(summary)


def _as_of(text: str | None) -> pd.Timestamp:
    import pandas as pd

    from lyra.trading.data import DataError, as_utc

    if text is None:
        return pd.Timestamp.now(tz="UTC")
    try:
        return as_utc(text)
    except DataError:
        raise DataError(f"--as-of {text!r} is not a time; use ISO 8601, e.g. 2024-06-28 or "
                        "2024-06-28T16:00:00Z") from None


def _bars(data: str | None, symbol: str | None) -> Bars:
    from lyra.trading.data import Bars, list_samples, load_bars, load_sample

    series = load_sample() if data is None else (load_sample(data) if data in list_samples()
                                                 else load_bars(data, symbol=symbol))
    return Bars(frame=series.frame, symbol=symbol or series.symbol, interval=series.interval)


def _export(config: Path | None, given: str | None,
            build: Callable[[Iterator[dict[str, Any]]], FinetuneExport]) -> FinetuneExport:
    """`build` over every decision's payload in chain order, streamed a batch at a time.

    A ledger that does not exist is an error, never created.
    """
    from lyra.config import load_config
    from lyra.ledger import Ledger, default_url
    from lyra.ledger.schema import parse_url, sqlite_path

    if given is not None:
        url = given if "://" in given else f"sqlite:///{Path(given).expanduser().resolve()}"
        simulated = False
    else:
        loaded = load_config(config)
        url = loaded.ledger_url or default_url(simulated=loaded.simulated)
        simulated = loaded.simulated
    try:
        file = sqlite_path(parse_url(url))
    except LyraError as exc:
        raise LyraError(str(exc).replace("ledger.url:", "--ledger:" if given else "ledger.url:")) from None
    if file is not None and not Path(file).exists():
        raise LyraError(f"ledger {file} does not exist; run `lyra run` (or pass --ledger) first")
    store = Ledger(url, simulated=simulated)
    try:
        return build(r.payload for r in store.audit.records())
    except database_errors() as exc:
        where = store.url_for_display
        raise LyraError(f"cannot read the audit trail in {where}: {first_line(exc)}") from None
    finally:
        store.close()


def _write(result: FinetuneExport, fmt: str, out: Path) -> list[Written]:
    from lyra.trading.finetune import digest, jsonl

    files: list[tuple[str, Path, list[bytes]]] = []
    if fmt in ("sft", "both"):
        files.append(("sft", out, result.sft))
    if fmt in ("dpo", "both"):
        files.append(("dpo", out if fmt == "dpo" else _beside(out, "dpo"), result.dpo))
    written = []
    for kind, path, lines in files:
        body = jsonl(lines)
        try:
            path.write_bytes(body)
        except OSError as exc:
            raise fail(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(Written(kind, path, len(lines), digest(body)))
    return written


def _beside(path: Path, tag: str) -> Path:
    """finetune.jsonl -> finetune.dpo.jsonl (the suffix kept, the tag before it)."""
    return path.with_name(f"{path.stem}.{tag}{path.suffix or '.jsonl'}")


def _render(summary: dict[str, Any]) -> None:
    table = FitTable(f"Fine-tuning export: {summary['task']} of {summary['symbol']}, outcomes known at "
                     f"{summary['as_of']} ({summary['horizon']}-bar horizon, HOLD band "
                     f"{summary['hold_band_bps']:g} bps)")
    table.column("count", whole=True)
    table.column("n", justify="right", whole=True)
    for label, key in (("decisions seen", "decisions_seen"), ("another symbol", "other_symbol"),
                       ("not on the bars", "not_on_bars"),
                       ("skipped: outcome not yet known at as-of", "outcome_not_known"),
                       ("with known outcome", "outcome_known"),
                       ("  of which the stage has no recorded prompt", "without_prompts"),
                       ("answers read", "answers"), ("answers unusable", "answers_unusable"),
                       ("SFT lines", "sft_lines"), ("DPO pairs", "dpo_pairs"),
                       ("duplicate lines dropped", "duplicates_dropped")):
        table.row(label, str(summary[key]))
    console.print(table)
    actions = ", ".join(f"{k} {v}" for k, v in summary["sft_by_action"].items()) or "none"
    console.print(f"SFT answers by action: {actions}", markup=False)
    for f in summary["files"]:
        # soft_wrap: a long path stays on one line, to be copied whole
        console.print(f"wrote {f['path']} ({f['format']}, {f['lines']} lines, sha256 {f['sha256_16']})",
                      markup=False, soft_wrap=True)
