"""`lyra reconcile` catching up a ledger's unreconciled rows, `lyra report` showing the drift, and the
reconciliation columns on SQLite and Postgres (and on a ledger written before they existed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lyra.cli.commands import app
from lyra.engine import Lyra
from lyra.ledger import Ledger
from lyra.money import usd_to_nanos
from lyra.openrouter.transport import OpenRouterTransport
from lyra.reconcile import ReconcileOptions, Reconciler
from lyra.simulator import Simulator, SimulatorOptions
from support import TOKENS, engine_env, fast_config_text, reconcile_config_text

runner = CliRunner()
ASK = [{"role": "user", "content": "One line on the tape, please."}]
OFF = "enabled = false\nfirst_delay_s = 0\nmax_delay_s = 0\nlookups = 5"


@pytest.fixture
async def lagging_sim() -> AsyncIterator[Simulator]:
    options = SimulatorOptions(time_scale=0.0, generation_lag_s=1.0, generation_lag_lookups=2)
    async with Simulator(options=options) as simulator:
        yield simulator


async def _unreconciled_calls(sim: Simulator, config: Path, count: int) -> list[str]:
    """Calls made with the background reconciler off, as a crash would leave them."""
    async with Lyra.from_config(config, environ=engine_env(sim)) as lyra:
        assert lyra.running.reconciler is None
        done = [await lyra.complete(messages=ASK, model=m, cache="bypass")
                for m in ("openai/gpt-4o-mini", "deepseek/deepseek-chat", "google/gemini-2.5-flash-lite")[:count]]
    return [str(d.generation_id) for d in done]


def _cli(sim: Simulator, *args: str) -> dict[str, object]:
    result = runner.invoke(app, list(args), env=engine_env(sim))
    assert result.exit_code == 0, result.output
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


async def test_lyra_reconcile_fills_the_rows_a_crash_left_and_report_shows_the_drift(
        lagging_sim: Simulator, tmp_path: Path) -> None:
    config = tmp_path / "lyra.toml"
    config.write_text(reconcile_config_text(OFF))
    generations = await _unreconciled_calls(lagging_sim, config, 3)
    billed = {g: usd_to_nanos(lagging_sim._state.generations[g].cost) for g in generations}

    before = await asyncio.to_thread(_cli, lagging_sim, "report", "--json", "--config", str(config))
    drift = before["cost_drift"]
    assert isinstance(drift, dict)
    assert (drift["attempts"], drift["reconciled"], drift["billed_nanos"]) == (3, 0, 0)

    result = await asyncio.to_thread(_cli, lagging_sim, "reconcile", "--json", "--config", str(config))
    assert (result["pending"], result["reconciled"], result["left"]) == (3, 3, 0)
    assert result["billed_nanos"] == sum(billed.values())
    attempts = result["attempts"]
    assert isinstance(attempts, list)
    assert {a["generation_id"]: a["billed_nanos"] for a in attempts} == billed
    keys = result["keys"]
    assert isinstance(keys, list) and keys
    used = [k for k in keys if k["ledger_nanos"]]
    assert used and all(k["difference_nanos"] == 0 and k["error"] is None for k in used)

    after = await asyncio.to_thread(_cli, lagging_sim, "report", "--json", "--config", str(config))
    drift = after["cost_drift"]
    assert isinstance(drift, dict)
    assert (drift["attempts"], drift["reconciled"], drift["reconciled_share"]) == (3, 3, 1.0)
    assert drift["billed_nanos"] == sum(billed.values())
    assert drift["drift_nanos"] == drift["billed_nanos"] - drift["reconciled_booked_nanos"]
    assert {m["group"] for m in drift["models"]} == {"openai/gpt-4o-mini", "deepseek/deepseek-chat",
                                                     "google/gemini-2.5-flash-lite"}
    assert sum(k["billed_nanos"] for k in drift["keys"]) == drift["billed_nanos"]

    again = await asyncio.to_thread(_cli, lagging_sim, "reconcile", "--json", "--config", str(config))
    assert again["pending"] == 0  # nothing is asked twice
    text = await asyncio.to_thread(runner.invoke, app, ["reconcile", "--config", str(config)],
                                   env=engine_env(lagging_sim))
    assert text.exit_code == 0, text.output
    assert "reconciled 0 of 0 pending attempts" in text.stdout and "difference $0" in text.stdout
    assert not any(token in text.output for token in TOKENS.values())


async def test_lyra_reconcile_refuses_a_simulator_run_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "lyra.toml"
    config.write_text(fast_config_text())
    result = await asyncio.to_thread(runner.invoke, app, ["reconcile", "--config", str(config)])
    assert result.exit_code != 0
    assert "reconcile needs an OpenRouter key" in result.output and "Traceback" not in result.output


async def test_reconciler_on_each_backend(lagging_sim: Simulator, tmp_path: Path, ledger_url: str) -> None:
    config = tmp_path / "lyra.toml"
    config.write_text(reconcile_config_text(OFF))
    generations = await _unreconciled_calls(lagging_sim, config, 2)
    source = Ledger(f"sqlite:///{tmp_path / 'data' / 'lyra' / 'ledger.db'}")
    ledger = Ledger(ledger_url)
    try:
        rows = [r for r in source.rows() if r.generation_id in generations]
        assert len([r for r in rows if r.kind == "attempt"]) == 2
        for row in rows:
            ledger.write(row)
        ledger.flush()
        transport = OpenRouterTransport(base_url=lagging_sim.base_url)

        async def no_wait(_seconds: float) -> None:
            return None

        reconciler = Reconciler(ledger, transport, TOKENS.get, options=ReconcileOptions(lookups=5), sleep=no_wait)
        try:
            done = await reconciler.catch_up()
        finally:
            await transport.close()
        [total] = ledger.drift(since_ts=0)
        assert ledger.unreconciled() == []
    finally:
        source.close()
        ledger.close()
    billed = sum(usd_to_nanos(lagging_sim._state.generations[g].cost) for g in generations)
    assert sorted(d.generation_id for d in done) == sorted(generations)
    assert (total.attempts, total.reconciled, total.billed_nanos) == (2, 2, billed)


def test_an_older_ledger_gains_the_reconciliation_columns(ledger_url: str) -> None:
    from sqlalchemy import text

    from lyra.ledger.schema import create_ledger_engine, parse_url

    engine = create_ledger_engine(parse_url(ledger_url))
    key = "BIGSERIAL PRIMARY KEY" if engine.dialect.name == "postgresql" else "INTEGER PRIMARY KEY"
    with engine.begin() as conn:  # the usage table as Lyra wrote it before reconciliation existed
        conn.execute(text(
            f"CREATE TABLE lyra_usage (id {key}, ts DOUBLE PRECISION NOT NULL, request_id VARCHAR NOT NULL,"
            " kind VARCHAR NOT NULL, task VARCHAR, tier VARCHAR, requested_model VARCHAR, served_model VARCHAR,"
            " provider VARCHAR, key_name VARCHAR, client VARCHAR, prompt_tokens BIGINT NOT NULL,"
            " completion_tokens BIGINT NOT NULL, cost_nanos BIGINT NOT NULL, cost_estimated BOOLEAN NOT NULL,"
            " latency_ms DOUBLE PRECISION NOT NULL, status VARCHAR NOT NULL, error_kind VARCHAR,"
            " http_status INTEGER, attempt INTEGER NOT NULL, cached BOOLEAN NOT NULL, generation_id VARCHAR,"
            " simulated BOOLEAN NOT NULL DEFAULT FALSE)"))
        conn.execute(text(
            "INSERT INTO lyra_usage (ts, request_id, kind, key_name, prompt_tokens, completion_tokens,"
            " cost_nanos, cost_estimated, latency_ms, status, attempt, cached, generation_id)"
            " VALUES (1.0, 'r1', 'attempt', 'premium', 1, 1, 700, FALSE, 1.0, 'ok', 1, FALSE, 'gen-old')"))
    engine.dispose()
    ledger = Ledger(ledger_url)
    try:
        assert [p.generation_id for p in ledger.unreconciled()] == ["gen-old"]
        assert ledger.record_billed("gen-old", 650, 2.0) == 1
        assert ledger.record_billed("gen-old", 999, 3.0) == 0  # reconciled once, kept
        [total] = ledger.drift(since_ts=0)
        [by_key] = ledger.drift(since_ts=0, by="key")
    finally:
        ledger.close()
    assert (total.booked_nanos, total.billed_nanos, total.drift_nanos) == (700, 650, -50)
    assert (by_key.group, by_key.drift_share) == ("premium", -50 / 700)
