"""A gateway with a `quant` client allowed every tier, for consensus, decide, report and dashboard tests."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

from gateway_support import gateway_config_text, running

from lyra import Lyra
from lyra.service import create_app
from lyra.simulator import Simulator
from support import engine_env

QUANT_TOKEN = "lyra-quant-" + "Wd9" * 14


def quant_config_text(*, quant_usd: float = 20.0) -> str:
    digest = hashlib.sha256(QUANT_TOKEN.encode()).hexdigest()
    return gateway_config_text() + (
        f'\n[clients.quant]\ntoken_sha256 = "{digest}"\ndaily_usd = {quant_usd}\n'
        'tiers = ["premium", "advanced", "specialized", "fast"]\n')


@contextlib.asynccontextmanager
async def quant_gateway(sim: Simulator, tmp_path: Path, **config: float) -> AsyncIterator[str]:
    """A gateway on uvicorn in front of `sim`, with its ledger in tmp_path; yields its /v1 URL."""
    path = tmp_path / "lyra.toml"
    path.write_text(quant_config_text(**config))
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    async with running(create_app(Lyra.from_config(path, environ=environ))) as url:
        yield url
