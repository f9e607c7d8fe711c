"""The gateway through the official `openai` SDK, sync and async, as an application calls it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import openai
import pytest
from gateway_support import MESSAGES
from pydantic import BaseModel, Field

from clients.served import LIBRARY_NOTES, Served

pytestmark = LIBRARY_NOTES

MODEL = "openai/gpt-4o-mini"


class Decision(BaseModel):
    action: Literal["buy", "sell", "hold"]
    confidence: float = Field(ge=0, le=1)


class GetPrice(BaseModel):
    """The latest traded price of a symbol."""

    symbol: str


class GetFundingRate(BaseModel):
    """The current perpetual-futures funding rate of a symbol."""

    symbol: str


PRICE_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_price",
        "description": "The latest traded price of a symbol, in USD.",
        "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}},
                       "required": ["symbol"], "additionalProperties": False},
    },
}
FUNDING_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_funding_rate",
        "description": "The current perpetual-futures funding rate of a symbol.",
        "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}},
                       "required": ["symbol"], "additionalProperties": False},
    },
}
PRICE_QUESTION: Any = [{"role": "user", "content": "What is BTC trading at right now? Use the tool."}]
BOTH_QUESTION: Any = [{"role": "user", "content": "BTC price and funding rate, please: call both tools at once."}]
FORCE_PRICE: Any = {"type": "function", "function": {"name": "get_price"}}


@pytest.fixture
def client(served: Served) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=served.token, base_url=served.url, max_retries=0) as sync_client:
        yield sync_client


@pytest.fixture
async def aclient(served: Served) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key=served.token, base_url=served.url, max_retries=0) as async_client:
        yield async_client


def test_a_plain_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=64)
    assert reply.object == "chat.completion"
    assert "/" in reply.model  # the model that served it, not `tier:fast`
    [choice] = reply.choices
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens > 0


async def test_a_plain_completion_async(aclient: openai.AsyncOpenAI) -> None:
    reply = await aclient.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=64)
    assert reply.model == MODEL
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens > 0


def test_a_stream_names_the_served_model_on_every_chunk_and_ends_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=80, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    models = {chunk.model for chunk in chunks}
    [served] = models
    assert "/" in served
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] in (
        ["stop"], ["length"])
    *_, last = chunks
    assert last.choices == [] and last.usage is not None  # usage comes last, in a chunk of its own
    assert last.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


async def test_a_stream_async(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=80, stream=True,
                                                   stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    assert {chunk.model for chunk in chunks} == {MODEL}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_the_stream_helper_accumulates_the_answer(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model=MODEL, messages=MESSAGES, max_tokens=80,
                                        stream_options={"include_usage": True}) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == final.choices[0].message.content
    assert final.model == MODEL and final.usage is not None


def test_parse_with_a_pydantic_model_sends_a_strict_json_schema(client: openai.OpenAI) -> None:
    reply = client.chat.completions.parse(model=MODEL, messages=MESSAGES, max_tokens=200,
                                          response_format=Decision)
    decision = reply.choices[0].message.parsed
    assert isinstance(decision, Decision)
    assert decision == Decision.model_validate_json(reply.choices[0].message.content or "")


async def test_a_json_schema_response_format_async(aclient: openai.AsyncOpenAI) -> None:
    schema = {"type": "object", "additionalProperties": False, "required": ["action", "confidence"],
              "properties": {"action": {"type": "string", "enum": ["buy", "sell", "hold"]},
                             "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}
    reply = await aclient.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=200,
        response_format={"type": "json_schema", "json_schema": {"name": "decision", "strict": True, "schema": schema}})
    Decision.model_validate_json(reply.choices[0].message.content or "")


def test_a_tool_call_and_its_result_round_trip(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model=MODEL, messages=PRICE_QUESTION, max_tokens=200,
                                           tools=[PRICE_TOOL], tool_choice=FORCE_PRICE)
    [choice] = first.choices
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id
    assert call.function.name == "get_price"
    assert isinstance(json.loads(call.function.arguments)["symbol"], str)
    history: Any = [*PRICE_QUESTION, choice.message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": '{"symbol": "BTC", "price_usd": 97000}'}]
    second = client.chat.completions.create(model=MODEL, messages=history, max_tokens=200, tools=[PRICE_TOOL])
    assert second.choices[0].finish_reason in ("stop", "length")
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls


async def test_a_streamed_tool_call_async(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model=MODEL, messages=PRICE_QUESTION, max_tokens=200, tools=[PRICE_TOOL], tool_choice=FORCE_PRICE,
        stream=True, stream_options={"include_usage": True})
    names, arguments, ids, finish = "", "", set(), None
    async for chunk in stream:
        assert chunk.model == MODEL
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                assert delta.index == 0
                ids |= {delta.id} if delta.id else set()
                if delta.function is not None:
                    names += delta.function.name or ""
                    arguments += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls" and names == "get_price" and len(ids) == 1
    assert isinstance(json.loads(arguments)["symbol"], str)


def test_parse_with_a_pydantic_function_tool(client: openai.OpenAI) -> None:
    reply = client.chat.completions.parse(model=MODEL, messages=PRICE_QUESTION, max_tokens=200,
                                          tools=[openai.pydantic_function_tool(GetPrice, name="get_price")],
                                          tool_choice=FORCE_PRICE)
    [call] = reply.choices[0].message.tool_calls or []
    assert isinstance(call.function.parsed_arguments, GetPrice)


def test_parallel_tool_calls_are_answered_together(client: openai.OpenAI) -> None:
    tools = [PRICE_TOOL, FUNDING_TOOL]
    first = client.chat.completions.create(model=MODEL, messages=BOTH_QUESTION, max_tokens=300, tools=tools,
                                           tool_choice="required", parallel_tool_calls=True)
    message = first.choices[0].message
    calls = message.tool_calls or []
    assert sorted(c.function.name for c in calls) == ["get_funding_rate", "get_price"]
    assert len({c.id for c in calls}) == 2  # each result is matched to its call by id
    results = [{"role": "tool", "tool_call_id": c.id, "content": f'{{"{c.function.name}": "ok"}}'} for c in calls]
    history: Any = [*BOTH_QUESTION, message.model_dump(exclude_none=True), *results]
    second = client.chat.completions.create(model=MODEL, messages=history, max_tokens=200, tools=tools)
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls


def test_the_stream_helper_parses_streamed_parallel_tool_calls(client: openai.OpenAI) -> None:
    tools = [openai.pydantic_function_tool(GetPrice, name="get_price"),
             openai.pydantic_function_tool(GetFundingRate, name="get_funding_rate")]
    with client.chat.completions.stream(model=MODEL, messages=BOTH_QUESTION, max_tokens=300, tools=tools,
                                        tool_choice="required") as stream:
        done = [e.name for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert sorted(done) == sorted(c.function.name for c in calls) == ["get_funding_rate", "get_price"]
    assert {type(c.function.parsed_arguments) for c in calls} == {GetPrice, GetFundingRate}


def test_n_2_gives_two_choices(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=64, n=2)
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.message.content and c.finish_reason in ("stop", "length") for c in reply.choices)
    assert reply.usage is not None and reply.usage.completion_tokens > 0


async def test_a_stream_with_n_2_carries_both_choices_async(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=64, n=2,
                                                   stream=True, stream_options={"include_usage": True})
    texts, finished, usage = {0: "", 1: ""}, {}, None
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished[choice.index] = choice.finish_reason
        usage = chunk.usage
    assert all(texts.values()) and set(finished) == {0, 1}
    assert usage is not None and usage.completion_tokens > 0


def test_logprobs_cover_the_answer_token_by_token(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=64,
                                           logprobs=True, top_logprobs=2)
    [choice] = reply.choices
    assert choice.logprobs is not None and choice.logprobs.content
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
    for token in choice.logprobs.content:
        assert token.logprob <= 0
        assert 1 <= len(token.top_logprobs) <= 2 and all(t.logprob <= 0 for t in token.top_logprobs)


def test_a_wrong_token_raises_authentication_error(served: Served) -> None:
    intruder = openai.OpenAI(api_key="lyra-not-a-client-token", base_url=served.url, max_retries=0)
    with intruder, pytest.raises(openai.AuthenticationError) as caught:
        intruder.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16)
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"


async def test_a_budget_refusal_is_a_402_status_error_async(served: Served) -> None:
    async with openai.AsyncOpenAI(api_key=served.over_budget_token, base_url=served.url, max_retries=0) as tight:
        with pytest.raises(openai.APIStatusError) as caught:
            await tight.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=100)
    assert caught.value.status_code == 402
    assert caught.value.type == "insufficient_quota" and caught.value.code == "budget_exceeded"
    assert "daily cap" in caught.value.message


def test_an_invalid_field_raises_bad_request_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16, temperature=5)
    assert caught.value.status_code == 400 and caught.value.param == "temperature"


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    listed = {m.id: m for m in client.models.list()}
    assert {"tier:fast", "tier:premium", MODEL} <= set(listed)
    one = client.models.retrieve(MODEL)
    assert one.id == MODEL and one.object == "model" and one.owned_by == "openai"
    assert one.model_dump() == listed[MODEL].model_dump()
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nobody/no-such-model")


async def test_models_list_and_retrieve_async(aclient: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in aclient.models.list()]
    assert "tier:advanced" in ids and MODEL in ids
    assert (await aclient.models.retrieve("tier:fast")).id == "tier:fast"


def test_streamed_logprobs_cover_the_streamed_text(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=64, stream=True,
                                            logprobs=True, top_logprobs=1)
    text, tokens = "", []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs is not None:
                tokens += choice.logprobs.content or []
    assert text and "".join(t.token for t in tokens) == text
