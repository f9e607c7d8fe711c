"""A holder SIGKILLed mid-call: its reservation expires into committed, so the cap still holds.

The killed process may have been served and billed before it died, so the money it held must
stay counted: other processes sharing the state can spend at most limit - held.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from state_hammer import CAP, hammer, watch
from state_helpers import rid

from lyra.state import CapUsage, Charge, RedisBackend, SqliteBackend, StateBackend
from support import kill_and_reap

HOLDER = Path(__file__).with_name("state_holder.py")
LIMIT, HELD, WORST, TTL_S = 50_000, 7_300, 100, 1.5

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


@pytest.fixture(params=["sqlite", "redis"])
async def shared(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[StateBackend, str, str]]:
    """A backend of this process, and how a child process opens the same state (kind, target)."""
    backend: StateBackend
    if request.param == "sqlite":
        path = tmp_path / "shared.db"
        backend, target = SqliteBackend(path), str(path)
    else:
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        backend, target = RedisBackend(url, prefix=prefix), f"{url} {prefix}"
    yield backend, request.param, target
    await backend.close()


async def reserve_and_get_killed(kind: str, target: str) -> str:
    """Run a holder that reserves HELD on CAP, SIGKILL it before it settles; returns its reservation id."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HOLDER),
        kind,
        target,
        CAP,
        str(LIMIT),
        str(HELD),
        str(TTL_S),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert line, (await proc.stderr.read()).decode()[-2000:]
    finally:
        await kill_and_reap(proc)
    assert proc.returncode == -signal.SIGKILL
    return line.decode().strip()


async def wait_for_expiry(backend: StateBackend) -> CapUsage:
    """Poll the cap (each look expires what is due) until nothing is held any more."""
    deadline = time.monotonic() + TTL_S + 10
    usage = (await backend.usage([CAP]))[CAP]
    for _ in range(10_000):
        if not usage.reserved or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.05)
        usage = (await backend.usage([CAP]))[CAP]
    return usage


async def test_a_killed_holders_reservation_expires_into_committed_and_the_cap_holds(
    shared: tuple[StateBackend, str, str],
) -> None:
    backend, kind, target = shared
    spawned = time.monotonic()  # the holder reserves after this
    await reserve_and_get_killed(kind, target)
    # Still live right after the kill (its ttl has not passed): held, not yet spent. A machine
    # too busy to look within the ttl sees it expired already, which the next step checks.
    usage = (await backend.usage([CAP]))[CAP]
    assert usage == CapUsage(0, HELD) or time.monotonic() - spawned >= TTL_S, usage
    # After the ttl the hold counts as spent at its worst case: it is not freed.
    assert await wait_for_expiry(backend) == CapUsage(HELD, 0)
    assert await backend.reserve(rid(), [Charge(CAP, LIMIT, LIMIT - HELD + 1)], ttl_s=60) is not None

    # Other holders fill what is left, and no more: limit - held.
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(backend, LIMIT, stop))
    try:
        commits = await hammer(backend, limit=LIMIT, worst=WORST, tasks=50, seed=3)
    finally:
        stop.set()
    assert await watcher > 0
    usage = (await backend.usage([CAP]))[CAP]
    assert usage == CapUsage(HELD + commits * WORST, 0)
    assert commits * WORST <= LIMIT - HELD
    assert usage.committed <= LIMIT
    assert usage.committed >= 0.95 * LIMIT


async def test_a_late_settle_of_a_killed_holders_reservation_corrects_the_charge(
    shared: tuple[StateBackend, str, str],
) -> None:
    # A restarted process that learns what the dead call really cost (say from the upstream's
    # generation log) may settle it late: the provisional worst case is replaced by the actual.
    backend, kind, target = shared
    dead = await reserve_and_get_killed(kind, target)
    assert await wait_for_expiry(backend) == CapUsage(HELD, 0)
    await backend.commit(dead, {CAP: 1_234})
    assert (await backend.usage([CAP]))[CAP] == CapUsage(1_234, 0)
    await backend.commit(dead, {CAP: 1})  # settled already: an unknown id, whose money still counts
    assert (await backend.usage([CAP]))[CAP] == CapUsage(1_235, 0)
