"""Pricing a reported usage as OpenRouter prices it: cache reads and writes, reasoning as output."""

from __future__ import annotations

from decimal import Decimal

from lyra.catalog.models import ModelInfo, model_from_listing
from lyra.catalog.usage_cost import usage_cost_nanos
from lyra.openrouter.wire import parse_usage

HAIKU_LISTING = {
    "id": "anthropic/claude-3-haiku", "context_length": 200000,
    "top_provider": {"context_length": 200000, "max_completion_tokens": 4096, "is_moderated": True},
    "pricing": {"prompt": "0.00000025", "completion": "0.00000125", "input_cache_read": "0.00000003",
                "input_cache_write": "0.0000003", "internal_reasoning": "0.000002"},
}


def test_the_listing_carries_cache_read_write_and_reasoning_prices() -> None:
    model = model_from_listing(HAIKU_LISTING)
    assert model is not None
    assert (model.cache_read_per_m, model.cache_write_per_m, model.reasoning_per_m) == (
        Decimal("0.03"), Decimal("0.3"), Decimal("2"))


def test_cached_written_and_reasoning_tokens_each_pay_their_own_price() -> None:
    model = model_from_listing(HAIKU_LISTING)
    assert model is not None
    # 10,000 prompt tokens: 6,000 read from the cache, 1,000 written to it, 3,000 plain;
    # 2,000 completion tokens of which 500 are reasoning.
    cost = usage_cost_nanos(model, prompt_tokens=10_000, completion_tokens=2_000, cached_tokens=6_000,
                            cache_write_tokens=1_000, reasoning_tokens=500)
    # nano-dollars per token = USD per million: 0.25, 0.03, 0.3, 1.25, 2 -> x1000 nanos per token / 1000
    expected = 3_000 * 250 + 6_000 * 30 + 1_000 * 300 + 1_500 * 1_250 + 500 * 2_000
    assert cost == expected
    assert cost < model.cost_nanos(10_000, 2_000) + 500 * (2_000 - 1_250)  # the cache read is the saving


def test_unknown_cache_and_reasoning_prices_fall_back_to_prompt_and_completion() -> None:
    plain = ModelInfo(id="x/y", tier="fast", prompt_per_m=Decimal("1"), completion_per_m=Decimal("4"),
                      context=1000, max_output=100)
    assert usage_cost_nanos(plain, prompt_tokens=100, completion_tokens=10, cached_tokens=60,
                            reasoning_tokens=5) == plain.cost_nanos(100, 10)


def test_counts_beyond_their_totals_are_capped() -> None:
    model = model_from_listing(HAIKU_LISTING)
    assert model is not None
    assert usage_cost_nanos(model, prompt_tokens=100, completion_tokens=10, cached_tokens=500,
                            reasoning_tokens=50) == 100 * 30 + 10 * 2_000


def test_usage_reports_cache_writes() -> None:
    usage = parse_usage({"prompt_tokens": 10, "completion_tokens": 2,
                         "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 3},
                         "completion_tokens_details": {"reasoning_tokens": 1}})
    assert usage is not None
    assert (usage.cached_tokens, usage.cache_write_tokens, usage.reasoning_tokens, usage.cost_usd) == (4, 3, 1, None)
