"""Shared fixtures: a simulator on loopback and engines wired to it with known test keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from lyra import Lyra
from lyra.simulator import Simulator, SimulatorOptions
from support import engine_env, fast_config_text


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep ledgers and state files of every test out of the user's data folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("LYRA_LEDGER_URL", raising=False)


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
