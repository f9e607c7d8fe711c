"""Independent engine processes (tests/budget_worker.py) firing bursts at one standalone simulator."""

from __future__ import annotations

import asyncio
import collections
import json
import sys
from pathlib import Path

WORKER = Path(__file__).resolve().parent.parent / "budget_worker.py"
CHILD_DEADLINE_S = 120.0


async def spawn_burst(config: Path, env: dict[str, str], cwd: Path, requests: int,
                      seed: int) -> asyncio.subprocess.Process:
    """A worker that opens its engine, prints "ready", and fires `requests` at once on a line of stdin."""
    return await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), "burst", str(config), str(requests), str(seed), env=env, cwd=cwd,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def wait_ready(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), CHILD_DEADLINE_S)
    if line != b"ready\n":
        _, err = await proc.communicate()
        raise AssertionError(f"an engine worker did not start: {err.decode()[-2000:]}")


async def outcome_counts(proc: asyncio.subprocess.Process) -> collections.Counter[str]:
    """Say go, wait for the worker to finish, and read its outcome counts."""
    out, err = await asyncio.wait_for(proc.communicate(b"go\n"), CHILD_DEADLINE_S)
    assert proc.returncode == 0, err.decode()[-2000:]
    return collections.Counter(json.loads(out))


async def run_engine_bursts(config: Path, env: dict[str, str], cwd: Path, *, processes: int,
                            requests: int) -> collections.Counter[str]:
    """`processes` engines start, then all fire their bursts at once; returns the summed outcomes."""
    procs = [await spawn_burst(config, env, cwd, requests, seed=i + 1) for i in range(processes)]
    try:
        for proc in procs:
            await wait_ready(proc)
        counts = await asyncio.gather(*(outcome_counts(proc) for proc in procs))
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    return sum(counts, collections.Counter())
