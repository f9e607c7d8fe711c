"""Budget caps across OS processes: full engines sharing Redis or SQLite state, and a kill -9 mid-load.

Every child (budget_worker.py) runs its own Lyra engine against the one simulator of the test
process, so the simulator's books are the real upstream spend of all of them together.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from budget_worker import ALL_PREMIUM, burst
from lyra import Lyra
from lyra.days import budget_day, day_bounds
from lyra.simulator import Simulator
from lyra.state import StateBackend, open_backend
from support import budget_config_text, engine_env, kill_and_reap

WORKER = Path(__file__).resolve().parent.parent / "budget_worker.py"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CAP = 1_000_000_000  # $1.00 a day, in nano-dollars
PROCESSES = 3
REQUESTS_PER_PROCESS = 350
CHILD_TIMEOUT_S = 60


# --- helpers ---------------------------------------------------------------------------------


def config_file(tmp_path: Path, state: str) -> Path:
    """A $1.00-a-day config whose [state] section is `state`."""
    text = budget_config_text(daily=1.0, shares=ALL_PREMIUM)
    text, found = re.subn(r"\[state\]\n[^\[]*", lambda _: f"[state]\n{state}\n\n", text, count=1)
    assert found, "the example config has no [state] section"
    path = tmp_path / "lyra.toml"
    path.write_text(text)
    return path


def child_env(sim: Simulator, ledger: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "OPENROUTER_"))}
    return env | engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{ledger}"} | extra


async def spawn(env: dict[str, str], cwd: Path, *args: str | Path | int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), *map(str, args), env=env, cwd=cwd, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def wait_until_ready(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), CHILD_TIMEOUT_S)
    if line != b"ready\n":
        _, err = await proc.communicate()
        pytest.fail(f"a worker did not start: {err.decode()[-2000:]}")


async def run_bursts(sim: Simulator, tmp_path: Path, config: Path, **env: str) -> collections.Counter[str]:
    """Three engines in three processes fire their bursts at once; returns the summed outcomes."""
    procs = [await spawn(child_env(sim, tmp_path / f"ledger.{i}.db", **env), tmp_path,
                         "burst", config, REQUESTS_PER_PROCESS, i + 1) for i in range(PROCESSES)]
    try:
        for proc in procs:
            await wait_until_ready(proc)
        results = await asyncio.gather(*(finish(proc, b"go\n") for proc in procs))
    finally:
        for proc in procs:
            if proc.returncode is None:  # a failed start or a timeout: leave no worker behind
                proc.kill()
                await proc.wait()
    outcomes: collections.Counter[str] = collections.Counter()
    for out, err, code in results:
        assert code == 0, err.decode()[-2000:]
        outcomes.update(json.loads(out))
    return outcomes


async def finish(proc: asyncio.subprocess.Process, stdin: bytes) -> tuple[bytes, bytes, int | None]:
    out, err = await asyncio.wait_for(proc.communicate(stdin), CHILD_TIMEOUT_S)
    return out, err, proc.returncode


def ledger_spend_today(path: Path) -> tuple[int, dict[str, int]]:
    """Today's billed spend in a ledger file, read with plain sqlite3: (total, by key)."""
    start, end = day_bounds(budget_day(time.time()))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT key_name, sum(cost_nanos) FROM lyra_usage"
            " WHERE kind = 'attempt' AND ts >= ? AND ts < ? GROUP BY key_name", (start, end)).fetchall()
    by_key = {key: int(cost) for key, cost in rows if key is not None}
    return sum(int(cost) for _, cost in rows), by_key


async def shared_global(backend: StateBackend) -> tuple[int, int]:
    """(committed, reserved) of today's global cap in a shared state backend."""
    cap = f"d{budget_day(time.time())}:global"
    try:
        usage = (await backend.usage([cap]))[cap]
    finally:
        await backend.close()
    return usage.committed, usage.reserved


