"""Shared fixtures: a simulator on loopback and engines wired to it with known test keys."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

# Loaded here, at a shallow stack: hypothesis's pytest plugin imports it late in a run that has no
# property tests, deep in pytest's hooks, where CPython 3.11's compiler fails a recursion check.
import hypothesis  # noqa: F401
import pytest
import redis

from lyra import Lyra
from lyra.simulator import Simulator, SimulatorOptions
from support import delete_prefix, engine_env, fast_config_text, service_missing


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep ledgers and state files of every test out of the user's data folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("LYRA_LEDGER_URL", raising=False)
    monkeypatch.delenv("LYRA_CONFIG", raising=False)  # each test names its config, or gets the example


@pytest.fixture(autouse=True)
def _lyra_logger_restored() -> Iterator[None]:
    """Undo what a CLI run in-process does to the `lyra` logger (its handler on a captured stderr
    that pytest closes afterwards, its level, no propagation), so that no test sees another's."""
    logger = logging.getLogger("lyra")
    handlers, level, propagate, disabled = logger.handlers[:], logger.level, logger.propagate, logger.disabled
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)  # also clears the cached levels of the lyra.* loggers
    logger.propagate, logger.disabled = propagate, disabled


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(options=SimulatorOptions(time_scale=0.0, generation_lag_s=0.0)) as simulator:
        yield simulator


@pytest.fixture
def config_path(tmp_path: Path) -> Callable[..., Path]:
    def make(**replacements: str) -> Path:
        path = tmp_path / "lyra.toml"
        path.write_text(fast_config_text(**replacements))
        return path

    return make


@pytest.fixture
async def lyra(sim: Simulator, config_path: Callable[..., Path]) -> AsyncIterator[Lyra]:
    async with Lyra.from_config(config_path(), environ=engine_env(sim)) as engine:
        yield engine


@pytest.fixture(scope="session")
def redis_url() -> str:
    """LYRA_TEST_REDIS_URL (default redis://127.0.0.1:6379/0), once it answers PING."""
    url = os.environ.get("LYRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        service_missing(f"Redis is not reachable at {url} (set LYRA_TEST_REDIS_URL): {exc}")
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    prefix = f"lyra-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(redis_url, prefix)
