"""Caps hold under concurrency: many asyncio tasks in one process, and several OS processes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from state_hammer import CAP, hammer, watch
from state_helpers import Harness

from lyra.state import StateBackend

HAMMER = Path(__file__).with_name("state_hammer.py")


async def test_a_thousand_concurrent_tasks_never_pass_the_cap(harness: Harness) -> None:
    backend, limit, worst = harness.backend, 600_000, 1_000
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(backend, limit, stop))
    try:
        commits = await hammer(backend, limit=limit, worst=worst, tasks=1_000, seed=1)
    finally:
        stop.set()
    assert await watcher > 0
    usage = (await backend.usage([CAP]))[CAP]
    assert usage.reserved == 0
    assert usage.committed == commits * worst
    assert 0.95 * limit <= usage.committed <= limit


async def _run_processes(kind: str, target: str, *, limit: int, worst: int, tasks: int) -> int:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(HAMMER), kind, target, str(limit), str(worst), str(tasks), str(seed),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for seed in range(3)
    ]
    commits = 0
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, err.decode()
        commits += int(out)
    return commits


async def _check_shared(backend: StateBackend, commits: int, *, limit: int, worst: int) -> None:
    usage = (await backend.usage([CAP]))[CAP]
    assert usage.reserved == 0
    assert usage.committed == commits * worst
    assert 0.95 * limit <= usage.committed <= limit


async def test_three_processes_share_one_sqlite_cap(tmp_path: Path) -> None:
    from lyra.state import SqliteBackend

    path, limit, worst = tmp_path / "shared.db", 300_000, 100
    commits = await _run_processes("sqlite", str(path), limit=limit, worst=worst, tasks=50)
    backend = SqliteBackend(path)
    try:
        await _check_shared(backend, commits, limit=limit, worst=worst)
    finally:
        await backend.close()


async def test_three_processes_share_one_redis_cap(redis_url: str, redis_prefix: str) -> None:
    from lyra.state import RedisBackend

    limit, worst = 300_000, 100
    commits = await _run_processes("redis", f"{redis_url} {redis_prefix}", limit=limit, worst=worst, tasks=50)
    backend = RedisBackend(redis_url, prefix=redis_prefix)
    try:
        await _check_shared(backend, commits, limit=limit, worst=worst)
    finally:
        await backend.close()
