"""Fixtures for the state backends: each backend for real, Redis under a fresh prefix per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from state_helpers import FakeClock, Harness

from lyra.state import MemoryBackend, RedisBackend, SqliteBackend, StateBackend

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
BACKENDS = ("memory", "sqlite", "redis")


def _service_missing(reason: str) -> None:
    """Skip, or fail when CI says the service must be there (LYRA_REQUIRE_SERVICES=1)."""
    if os.environ.get("LYRA_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (LYRA_REQUIRE_SERVICES=1, so this fails instead of skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """LYRA_TEST_REDIS_URL (default redis://127.0.0.1:6379/0), once it answers PING."""
    url = os.environ.get("LYRA_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        _service_missing(f"Redis is not reachable at {url} (set LYRA_TEST_REDIS_URL): {exc}")
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    prefix = f"lyra-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


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
