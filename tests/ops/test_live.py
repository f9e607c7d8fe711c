"""`lyra live --replay`: the schedule on a simulated clock, outages, overlaps, SIGTERM, spend vs plan.

In-process runs use a SimulatedClock, whose time moves only when every tick in flight has finished
or sleeps on it: the counts below are exact on any machine, however slow or busy.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from lyra import Lyra
from lyra.ledger import USAGE_TABLE, Ledger
from lyra.ops.live import (
    JobState,
    LiveRunner,
    ReplayClock,
    SimulatedClock,
    load_replay,
    run_replay_day,
    summary,
)
from lyra.ops.live_view import render_status
from lyra.ops.plan import build_plan
from lyra.ops.schedule import Job
from lyra.simulator import Fault, Simulator
from support import engine_env

SESSION = {
    'session_utc = "00:00-24:00"': 'session_utc = "00:00-02:00"',  # a two-hour trading day
    'symbols = ["BTC/USDT", "ETH/USDT"]': 'symbols = ["BTC/USDT"]',
    # The simulator's answers propose a trade on about a third of signal ticks.
    "trade_share = 0.2": "trade_share = 0.35",
    "breaker_cooldown_s = 60": "breaker_cooldown_s = 0.2",
}
HANG_S = 120  # only against a hang: no assertion depends on how long anything takes


async def test_a_replayed_day_runs_the_schedule_through_an_outage(
    sim: Simulator, config_path: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # An upstream outage at the start: every model answers 5xx to the first 30 attempts.
    sim.add_fault(Fault(kind="server_error", count=30))
    # The runner's circuits cool down in session time (60 s here), so that which ticks meet an open
    # circuit does not depend on how many ticks the machine runs per real second.
    session = {k: v for k, v in SESSION.items() if not k.startswith("breaker_cooldown_s")}
    async with Lyra.from_config(config_path(**session), environ=engine_env(sim)) as lyra:
        assert lyra.ledger is not None
        started = time.time()  # only to select this run's ledger rows
        clock = SimulatedClock()
        status = await asyncio.wait_for(run_replay_day(lyra, "EURUSD", clock=clock), HANG_S)
        lyra.ledger.flush()
        ended = time.time()
        counts = summary(status)
        # Every cadence tick of the two hours fired: simulated time waits for each tick's work,
        # so none overlaps the next.
        expected = {
            "market_analysis": 24,
            "signal_generation": 120,
            "news_sentiment": 12,
            "health_monitoring": 8,
        }
        for task, ticks in expected.items():
            assert (counts[task]["fired"], counts[task]["skipped"]) == (ticks, 0), (task, counts)
        requests = Counter(r.task for r in lyra.ledger.rows(since_ts=started, kind="request"))
        assert requests["market_analysis"] == counts["market_analysis"]["fired"]
        assert requests["news_sentiment"] == counts["news_sentiment"]["fired"]
        assert requests["risk_assessment"] >= 1  # a proposed trade ran risk assessment first
        assert requests["signal_generation"] >= counts["signal_generation"]["fired"]
        # The outage marked ticks, and the schedule went on past it.
        assert sum(line["errors"] for line in counts.values()) >= 1
        assert all(line["errors"] < line["fired"] for line in counts.values())
        assert status.decisions["BTC/USDT"].time > "2017-01-"
        assert lyra.budget is not None
        assert all(cap.reserved == 0 for cap in await lyra.budget.snapshot())  # nothing left reserved
        booked = lyra.ledger.spend_between(started, ended + 1).total_nanos
        # Panel members cancelled by an early exit are booked at their worst case until reconciled
        # (which of them were still running depends on timing); the plan predicts billed calls.
        provisional = sum(r.cost_nanos for r in lyra.ledger.rows(since_ts=started, kind="attempt")
                          if r.error_kind == "cancelled")
        spent = booked - provisional
        planned = build_plan(lyra.settings, lyra.catalog).total_nanos
        console = Console(record=True, width=150, file=io.StringIO())
        console.print(render_status(_runner_for_render(lyra, status)))
        shown = console.export_text()
        assert "signal_generation[BTC/USDT]" in shown and "last decision per symbol" in shown
    with capsys.disabled():
        print(
            f"\nsimulated day: spent ${spent / 1e9:.6f} (ledger), planned ${planned / 1e9:.6f} "
            f"(lyra plan), ratio {spent / planned:.3f}; booked at worst case until reconciled "
            f"${provisional / 1e9:.6f}; ticks {counts}"
        )
    assert abs(spent - planned) <= 0.25 * planned


def _runner_for_render(lyra: Lyra, status: object) -> LiveRunner:
    runner = LiveRunner(lyra, load_replay("EURUSD", ["BTC/USDT"]), SimulatedClock())
    runner.status = status  # type: ignore[assignment]
    return runner


@pytest.mark.parametrize(
    ("busy_s", "starts"),
    [
        (60, [0, 60, 120, 180, 240, 300, 360, 420, 480, 540]),  # done just as the next one is due
        (61, [0, 120, 240, 360, 480]),
        (150, [0, 180, 360, 540]),
        (10_000, [0]),  # still in flight at every later tick
    ],
)
async def test_overlapping_ticks_are_skipped_and_counted(lyra: Lyra, busy_s: int, starts: list[int]) -> None:
    clock = SimulatedClock()
    runner = LiveRunner(lyra, load_replay("EURUSD", ["X"]), clock, session_s=600, drain_s=HANG_S)
    runner.status.jobs = [JobState(Job("market_analysis", "X", 60), 0.0)]
    calls = []

    async def slow(job: Job, at_s: float) -> None:
        calls.append(at_s)
        await clock.sleep_until(at_s + busy_s)  # a tick that takes busy_s simulated seconds

    runner.actions["market_analysis"] = slow
    status = await asyncio.wait_for(runner.run(), HANG_S)
    state = status.jobs[0]
    assert calls == starts
    assert (state.fired, state.skipped, state.errors) == (len(starts), 10 - len(starts), 0)
    assert status.now_s == 600
    assert state.running is not None and state.running.done() and not state.running.cancelled()


async def test_circuits_cool_down_in_session_time(lyra: Lyra) -> None:
    clock = SimulatedClock()
    runner = LiveRunner(lyra, load_replay("EURUSD", ["X"]), clock, session_s=180)
    runner.status.jobs = [JobState(Job("market_analysis", "X", 30), 0.0)]
    seen: list[tuple[float, bool]] = []
    original = lyra.router.breaker

    async def probe(job: Job, at_s: float) -> None:
        breaker = lyra.router.breaker
        if at_s == 0:
            for _ in range(lyra.settings.retry.breaker_failures):
                breaker.failure("some/model")  # opens the circuit for breaker_cooldown_s = 60
        seen.append((at_s, breaker.allows("some/model")))

    runner.actions["market_analysis"] = probe
    await asyncio.wait_for(runner.run(), HANG_S)
    assert seen == [(0, False), (30, False), (60, True), (90, True), (120, True), (150, True)]
    assert lyra.router.breaker is original  # the engine's own breaker is back after the run


def test_a_paced_clock_runs_at_its_speed() -> None:
    real = [100.0]
    clock = ReplayClock(60, start_s=10, monotonic=lambda: real[0])
    assert clock.now() == 10 and not clock.simulated
    real[0] = 102.5  # 2.5 real seconds later
    assert clock.now() == 10 + 150
    assert SimulatedClock().simulated


async def test_simulated_time_moves_only_when_watched_work_waits_on_it() -> None:
    clock = SimulatedClock()
    seen: list[tuple[str, float]] = []

    async def work() -> None:
        await asyncio.sleep(0.05)  # real work in flight: simulated time stands still meanwhile
        seen.append(("work done", clock.now()))
        await clock.sleep_until(30)
        seen.append(("work woke", clock.now()))

    clock.watch(asyncio.create_task(work()))
    async with asyncio.timeout(HANG_S):  # the driver sleeps on the clock itself, not in a wrapper task
        await clock.sleep_until(10)
        seen.append(("driver", clock.now()))
        await clock.sleep_until(30)
        seen.append(("driver", clock.now()))
    # At one instant the watched work runs before the task that waits for it.
    assert seen == [("work done", 0), ("driver", 10), ("work woke", 30), ("driver", 30)]


async def test_stop_ends_the_run_and_releases_in_flight_ticks(lyra: Lyra) -> None:
    clock = SimulatedClock()
    runner = LiveRunner(lyra, load_replay("EURUSD", ["X"]), clock, session_s=3600, drain_s=0.01)
    runner.status.jobs = [JobState(Job("market_analysis", "X", 60), 0.0)]
    started, hang = asyncio.Event(), asyncio.Event()

    async def stuck(job: Job, at_s: float) -> None:
        started.set()
        await hang.wait()  # never set: in flight until cancelled, holding simulated time at 0

    runner.actions["market_analysis"] = stuck
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(started.wait(), HANG_S)
    runner.stop.set()
    status = await asyncio.wait_for(task, HANG_S)
    assert status.now_s == 0 and clock.now() == 0  # stopped long before the session's end
    assert (status.jobs[0].fired, status.jobs[0].skipped) == (1, 0)
    assert status.jobs[0].running is not None and status.jobs[0].running.cancelled()


async def test_a_paced_clock_wakes_early_when_stopped() -> None:
    stop = asyncio.Event()
    stop.set()
    clock = ReplayClock(1.0)
    await asyncio.wait_for(clock.sleep_until(3600, stop=stop), HANG_S)  # not an hour
    with pytest.raises(Exception, match="speed must be above 0"):
        ReplayClock(0)


def test_sigterm_leaves_a_consistent_ledger(tmp_path: Path) -> None:
    config = tmp_path / "lyra.toml"
    from support import fast_config_text

    config.write_text(fast_config_text(timeout_s=5, **SESSION))
    db = tmp_path / "ledger.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_KEY_", "OPENROUTER"))}
    env |= {"LYRA_LEDGER_URL": f"sqlite:///{db}", "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lyra.cli.live",
            "live",
            "--replay",
            "EURUSD",
            "--speed",
            "60",
            "--no-panel",
            "--config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("live: started"), first + (proc.stderr.read() if proc.stderr else "")
        deadline = time.monotonic() + HANG_S
        while not _has_rows(db):  # the run is in flight once requests reach the ledger
            assert proc.poll() is None and time.monotonic() < deadline, "no request reached the ledger"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=HANG_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    stopped = next(line for line in out.splitlines() if line.startswith("live: stopped"))
    report = orjson.loads(stopped.removeprefix("live: stopped "))
    assert report["interrupted"] is True
    ledger = Ledger(f"sqlite:///{db}", simulated=True)  # no key was set: the simulator's money
    ledger.start()
    try:
        attempts = ledger.rows(kind="attempt")
        assert attempts
        assert ledger.spend_between(0, time.time() + 1).total_nanos == sum(r.cost_nanos for r in attempts)
        requests = ledger.rows(kind="request")
        assert {r.request_id for r in attempts if r.status == "ok"} <= {r.request_id for r in requests}
    finally:
        ledger.close()


def _has_rows(db: Path) -> bool:
    if not db.exists():
        return False
    import sqlite3

    try:
        with sqlite3.connect(db) as conn:
            return bool(
                conn.execute(f"select count(*) from {USAGE_TABLE} where kind = 'request'").fetchone()[0]
            )
    except sqlite3.Error:
        return False


def test_ccxt_source_fails_cleanly_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from lyra.errors import ConfigError
    from lyra.ops.live import CcxtMarket

    monkeypatch.setitem(sys.modules, "ccxt", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"the ccxt market needs the ccxt extra: pip install"):
        CcxtMarket("binance")


def test_live_command_needs_one_source() -> None:
    import typer
    from typer.testing import CliRunner

    from lyra.cli.live import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["live"])
    assert result.exit_code == 2
    assert "give exactly one of --replay FILE|SAMPLE or --ccxt EXCHANGE" in result.output
    missing = CliRunner().invoke(app, ["live", "--replay", "no/such/file.csv"])
    assert missing.exit_code == 2 and "neither a file nor a sample" in missing.output


async def test_each_symbols_decision_uses_its_own_market_analysis(lyra: Lyra) -> None:
    from lyra.ops.live import LiveOrchestrator
    from lyra.trading.pipeline import StageResult

    orchestrator = LiveOrchestrator(lyra, final_panel="quick", audit=False)
    orchestrator.analysis = {
        s: StageResult(stage="technical_analysis", output=f"analysis of {s}") for s in "AB"
    }
    market = load_replay("EURUSD", ["A", "B"])
    windows = {s: market.window(s, 600) for s in "AB"}
    a, b = await asyncio.gather(
        *(orchestrator.decide_for(s, windows[s][0], at=windows[s][1], notional=5_000) for s in "AB")
    )
    assert (a.stages[0].output, b.stages[0].output) == ("analysis of A", "analysis of B")
    assert a.stages[1].stage == "signal_generation" and a.stages[1].status == "ok"
    assert a.price != b.price  # the symbols replay the file from different offsets
