"""The simulator's prompt cache: a repeated prefix is read at the cache price, reported everywhere alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from lyra.catalog.usage_cost import usage_cost_nanos
from lyra.engine import Lyra
from lyra.money import usd_to_nanos
from lyra.openrouter.transport import OpenRouterTransport
from lyra.simulator import Simulator, SimulatorOptions
from lyra.simulator.prompt_cache import MIN_CACHED_TOKENS
from support import engine_env, reconcile_config_text

SYSTEM = {"role": "system", "content": "Rules of the desk. " * 400}  # well over 1,024 tokens
MODEL = "openai/gpt-4o-mini"


@pytest.fixture
async def caching_sim() -> AsyncIterator[Simulator]:
    async with Simulator(options=SimulatorOptions(time_scale=0.0, generation_lag_s=0.0,
                                                  prompt_caching=True)) as simulator:
        yield simulator


async def test_a_repeated_prefix_is_billed_at_the_cache_read_price(caching_sim: Simulator, tmp_path: Path) -> None:
    config = tmp_path / "lyra.toml"
    config.write_text(reconcile_config_text("enabled = false"))
    async with Lyra.from_config(config, environ=engine_env(caching_sim)) as lyra:
        cold = await lyra.complete(messages=[SYSTEM, {"role": "user", "content": "BTC?"}], model=MODEL,
                                   cache="bypass")
        warm = await lyra.complete(messages=[SYSTEM, {"role": "user", "content": "ETH?"}], model=MODEL,
                                   cache="bypass")
        transport: OpenRouterTransport = lyra.router.transport
        secret = lyra.router.keys.secret(str(warm.key_name))
        stats = (await transport.get_json("/generation", api_key=secret,
                                          params={"id": str(warm.generation_id)}))["data"]
        model = lyra.catalog.get(MODEL)
    record = caching_sim._state.generations[str(warm.generation_id)]
    assert caching_sim._state.generations[str(cold.generation_id)].cached_tokens == 0
    cached = record.cached_tokens
    assert cached >= MIN_CACHED_TOKENS and cached < warm.prompt_tokens
    assert stats["native_tokens_cached"] == cached
    assert model.cache_read_per_m is not None
    discount = (model.prompt_per_m - model.cache_read_per_m) * cached / Decimal(1_000_000)
    assert Decimal(str(stats["cache_discount"])) == discount
    # The usage.cost Lyra booked, /generation's total_cost and Lyra's own pricing of the usage agree.
    assert warm.cost_nanos == usd_to_nanos(record.cost) == usd_to_nanos(str(stats["total_cost"]))
    assert warm.cost_nanos == usage_cost_nanos(model, prompt_tokens=warm.prompt_tokens,
                                               completion_tokens=warm.completion_tokens, cached_tokens=cached)
    assert warm.cost_nanos < model.cost_nanos(warm.prompt_tokens, warm.completion_tokens)
