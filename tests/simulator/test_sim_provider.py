"""The simulator reads `provider` as OpenRouter does: every 2026 field accepted, bad types refused,
`max_price` a hard filter that leaves a model no endpoint (404) and lets `models` fall back."""

from __future__ import annotations

from typing import Any

import pytest
from sim_helpers import Chat

from lyra.simulator import Simulator

EVERY_FIELD: dict[str, Any] = {
    "order": ["openai", "azure"], "allow_fallbacks": False, "require_parameters": True,
    "data_collection": "deny", "zdr": True, "enforce_distillable_text": False, "only": ["openai"],
    "ignore": ["deepinfra"], "quantizations": ["fp16", "bf16"], "sort": {"by": "price", "partition": "none"},
    "preferred_min_throughput": {"p50": 40, "p90": 10}, "preferred_max_latency": 2.5,
    "max_price": {"prompt": 5, "completion": "15", "request": 0, "image": 0.01},
    "a_field_from_the_future": {"anything": 1},
}


async def test_every_provider_field_is_accepted(chat: Chat, sim: Simulator) -> None:
    answer = await chat(model="openai/gpt-4o", provider=EVERY_FIELD, service_tier="flex")
    assert answer.status == 200, answer.text
    assert sim.received[-1]["provider"] == EVERY_FIELD and sim.received[-1]["service_tier"] == "flex"


@pytest.mark.parametrize(
    ("provider", "field"),
    [
        ({"zdr": "yes"}, "provider.zdr"),
        ({"data_collection": "never"}, "provider.data_collection"),
        ({"order": "openai"}, "provider.order"),
        ({"quantizations": ["fp12"]}, "provider.quantizations"),
        ({"sort": "cheapest"}, "provider.sort"),
        ({"preferred_max_latency": {"p42": 1}}, "provider.preferred_max_latency"),
        ({"max_price": {"prompt": -1}}, "provider.max_price"),
        ({"max_price": 5}, "provider.max_price"),
        ("openai", "provider"),
    ],
)
async def test_a_malformed_provider_field_is_a_400_naming_it(chat: Chat, provider: Any, field: str) -> None:
    answer = await chat(provider=provider)
    assert answer.status == 400
    error = answer.json()["error"]
    assert error["code"] == 400 and f'"{field}"' in error["message"]
    assert error["metadata"]["error_type"] == "invalid_request"


async def test_max_price_under_the_model_leaves_no_endpoint(chat: Chat) -> None:
    answer = await chat(model="openai/gpt-4o", provider={"max_price": {"prompt": 2, "completion": 20}})
    assert answer.status == 404
    error = answer.json()["error"]
    assert error["message"].startswith("No endpoints found for openai/gpt-4o")
    assert error["availability"]["code"] == "constraint_filtered"
    assert error["availability"]["constraint"] == "max_price" and error["availability"]["retryable"] is False


async def test_max_price_at_the_listed_price_serves(chat: Chat) -> None:
    answer = await chat(model="openai/gpt-4o", provider={"max_price": {"prompt": 2.5, "completion": 10}})
    assert answer.status == 200, answer.text


async def test_max_price_falls_back_along_models(chat: Chat) -> None:
    answer = await chat(model="anthropic/claude-opus-4.8", models=["openai/gpt-4o-mini"],
                        provider={"max_price": {"prompt": 1, "completion": 1}})
    assert answer.status == 200, answer.text
    assert answer.json()["model"] == "openai/gpt-4o-mini"
