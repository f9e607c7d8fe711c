"""`lyra reconcile`: ask OpenRouter what each unreconciled attempt was billed, and each key's day."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from lyra.cli.common import ConfigOption, data_console, database_errors, fail, first_line, use_config
from lyra.errors import LyraError
from lyra.money import format_usd, json_default

if TYPE_CHECKING:
    from lyra.reconcile import KeyDay, Reconciled

console = data_console()
errors = data_console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the `reconcile` command to a Typer app (the `lyra` command line)."""
    app.command("reconcile")(reconcile)


def reconcile(
    since: Annotated[str, typer.Option(
        "--since", help="How far back to look for unreconciled attempts: 30m, 12h, 7d or an ISO date",
    )] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text")] = False,
    config: ConfigOption = None,
) -> None:
    """Fill in what OpenRouter billed (GET /generation) for attempts the engine did not reconcile (a crash,
    a full queue), then set each key's ledger total for today (UTC) beside GET /key usage_daily.

    Nothing is corrected: booked and billed costs are both kept, and the drift is in `lyra report`."""
    from lyra import analytics

    try:
        window = analytics.since(since, time.time())
        result = asyncio.run(run_reconcile(use_config(config).path, window.start_ts))
    except LyraError as exc:
        raise fail(str(exc)) from None
    except database_errors() as exc:
        raise fail(f"cannot read the ledger: {first_line(exc)}") from None
    if as_json:
        console.out(orjson.dumps(result, option=orjson.OPT_INDENT_2, default=json_default).decode(),
                    highlight=False)
        return
    _print(result)


async def run_reconcile(config: Path | None, since_ts: float) -> dict[str, Any]:
    """Open the ledger (no simulator, no model call), reconcile its pending attempts, compare the keys."""
    from lyra.engine import Lyra
    from lyra.openrouter.transport import OpenRouterTransport
    from lyra.reconcile import Reconciler, compare_keys
    from lyra.reconcile.engine_hook import options_from

    lyra = Lyra.from_config(config)
    if lyra.config.simulated:
        raise LyraError("reconcile needs an OpenRouter key (OPENROUTER_API_KEY or LYRA_KEY_<NAME>): a "
                        "simulator run's generations are gone once it stops")
    settings = lyra.settings
    site = settings.openrouter
    transport = OpenRouterTransport(base_url=site.base_url, app_title=site.app_title, app_url=site.app_url)
    secrets = lyra.config.secrets

    def secret_of(name: str) -> str | None:
        found = secrets.get(name)
        return None if found is None else found.reveal()

    try:
        await lyra._open_stores(simulated=False)
        ledger = lyra.ledger
        if ledger is None:
            raise LyraError("reconcile needs the ledger, which is disabled ([ledger] enabled = false)")
        with contextlib.suppress(TimeoutError):
            ledger.flush(5.0)
        reconciler = Reconciler(ledger, transport, secret_of, options=options_from(settings))
        done = await reconciler.catch_up(since_ts=since_ts)
        keys = await compare_keys(ledger, transport, settings.keys, secret_of)
    finally:
        await transport.close()
        await lyra.aclose()
    return _result(done, keys)


def _result(done: list[Reconciled], keys: list[KeyDay]) -> dict[str, Any]:
    filled = [r for r in done if r.billed_nanos is not None]
    booked = sum(r.booked_nanos for r in filled)
    billed = sum(r.billed_nanos or 0 for r in filled)
    return {"object": "reconciliation", "pending": len(done), "reconciled": len(filled),
            "left": len(done) - len(filled), "booked_nanos": booked, "billed_nanos": billed,
            "drift_nanos": billed - booked, "attempts": [r.to_dict() for r in done],
            "keys": [k.to_dict() for k in keys],
            "keys_note": "usage_daily counts every use of the key; it matches the ledger only when "
                         "this ledger is the key's only user"}


def _print(result: dict[str, Any]) -> None:
    console.print(f"reconciled {result['reconciled']} of {result['pending']} pending attempts: billed "
                  f"{format_usd(result['billed_nanos'])} against {format_usd(result['booked_nanos'])} booked "
                  f"(drift {format_usd(result['drift_nanos'])})", markup=False)
    for attempt in result["attempts"]:
        if attempt["error"]:
            console.print(f"  left {attempt['generation_id']} ({attempt['key']}): {attempt['error']}",
                          markup=False)
    for key in result["keys"]:
        theirs = key["openrouter_nanos"]
        detail = (key["error"] if theirs is None else
                  f"OpenRouter {format_usd(theirs)}, difference {format_usd(key['difference_nanos'])}")
        console.print(f"key {key['key']} on {key['day']}: ledger {format_usd(key['ledger_nanos'])}, {detail}",
                      markup=False)
    errors.print(result["keys_note"], style="dim", markup=False)
