"""Non-streaming chat completions: body shape, usage and cost, ids, fallback, model errors."""

from __future__ import annotations

import math
import re
from decimal import Decimal

from sim_helpers import TOKEN, Chat

from lyra.catalog.models import load_catalog
from lyra.simulator import Simulator, key_label

CATALOG = load_catalog()


def _expected_cost(model_id: str, prompt_tokens: int, completion_tokens: int) -> float:
    model = CATALOG.get(model_id)
    cost = model.prompt_per_m * prompt_tokens + model.completion_per_m * completion_tokens
    return float(cost / Decimal(1_000_000))


async def test_body_has_openrouter_shape_and_catalogue_cost(chat: Chat) -> None:
    answer = await chat(model="openai/gpt-4o", usage={"include": True}, transforms=[])

    assert answer.status == 200
    body = answer.json()
    assert re.fullmatch(r"gen-\d{10}-[A-Za-z0-9]{20}", body["id"])
    assert answer.headers["X-Generation-Id"] == body["id"]
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "openai/gpt-4o"
    assert body["provider"] == "OpenAI"
    assert body["system_fingerprint"] is None
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["native_finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["refusal"] is None and choice["message"]["reasoning"] is None
    assert "openai/gpt-4o" in choice["message"]["content"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["is_byok"] is False
    assert {"prompt_tokens_details", "cost_details", "completion_tokens_details"} <= set(usage)
    expected = _expected_cost("openai/gpt-4o", usage["prompt_tokens"], usage["completion_tokens"])
    assert math.isclose(usage["cost"], expected, rel_tol=1e-12)


async def test_prompt_tokens_are_a_quarter_of_the_characters_plus_four_per_message(
    chat: Chat,
) -> None:
    messages = [
        {"role": "system", "content": "x" * 40},
        {"role": "user", "content": [{"type": "text", "text": "y" * 13}]},
    ]
    body = (await chat(messages=messages)).json()
    assert body["usage"]["prompt_tokens"] == (10 + 4) + (4 + 4)


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(chat: Chat) -> None:
    body = (await chat(model="anthropic/claude-sonnet-4.6", max_tokens=3)).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["native_finish_reason"] == "max_tokens"
    assert body["usage"]["completion_tokens"] == 3
    assert len(choice["message"]["content"]) <= 12


async def test_stats_count_calls_models_keys_and_cost(sim: Simulator, chat: Chat) -> None:
    first = (await chat(model="openai/gpt-4o-mini")).json()
    second = (await chat(model="openai/gpt-4o-mini")).json()

    assert sim.stats.calls == 2
    assert sim.stats.by_model["openai/gpt-4o-mini"] == 2
    assert sim.stats.by_key == {key_label(TOKEN): 2}
    model = CATALOG.get("openai/gpt-4o-mini")
    nanos = sum(
        model.cost_nanos(b["usage"]["prompt_tokens"], b["usage"]["completion_tokens"])
        for b in (first, second)
    )
    assert sim.stats.total_cost_nanos == nanos


async def test_routing_suffix_serves_the_base_model(chat: Chat) -> None:
    body = (await chat(model="openai/gpt-4o:nitro")).json()
    assert body["model"] == "openai/gpt-4o:nitro"
    assert body["provider"] == "OpenAI"
    usage = body["usage"]
    expected = _expected_cost("openai/gpt-4o", usage["prompt_tokens"], usage["completion_tokens"])
    assert math.isclose(usage["cost"], expected, rel_tol=1e-12)


async def test_unknown_model_is_400(chat: Chat) -> None:
    answer = await chat(model="acme/fake-1.0")
    assert answer.status == 400
    body = answer.json()
    assert body["error"]["code"] == 400
    assert body["error"]["message"] == "acme/fake-1.0 is not a valid model ID"
    assert body["user_id"].startswith("user_")


async def test_retired_model_is_404_with_2026_availability(chat: Chat) -> None:
    answer = await chat(model="anthropic/claude-3-opus")
    assert answer.status == 404
    error = answer.json()["error"]
    assert error["code"] == 404
    assert error["metadata"]["error_type"] == "not_found"
    availability = error["availability"]
    assert availability["code"] == "model_deprecated"
    assert availability["retryable"] is False
    assert availability["requested_models"] == ["anthropic/claude-3-opus"]


async def test_models_list_falls_back_past_retired_and_unknown_ids(
    sim: Simulator, chat: Chat
) -> None:
    answer = await chat(
        model="anthropic/claude-3-opus",
        models=["acme/fake-1.0", "anthropic/claude-3-haiku"],
    )
    assert answer.status == 200
    body = answer.json()
    assert body["model"] == "anthropic/claude-3-haiku"
    assert body["provider"] == "Anthropic"
    usage = body["usage"]
    expected = _expected_cost(
        "anthropic/claude-3-haiku", usage["prompt_tokens"], usage["completion_tokens"]
    )
    assert math.isclose(usage["cost"], expected, rel_tol=1e-12)
    assert sim.stats.by_model["anthropic/claude-3-opus"] == 1
    assert sim.stats.by_model["anthropic/claude-3-haiku"] == 1


async def test_models_list_without_model_uses_the_first_entry(chat: Chat) -> None:
    body = (await chat(model="", models=["x-ai/grok-4.6", "openai/gpt-4o"])).json()
    assert body["model"] == "x-ai/grok-4.6"


async def test_every_candidate_failing_returns_the_last_error(chat: Chat) -> None:
    answer = await chat(model="acme/one", models=["anthropic/claude-3-opus"])
    assert answer.status == 404


async def test_missing_credentials_are_401(chat: Chat) -> None:
    answer = await chat(token=None)
    assert answer.status == 401
    assert answer.json()["error"] == {
        "code": 401,
        "message": "No auth credentials found",
        "metadata": {"error_type": "authentication"},
    }


async def test_revoked_key_is_401_user_not_found(sim: Simulator, chat: Chat) -> None:
    assert (await chat()).status == 200
    sim.revoke_key(TOKEN)
    answer = await chat()
    assert answer.status == 401
    assert answer.json()["error"]["message"] == "User not found."


async def test_bad_bodies_are_400(chat: Chat) -> None:
    assert (await chat(messages=[])).status == 400
    assert (await chat(max_tokens=0)).status == 400
    assert (await chat(models="openai/gpt-4o")).status == 400


async def test_prompt_over_the_context_window_is_400(chat: Chat) -> None:
    huge = [{"role": "user", "content": "z" * (16_384 * 4)}]
    answer = await chat(model="microsoft/phi-4", messages=huge)
    assert answer.status == 400
    assert answer.json()["error"]["metadata"]["error_type"] == "context_length_exceeded"
