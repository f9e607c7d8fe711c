"""`lyra live` trades a paper account per symbol: next-open fills, per-bar stops, the halt, restarts.

Everything runs on a SimulatedClock against the simulator over loopback, with a real SQLite ledger;
where a test needs the models to want a trade, an interceptor rewrites their answers to BUY (and
the risk review to approve), so the account's rules are what is under test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import math
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pandas as pd
import pytest
from rich.console import Console

from lyra import Lyra
from lyra.consensus.decision import DECISION_RESPONSE_FORMAT
from lyra.ops.live import (
    ACCOUNT_TASK,
    LiveOrchestrator,
    LiveRunner,
    SimulatedClock,
    account_report,
    load_replay,
    run_replay_day,
)
from lyra.ops.live_view import render_status
from lyra.simulator import Simulator
from lyra.trading.account import AccountEvent, BarPrices, PaperAccount
from lyra.trading.paper import ROAS_DEFINITION, ROAS_UNIT
from lyra.trading.risk import AccountState
from lyra.types import Completion, CompletionRequest
from support import engine_env, fast_config_text

SYMBOL = "BTC/USDT"
SESSION = {
    'session_utc = "00:00-24:00"': 'session_utc = "00:00-02:00"',
    'symbols = ["BTC/USDT", "ETH/USDT"]': f'symbols = ["{SYMBOL}"]',
}
HANG_S = 120  # only against a hang: no assertion depends on how long anything takes
WARMUP = 60  # the replay's history before session bar 0 (lyra.live.WARMUP_BARS)

Call = Callable[[CompletionRequest], Awaitable[Completion]]


def forced(action: str = "BUY") -> Callable[[CompletionRequest, Call], Awaitable[Completion]]:
    """An interceptor: every decision answer says `action` at 0.9, every risk review approves."""

    async def intercept(request: CompletionRequest, call: Call) -> Completion:
        completion = await call(request)
        if request.response_format == DECISION_RESPONSE_FORMAT:
            text = {"action": action, "confidence": 0.9, "rationale": "forced by the test", "horizon": "1h",
                    "stop_loss": None, "take_profit": None}
        elif request.task == "risk_assessment":
            text = {"verdict": "approve", "max_notional_usd": None, "reason": "forced by the test"}
        else:
            return completion
        return dataclasses.replace(completion, text=orjson.dumps(text).decode())

    return intercept


def write_tape(path: Path, closes: list[float], *, lows: dict[int, float] | None = None,
               start: str = "2024-01-02 00:00", freq: str = "1h") -> Path:
    """A bars file: `WARMUP` quiet bars, then one bar per close (session bar i is closes[i]); `lows`
    pushes the low of some session bars down (an intrabar dip that the close does not show)."""
    history = [100 + 0.2 * math.sin(i / 3) for i in range(WARMUP)]
    prices = history + closes
    times = pd.date_range(pd.Timestamp(start, tz="UTC") - WARMUP * pd.Timedelta(freq), periods=len(prices),
                          freq=freq)
    rows = []
    for i, close in enumerate(prices):
        open_ = prices[i - 1] if i else close
        low = min(open_, close) * 0.999
        if lows and i - WARMUP in lows:
            low = lows[i - WARMUP]
        rows.append({"time": times[i].isoformat(), "open": open_, "high": max(open_, close) * 1.001,
                     "low": low, "close": close, "volume": 1000.0})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def session_bar(path: Path, i: int) -> pd.Timestamp:
    """The time of session bar i of a tape written by `write_tape`."""
    return pd.Timestamp(pd.read_csv(path)["time"].iloc[WARMUP + i])


@pytest.fixture
def ledger_env(sim: Simulator, tmp_path: Path) -> dict[str, str]:
    return engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}


@pytest.fixture
def live_config(tmp_path: Path) -> Callable[..., Path]:
    def make(**edits: str) -> Path:
        path = tmp_path / "live.toml"
        path.write_text(fast_config_text(**(SESSION | edits)))
        return path

    return make


async def run_session(lyra: Lyra, tape: str, session_s: float) -> tuple[LiveRunner, object]:
    runner = LiveRunner(lyra, load_replay(tape, [SYMBOL]), SimulatedClock(), session_s=session_s)
    status = await asyncio.wait_for(runner.run(), HANG_S)
    return runner, status


def shown(runner: LiveRunner) -> str:
    console = Console(record=True, width=220, file=io.StringIO())
    console.print(render_status(runner))
    return console.export_text()


async def test_a_replayed_session_trades_the_paper_account(
    sim: Simulator, live_config: Callable[..., Path], ledger_env: dict[str, str]
) -> None:
    # The simulator's own answers on the bundled sample; the session is two simulated hours.
    config = live_config(**{"trade_share = 0.2": "trade_share = 0.35"})
    async with Lyra.from_config(config, environ=ledger_env) as lyra:
        status = await asyncio.wait_for(run_replay_day(lyra, "EURUSD", clock=SimulatedClock()), HANG_S)
        account = status.accounts[SYMBOL]
        assert status.bars[SYMBOL] == 120  # one bar per simulated minute, each exactly once
        assert len(account.fills) > 0 and account.equity != account.starting_equity
        assert account.decisions == 120 and account.ai_spend_nanos > 0
        report = account_report(status)[SYMBOL]
        assert report["account"] == f"live:{SYMBOL}" and report["fills"] == len(account.fills)
        assert report["return_on_ai_spend_unit"] == ROAS_UNIT
        assert report["return_on_ai_spend_definition"] == ROAS_DEFINITION
        assert report["return_on_ai_spend"] == pytest.approx(
            report["pnl_usd"] / (account.ai_spend_nanos / 1e9), rel=1e-3, abs=1e-6)
        first, last = load_replay("EURUSD", [SYMBOL]).bars.frame.iloc[[WARMUP, WARMUP + 119]].to_dict("records")
        assert report["buy_and_hold_return"] == pytest.approx(last["close"] / first["open"] - 1)
        assert report["since"] < report["until"] and 0 <= report["day_drawdown"] < 1
        assert lyra.ledger is not None
        assert lyra.ledger.accounts.load(f"live:{SYMBOL}") == account.to_dict()  # saved as it stands
        runner = LiveRunner(lyra, load_replay("EURUSD", [SYMBOL]), SimulatedClock())
        runner.status = status
        text = shown(runner)
    assert "paper account per symbol" in text and "buy & hold" in text and "return on AI spend" in text
    assert ROAS_UNIT in text and "P&L" in text


async def test_the_stopped_line_reports_the_account(sim: Simulator, live_config: Callable[..., Path],
                                                    tmp_path: Path) -> None:
    config = live_config()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_KEY_", "OPENROUTER"))}
    env |= engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lyra.cli.live", "live", "--replay", "EURUSD", "--clock", "simulated",
        "--days", "0.25", "--no-panel", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), HANG_S)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == "live: started replay of EURUSD on the simulated clock"
    stopped = next(line for line in lines if line.startswith("live: stopped "))
    report = orjson.loads(stopped.removeprefix("live: stopped "))
    assert report["tasks"]["signal_generation"]["fired"] == 30  # a quarter of the two-hour session
    assert report["tasks"][ACCOUNT_TASK]["fired"] == 30
    account = report["accounts"][SYMBOL]
    for name in ("profitable_share", "day_drawdown", "pnl_usd", "return_on_ai_spend", "buy_and_hold_return",
                 "ai_spend_nanos", "fills"):
        assert name in account, name
    assert account["return_on_ai_spend_unit"] == ROAS_UNIT
    assert account["return_on_ai_spend_definition"] == ROAS_DEFINITION
    assert account["bars_this_run"] == 30 and account["decisions"] == 30


def test_the_simulated_clock_is_for_replays_only(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from lyra.cli.live import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["live", "--ccxt", "binance", "--clock", "simulated"])
    assert result.exit_code != 0 and "--clock simulated needs --replay" in result.output
    result = CliRunner().invoke(app, ["live", "--replay", "EURUSD", "--clock", "fast"])
    assert result.exit_code != 0 and "--clock must be one of paced, simulated" in result.output


async def test_a_stop_crossed_between_decisions_closes_on_that_bar(
    sim: Simulator, live_config: Callable[..., Path], ledger_env: dict[str, str], tmp_path: Path
) -> None:
    # Decisions every 5 bars; the long bought at bar 1's open dips through its 3 % stop inside bar 3
    # (the low only: every close is near 100), two bars before the next decision.
    closes = [100.0] * 10
    tape = write_tape(tmp_path / "dip.csv", closes, lows={3: 95.0})
    config = live_config(**{'every = "1m"': 'every = "5m"'})
    async with Lyra.from_config(config, environ=ledger_env) as lyra:
        lyra.set_interceptor(forced("BUY"))
        runner, _ = await run_session(lyra, str(tape), session_s=600)
    account = runner.status.accounts[SYMBOL]
    signal = next(s for s in runner.status.jobs if s.job.task == "signal_generation")
    assert signal.fired == 2  # at bars 0 and 5
    entry, stop, again = account.fills[:3]
    assert (entry.reason, entry.time, entry.units > 0) == ("order", session_bar(tape, 1), True)
    assert entry.price == pytest.approx(100 * (1 + 2 / 10_000))  # the open, moved by the slippage
    assert (stop.reason, stop.time) == ("emergency stop", session_bar(tape, 3))
    assert stop.units == pytest.approx(-entry.units)
    level = entry.price * (1 - lyra.settings.risk.emergency_stop_loss)
    assert stop.price == pytest.approx(level * (1 - 2 / 10_000))  # at the stop, not at the bar's low
    assert [e.kind for e in account.events] == ["emergency_stop"]
    assert (again.reason, again.time) == ("order", session_bar(tape, 6))  # bar 5's BUY, at the next open
    assert runner.status.bars[SYMBOL] == 10 and account.last_time == session_bar(tape, 9)


async def test_the_halt_blocks_entries_for_the_rest_of_the_day(
    sim: Simulator, live_config: Callable[..., Path], ledger_env: dict[str, str], tmp_path: Path
) -> None:
    # Hourly bars from 20:00: a long bought at bar 1 is stopped out inside bar 2, which takes the
    # day 0.15 % down, past a 0.1 % halt. Every later decision of that day wants to BUY and is held;
    # the first decision of the next day (bar 4, 00:00) buys again.
    tape = write_tape(tmp_path / "halt.csv", [100.0] * 8, lows={2: 95.0}, start="2024-01-02 20:00")
    config = live_config(**{"daily_drawdown_halt = 0.05": "daily_drawdown_halt = 0.001"})
    async with Lyra.from_config(config, environ=ledger_env) as lyra:
        lyra.set_interceptor(forced("BUY"))
        runner, _ = await run_session(lyra, str(tape), session_s=8 * 60)
        assert lyra.ledger is not None
        lyra.ledger.flush()
        decided = {r.payload["time"]: r.payload for r in lyra.ledger.audit.recent(100)}
    account = runner.status.accounts[SYMBOL]
    halts = [e for e in account.events if e.kind == "drawdown_halt"]
    assert [e.time for e in halts] == [session_bar(tape, 2)]
    assert [(f.reason, f.time) for f in account.fills] == [
        ("order", session_bar(tape, 1)), ("emergency stop", session_bar(tape, 2)),
        ("order", session_bar(tape, 5)),  # the next day's first decision, filled at the next open
    ]
    for bar in (2, 3):  # the rest of the halted day: BUY wanted, held by the rules
        payload = decided[session_bar(tape, bar).isoformat()]
        assert payload["action"] == "HOLD", payload["risk"]
        assert any("halted for the day" in r for r in payload["risk"]["reasons"])
    assert decided[session_bar(tape, 4).isoformat()]["action"] == "BUY"
    assert not account.halted and account.day == pd.Timestamp("2024-01-03", tz="UTC")


async def test_a_restart_resumes_the_account_and_skips_bars_it_has_seen(
    sim: Simulator, live_config: Callable[..., Path], ledger_env: dict[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closes = [100 + 3 * math.sin(i / 2) for i in range(20)]
    tape = write_tape(tmp_path / "wave.csv", closes)
    config = live_config()
    answers = iter(["BUY", "SELL"] * 20)

    def alternating() -> Callable[[CompletionRequest, Call], Awaitable[Completion]]:
        turn = {"action": "BUY"}

        async def intercept(request: CompletionRequest, call: Call) -> Completion:
            if request.task == "signal_generation" and request.model is None:
                turn["action"] = next(answers)  # one signal call per decision
            return await forced(turn["action"])(request, call)

        return intercept

    async with Lyra.from_config(config, environ=ledger_env) as lyra:
        lyra.set_interceptor(alternating())
        first, _ = await run_session(lyra, str(tape), session_s=600)
    before = first.status.accounts[SYMBOL].to_dict()
    assert first.status.bars[SYMBOL] == 10 and len(before["fills"]) >= 5
    assert before["last_time"] == session_bar(tape, 9).isoformat()

    async with Lyra.from_config(config, environ=ledger_env) as lyra:  # a new process, the same ledger
        lyra.set_interceptor(alternating())
        second = LiveRunner(lyra, load_replay(str(tape), [SYMBOL]), SimulatedClock(), session_s=1200)
        assert second.account(SYMBOL).to_dict() == before  # cash, units, fills, pending order, day
        seen: list[pd.Timestamp] = []
        bar = PaperAccount.bar

        def counting(account: PaperAccount, prices: BarPrices) -> list[AccountEvent]:
            seen.append(prices.time)
            return bar(account, prices)

        monkeypatch.setattr(PaperAccount, "bar", counting)
        await asyncio.wait_for(second.run(), HANG_S)
    after = second.status.accounts[SYMBOL]
    assert seen == [session_bar(tape, i) for i in range(10, 20)]  # each unseen bar once, in order
    assert second.status.bars[SYMBOL] == 10
    resumed = after.to_dict()
    assert resumed["fills"][: len(before["fills"])] == before["fills"]
    assert len(resumed["fills"]) > len(before["fills"])
    assert after.fills[len(before["fills"])].time == session_bar(tape, 10)  # the order queued before the restart
    assert resumed["decisions"] == before["decisions"] + 10  # the replayed first half decided nothing here


async def test_concurrent_decisions_each_see_their_own_account(lyra: Lyra) -> None:
    lyra.set_interceptor(forced("BUY"))
    orchestrator = LiveOrchestrator(lyra, final_panel="quick", audit=False)
    halted = AccountState(equity_at_day_start=100_000, equity=94_000, halted=True)
    fresh = AccountState(equity_at_day_start=100_000, equity=100_000)
    market = load_replay("EURUSD", ["A", "B"])
    windows = {s: market.window(s, 600) for s in "AB"}
    a, b = await asyncio.gather(*(
        orchestrator.decide_for(s, windows[s][0], at=windows[s][1], notional=5_000, account=account)
        for s, account in (("A", halted), ("B", fresh))))
    assert a.action == "HOLD" and any("halted" in r for r in a.risk.reasons)
    assert b.action == "BUY"
    assert orchestrator.account.equity == lyra.settings.risk.account_equity_usd  # outside a tick: fixed


def test_a_wrapped_replay_stops_the_accounts_tape(tmp_path: Path) -> None:
    tape = write_tape(tmp_path / "short.csv", [100.0] * 5)
    market = load_replay(str(tape), [SYMBOL])
    assert [p.time for p in market.tape(SYMBOL, 0, None)] == [session_bar(tape, 0)]
    bars = market.tape(SYMBOL, 4 * 60, session_bar(tape, 0))
    assert [p.time for p in bars] == [session_bar(tape, i) for i in range(1, 5)]
    assert market.tape(SYMBOL, 10 * 60, session_bar(tape, 4)) == []  # past the file's end: nothing
    _, at = market.window(SYMBOL, 10 * 60)  # while decisions wrap around to the start
    assert at == session_bar(tape, 0)



async def test_the_accounts_ai_spend_counts_each_billed_call_once(sim: Simulator, tmp_path: Path) -> None:
    """A live session reuses each market analysis in the decisions after it: the account's AI spend
    counts that call once, so it never says more than the ledger billed, and it misses nothing a
    decision's own calls cost (the calls no decision used are only analyses and the other jobs')."""
    config = tmp_path / "live.toml"
    config.write_text(fast_config_text(**SESSION))
    env = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    async with Lyra.from_config(config, environ=env) as lyra:
        runner = LiveRunner(lyra, load_replay("EURUSD", [SYMBOL]), SimulatedClock())
        status = await asyncio.wait_for(runner.run(), 120)
        assert lyra.ledger is not None
        lyra.ledger.flush()
        rows = [r for r in lyra.ledger.rows(since_ts=0) if r.kind == "attempt"]
    billed = sum(r.cost_nanos for r in rows)
    beside_decisions = sum(r.cost_nanos for r in rows if r.task not in ("signal_generation", "risk_assessment"))
    spent = status.accounts[SYMBOL].ai_spend_nanos
    assert 0 < spent <= billed
    assert spent >= billed - beside_decisions