async def check_shared_run(sim: Simulator, tmp_path: Path, outcomes: collections.Counter[str],
                           backend: StateBackend) -> None:
    """Caps held across the processes: upstream spend within the cap and >= 95 % of it used."""
    ledgers = sum(ledger_spend_today(tmp_path / f"ledger.{i}.db")[0] for i in range(PROCESSES))
    committed, reserved = await shared_global(backend)
    print(f"\n{PROCESSES} processes: {dict(outcomes)}, upstream spend {sim.stats.total_cost_nanos}, "
          f"shared committed {committed}, ledgers {ledgers}, cap {CAP}")
    assert set(outcomes) <= {"served", "BudgetExceeded"}, outcomes
    assert outcomes["BudgetExceeded"] > 0, "the cap must bind in this test"
    assert sim.stats.total_cost_nanos <= CAP
    assert sim.stats.total_cost_nanos >= 0.95 * CAP
    assert committed == ledgers <= CAP
    assert reserved == 0


# --- the tests -------------------------------------------------------------------------------


async def test_three_engine_processes_sharing_redis_never_pass_the_cap(
    sim: Simulator, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    config = config_file(tmp_path, f'backend = "redis"\nprefix = "{redis_prefix}"')
    outcomes = await run_bursts(sim, tmp_path, config, LYRA_REDIS_URL=redis_url)
    backend = open_backend("redis", redis_url=redis_url, prefix=redis_prefix)
    await check_shared_run(sim, tmp_path, outcomes, backend)


async def test_three_engine_processes_sharing_sqlite_never_pass_the_cap(sim: Simulator, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    config = config_file(tmp_path, f'backend = "sqlite"\npath = "{state}"')
    outcomes = await run_bursts(sim, tmp_path, config)
    await check_shared_run(sim, tmp_path, outcomes, open_backend("sqlite", path=state))


def _recorded_so_far(ledger: Path) -> int:
    try:
        return ledger_spend_today(ledger)[0] if ledger.exists() else 0
    except sqlite3.OperationalError:  # the child has created the file but not yet its table
        return 0


async def kill_mid_load(sim: Simulator, tmp_path: Path, config: Path, ledger: Path) -> int:
    """Run steady load in a child and SIGKILL it once its ledger holds real spend; returns the
    spend the child had been served by then (some of it may be in a batch the kill lost)."""
    progress = tmp_path / "progress"
    proc = await spawn(child_env(sim, ledger), tmp_path, "steady", config, 8, 7, progress)
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        # Kill once committed rows hold at least 15 % of the cap: the rebuild then has work to do.
        while _recorded_so_far(ledger) < 0.15 * CAP:
            assert proc.returncode is None, (await proc.communicate())[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the worker never committed spend to its ledger"
            await asyncio.sleep(0.02)
    finally:
        await kill_and_reap(proc)
    assert proc.returncode == -signal.SIGKILL
    return int(progress.read_text())


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
async def test_sigkill_mid_load_then_restart_rebuilds_the_day_and_keeps_the_cap(
    sim: Simulator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    config = config_file(tmp_path, 'backend = "memory"')
    served_before_kill = await kill_mid_load(sim, tmp_path, config, ledger)

    with contextlib.closing(sqlite3.connect(ledger)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    recorded, recorded_by_key = ledger_spend_today(ledger)
    assert 0.15 * CAP <= recorded < CAP

    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{ledger}"}
    async with Lyra.from_config(config, environ=environ) as lyra:
        assert lyra.budget is not None and lyra.ledger is not None
        rebuilt = {line.name: line.committed for line in await lyra.budget.snapshot()}
        outcomes = await burst(lyra, 1000, seed=11)
        lyra.ledger.flush()
        after = {line.name: line for line in await lyra.budget.snapshot()}
    total, _ = ledger_spend_today(ledger)
    print(f"\nkilled after {served_before_kill} served, {recorded} in the ledger; restarted: "
          f"{dict(outcomes)}, ledger total {total}, upstream {sim.stats.total_cost_nanos}, cap {CAP}")

    assert rebuilt["global"] == recorded
    assert {k: rebuilt[f"key:{k}"] for k in recorded_by_key} == recorded_by_key
    assert set(outcomes) <= {"served", "BudgetExceeded"}, outcomes
    assert outcomes["served"] > 0, "the kill must land before the cap was full"
    assert outcomes["BudgetExceeded"] > 0, "the cap must bind after the restart"
    assert after["global"].committed == total <= CAP
    assert after["global"].reserved == 0
    assert total >= 0.95 * CAP
