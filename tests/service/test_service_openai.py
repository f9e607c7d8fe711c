"""The gateway through the official `openai` SDK, against a real uvicorn server on loopback."""

from __future__ import annotations

import json

import openai
import pytest
from gateway_support import DESK_TOKEN, MESSAGES, SLOW_TOKEN, TIGHT_TOKEN

from lyra.simulator import Fault, Simulator

DECISION_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["buy", "sell", "hold"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["action", "confidence"],
    "additionalProperties": False,
}


async def test_a_completion_has_openais_shape_plus_provider_and_cost(desk: openai.AsyncOpenAI) -> None:
    reply = await desk.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES,
                                               max_tokens=64)
    assert reply.object == "chat.completion"
    assert reply.model == "openai/gpt-4o-mini"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.total_tokens > 0
    extra = reply.model_dump()
    assert extra["provider"]
    assert extra["usage"]["cost"] > 0


@pytest.mark.parametrize("name", ["tier:fast", "task:signal_generation"])
async def test_model_may_name_a_tier_or_a_task(desk: openai.AsyncOpenAI, name: str) -> None:
    reply = await desk.chat.completions.create(model=name, messages=MESSAGES, max_tokens=32)
    assert reply.choices[0].message.content
    assert "/" in reply.model  # the model that served it, not the tier's name


async def test_a_streamed_completion_arrives_in_chunks_with_usage_at_the_end(desk: openai.AsyncOpenAI) -> None:
    stream = await desk.chat.completions.create(model="tier:fast", messages=MESSAGES,
                                                max_tokens=80, stream=True)
    pieces, usage, finish, models = [], None, None, set()
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        models.add(chunk.model)
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert len([p for p in pieces if p]) > 1
    assert "".join(pieces).strip()
    assert finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens > 0
    assert usage.model_dump()["cost"] > 0
    [served] = models  # the served model on every chunk, never the target `tier:fast`
    assert "/" in served


async def test_a_seeded_stream_with_provider_preferences_still_streams(desk: openai.AsyncOpenAI) -> None:
    stream = await desk.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=80, stream=True,
                                                seed=7, extra_body={"provider": {"sort": "price"}})
    texts = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert len(texts) > 1  # piece by piece, not one burst at the end


async def test_structured_output_passes_the_json_schema_through(desk: openai.AsyncOpenAI) -> None:
    reply = await desk.chat.completions.create(
        model="openai/gpt-4o-mini", messages=MESSAGES, max_tokens=200,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "decision", "strict": True, "schema": DECISION_SCHEMA}})
    decision = json.loads(reply.choices[0].message.content or "")
    assert set(decision) == {"action", "confidence"}
    assert decision["action"] in ("buy", "sell", "hold")


async def test_structured_output_streams_and_parses(desk: openai.AsyncOpenAI) -> None:
    stream = await desk.chat.completions.create(
        model="openai/gpt-4o-mini", messages=MESSAGES, max_tokens=200, stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "decision", "schema": DECISION_SCHEMA}})
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert set(json.loads(text)) == {"action", "confidence"}


async def test_a_wrong_token_is_refused_with_401(gateway: str) -> None:
    intruder_token = "lyra-not-a-client-token"
    async with openai.AsyncOpenAI(api_key=intruder_token, base_url=gateway, max_retries=0) as intruder:
        with pytest.raises(openai.AuthenticationError) as caught:
            await intruder.chat.completions.create(model="tier:fast", messages=MESSAGES)
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_api_key"
        assert "lyra-not-a-client-token" not in str(caught.value.body)


async def test_a_client_over_its_daily_budget_is_refused_with_402(gateway: str, sim: Simulator) -> None:
    async with openai.AsyncOpenAI(api_key=TIGHT_TOKEN, base_url=gateway, max_retries=0) as tight:
        with pytest.raises(openai.APIStatusError) as caught:
            await tight.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=100)
        assert caught.value.status_code == 402
        body = caught.value.body
        assert isinstance(body, dict)
        assert body["type"] == "insufficient_quota" and body["code"] == "budget_exceeded"
        # What the client needs: its own cap, what was needed, when it resets; never a key's name.
        assert "client 'tight' has reached its daily cap" in body["message"]
        assert body["budget"]["cap"] == "client:tight" and body["budget"]["limit"] == 0.00001
        assert body["budget"]["needed"] > body["budget"]["limit"] - body["budget"]["used"]
        assert body["budget"]["resets_at"].endswith("Z") and "key" not in body["message"]
        assert sim.stats.calls == 0  # refused before any upstream call


async def test_a_tier_the_client_may_not_use_is_refused_with_403(desk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await desk.chat.completions.create(model="tier:premium", messages=MESSAGES)
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == "model" and "premium" in body["message"]


async def test_requests_per_minute_are_limited_with_retry_after(gateway: str) -> None:
    async with openai.AsyncOpenAI(api_key=SLOW_TOKEN, base_url=gateway, max_retries=0) as slow:
        for _ in range(2):
            await slow.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16)
        with pytest.raises(openai.RateLimitError) as caught:
            await slow.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16)
        assert int(caught.value.response.headers["retry-after"]) >= 1


async def test_an_upstream_that_keeps_failing_gives_503(desk: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="server_error"))
    with pytest.raises(openai.InternalServerError) as caught:
        await desk.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES, max_tokens=16)
    assert caught.value.status_code == 503
    assert caught.value.code == "no_model_available"


async def test_a_stream_failing_midway_ends_with_an_error_event(desk: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="midstream_error"))
    stream = await desk.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES,
                                                max_tokens=200, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass


async def test_models_lists_the_catalogue_and_the_clients_tiers_and_tasks(desk: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in desk.models.list()]
    assert "openai/gpt-4o-mini" in ids
    assert "tier:fast" in ids and "tier:advanced" in ids
    assert "tier:premium" not in ids  # desk may not use it
    assert "task:signal_generation" in ids and "task:risk_assessment" not in ids


async def test_the_sync_sdk_works_too(gateway: str) -> None:
    import asyncio

    def call() -> str:
        with openai.OpenAI(api_key=DESK_TOKEN, base_url=gateway, max_retries=0) as client:
            reply = client.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16)
            return reply.choices[0].message.content or ""

    assert await asyncio.to_thread(call)


async def test_models_list_in_openrouters_shape_and_only_what_the_client_may_use(
        desk: openai.AsyncOpenAI, gateway: str) -> None:
    from decimal import Decimal

    listed = [m.model_dump() for m in (await desk.models.list()).data]
    models = [m for m in listed if "/" in m["id"]]
    assert models and all(m["created"] > 0 for m in models)
    assert {m["tier"] for m in models} <= {"fast", "advanced"}  # desk's tiers; no premium model shown
    assert not any(m["id"].startswith("tier:premium") for m in listed)
    mini = next(m for m in models if m["id"] == "openai/gpt-4o-mini")
    assert Decimal(mini["pricing"]["prompt"]) * 1_000_000 == Decimal("0.15")  # USD per token, as a string
    assert "e" not in mini["pricing"]["prompt"].lower()
    one = await desk.models.retrieve("openai/gpt-4o-mini")
    assert one.model_dump() == mini
    with pytest.raises(openai.NotFoundError):
        await desk.models.retrieve("anthropic/claude-opus-4.8")  # a premium model: not desk's to use
    async with openai.AsyncOpenAI(api_key=SLOW_TOKEN, base_url=gateway, max_retries=0) as every_tier:
        wider = [m.id for m in (await every_tier.models.list()).data]
    assert "anthropic/claude-opus-4.8" in wider
