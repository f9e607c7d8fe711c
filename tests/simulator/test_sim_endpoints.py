"""GET /models, /generation (with its lag) and the shapes they answer in."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import aiohttp
from sim_helpers import Chat, fetch

from lyra.catalog.models import load_catalog
from lyra.simulator import Simulator, SimulatorOptions


async def test_models_listing_shape(sim: Simulator, session: aiohttp.ClientSession) -> None:
    answer = await fetch(session, "GET", f"{sim.base_url}/models", token=None)
    assert answer.status == 200
    listing = answer.json()
    catalog = load_catalog()
    active = [m for m in catalog if not m.retired]
    assert listing["total_count"] == len(listing["data"]) == len(active)
    assert listing["links"] == {"next": None}
    ids = {entry["id"] for entry in listing["data"]}
    assert "anthropic/claude-3-opus" not in ids
    for entry in listing["data"]:
        model = catalog.get(entry["id"])
        pricing = entry["pricing"]
        assert Decimal(pricing["prompt"]) * 1_000_000 == model.prompt_per_m
        assert Decimal(pricing["completion"]) * 1_000_000 == model.completion_per_m
        assert "e" not in pricing["prompt"].lower()
        assert entry["context_length"] == model.context
        top = entry["top_provider"]
        assert top["context_length"] == model.context
        assert top["max_completion_tokens"] == model.max_output
        assert isinstance(top["is_moderated"], bool)
        assert {"response_format", "structured_outputs", "max_tokens"} <= set(
            entry["supported_parameters"]
        )
        assert entry["architecture"]["output_modalities"] == ["text"]
        assert "knowledge_cutoff" in entry
        assert entry["canonical_slug"] == entry["id"]


async def test_generation_is_404_for_a_while_then_answers() -> None:
    # 100 s of lag at 1/100 speed: 1 s, so that the first look comes well within it on a busy machine.
    options = SimulatorOptions(time_scale=0.01, generation_lag_s=100)
    async with Simulator(options=options) as sim, aiohttp.ClientSession() as session:
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        completion = (await fetch(session, "POST", f"{sim.base_url}/chat/completions", body=body))
        gen_id = completion.json()["id"]
        url = f"{sim.base_url}/generation?id={gen_id}"
        first = await fetch(session, "GET", url)
        assert first.status == 404
        assert first.json()["error"]["code"] == 404
        deadline = time.monotonic() + 60
        for _ in range(100_000):
            answer = await fetch(session, "GET", url)
            if answer.status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert answer.status == 200
    data = answer.json()["data"]
    usage = completion.json()["usage"]
    assert data["id"] == gen_id
    assert data["model"] == "openai/gpt-4o-mini"
    assert data["provider_name"] == "OpenAI"
    assert data["streamed"] is False
    assert data["tokens_prompt"] == usage["prompt_tokens"]
    assert data["tokens_completion"] == usage["completion_tokens"]
    assert data["native_tokens_completion"] == usage["completion_tokens"]
    assert data["total_cost"] == usage["cost"] == data["usage"]
    assert data["finish_reason"] == "stop"
    assert isinstance(data["latency"], int) and isinstance(data["generation_time"], int)
    assert data["created_at"].endswith("+00:00")


async def test_generation_errors(sim: Simulator, session: aiohttp.ClientSession) -> None:
    base = sim.base_url
    assert (await fetch(session, "GET", f"{base}/generation?id=gen-1-nothing")).status == 404
    assert (await fetch(session, "GET", f"{base}/generation")).status == 400
    unauth = await fetch(session, "GET", f"{base}/generation?id=gen-1-x", token=None)
    assert unauth.status == 401


async def test_streamed_generation_is_marked_streamed(
    sim: Simulator, chat: Chat, session: aiohttp.ClientSession
) -> None:
    streamed = await chat(stream=True)
    gen_id = streamed.headers["X-Generation-Id"]
    answer = await fetch(session, "GET", f"{sim.base_url}/generation?id={gen_id}")
    assert answer.status == 200
    assert answer.json()["data"]["streamed"] is True
