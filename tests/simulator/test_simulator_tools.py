"""The simulator speaks tools, n, logprobs, reasoning and service_tier as OpenRouter does."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sim_helpers import Chat, sse_events

from lyra.simulator import schema as js

QUOTE = {
    "type": "function",
    "function": {
        "name": "get_quote",
        "description": "The last price of a symbol",
        "parameters": {
            "type": "object",
            "properties": {
                "symbol": {"type": "string", "enum": ["BTC/USDT", "ETH/USDT"]},
                "depth": {"type": "integer", "minimum": 1, "maximum": 5},
                "venue": {"type": "string", "maxLength": 12},
            },
            "required": ["symbol", "depth"],
            "additionalProperties": False,
        },
    },
}
NEWS = {"type": "function", "function": {"name": "get_news", "parameters": {
    "type": "object", "properties": {"topic": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
    "required": ["topic"]}}}
ASK = [{"role": "user", "content": "What is BTC trading at?"}]


def _parameters(name: str) -> dict[str, Any]:
    tool = QUOTE if name == "get_quote" else NEWS
    params: dict[str, Any] = tool["function"]["parameters"]  # type: ignore[index]
    return params


def _assert_follows_schema(call: dict[str, Any]) -> None:
    assert call["type"] == "function" and call["id"].startswith("call_")
    arguments = orjson.loads(call["function"]["arguments"])
    schema = _parameters(call["function"]["name"])
    assert js.conforms(arguments, schema, schema), arguments
    assert set(schema["required"]) <= set(arguments)


async def test_auto_with_one_tool_calls_it_with_arguments_that_follow_its_schema(chat: Chat) -> None:
    body = (await chat(messages=ASK, tools=[QUOTE])).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_quote"
    _assert_follows_schema(call)
    # The arguments are billed as output; the tool definitions as input.
    plain = (await chat(messages=ASK)).json()
    assert body["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"]
    assert body["usage"]["completion_tokens"] >= len(call["function"]["arguments"]) // 4


async def test_parallel_calls_when_allowed_and_one_call_when_not(chat: Chat) -> None:
    both = (await chat(messages=ASK, tools=[QUOTE, NEWS])).json()["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in both] == ["get_quote", "get_news"]
    assert len({c["id"] for c in both}) == 2
    for call in both:
        _assert_follows_schema(call)
    one = (await chat(messages=ASK, tools=[QUOTE, NEWS], parallel_tool_calls=False)).json()
    assert len(one["choices"][0]["message"]["tool_calls"]) == 1


async def test_tool_choice_none_answers_in_text_and_a_named_choice_calls_that_tool(chat: Chat) -> None:
    text = (await chat(messages=ASK, tools=[QUOTE, NEWS], tool_choice="none")).json()["choices"][0]
    assert text["finish_reason"] == "stop" and text["message"]["content"]
    assert "tool_calls" not in text["message"]
    named = {"type": "function", "function": {"name": "get_news"}}
    called = (await chat(messages=ASK, tools=[QUOTE, NEWS], tool_choice=named)).json()["choices"][0]
    assert [c["function"]["name"] for c in called["message"]["tool_calls"]] == ["get_news"]


async def test_after_a_tool_result_auto_answers_in_text_but_required_calls_again(chat: Chat) -> None:
    first = (await chat(messages=ASK, tools=[QUOTE])).json()["choices"][0]["message"]
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": first["tool_calls"]},
               {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": '{"price": 97000}'}]
    answer = (await chat(messages=history, tools=[QUOTE])).json()["choices"][0]
    assert answer["finish_reason"] == "stop" and answer["message"]["content"]
    again = (await chat(messages=history, tools=[QUOTE], tool_choice="required")).json()["choices"][0]
    assert again["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(("extra", "words"), [
    ({"tool_choice": "required"}, "required"),
    ({"tools": [{"type": "function", "function": {}}]}, "tools"),
    ({"tools": [QUOTE], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"n": 0}, '"n"'),
    ({"logprobs": True, "top_logprobs": 99}, "top_logprobs"),
    ({"reasoning": {"effort": "enormous"}}, "reasoning.effort"),
])
async def test_malformed_options_are_openrouters_400(chat: Chat, extra: dict[str, Any], words: str) -> None:
    answer = await chat(messages=ASK, **extra)
    assert answer.status == 400
    assert words in answer.json()["error"]["message"]


async def test_a_streamed_tool_call_arrives_in_fragments_that_add_up_to_the_call(chat: Chat) -> None:
    whole = (await chat(messages=ASK, tools=[QUOTE, NEWS])).json()["choices"][0]["message"]["tool_calls"]
    _, events, done = sse_events((await chat(messages=ASK, tools=[QUOTE, NEWS], stream=True)).text)
    assert done
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for event in events:
        for choice in event["choices"]:
            finish = choice["finish_reason"] or finish
            for fragment in choice["delta"].get("tool_calls") or []:
                call = calls.setdefault(fragment["index"], {"arguments": ""})
                if "id" in fragment:
                    call["id"], call["name"] = fragment["id"], fragment["function"]["name"]
                call["arguments"] += fragment["function"]["arguments"]
    assert finish == "tool_calls"
    assert len(calls) == 2
    assert [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())] == [
        (w["id"], w["function"]["name"], w["function"]["arguments"]) for w in whole]
    assert sum(1 for e in events for c in e["choices"] if c["delta"].get("tool_calls")) > 2  # in pieces


async def test_n_choices_each_with_an_index_and_usage_covering_all(chat: Chat) -> None:
    one = (await chat(messages=ASK, max_tokens=60)).json()
    three = (await chat(messages=ASK, n=3, max_tokens=60)).json()
    assert [c["index"] for c in three["choices"]] == [0, 1, 2]
    assert three["choices"][0]["message"]["content"] == one["choices"][0]["message"]["content"]
    tokens = sum(-(-len(c["message"]["content"]) // 4) for c in three["choices"])
    assert three["usage"]["completion_tokens"] == tokens
    assert three["usage"]["cost"] > one["usage"]["cost"]
    _, events, _ = sse_events((await chat(messages=ASK, n=3, max_tokens=60, stream=True)).text)
    texts = {0: "", 1: "", 2: ""}
    for event in events:
        for choice in event["choices"]:
            texts[choice["index"]] += choice["delta"].get("content") or ""
    assert texts == {c["index"]: c["message"]["content"] for c in three["choices"]}


async def test_logprobs_cover_every_token_with_the_top_alternatives(chat: Chat) -> None:
    body = (await chat(messages=ASK, logprobs=True, top_logprobs=3)).json()
    choice = body["choices"][0]
    entries = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == choice["message"]["content"]
    assert len(entries) == body["usage"]["completion_tokens"]
    for entry in entries:
        assert entry["logprob"] <= 0 and bytes(entry["bytes"]).decode() == entry["token"]
        assert len(entry["top_logprobs"]) == 3 and entry["top_logprobs"][0]["token"] == entry["token"]
    assert (await chat(messages=ASK)).json()["choices"][0]["logprobs"] is None
    _, events, _ = sse_events((await chat(messages=ASK, logprobs=True, stream=True)).text)
    streamed = [e for ev in events for c in ev["choices"] if c["logprobs"] for e in c["logprobs"]["content"]]
    assert "".join(e["token"] for e in streamed) == choice["message"]["content"]


async def test_reasoning_is_billed_as_output_and_shown_unless_excluded(chat: Chat) -> None:
    plain = (await chat(messages=ASK, max_tokens=100)).json()
    body = (await chat(messages=ASK, max_tokens=100, reasoning={"max_tokens": 30})).json()
    message, usage = body["choices"][0]["message"], body["usage"]
    reasoning_tokens = usage["completion_tokens_details"]["reasoning_tokens"]
    assert 0 < reasoning_tokens <= 30
    assert message["reasoning"] and -(-len(message["reasoning"]) // 4) == reasoning_tokens
    assert message["reasoning_details"][0]["type"] == "reasoning.text"
    assert usage["completion_tokens"] == plain["usage"]["completion_tokens"] + reasoning_tokens
    assert usage["cost"] > plain["usage"]["cost"]
    hidden = (await chat(messages=ASK, max_tokens=100, reasoning={"max_tokens": 30, "exclude": True})).json()
    assert hidden["choices"][0]["message"]["reasoning"] is None
    assert hidden["usage"]["completion_tokens_details"]["reasoning_tokens"] == reasoning_tokens
    _, events, _ = sse_events((await chat(messages=ASK, max_tokens=100, reasoning={"effort": "low"},
                                          stream=True)).text)
    thought = "".join(c["delta"].get("reasoning") or "" for e in events for c in e["choices"])
    assert thought and events[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


async def test_the_service_tier_asked_for_is_echoed(chat: Chat) -> None:
    assert (await chat(messages=ASK, service_tier="flex")).json()["service_tier"] == "flex"
    assert "service_tier" not in (await chat(messages=ASK)).json()
    _, events, _ = sse_events((await chat(messages=ASK, service_tier="priority", stream=True)).text)
    assert {e.get("service_tier") for e in events} == {"priority"}
