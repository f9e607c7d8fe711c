"""The gateway through LiteLLM, as an OpenAI-compatible endpoint (`openai/` models with `api_base`).

LiteLLM reports the model the caller asked for on stream chunks of an `openai/` endpoint; through
its `openrouter/` provider it reports the model that served each chunk, and Lyra speaks
OpenRouter's wire format, so the streaming tests use that provider.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import litellm
import pytest
from gateway_support import MESSAGES
from pydantic import BaseModel, Field

from clients.served import LIBRARY_NOTES, ONE_LOOP, Served

# LiteLLM reads pydantic fields off instances when it rebuilds a stream: its warning, not ours.
pytestmark = [LIBRARY_NOTES, pytest.mark.filterwarnings("ignore:Accessing the 'model_:DeprecationWarning")]

MODEL = "openai/gpt-4o-mini"
litellm.suppress_debug_info = True  # no "Give Feedback" banner on every error


class Decision(BaseModel):
    action: Literal["buy", "sell", "hold"]
    confidence: float = Field(ge=0, le=1)


PRICE_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_price",
        "description": "The latest traded price of a symbol, in USD.",
        "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}},
                       "required": ["symbol"], "additionalProperties": False},
    },
}
PRICE_QUESTION: Any = [{"role": "user", "content": "What is BTC trading at right now? Use the tool."}]


def gateway(served: Served, *, token: str | None = None) -> dict[str, Any]:
    """The keyword arguments that point a LiteLLM call at the gateway."""
    return {"api_base": served.url, "api_key": token or served.token, "max_retries": 0, "num_retries": 0}


def test_a_plain_completion(served: Served) -> None:
    reply = litellm.completion(model="openai/tier:fast", messages=MESSAGES, max_tokens=64, **gateway(served))
    assert "/" in reply.model  # the model that served it
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens > 0


@ONE_LOOP
async def test_a_plain_completion_async(served: Served) -> None:
    reply = await litellm.acompletion(model=f"openai/{MODEL}", messages=MESSAGES, max_tokens=64, **gateway(served))
    assert reply.model == MODEL
    assert reply.choices[0].message.content


def test_a_stream_names_the_served_model_on_every_chunk_and_ends_with_usage(served: Served) -> None:
    stream = litellm.completion(model="openrouter/tier:fast", messages=MESSAGES, max_tokens=80, stream=True,
                                stream_options={"include_usage": True}, **gateway(served))
    chunks = list(stream)
    [served_model] = {chunk.model for chunk in chunks}
    assert "/" in served_model and served_model != "tier:fast"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0


@ONE_LOOP
async def test_a_stream_async_rebuilds_into_one_answer(served: Served) -> None:
    stream = await litellm.acompletion(model=f"openai/{MODEL}", messages=MESSAGES, max_tokens=80, stream=True,
                                       stream_options={"include_usage": True}, **gateway(served))
    chunks = [chunk async for chunk in stream]
    rebuilt = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    assert rebuilt is not None
    assert rebuilt.choices[0].message.content == "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert rebuilt.usage.completion_tokens > 0


def test_a_pydantic_response_format_is_sent_as_a_json_schema(served: Served) -> None:
    reply = litellm.completion(model=f"openai/{MODEL}", messages=MESSAGES, max_tokens=200,
                               response_format=Decision, **gateway(served))
    Decision.model_validate_json(reply.choices[0].message.content)


def test_a_tool_call_and_its_result_round_trip(served: Served) -> None:
    first = litellm.completion(model=f"openai/{MODEL}", messages=PRICE_QUESTION, max_tokens=200, tools=[PRICE_TOOL],
                               tool_choice={"type": "function", "function": {"name": "get_price"}},
                               **gateway(served))
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    [call] = message.tool_calls
    assert call.function.name == "get_price" and call.id
    assert isinstance(json.loads(call.function.arguments)["symbol"], str)
    history = [*PRICE_QUESTION, message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": '{"symbol": "BTC", "price_usd": 97000}'}]
    second = litellm.completion(model=f"openai/{MODEL}", messages=history, max_tokens=200, tools=[PRICE_TOOL],
                                **gateway(served))
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls


def test_a_streamed_tool_call_rebuilds_into_one_call(served: Served) -> None:
    stream = litellm.completion(model=f"openai/{MODEL}", messages=PRICE_QUESTION, max_tokens=200,
                                tools=[PRICE_TOOL], tool_choice="required", stream=True,
                                stream_options={"include_usage": True}, **gateway(served))
    rebuilt = litellm.stream_chunk_builder(list(stream), messages=PRICE_QUESTION)
    assert rebuilt is not None and rebuilt.choices[0].finish_reason == "tool_calls"
    [call] = rebuilt.choices[0].message.tool_calls
    assert call.function.name == "get_price" and isinstance(json.loads(call.function.arguments)["symbol"], str)


def test_n_2_gives_two_choices(served: Served) -> None:
    reply = litellm.completion(model=f"openai/{MODEL}", messages=MESSAGES, max_tokens=64, n=2, **gateway(served))
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.message.content for c in reply.choices)


def test_logprobs_come_back(served: Served) -> None:
    reply = litellm.completion(model=f"openai/{MODEL}", messages=MESSAGES, max_tokens=64, logprobs=True,
                               top_logprobs=2, **gateway(served))
    content = reply.choices[0].logprobs.content
    assert content and "".join(t.token for t in content) == reply.choices[0].message.content
    assert all(t.logprob <= 0 and 1 <= len(t.top_logprobs) <= 2 for t in content)


def test_a_wrong_token_raises_authentication_error(served: Served) -> None:
    with pytest.raises(litellm.AuthenticationError) as caught:
        litellm.completion(model="openai/tier:fast", messages=MESSAGES, max_tokens=16,
                           **gateway(served, token="lyra-not-a-client-token"))
    assert caught.value.status_code == 401


@ONE_LOOP
async def test_a_budget_refusal_keeps_its_402_async(served: Served) -> None:
    with pytest.raises(litellm.APIError) as caught:
        await litellm.acompletion(model="openai/tier:fast", messages=MESSAGES, max_tokens=100,
                                  **gateway(served, token=served.over_budget_token))
    assert caught.value.status_code == 402
    assert "daily cap" in str(caught.value)


def test_an_invalid_field_raises_bad_request(served: Served) -> None:
    with pytest.raises(litellm.BadRequestError) as caught:
        litellm.completion(model="openai/tier:fast", messages=MESSAGES, max_tokens=16, temperature=5,
                           **gateway(served))
    assert caught.value.status_code == 400 and "temperature" in str(caught.value)


def test_the_gateways_models_are_listed(served: Served) -> None:
    ids = litellm.get_valid_models(check_provider_endpoint=True, custom_llm_provider="openai",
                                   api_key=served.token, api_base=served.url)
    assert {"tier:fast", "task:signal_generation", MODEL} <= set(ids)
