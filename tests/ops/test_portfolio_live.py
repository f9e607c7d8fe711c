"""`lyra live --portfolio`: the rebalancing portfolio on a replayed tape, at its configured cadence."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from lyra import Lyra
from lyra.ops.clock import SimulatedClock
from lyra.ops.portfolio_live import BAR_SESSION_S, run_portfolio_live
from lyra.simulator import Simulator
from lyra.trading.data import load_sample
from lyra.trading.portfolio import align
from support import engine_env

CADENCE = {"[state]": '[portfolio]\nevery = "3d"\nmax_turnover = 1.0\n\n[state]'}


@pytest.fixture
async def engine(sim: Simulator, config_path: Callable[..., Path], tmp_path: Path) -> AsyncIterator[Lyra]:
    env = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    async with Lyra.from_config(config_path(**CADENCE), environ=env) as lyra:
        yield lyra


async def test_it_rebalances_at_its_cadence_in_market_time_and_audits_each(engine: Lyra) -> None:
    aligned = align([load_sample("GOOGL"), load_sample("EURUSD")])
    status = await run_portfolio_live(engine, aligned, clock=SimulatedClock(), session_s=19 * BAR_SESSION_S)
    assert status.bars == 20
    times = [pd.Timestamp(r["time"]) for r in status.rebalances]
    assert len(times) >= 2
    assert all(later - earlier >= pd.Timedelta(days=3) for earlier, later in itertools.pairwise(times))
    report = status.to_dict()
    assert report["rebalances"] == len(times) == report["audited"]
    assert engine.ledger is not None
    record = engine.ledger.audit.get(str(report["last_audit_seq"]))
    assert record is not None and record.payload["kind"] == "portfolio_rebalance"
    assert "GOOGL" in str(record.payload["asked"])  # live prompts carry the real symbols
    assert status.book is not None
    assert all(f.time > times[0] for f in status.book.fills)  # orders fill at a later bar's open
    assert report["fills"] > 0


async def test_a_stop_ends_the_run_and_says_so(engine: Lyra) -> None:
    import asyncio

    stop = asyncio.Event()
    stop.set()
    aligned = align([load_sample("GOOGL"), load_sample("EURUSD")])
    status = await run_portfolio_live(engine, aligned, clock=SimulatedClock(), stop=stop)
    assert status.interrupted and status.rebalances == []


def test_live_portfolio_without_symbols_is_one_line(tmp_path: Path) -> None:
    from lyra.cli.live import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["live", "--portfolio", "config", "--clock", "simulated", "--json"])
    assert result.exit_code != 0 and "portfolio.symbols is empty" in result.output
    assert "Traceback" not in result.output


async def test_a_restart_resumes_the_book_from_the_ledger(engine: Lyra) -> None:
    from lyra.ops.portfolio_live import portfolio_name

    aligned = align([load_sample("GOOGL"), load_sample("EURUSD")])
    first = await run_portfolio_live(engine, aligned, clock=SimulatedClock(), session_s=9 * BAR_SESSION_S)
    assert first.bars == 10 and not first.resumed and first.book is not None
    assert engine.ledger is not None
    saved = engine.ledger.accounts.load(portfolio_name(["GOOGL", "EURUSD"]))
    assert saved is not None and saved["cash"] == str(first.book.cash)
    second = await run_portfolio_live(engine, aligned, clock=SimulatedClock(), session_s=4 * BAR_SESSION_S)
    assert second.resumed and second.bars == 5 and second.book is not None
    played = [pd.Timestamp(r["time"]) for r in second.rebalances]
    assert all(t > pd.Timestamp(saved["last_bar"]) for t in played)  # no bar is played twice
    assert second.book.fills[: len(first.book.fills)] == first.book.fills  # the old fills are kept, exactly
