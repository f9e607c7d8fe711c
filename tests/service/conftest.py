"""Gateway fixtures: a real uvicorn server on a free loopback port in front of the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import openai
import pytest
from gateway_support import DESK_TOKEN, gateway_config_text, running

from lyra import Lyra
from lyra.service import create_app
from lyra.simulator import Simulator
from support import engine_env


@pytest.fixture
def gateway_config(tmp_path: Path) -> Callable[..., Path]:
    def make(text: str | None = None) -> Path:
        path = tmp_path / "lyra.toml"
        path.write_text(text if text is not None else gateway_config_text())
        return path

    return make


@pytest.fixture
async def gateway(sim: Simulator, gateway_config: Callable[..., Path], tmp_path: Path) -> AsyncIterator[str]:
    """The base URL (…/v1) of a gateway on uvicorn whose engine talks to the simulator."""
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    lyra = Lyra.from_config(gateway_config(), environ=environ)
    async with running(create_app(lyra)) as url:
        yield url


@pytest.fixture
async def desk(gateway: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key=DESK_TOKEN, base_url=gateway, max_retries=0) as client:
        yield client
