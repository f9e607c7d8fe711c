"""Fixtures for the state backends: each backend for real, Redis under a fresh prefix per test.

`redis_url` and `redis_prefix` come from tests/conftest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from state_helpers import FakeClock, Harness

from lyra.state import MemoryBackend, RedisBackend, SqliteBackend, StateBackend

BACKENDS = ("memory", "sqlite", "redis")


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@pytest.fixture(params=BACKENDS)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """Each backend in turn: memory with a fake clock, sqlite in tmp_path, redis under a test prefix."""
    kind: str = request.param
    if kind == "memory":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        backend: StateBackend = MemoryBackend(clock=clock)
        yield Harness(kind, backend, advance)
    elif kind == "sqlite":
        backend = SqliteBackend(tmp_path / "state" / "lyra.db")
        yield Harness(kind, backend, _sleep)
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        backend = RedisBackend(url, prefix=prefix)
        yield Harness(kind, backend, _sleep)
    await backend.close()


@pytest.fixture
def backend(harness: Harness) -> StateBackend:
    return harness.backend
