"""The `lyra demo` job: a handful of real routed calls per trading task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lyra.catalog.models import Catalog
from lyra.config import LoadedConfig
from lyra.consensus.panel import Consensus
from lyra.engine import Lyra
from lyra.openrouter.transport import OpenRouterTransport
from lyra.types import Completion

_FEATURES = (
    '{"symbol": "BTC/USDT", "interval": "4h", "rsi": 38.2, "macd_hist": 0.8, "ret_5": 0.021, '
    '"sma_ratio": 0.013, "bb_pos": 0.42, "volatility": 0.031, "volume_change": 0.18}'
)
PROMPTS: dict[str, str] = {
    "market_analysis": "Summarise the market regime for these features.",
    "signal_generation": "Give a trading signal (BUY, SELL or HOLD) with confidence.",
    "risk_assessment": "Assess the risk of opening a $15,000 long position here.",
    "news_sentiment": "Rate the sentiment of these headlines for BTC.",
    "code_generation": "Write a Python function computing a 14-period RSI.",
}


def demo_messages(task: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are a trading assistant. Answer briefly."},
        {"role": "user", "content": f"{PROMPTS.get(task, 'Analyse.')}\n```json\n{_FEATURES}\n```"},
    ]


async def run_demo(config: Path | None, *, calls: int, time_scale: float) -> list[Completion]:
    from lyra.simulator import SimulatorOptions

    lyra = Lyra.from_config(config, simulator_options=SimulatorOptions(time_scale=time_scale))
    rows: list[Completion] = []
    async with lyra:
        for task in lyra.settings.tasks:
            for _ in range(calls):
                rows.append(await lyra.complete(task=task, messages=demo_messages(task)))
    return rows


async def run_consensus(config: Path | None, prompt: str, *, panel: str, notional: float | None) -> Consensus:
    """One consensus decision on a free-text prompt (the simulator answers when no key is set)."""
    from lyra.simulator import SimulatorOptions

    lyra = Lyra.from_config(config, simulator_options=SimulatorOptions(time_scale=0.05))
    async with lyra:
        return await lyra.consensus(messages=[{"role": "user", "content": prompt}], panel=panel,
                                    notional=notional)


async def live_listing(config: LoadedConfig, catalog: Catalog) -> list[dict[str, Any]]:
    """GET /models from the configured OpenRouter, or from the simulator when no key is set."""
    if config.simulated:
        from lyra.simulator import Simulator

        async with Simulator(catalog=catalog) as sim:
            transport = OpenRouterTransport(base_url=sim.base_url)
            try:
                return await transport.list_models()
            finally:
                await transport.close()
    transport = OpenRouterTransport(base_url=config.settings.openrouter.base_url)
    try:
        return await transport.list_models()
    finally:
        await transport.close()
