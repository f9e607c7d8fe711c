"""Fixtures for the trading tests: CSV files as real tools write them, the sample, an engine."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import typer

from lyra import Lyra
from lyra.simulator import Simulator
from lyra.trading.data import Bars, load_sample
from support import engine_env

WriteFile = Callable[..., Path]


@pytest.fixture
def write_csv(tmp_path: Path) -> WriteFile:
    """Write dedented text to a file in tmp_path and return its path."""

    def write(text: str, name: str = "prices.csv", encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding=encoding)
        return path

    return write


@pytest.fixture
def bars() -> Bars:
    """The bundled daily GOOGL sample."""
    return load_sample("GOOGL")


@pytest.fixture
async def engine(sim: Simulator, config_path: Callable[..., Path], tmp_path: Path,
                 request: pytest.FixtureRequest) -> AsyncIterator[Lyra]:
    """An engine on the simulator with a SQLite ledger; the module's ENGINE_EDITS change its config."""
    env = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    edits = getattr(request.module, "ENGINE_EDITS", {})
    async with Lyra.from_config(config_path(**edits), environ=env) as lyra:
        yield lyra


@pytest.fixture
def cli() -> typer.Typer:
    """`lyra backtest` and `lyra run`, as the `lyra` command has them."""
    from lyra.cli.backtest import register as register_backtest
    from lyra.cli.trading import register as register_run

    app = typer.Typer()
    register_backtest(app)
    register_run(app)
    return app
