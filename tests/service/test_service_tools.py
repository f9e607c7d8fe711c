"""Tools, n, logprobs, reasoning, service tiers and `models` through the gateway, with the `openai` SDK."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from gateway_support import MESSAGES

from lyra.simulator import Fault, Simulator
from lyra.simulator import schema as js

MINI = "openai/gpt-4o-mini"
HAIKU = "anthropic/claude-3-haiku"
QUOTE: Any = {"type": "function", "function": {
    "name": "get_quote", "description": "The last price of a symbol",
    "parameters": {"type": "object", "properties": {
        "symbol": {"type": "string", "enum": ["BTC/USDT", "ETH/USDT"]},
        "depth": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["symbol", "depth"], "additionalProperties": False}}}
NEWS: Any = {"type": "function", "function": {"name": "get_news", "parameters": {
    "type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}}}
SCHEMAS = {"get_quote": QUOTE["function"]["parameters"], "get_news": NEWS["function"]["parameters"]}


def _conforms(name: str, arguments: str) -> bool:
    schema = SCHEMAS[name]
    return bool(js.conforms(json.loads(arguments), schema, schema))


async def test_a_tool_call_and_its_result_round_trip_through_the_sdk(desk: openai.AsyncOpenAI) -> None:
    reply = await desk.chat.completions.create(model=MINI, messages=MESSAGES, tools=[QUOTE], max_tokens=100)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_quote"
    assert _conforms(call.function.name, call.function.arguments)
    history: list[Any] = [*MESSAGES, choice.message.model_dump(exclude_none=True),
                          {"role": "tool", "tool_call_id": call.id, "content": '{"price": 97000.5}'}]
    answer = await desk.chat.completions.create(model=MINI, messages=history, tools=[QUOTE], max_tokens=100)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content and not answer.choices[0].message.tool_calls
    none = await desk.chat.completions.create(model=MINI, messages=MESSAGES, tools=[QUOTE], tool_choice="none")
    assert none.choices[0].message.content and none.choices[0].finish_reason == "stop"


async def test_streamed_tool_calls_accumulate_in_the_sdks_stream_helper(desk: openai.AsyncOpenAI) -> None:
    whole = await desk.chat.completions.create(model=MINI, messages=MESSAGES, tools=[QUOTE, NEWS])
    expected = [(c.id, c.function.name, c.function.arguments) for c in whole.choices[0].message.tool_calls or []]
    assert len(expected) == 2
    async with desk.chat.completions.stream(model=MINI, messages=MESSAGES, tools=[QUOTE, NEWS]) as stream:
        fragments = 0
        async for event in stream:
            if event.type == "chunk":
                fragments += sum(len(c.delta.tool_calls or []) for c in event.chunk.choices)
        final = await stream.get_final_completion()
    assert fragments > 2
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []] == expected
    assert all(_conforms(c.function.name, c.function.arguments) for c in message.tool_calls or [])


async def test_n_choices_whole_and_streamed(desk: openai.AsyncOpenAI) -> None:
    reply = await desk.chat.completions.create(model=MINI, messages=MESSAGES, n=3, max_tokens=60)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert all(c.message.content for c in reply.choices)
    assert reply.usage is not None
    assert reply.usage.completion_tokens == sum(-(-len(c.message.content or "") // 4) for c in reply.choices)
    stream = await desk.chat.completions.create(model=MINI, messages=MESSAGES, n=3, max_tokens=60, stream=True)
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == {c.index: c.message.content for c in reply.choices}
    assert set(finishes) == {0, 1, 2}


async def test_logprobs_whole_and_streamed(desk: openai.AsyncOpenAI) -> None:
    reply = await desk.chat.completions.create(model=MINI, messages=MESSAGES, logprobs=True, top_logprobs=2,
                                               max_tokens=60)
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    assert "".join(t.token for t in logprobs.content) == reply.choices[0].message.content
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 and t.bytes for t in logprobs.content)
    stream = await desk.chat.completions.create(model=MINI, messages=MESSAGES, logprobs=True, max_tokens=60,
                                                stream=True)
    tokens = [t.token async for chunk in stream for c in chunk.choices if c.logprobs
              for t in c.logprobs.content or []]
    assert "".join(tokens) == reply.choices[0].message.content


async def test_reasoning_is_returned_billed_and_accepted_back(desk: openai.AsyncOpenAI) -> None:
    reply = await desk.chat.completions.create(model=MINI, messages=MESSAGES, max_tokens=100,
                                               extra_body={"reasoning": {"max_tokens": 40}})
    message = reply.choices[0].message.model_dump()
    assert message["reasoning"] and message["reasoning_details"][0]["type"] == "reasoning.text"
    assert reply.usage is not None and reply.usage.completion_tokens_details is not None
    reasoning_tokens = reply.usage.completion_tokens_details.reasoning_tokens or 0
    assert 0 < reasoning_tokens <= 40
    back: list[Any] = [*MESSAGES, {"role": "assistant", "content": reply.choices[0].message.content,
                                   "reasoning": message["reasoning"],
                                   "reasoning_details": message["reasoning_details"]},
                       {"role": "user", "content": "And ETH?"}]
    again = await desk.chat.completions.create(model=MINI, messages=back, reasoning_effort="low", max_tokens=100)
    assert again.choices[0].message.content


async def test_service_tier_session_and_user_pass_through(desk: openai.AsyncOpenAI) -> None:
    reply = await desk.chat.completions.create(model=MINI, messages=MESSAGES, service_tier="flex", user="u7",
                                               extra_body={"session_id": "desk-btc"})
    assert reply.service_tier == "flex"


async def test_a_models_list_is_served_by_the_second_when_the_first_fails(
        desk: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="server_error", model=MINI, status=503))
    reply = await desk.chat.completions.create(model=MINI, messages=MESSAGES, max_tokens=40,
                                               extra_body={"models": [HAIKU]})
    assert reply.model == HAIKU and reply.choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as denied:  # a premium model: not the desk's tiers
        await desk.chat.completions.create(model=MINI, messages=MESSAGES, extra_body={"models": ["openai/gpt-4o"]})
    assert denied.value.body["param"] == "models[0]"  # type: ignore[index]


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 9}, "n"),
    ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
    ({"tools": [QUOTE], "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
])
async def test_what_the_gateway_refuses_is_a_400_naming_the_field(desk: openai.AsyncOpenAI,
                                                                  extra: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await desk.chat.completions.create(model=MINI, messages=MESSAGES, extra_body=extra)
    assert refused.value.body["param"] == param  # type: ignore[index]


async def test_streamed_reasoning_is_relayed_and_counted(desk: openai.AsyncOpenAI) -> None:
    stream = await desk.chat.completions.create(model=MINI, messages=MESSAGES, max_tokens=100, stream=True,
                                                extra_body={"reasoning": {"effort": "low"}})
    thought, usage = "", None
    async for chunk in stream:
        for choice in chunk.choices:
            thought += (choice.delta.model_extra or {}).get("reasoning") or ""
        usage = chunk.usage or usage
    assert thought
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == -(-len(thought) // 4)
